"""Compiled successor function (placeholder: the reference interpreter until compiled)."""

from __future__ import annotations

from .. import ir
from ..semantics import Semantics


def compile_system(system: ir.System) -> Semantics:
    return Semantics(system)
