"""A z3 lost-update schedule, found again by the explorer over a bounded model.

refcount.py's lost updates are abstract: "cpu0 loads the count at line L;
cpu1 runs an event that changes it; cpu0 stores load + 1". Here the
milestones of that schedule become step sets of the model's IR -- the
racy load and store at L (the spec's `racy` pair) and every step that
decrements (a release) or increments (a second fork) the same counter --
and the explorer's breadth-first Search (checker/explore/search.py), run on
a guided engine over the reference interpreter, follows only the
interleavings that hit them in order: the load by some CPU, the other event
by another CPU, then the first CPU's store. Outside the milestones a CPU
runs on alone until it is back at its loop head or blocked, which keeps the
search to the schedules the z3 one describes. The search succeeds in a
state where an invariant of the model on the kind's count (`filedesc_refs`)
or on its allocation (`no_dangling`) is false; the found moves are replayed
by the explorer's trace code and written as its ITF trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .. import ir
from ..explore.options import ExploreOptions
from ..explore.search import Search
from ..explore.store import DictStore
from ..explore.traces import replay
from ..lang.elab import ALLOC_FIELD, expr_locs
from ..results import StopReason
from ..semantics import Semantics, Transition
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


class _Guided:
    """The explorer's engine for the schedule: a node is (state, milestone, owner, store step,
    free to switch, current thread). Milestones go 0 -> 1 (some CPU's racy load) -> 2 (another
    CPU's event on the count) -> 3 (the first CPU's store); outside them a CPU runs on alone
    until it is back at its loop head or blocked. The target invariants count as true before
    milestone 3, so the search stops only in a state the lost update broke."""

    def __init__(self, sem: Semantics, loads: set[int], store_of: dict[int, int], others: set[int]):
        self.sem, self.loads, self.store_of, self.others = sem, loads, store_of, others
        self.entry = [c.entry for c in sem.thread_code]

    def initial_state(self) -> Any:
        return (self.sem.initial_state(), 0, -1, -1, True, -1)

    def is_terminated(self, node: Any, tid: int) -> bool:
        return self.sem.is_terminated(node[0], tid)

    def eval_in(self, node: Any, expr: ir.Expr, env: dict[str, int] | None = None, tid: int = -1) -> Any:
        return True if node[1] != 3 else self.sem.eval_in(node[0], expr, env, tid)

    def successors(self, node: Any) -> Iterator[Transition]:
        sem = self.sem
        state, m, owner, store, free, cur = node
        n = len(self.entry)
        threads = range(n) if free or cur < 0 else [cur]
        succ = [t for tid in threads for t in sem.thread_successors(state, tid)]
        if not succ and not free:
            succ = [t for tid in range(n) for t in sem.thread_successors(state, tid)]
        for t in succ:
            if t.violations:
                continue
            sid, tid = t.step.id, t.thread
            outs = []
            if m == 0 and sid in self.loads:
                outs.append((1, tid, self.store_of[sid], True))
                outs.append((0, -1, -1, False))
            elif m == 1 and tid == owner and sid == store:
                continue                                   # the store may not come before the other event
            elif m == 1 and tid != owner and sid in self.others:
                outs.append((2, owner, store, True))
            elif m == 2 and tid == owner and sid == store:
                outs.append((3, owner, store, True))
            else:
                outs.append((m, owner, store, False))
            at_head = t.state[2][tid][0] == self.entry[tid]
            for m2, o2, s2, mile in outs:
                yield Transition(tid, t.step, (t.state, m2, o2, s2, mile or at_head, tid))


class _GuidedStore(DictStore):
    def shared_key(self) -> tuple[int, ...]:
        """The invariant cache's key: the milestone too, since the targets hold before the last."""
        node = self.last_state
        g, pools, _ = node[0]
        return (node[1], id(g), *map(id, pools))


def _targets(system: ir.System, k: str, counter: str) -> tuple[list[str], list[str]]:
    """(invariants on k's count, those and the others on k's allocation (dangling pointers))."""
    count, alloc = [], []
    for inv in system.invariants:
        locs: set[ir.Loc] = set()
        expr_locs(inv.expr, locs)
        if ir.Loc(k, counter) in locs:
            count.append(inv.name)
        if ir.Loc(k, counter) in locs or ir.Loc(k, ALLOC_FIELD) in locs:
            alloc.append(inv.name)
    return count, alloc


