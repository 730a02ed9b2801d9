"""A trace prepared for reading: the one view model both renderers draw.

`build_view` does the work a reader would otherwise do in their head: which
thread moved, the seed line it ran, what changed (shrunk to what matters),
who holds which lock since when, and who waits for whom. The text renderer
(text.py) and the HTML page (html.py) only lay this out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .itf import Trace
from .seed import SeedSource, parse_ref
from .shrink import FOCUS_KEY, relevant_paths
from .values import Change, diff, flatten, fmt, lock_holders, natural_key, THREADS_KEY


@dataclass(frozen=True)
class StepView:
    index: int                      # the state this step leads into
    thread: str
    label: str
    ref: str | None                 # "kern_fork.c:270"
    file: str | None
    line: int | None
    source: str | None              # the seed line's text, when the seed file is found
    changes: tuple[Change, ...]     # shown changes (all of them with full=True)
    hidden_changes: int             # changes not shown (paths outside the shrunk view)
    locks: tuple[tuple[str, str], ...]  # (thread, "holds allproc_lock"), for threads whose holdings changed
    waits: tuple[tuple[str, str], ...]  # (thread, "waits for allproc_lock, held by cpu[0] since step 4"), new ones
    loop_start: bool                # this step's state is where a lasso's cycle starts


@dataclass(frozen=True)
class TraceView:
    model: str
    property: str
    kind: str
    engine: str
    message: str
    threads: tuple[str, ...]
    paths: tuple[str, ...]                      # the paths shown in states
    hidden_paths: int                           # paths left out by shrinking
    states: tuple[dict[str, str], ...]          # formatted values of shown paths, per state
    steps: tuple[StepView, ...]
    loop: int | None
    full: bool
    holders: tuple[dict[str, tuple[str, ...]], ...]  # per state: thread -> locks held
    waiting: tuple[dict[str, str], ...]              # per state: thread -> wait text ("waits for ...")
    sources: dict[str, dict[int, str]] = field(default_factory=dict)  # file -> line -> text, lines cited

    @property
    def length(self) -> int:
        return len(self.steps)


def build_view(trace: Trace, seed: SeedSource | None = None, *, full: bool = False) -> TraceView:
    seed = seed or SeedSource(None)
    flats = [flatten(s) for s in trace.states]
    focus = trace.extra.get(FOCUS_KEY) or []
    all_paths = sorted({p for f in flats for p in f}, key=natural_key)
    shown = all_paths if full else relevant_paths(flats, focus)
    shown_set = set(shown)

    holders = _holders(trace, flats)
    since = _since(holders)
    waiting = [_waits(trace.steps[i].blocked if trace.steps[i] else {}, flats[i], holders[i], since[i])
               for i in range(len(trace.states))]

    steps: list[StepView] = []
    sources: dict[str, dict[int, str]] = {}
    for i in range(1, len(trace.states)):
        st = trace.steps[i]
        changes = diff(flats[i - 1], flats[i])
        vis = tuple(c for c in changes if c.path in shown_set)
        pr = parse_ref(st.ref) if st else None
        text = seed.line(pr[0], pr[1]) if pr else None
        if pr and text is not None:
            sources.setdefault(pr[0], {})[pr[1]] = text
        locks = tuple((t, _holds_text(holders[i].get(t, []), since[i], t))
                      for t in sorted(set(holders[i]) | set(holders[i - 1]), key=natural_key)
                      if holders[i].get(t, []) != holders[i - 1].get(t, []))
        waits = tuple((t, w) for t, w in sorted(waiting[i].items(), key=lambda kv: natural_key(kv[0]))
                      if waiting[i - 1].get(t) != w)
        steps.append(StepView(
            index=i, thread=st.thread if st else "?", label=st.label if st else "(unknown step)",
            ref=st.ref if st else None, file=pr[0] if pr else None, line=pr[1] if pr else None,
            source=text, changes=vis, hidden_changes=len(changes) - len(vis), locks=locks, waits=waits,
            loop_start=trace.loop == i))

    return TraceView(
        model=trace.model, property=trace.property, kind=trace.kind, engine=trace.engine,
        message=trace.message, threads=tuple(_threads(trace)), paths=tuple(shown),
        hidden_paths=len(all_paths) - len(shown),
        states=tuple({p: fmt(f[p]) for p in shown if p in f} for f in flats), steps=tuple(steps),
        loop=trace.loop, full=full, holders=tuple({t: tuple(v) for t, v in h.items()} for h in holders),
        waiting=tuple(waiting), sources=sources)


def lanes(view: TraceView) -> tuple[list[str], list[str]]:
    """(threads drawn as lanes, threads without one): a thread gets a lane only if some step shows
    something in it (it acts, its locks change, it starts or stops waiting). An idle lane would
    only narrow the others, so the renderers name the idle threads in the header instead."""
    busy = {st.thread for st in view.steps}
    for st in view.steps:
        busy.update(t for t, _ in st.locks)
        busy.update(t for t, _ in st.waits)
    shown = [t for t in view.threads if t in busy]
    return (shown, [t for t in view.threads if t not in busy]) if shown else (list(view.threads), [])


def _threads(trace: Trace) -> list[str]:
    names: set[str] = set()
    t0 = trace.states[0].get(THREADS_KEY)
    if isinstance(t0, dict):
        names.update(t0)
    names.update(s.thread for s in trace.steps if s is not None)
    return sorted(names, key=natural_key)


def _holders(trace: Trace, flats: list[dict[str, Any]]) -> list[dict[str, list[str]]]:
    """Per state, thread -> locks held: from #meta when the engine recorded it, else from lock values."""
    use_meta = any(s is not None and s.locks_held for s in trace.steps)
    out: list[dict[str, list[str]]] = []
    for i, f in enumerate(flats):
        st = trace.steps[i]
        if use_meta:
            held = {t: list(v) for t, v in (st.locks_held if st else {}).items() if v}
        else:
            held = lock_holders(f)
        out.append({t: sorted(v, key=natural_key) for t, v in held.items()})
    return out


