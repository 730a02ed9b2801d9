"""What a trace shows: only the paths that the steps change and the property reads.

A fork1 state has dozens of fields; a counterexample is about a handful.
The default view keeps a path when it changes anywhere in the trace or the
violated property reads it (`focus`); `--full` shows every path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from .values import natural_key

FOCUS_KEY = "focus"   # Trace.extra[FOCUS_KEY]: the property's read set, as focus patterns


def matches(path: str, pattern: str) -> bool:
    """`nprocs` ~ nprocs; `proc.stat` ~ proc#3.stat; `proc` ~ every proc#N path; exact paths too."""
    if path == pattern:
        return True
    head, _, rest = path.partition(".")
    pool = head.split("#", 1)[0] if "#" in head else None
    if pool is None:
        return False
    if pattern == pool or pattern == head:
        return True
    p_pool, _, p_field = pattern.partition(".")
    return p_pool == pool and p_field == rest


def relevant_paths(flats: list[dict[str, Any]], focus: Iterable[str] = ()) -> list[str]:
    """Paths that change somewhere in the trace, plus those the focus patterns name."""
    keep: set[str] = set()
    all_paths: set[str] = set()
    for f in flats:
        all_paths.update(f)
    for a, b in zip(flats, flats[1:]):
        for k in set(a) | set(b):
            if a.get(k, _ABSENT) != b.get(k, _ABSENT):
                keep.add(k)
    pats = list(focus)
    keep.update(p for p in all_paths if any(matches(p, q) for q in pats))
    return sorted(keep, key=natural_key)


_ABSENT = object()


def focus_from_system(system: Any, prop: str) -> list[str]:
    """The globals and pool fields a property of an ir.System reads, as focus patterns."""
    from .. import ir  # local: renderers must not need the IR to show a trace file

    exprs: list[Any] = []
    for inv in system.invariants:
        if inv.name == prop:
            exprs.append(inv.expr)
    for lt in system.leadsto:
        if lt.name == prop:
            exprs += [lt.p, lt.q]
    out: set[str] = set()

    def walk(x: Any) -> None:
        if isinstance(x, (ir.GlobalRead, ir.GlobalVarRef)):
            out.add(x.name)
        elif isinstance(x, (ir.FieldRead, ir.FieldRef)):
            out.add(f"{x.pool}.{x.field}")
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            for f in dataclasses.fields(x):
                if f.name != "span":
                    walk(getattr(x, f.name))
        elif isinstance(x, (tuple, list)):
            for y in x:
                walk(y)

    for e in exprs:
        walk(e)
    return sorted(out)