def replay_lost_update(u: LostUpdate, model: Any, max_states: int = 400_000,
                       time_limit: float = 50.0) -> tuple[Replay, list[Transition] | None]:
    system: ir.System = model.system
    invs = {i.name: i for i in system.invariants}
    targets = _targets(system, u.kind, u.counter)[1]
    asked = _asked(u, model)
    rep = Replay(u.kind, u.racy.line if u.racy else None, u.other, asked)
    loads, store_of, others = _milestones(system, u)
    if not loads or not others or not targets:
        rep.summary = (f"not replayed in {model.name}: the model has no "
                       + ("racy load/store at that line" if not loads else
                          "step that " + ("releases" if u.other == "release" else "increments") + " the count"
                          if not others else f"invariant on {u.kind}.{u.counter} or on dangling {u.kind} pointers"))
        return rep, None
    sem = Semantics(system)
    opts = ExploreOptions(max_states=max_states, time_limit=time_limit, symmetry=False, por=False,
                          stop_first=True, progress=False, compiled=False, shorten=False)
    search = Search(_Guided(sem, loads, store_of, others), system, opts, [invs[n] for n in targets], set(), False,
                    store=_GuidedStore())
    search.run()
    if search.stop is StopReason.INTERRUPTED:
        raise KeyboardInterrupt
    rep.limit = search.stop in (StopReason.STATE_LIMIT, StopReason.TIME_LIMIT, StopReason.MEMORY_LIMIT)
    rep.states = len(search.store)
    rep.seconds = search.seconds
    found = next((search.found[n] for n in targets if n in search.found), None)
    if found is None:
        why = ("search budget exhausted" if rep.limit else
               "no interleaving follows the schedule to a broken invariant (CPUs switch only at its milestones, "
               "their loop heads or when blocked)")
        rep.summary = f"not replayed in the explorer over {model.name}: {why} ({rep.states} states, {rep.seconds:.1f}s)"
        return rep, None
    # the schedule's moves, replayed from the initial state by the explorer's trace code
    path = replay(sem, search.path(found.target))
    ms, idx = [], found.target
    while search.parent[idx] >= 0:
        if search.store.get(search.parent[idx])[1] != search.store.get(idx)[1]:
            ms.append(search.depth[idx] - 1)
        idx = search.parent[idx]
    rep.milestones = tuple(sorted(ms))
    rep.found, rep.steps, rep.prop = True, len(path), found.prop
    a, b = path[rep.milestones[0]], path[rep.milestones[1]]
    names = [n.split(" ")[0] for n in u.other_event.split(" or ")]
    by = next((f for f in b.step.frames[1:] if f in names), b.step.frames[-1])
    rep.summary = (f"replayed in the explorer: {len(path)} steps over {model.name}, {found.prop} violated "
                   f"({sem.thread_names[a.thread]} loads, {sem.thread_names[b.thread]}'s {by} "
                   f"{'releases' if u.other == 'release' else 'increments'}; {rep.states} states, {rep.seconds:.1f}s)")
    return rep, path


def replay_all(lost: list[LostUpdate], models: list[Any], trace_dir: str | None = None) -> list[Replay]:
    """Each lost update on the first of the (loaded) models that checks an invariant on its
    kind's count; the others are reported as not asked."""
    from ..explore.traces import build_trace
    out = []
    for u in lost:
        model = next((m for m in models if _asked(u, m)), None)
        rep, path = replay_lost_update(u, model) if model is not None else (None, None)
        if rep is None:
            names = list(dict.fromkeys(n for m in models for n in _targets(m.system, u.kind, u.counter)[0]))
            what = " or ".join(names) or f"an invariant on {u.kind}.{u.counter}"
            rep = Replay(u.kind, u.racy.line if u.racy else None, u.other, False,
                         summary=f"not replayed: no --replay model checks {what}")
        if path is not None and model is not None:
            sem = Semantics(model.system)
            sched = " ; ".join(u.steps[1:])
            tr = build_trace(sem, path, model=model.name, prop=rep.prop, kind="invariant",
                             message=f"invariant {rep.prop} is false after the lost update at "
                                     f"{u.racy.where if u.racy else rep.line} ({u.other})",
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
    """The model checks an invariant on the kind's count (`filedesc_refs`)."""
    names = _targets(model.system, u.kind, u.counter)[0]
    inv = model.check.invariants
    return any(inv is None or n in inv for n in names)
