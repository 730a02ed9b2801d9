"""Argument types shared by every subcommand: a bad value is a usage error
naming what was expected (exit 2), never a traceback."""

from __future__ import annotations

import argparse


def _number(s: str, kind: type, what: str) -> int | float:
    try:
        return kind(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {s!r}") from None


def positive_int(s: str) -> int:
    v = int(_number(s, int, "an integer"))
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {s}")
    return v


def natural_int(s: str) -> int:
    v = int(_number(s, int, "an integer"))
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0: {s}")
    return v


def seconds(s: str) -> float:
    v = float(_number(s, float, "a number of seconds"))
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {s}")
    return v
