"""The forkcheck language: parse, check and lower `.fk` specs to the IR.

    load_spec(path, overrides) -> ir.System     the whole pipeline
    parse_text(text, filename) -> ast.Module    syntax only
"""

from __future__ import annotations

from pathlib import Path

from .. import ir
from ..diagnostics import SpecError, UsageError
from . import ast
from .build import build_system
from .parser import parse_module

__all__ = ["load_spec", "parse_text", "parse_file", "load_text", "SpecError"]


def parse_text(text: str, filename: str = "<text>") -> ast.Module:
    """Parse one file's text (imports are not followed)."""
    return parse_module(text, filename)


def parse_file(path: str | Path) -> ast.Module:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read {p}: {e.strerror}") from None
    return parse_module(text, str(p))


def load_spec(path: str | Path, overrides: dict[str, int | bool] | None = None) -> ir.System:
    """Parse, type-check and lower a spec (and its imports) to an ir.System.

    `overrides` replace constant and fix values before anything depends on them.
    Raises SpecError (file:line:col) on any problem in the spec.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"no such spec file: {p}")
    return build_system(p, overrides)


def load_text(text: str, filename: str = "<text>.fk",
              overrides: dict[str, int | bool] | None = None) -> ir.System:
    """load_spec on text in memory (imports resolve relative to `filename`)."""
    return build_system(Path(filename), overrides, text=text)