def _since(holders: list[dict[str, list[str]]]) -> list[dict[tuple[str, str], int]]:
    """Per state, (thread, lock) -> the step since which the thread has held the lock without a break."""
    out: list[dict[tuple[str, str], int]] = []
    prev: dict[tuple[str, str], int] = {}
    for i, h in enumerate(holders):
        cur = {(t, lk): prev.get((t, lk), i) for t, locks in h.items() for lk in locks}
        out.append(cur)
        prev = cur
    return out


def _holds_text(locks: list[str], since: dict[tuple[str, str], int], thread: str) -> str:
    if not locks:
        return "holds no lock"
    parts = []
    for lk in locks:
        s = since.get((thread, lk), 0)
        parts.append(lk if s == 0 else f"{lk} (since step {s})")
    return "holds " + ", ".join(parts)


def _bare(lock: str) -> str:
    return lock[:-len(" (shared)")] if lock.endswith(" (shared)") else lock


def _waits(blocked: dict[str, str], flat: dict[str, Any], held: dict[str, list[str]],
           since: dict[tuple[str, str], int]) -> dict[str, str]:
    """thread -> "waits for L, held by U since step k" (or the engine's own words)."""
    reasons = dict(blocked)
    if not reasons:
        # Without #meta, a thread's status in the valuation still says it cannot move.
        for path, v in flat.items():
            t, _, f = path.rpartition(".")
            if f == "status" and v in ("blocked", "sleeping"):
                wchan = flat.get(f"{t}.wchan")
                reasons[t] = f"sleeping on {fmt(wchan)}" if v == "sleeping" and wchan else str(v)
    out: dict[str, str] = {}
    for t, why in reasons.items():
        text = f"blocked: {why}" if why else "blocked"
        for u, locks in sorted(held.items(), key=lambda kv: natural_key(kv[0])):
            if u == t:
                continue
            hit = next((lk for lk in locks if re.search(r"(?<![\w#.\[\]])" + re.escape(_bare(lk))
                                                        + r"(?![\w#.\[\]])", why)), None)
            if hit:
                s = since.get((u, hit), 0)
                text = f"waits for {_bare(hit)}, held by {u}" + (f" since step {s}" if s else "")
                break
        out[t] = text
    return out
