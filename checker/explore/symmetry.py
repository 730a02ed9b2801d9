"""Symmetry reduction (not yet active)."""

from __future__ import annotations

from typing import Any

from .. import ir


class Symmetry:
    def __init__(self, system: ir.System):
        self.system = system
        self.active = False

    def canon(self, state: Any) -> Any:
        return state

    def canon_perm(self, state: Any) -> tuple[Any, tuple[int, ...]]:
        return state, tuple(range(len(self.system.threads)))
