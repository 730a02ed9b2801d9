"""Valuations (see itf.py for the naming convention) as flat, printable paths.

A state is flattened to `path -> value` so that a diff, a shrink and both
renderers (text, HTML) speak of the same things: `nprocs`, `proc#1.stat`,
`cpu[0].trypid`, `cpu[0].status`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

THREADS_KEY = "#threads"

_SLOT = re.compile(r"^[A-Za-z_]\w*#\d+$")
_NATURAL = re.compile(r"(\d+)")

# Thread fields shown as part of the state; the pc is what the lanes already show.
_THREAD_FIELDS = ("status", "wchan")


class _Missing:
    """A path absent from a state (a freed slot, a finished frame's local)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def natural_key(s: str) -> list[Any]:
    """cpu[2] before cpu[10]."""
    return [int(p) if p.isdigit() else p for p in _NATURAL.split(s)]


def is_pool(v: Any) -> bool:
    return isinstance(v, dict) and bool(v) and all(isinstance(k, str) and _SLOT.match(k) for k in v)


def is_mutex(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {"owner", "depth"}


def is_sx(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {"xowner", "shared"}


def flatten(state: dict[str, Any]) -> dict[str, Any]:
    """One path per shown value; locks stay whole (their format says who holds them)."""
    out: dict[str, Any] = {}
    for key in sorted(state, key=natural_key):
        v = state[key]
        if key == THREADS_KEY and isinstance(v, dict):
            for t in sorted(v, key=natural_key):
                info = v[t] if isinstance(v[t], dict) else {}
                for f in _THREAD_FIELDS:
                    if f in info:
                        out[f"{t}.{f}"] = info[f]
                for name, x in sorted((info.get("locals") or {}).items()):
                    out[f"{t}.{name}"] = x
        elif is_pool(v):
            for slot in sorted(v, key=natural_key):
                rec = v[slot]
                if isinstance(rec, dict) and not is_mutex(rec) and not is_sx(rec):
                    for f, x in rec.items():
                        out[f"{slot}.{f}"] = x
                else:
                    out[slot] = rec
        else:
            out[key] = v
    return out


def thread_pcs(state: dict[str, Any]) -> dict[str, str]:
    threads = state.get(THREADS_KEY)
    if not isinstance(threads, dict):
        return {}
    return {t: str(info.get("pc", "")) for t, info in threads.items() if isinstance(info, dict)}


def fmt(v: Any) -> str:
    """A value as a reader wants it: null, true, [proc#1, proc#2], cpu[0] (x2), free."""
    if v is MISSING:
        return "-"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if is_mutex(v):
        if v["owner"] is None:
            return "free"
        return str(v["owner"]) + (f" (x{v['depth']})" if isinstance(v["depth"], int) and v["depth"] > 1 else "")
    if is_sx(v):
        if v["xowner"] is not None:
            return f"x:{v['xowner']}"
        if v["shared"]:
            return "s:{" + ", ".join(str(t) for t in v["shared"]) + "}"
        return "free"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {fmt(x)}" for k, x in v.items()) + "}"
    return str(v)


@dataclass(frozen=True)
class Change:
    path: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.path}: {fmt(self.old)} -> {fmt(self.new)}"


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """Changed paths between two flattened states, in a stable order."""
    keys = sorted(set(before) | set(after), key=natural_key)
    return [Change(k, before.get(k, MISSING), after.get(k, MISSING))
            for k in keys if before.get(k, MISSING) != after.get(k, MISSING)]


def lock_holders(flat: dict[str, Any]) -> dict[str, list[str]]:
    """thread -> lock paths it holds, read off lock-shaped values (when #meta has no locks)."""
    out: dict[str, list[str]] = {}
    for path, v in flat.items():
        if is_mutex(v) and v["owner"] is not None:
            out.setdefault(str(v["owner"]), []).append(path)
        elif is_sx(v):
            if v["xowner"] is not None:
                out.setdefault(str(v["xowner"]), []).append(path)
            for t in v["shared"] or ():
                out.setdefault(str(t), []).append(f"{path} (shared)")
    return out
