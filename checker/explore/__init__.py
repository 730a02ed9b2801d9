"""The explicit-state explorer: search, safety and lock analyses, liveness, reductions."""

from .check import check
from .options import ExploreOptions, Strategy

__all__ = ["check", "ExploreOptions", "Strategy"]
