"""A z3 lost-update schedule, found again by the explorer over a bounded model.

refcount.py's lost updates are abstract: "cpu0 loads the count at line L;
cpu1 runs an event that changes it; cpu0 stores load + 1". Here the
milestones of that schedule become step sets of the model's IR -- the
racy load and store at L (the spec's `racy` pair) and every step that
decrements (a release) or increments (a second fork) the same counter --
and a breadth-first search over the reference interpreter follows only the
interleavings that hit them in order: the load by some CPU, the other event
by another CPU, then the first CPU's store. Outside the milestones a CPU
runs on alone until it is back at its loop head or blocked, which keeps the
search to the schedules the z3 one describes. The search succeeds in a
state where the model's `<kind>_refs` or `no_dangling` invariant is false,
and the path is written as the explorer's ITF trace.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import interrupt, ir
from ..semantics import EvalError, Semantics, Transition
from .refcount import LostUpdate
from .refcount_ir import kinds_of


@dataclass
class Replay:
    kind: str
    line: int | None
    other: str
    asked: bool                 # the model checks this kind's invariant
    found: bool = False
    limit: bool = False         # the search budget ran out first
    steps: int = 0
    states: int = 0
    seconds: float = 0.0
    prop: str = ""
    trace_file: str | None = None
    summary: str = ""
    milestones: tuple[int, ...] = ()    # path indices of the load, the other event, the store


def _delta_of(code: ir.Code, st: ir.Step, k: str, counter: str) -> int | None:
    """What a step adds to k's counter: +c / -c, or None when it sets it."""
    def lin(v: ir.Expr) -> int | None:
        if isinstance(v, ir.Binary) and v.op in (ir.BinOp.ADD, ir.BinOp.SUB) and isinstance(v.right, ir.Const) \
                and isinstance(v.left, ir.FieldRead) and v.left.pool == k and v.left.field == counter:
            return int(v.right.value) * (1 if v.op is ir.BinOp.ADD else -1)
        return None

    for i, e in enumerate(st.effects):
        if not (isinstance(e, ir.Assign) and isinstance(e.target, ir.FieldRef) and e.target.pool == k
                and e.target.field == counter):
            continue
        d = lin(e.value)
        if d is not None or not isinstance(e.value, ir.LocalRead):
            return d
        name = e.value.name
        for prev in reversed(st.effects[:i]):
            if isinstance(prev, ir.Assign) and isinstance(prev.target, ir.LocalVarRef) and prev.target.name == name:
                return lin(prev.value)
        # a load into a local by the step just before (`racy`, or `n := c - 1; c := n`)
        for ld in code.steps:
            if ld.dst == st.src:
                for e2 in ld.effects:
                    if isinstance(e2, ir.Assign) and isinstance(e2.target, ir.LocalVarRef) \
                            and e2.target.name == name:
                        return lin(e2.value)
    return None


def _milestones(system: ir.System, u: LostUpdate) -> tuple[set[int], dict[int, int], set[int]]:
    kinds = {k.name: k for k in kinds_of(system)}
    k = kinds.get(u.kind)
    if k is None or u.racy is None:
        return set(), {}, set()
    pairs = {r.load: r.store for r in k.racy if r.line == u.racy.line and r.delta == u.racy.delta}
    want = -1 if u.other == "release" else 1
    others = set()
    for code in system.codes:
        for st in code.steps:
            if any(isinstance(e, ir.Assign) and isinstance(e.target, ir.FieldRef) and e.target.pool == k.name
                   and e.target.field == k.counter for e in st.effects):
                if _delta_of(code, st, k.name, k.counter) == want:
                    others.add(st.id)
    return set(pairs), pairs, others


