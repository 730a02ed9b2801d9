"""forkcheck: a formal model and model checker for FreeBSD's fork1() (2001 SMPng)."""

__version__ = "0.1.0"
