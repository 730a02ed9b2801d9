"""Partial-order reduction (not yet active)."""

from __future__ import annotations

from typing import Any

from .. import ir


class Por:
    def __init__(self, system: ir.System, selected: list[str]):
        self.active = False
        self.note = ""

    def ample(self, state: Any, trans: list[Any]) -> list[Any]:
        return trans