def replay_lost_update(u: LostUpdate, model: Any, max_states: int = 400_000,
                       time_limit: float = 50.0) -> tuple[Replay, list[Transition] | None]:
    system: ir.System = model.system
    invs = {i.name: i for i in system.invariants}
    targets = [n for n in (f"{u.kind}_refs", "no_dangling") if n in invs]
    asked = _asked(u, model)
    rep = Replay(u.kind, u.racy.line if u.racy else None, u.other, asked)
    loads, store_of, others = _milestones(system, u)
    if not loads or not others or not targets:
        rep.summary = (f"not replayed in {model.name}: the model has no "
                       + ("racy load/store at that line" if not loads else
                          "step that " + ("releases" if u.other == "release" else "increments") + " the count"
                          if not others else f"{u.kind}_refs or no_dangling invariant"))
        return rep, None
    sem = Semantics(system)
    codes = sem.thread_code
    t0 = time.monotonic()
    init = sem.initial_state()
    # node: (state, milestone, owner, store step, free to switch, current thread)
    start = (init, 0, -1, -1, True, -1)
    parent: dict[Any, tuple[Any, Transition] | None] = {start: None}
    todo = deque([start])
    found = None
    while todo:
        if len(parent) > max_states or time.monotonic() - t0 > time_limit:
            rep.limit = True
            break
        if len(parent) % 1024 == 0:
            interrupt.check()
        node = todo.popleft()
        state, m, owner, store, free, cur = node
        if m == 3:
            bad = None
            for n in targets:
                try:
                    ok = sem.eval_in(state, invs[n].expr)
                except EvalError:
                    ok = False
                if not ok:
                    bad = n
                    break
            if bad is not None:
                found = (node, bad)
                break
        threads = range(len(codes)) if free or cur < 0 else [cur]
        succ = [t for tid in threads for t in sem.thread_successors(state, tid)]
        if not succ and not free:
            succ = [t for tid in range(len(codes)) for t in sem.thread_successors(state, tid)]
        for t in succ:
            if t.violations:
                continue
            sid, tid = t.step.id, t.thread
            outs = []
            if m == 0 and sid in loads:
                outs.append((1, tid, store_of[sid], True))
                outs.append((0, -1, -1, False))
            elif m == 1 and tid == owner and sid == store:
                continue                                   # the store may not come before the other event
            elif m == 1 and tid != owner and sid in others:
                outs.append((2, owner, store, True))
            elif m == 2 and tid == owner and sid == store:
                outs.append((3, owner, store, True))
            else:
                outs.append((m, owner, store, False))
            at_head = t.state[2][tid][0] == codes[tid].entry
            for m2, o2, s2, mile in outs:
                child = (t.state, m2, o2, s2, mile or at_head, tid)
                if child not in parent:
                    parent[child] = (node, t)
                    todo.append(child)
    rep.states = len(parent)
    rep.seconds = time.monotonic() - t0
    if found is None:
        why = ("search budget exhausted" if rep.limit else
               "no interleaving follows the schedule to a broken invariant (CPUs switch only at its milestones, "
               "their loop heads or when blocked)")
        rep.summary = f"not replayed in the explorer over {model.name}: {why} ({rep.states} states, {rep.seconds:.1f}s)"
        return rep, None
    node, prop = found
    path: list[Transition] = []
    ms: list[int] = []
    while parent[node] is not None:
        m_after = node[1]
        node, t = parent[node]
        if node[1] != m_after:
            ms.append(len(path))
        path.append(t)
    path.reverse()
    rep.milestones = tuple(sorted(len(path) - 1 - i for i in ms))
    rep.found, rep.steps, rep.prop = True, len(path), prop
    a, b = path[rep.milestones[0]], path[rep.milestones[1]]
    names = [n.split(" ")[0] for n in u.other_event.split(" or ")]
    by = next((f for f in b.step.frames[1:] if f in names), b.step.frames[-1])
    rep.summary = (f"replayed in the explorer: {len(path)} steps over {model.name}, {prop} violated "
                   f"({sem.thread_names[a.thread]} loads, {sem.thread_names[b.thread]}'s {by} "
                   f"{'releases' if u.other == 'release' else 'increments'}; {rep.states} states, {rep.seconds:.1f}s)")
    return rep, path


def replay_all(lost: list[LostUpdate], models: list[Any], trace_dir: str | None = None) -> list[Replay]:
    """Each lost update on the first of the (loaded) models that checks its kind's `_refs`
    invariant; the others are reported as not asked."""
    from ..explore.traces import build_trace
    out = []
    for u in lost:
        model = next((m for m in models if _asked(u, m)), None)
        rep, path = replay_lost_update(u, model) if model is not None else (None, None)
        if rep is None:
            rep = Replay(u.kind, u.racy.line if u.racy else None, u.other, False,
                         summary=f"not replayed: no --replay model checks {u.kind}_refs")
        if path is not None and model is not None:
            sem = Semantics(model.system)
            sched = " ; ".join(u.steps[1:])
            tr = build_trace(sem, path, model=model.name, prop=rep.prop, kind="invariant",
                             message=f"invariant {rep.prop} is false after the lost update at "
                                     f"kern_fork.c:{rep.line} ({u.other})",
                             extra={"strategy": "guided", "schedule": sched, "source": "prove refcounts",
                                    "milestones": list(rep.milestones)})
            if trace_dir:
                f = Path(trace_dir) / f"{u.kind}_{rep.line}_{u.other}.itf.json"
                tr.write(f)
                rep.trace_file = str(f)
                rep.summary += f"; trace {f}"
        u.replay = {"summary": rep.summary, "found": rep.found, "steps": rep.steps, "property": rep.prop,
                    "milestones": list(rep.milestones), "model": model.name if model else None,
                    "states": rep.states, "trace": rep.trace_file, "asked": rep.asked}
        out.append(rep)
    return out


def _asked(u: LostUpdate, model: Any) -> bool:
    """The model defines its kind's `_refs` invariant and checks it."""
    name = f"{u.kind}_refs"
    inv = model.check.invariants
    return any(i.name == name for i in model.system.invariants) and (inv is None or name in inv)
