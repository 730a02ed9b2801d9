"""Data races and guarded_by discipline over the explored state space.

Two `atomic` steps never race with each other (that is what `atomic`
declares: an atomic_*() operation). A race is reported on the model-checking (co-enabledness) form of the
Eraser lockset rule: in some explored state two threads each have an
enabled step that accesses the same concrete location (a global, or one
field of one object), at least one writes, and the locks each holds at its
access have nothing in common, and the object is reachable from something
besides one thread's locals (else the other meets it only through a pool
quantifier: initialisation). Both accesses are real and can run back to
back, so there are no false alarms from initialisation (an object nobody
else can reach yet is never accessed by two threads) and both traces are
concrete. The per-location lockset (the intersection of the locks held over
every explored access, Eraser's C(v)) is kept for the report.

The Eraser rule itself is applied over the whole explored space too: each
concrete location keeps the first explored access of each kind (thread,
read/write, locks held), and two by different threads, one a write, with no
lock in common, are a race even if never enabled in the same state; each
has its own trace. Accesses to an object no other thread can reach yet are
not recorded (initialisation). With thread symmetry, a stored thread number
stands for any member of its family.

Execution contexts (`thread ... context p`, with `new E` and `dead D`) are
described in __init__, _check_handoff and _check_dead: each ordering they
add rests on conditions checked in every explored state, a breach of which
is itself a report.

guarded_by is checked on every access: the thread must hold one of the
declared locks (an sx lock exclusively for a write), unless the object is
not yet shared: no global, no other object and no other thread's locals
refer to it (Eraser's virgin/exclusive states).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import ir
from ..lang.elab import expr_locs
from ..semantics import Access, EvalError, Semantics, Transition


@dataclass
class RaceWitness:
    loc: ir.Loc
    slot: int
    state: int
    first: tuple[int, int, bool]       # (tid, step id, write)
    second: tuple[int, int, bool]
    message: str


@dataclass
class LocksetWitness:
    """Two accesses seen anywhere in the explored space (each with its own trace)."""
    loc: ir.Loc
    slot: int
    first: tuple[int, int, int]        # (state index, tid, step id)
    second: tuple[int, int, int]
    message: str


@dataclass
class GuardWitness:
    loc: ir.Loc
    slot: int
    state: int
    tid: int
    step_id: int
    message: str


class RaceObserver:
    def __init__(self, system: ir.System, sem: Semantics, sym_families: list[list[int]] | None = None,
                 report_all: bool = False, skip_ghosts: bool = True, contexts: bool = True,
                 sym_pools: frozenset[str] | set[str] = frozenset(), handoff: bool = True):
        self.system = system
        self.sem = sem
        # --all-races: `races` is never decided early, so the search goes on and every location x rule is found
        self.report_all = report_all
        # `ghost var`s are model bookkeeping whose reads the lowering confines to guards, filters and
        # other ghosts (lang/static.py): their accesses are no kernel race. Off: checked as any global.
        self.ghosts = {ir.Loc(None, gv.name) for gv in system.globals if gv.ghost} if skip_ghosts else set()
        # `thread ... context p`: the lockset rule's thread is the object in local p (the process a
        # CPU runs) while p is set. A process runs on one CPU at a time and moves between CPUs
        # through the scheduler's lock (released at the CPU's release, taken at the next pick), so
        # its accesses on different CPUs are ordered. A slot of a symmetric pool names no one
        # object across states: such a context is not used.
        self.ctx_local: list[tuple[int, str] | None] = []
        self.ctx_new: dict[str, tuple[ir.Expr, str, frozenset[ir.Loc]]] = {}
        self.ctx_dead: dict[str, tuple[ir.Expr, str, frozenset[ir.Loc]]] = {}
        for t, th in enumerate(system.threads):
            cx = None
            if contexts and th.context is not None:
                code = sem.thread_code[t]
                li = next(i for i, lv in enumerate(code.locals) if lv.name == th.context)
                pool = code.locals[li].type.pool  # type: ignore[attr-defined]
                if pool not in sym_pools:
                    cx = (li, pool)
            self.ctx_local.append(cx)
            if cx is not None and handoff and th.context_new is not None:
                locs: set[ir.Loc] = set()
                expr_locs(th.context_new, locs)
                self.ctx_new[cx[1]] = (th.context_new, th.context, frozenset(locs))
            if cx is not None and handoff and th.context_dead is not None:
                locs = set()
                expr_locs(th.context_dead, locs)
                self.ctx_dead[cx[1]] = (th.context_dead, th.context, frozenset(locs))
        # `context p new E`: while E holds of a context object o (o has not run yet), an access to
        # o's own fields by the one thread that holds o in a creator local (a local only ever set
        # from `alloc` or another creator local: it allocated o) counts as o's. Why that is
        # ordered before o's own run, and what is checked at run time for it, is in docs/explorer.md
        # ("hand-over"); a breach of those checks is a race report, so it cannot hide a race.
        self.creators: list[dict[str, list[int]]] = [self._creator_locals(t) for t in range(len(system.threads))]
        self.handoffs: dict[str, GuardWitness] = {}
        # `context p dead D`: the dual at the end of a context. While D holds of o (a zombie off
        # every CPU), o never runs again, so any other thread's access to o's fields comes after
        # all of o's own: it is tagged ("dead", o), which orders it after ("ctx", o) accesses only
        # (two threads touching a dead object are not ordered by it). See _check_dead.
        self._hand_pools = set(self.ctx_new) | set(self.ctx_dead)
        self._new_memo: dict[tuple[str, int], bool] = {}
        self._dead_memo: dict[tuple[str, int], bool] = {}
        self._new_idx = -1
        self.races: dict[ir.Loc, RaceWitness] = {}
        self.pairs: dict[ir.Loc, LocksetWitness] = {}
        # per concrete location: the first explored access of each (thread, write, locks held, atomic)
        self.records: dict[tuple[ir.Loc, int], list[tuple[int, Any, bool, frozenset[str], bool, int, int]]] = {}
        self.rec_keys: set[tuple[Any, ...]] = set()
        # With thread symmetry a stored thread number stands for any member of its family.
        self.sym_threads = {t for fam in (sym_families or []) for t in fam}
        self.guards: dict[ir.Loc, GuardWitness] = {}
        self.lockset: dict[ir.Loc, frozenset[str] | None] = {}
        self.guard_of: dict[ir.Loc, tuple[str, ...]] = {}
        for gv in system.globals:
            if gv.guarded_by:
                self.guard_of[ir.Loc(None, gv.name)] = gv.guarded_by
        for p in system.pools:
            for f in p.fields:
                if f.guarded_by:
                    self.guard_of[ir.Loc(p.name, f.name)] = f.guarded_by
        self.field_locks = {(p.name, f.name) for p in system.pools for f in p.fields
                            if isinstance(f.type, ir.LockT)}
        self.sx_globals = {gv.name for gv in system.globals
                           if isinstance(gv.type, ir.LockT) and gv.type.kind is ir.LockKind.SX}
        self.sx_fields = {(p.name, f.name) for p in system.pools for f in p.fields
                          if isinstance(f.type, ir.LockT) and f.type.kind is ir.LockKind.SX}
        self._places: dict[str, Any] = {}
        self._done: dict[tuple[int, int, bool], Access] = {}
        # `new`/`dead` are evaluated by the search's engine: the compiled one (same values, it falls
        # back to the interpreter on a runtime error) is ~10x faster than self.sem, the hot spot here
        self._ev = sem.eval_in
        self._ev_of: Any = None
        # A `new`/`dead` built only from constants, operators and the bound object's own fields is a
        # function of that object's tuple: memoised by the tuple's identity (the entry keeps it alive)
        self._obj_only = {id(d[0]): self._reads_binder_only(d[0], d[1]) for d in
                          list(self.ctx_new.values()) + list(self.ctx_dead.values())}
        self._obj_memo: dict[tuple[int, int], tuple[Any, bool]] = {}

    # -------------------------------------------------------------- hooks

    def on_state(self, search: Any, idx: int, state: Any, trans: list[Transition]) -> None:
        if self._hand_pools and search is not self._ev_of:
            self._ev_of = search
            self._ev = getattr(getattr(search, "engine", None), "eval_in", None) or self.sem.eval_in
        if self.ctx_new:
            self._check_handoff(idx, state, trans)
        if self.ctx_dead:
            self._check_dead(idx, state, trans)
        per_thread: dict[int, list[tuple[Transition, Access]]] = {}
        done = self._done
        if len(done) > 200_000:
            done.clear()         # the interpreter makes fresh Access objects: bound the memo
        for t in trans:
            acc = t.accesses
            if not acc:
                continue
            tid = t.thread
            atomic = t.step.kind is ir.StepKind.ATOMIC
            base = self.who(state, tid)
            mine = per_thread.setdefault(tid, [])
            for a in acc:
                if a.loc in self.ghosts:
                    continue
                mine.append((t, a))
                who = self._who_hand(idx, state, tid, a, base) if a.loc.pool in self._hand_pools else base
                # The compiled engine hands out one Access object per (location, kind, locks
                # held): once such an access by this thread has been fully accounted for
                # (lockset, guard, Eraser record), meeting it again changes nothing.
                k = (id(a), tid, atomic, who)
                if k in done:
                    continue
                self._lockset(a)
                settled = True
                if a.loc in self.guard_of and a.loc not in self.guards:
                    settled = self._check_guard(idx, state, t, a)
                if a.loc not in self.pairs:
                    settled = self._record(idx, state, t, a, who) and settled
                if settled:
                    done[k] = a          # keeps `a` alive, so its id is not reused
        if len(per_thread) < 2:
            return
        tids = sorted(per_thread)
        for i, ta in enumerate(tids):
            for tb in tids[i + 1:]:
                for t1, a1 in per_thread[ta]:
                    if a1.loc in self.races:
                        continue
                    for t2, a2 in per_thread[tb]:
                        if a1.loc == a2.loc and a1.slot == a2.slot and (a1.write or a2.write) \
                                and not (a1.held & a2.held) and not (
                                    t1.step.kind is ir.StepKind.ATOMIC and t2.step.kind is ir.StepKind.ATOMIC) \
                                and not self._private(state, a1, ta, tb):
                            first, second = ((t1, a1), (t2, a2)) if a1.write or not a2.write else ((t2, a2), (t1, a1))
                            self._race(idx, first, second)
                            break

    def _private(self, state: Any, a: Access, ta: int, tb: int) -> bool:
        """The object is reachable from one thread's locals only: the other reads it through a pool
        quantifier (the model's stand-in for a kernel list it is not on yet), not through a pointer.
        Initialisation, as the lockset rule and guarded_by treat it."""
        return a.loc.pool is not None and not (self.published(state, a.loc.pool, a.slot, ta)
                                               and self.published(state, a.loc.pool, a.slot, tb))

    def on_deadlock(self, search: Any, idx: int, state: Any) -> None:
        pass

    def decided(self) -> set[str]:
        if self.report_all:
            return set()
        return {"races"} if self.races or self.pairs or self.guards or self.handoffs else set()

    # ------------------------------------------------------------ hand-over

    def _creator_locals(self, tid: int) -> dict[str, list[int]]:
        """Per context pool, thread tid's locals that only an `alloc` (or another such local, or
        null) ever sets: holding o there means this thread allocated o."""
        code = self.sem.thread_code[tid]
        out: dict[str, list[int]] = {}
        for pool in self.ctx_new:
            cand = {lv.name for lv in code.locals if isinstance(lv.type, ir.RefT) and lv.type.pool == pool}
            changed = True
            while changed:
                changed = False
                for st in code.steps:
                    for e in st.effects:
                        if isinstance(e, ir.Assign) and isinstance(e.target, ir.LocalVarRef) \
                                and e.target.name in cand:
                            v = e.value
                            ok = (isinstance(v, ir.Const) and not v.value) or (
                                isinstance(v, ir.LocalRead) and v.name in cand)
                            if not ok:
                                cand.discard(e.target.name)
                                changed = True
                        elif isinstance(e, ir.Alloc) and isinstance(e.target, ir.LocalVarRef) \
                                and e.target.name in cand and e.pool != pool:
                            cand.discard(e.target.name)
                            changed = True
            out[pool] = [i for i, lv in enumerate(code.locals) if lv.name in cand]
        return out

    def _is_new(self, state: Any, pool: str, slot: int, decl: dict[str, Any] | None = None) -> bool:
        expr, binder, _ = (self.ctx_new if decl is None else decl)[pool]
        obj = None
        if self._obj_only[id(expr)]:
            objs = state[1][self.sem.pindex[pool]]
            if 1 <= slot <= len(objs):
                obj = objs[slot - 1]
            if obj is not None:
                hit = self._obj_memo.get((id(expr), id(obj)))
                if hit is not None and hit[0] is obj:
                    return hit[1]
        try:
            v = bool(self._ev(state, expr, {binder: slot}))
        except EvalError:
            v = False
        if obj is not None:
            if len(self._obj_memo) > 200_000:
                self._obj_memo.clear()
            self._obj_memo[(id(expr), id(obj))] = (obj, v)
        return v

    @classmethod
    def _reads_binder_only(cls, e: ir.Expr, binder: str) -> bool:
        if isinstance(e, ir.Const):
            return True
        if isinstance(e, ir.FieldRead):
            return isinstance(e.obj, ir.BoundRead) and e.obj.name == binder
        if isinstance(e, ir.Unary):
            return cls._reads_binder_only(e.arg, binder)
        if isinstance(e, ir.Binary):
            return cls._reads_binder_only(e.left, binder) and cls._reads_binder_only(e.right, binder)
        return False

    def _is_dead(self, state: Any, pool: str, slot: int) -> bool:
        # a free slot is no object: dead never holds of it (a stale pointer gets no tag)
        return self._allocated(state, pool, slot) and self._is_new(state, pool, slot, self.ctx_dead)

    def _new_at(self, idx: int, state: Any, pool: str, slot: int, dead: bool = False) -> bool:
        if idx != self._new_idx:
            self._new_memo.clear()
            self._dead_memo.clear()
            self._new_idx = idx
        memo = self._dead_memo if dead else self._new_memo
        k = (pool, slot)
        hit = memo.get(k)
        if hit is None:
            hit = memo[k] = self._is_dead(state, pool, slot) if dead else self._is_new(state, pool, slot)
        return hit

    def _creators_of(self, state: Any, pool: str, slot: int) -> list[int]:
        threads = state[2]
        return [t for t, cl in enumerate(self.creators) if any(threads[t][1][li] == slot for li in cl.get(pool, ()))]

    def _allocated(self, state: Any, pool: str, slot: int) -> bool:
        pi = self.sem.pindex[pool]
        return 1 <= slot <= len(state[1][pi]) and state[1][pi][slot - 1] is not None

    def _who_hand(self, idx: int, state: Any, tid: int, a: Access,
                  base: frozenset[tuple[Any, ...]]) -> frozenset[tuple[Any, ...]]:
        pool = a.loc.pool
        assert pool is not None
        if not a.slot:
            return base
        if pool in self.ctx_new and self._new_at(idx, state, pool, a.slot) \
                and self._creators_of(state, pool, a.slot) == [tid]:
            # the object's (ordered before its run) and still the creator's own (program order)
            return base | {("ctx", pool, a.slot)}
        if pool in self.ctx_dead and ("ctx", pool, a.slot) not in base \
                and self._new_at(idx, state, pool, a.slot, dead=True):
            # after everything the object did (it never runs again); still this thread's own
            return base | {("dead", pool, a.slot)}
        return base

    def _breach(self, idx: int, tid: int, step: ir.Step, pool: str, slot: int, what: str,
                kw: str = "new") -> None:
        if what in self.handoffs:
            return
        name = self.sem.thread_names[tid]
        msg = (f"context hand-over of {pool}#{slot} not as declared by `{kw}`: {name} {what}; "
               f"the accesses counted as {'after ' if kw == 'dead' else ''}the object's own may be unordered "
               "(docs/explorer.md)")
        self.handoffs[what] = GuardWitness(ir.Loc(pool, "context"), slot, idx, tid, step.id, msg)

    def _check_handoff(self, idx: int, state: Any, trans: list[Transition]) -> None:
        threads = state[2]
        for tid, cx in enumerate(self.ctx_local):
            if cx is None or cx[1] not in self.ctx_new:
                continue
            o = threads[tid][1][cx[0]]
            if o and self._new_at(idx, state, cx[1], o) and trans:
                # (1) an object that has not run yet is no thread's context
                self._breach(idx, tid, trans[0].step, cx[1], o, "runs an object of which `new` holds")
        for t in trans:
            step = t.step
            for pool, (_, _, locs) in self.ctx_new.items():
                cx = self.ctx_local[t.thread]
                if cx is not None and cx[1] == pool:
                    o = t.state[2][t.thread][1][cx[0]]
                    if o and o != threads[t.thread][1][cx[0]] and not any(
                            a.loc in locs and a.slot == o and not a.write for a in t.accesses):
                        # (3) taking an object as context reads what `new` reads (under its lock)
                        self._breach(idx, t.thread, step, pool, o,
                                     "takes it as its context without reading what `new` reads")
                if not (step.writes & locs):
                    continue
                n = len(state[1][self.sem.pindex[pool]])
                for o in range(1, n + 1):
                    if not (self._allocated(state, pool, o) and self._allocated(t.state, pool, o)):
                        continue
                    before, after = self._new_at(idx, state, pool, o), self._is_new(t.state, pool, o)
                    if before and not after and t.thread not in self._creators_of(state, pool, o):
                        # (2) only the creator ends `new` (setrunqueue)
                        self._breach(idx, t.thread, step, pool, o, "ends `new` without having allocated it")
                    elif after and not before:
                        # (2') `new` holds again only of a fresh object
                        self._breach(idx, t.thread, step, pool, o, "makes `new` hold again of a live object")

    def _check_dead(self, idx: int, state: Any, trans: list[Transition]) -> None:
        """The conditions under which a ("dead", o) access is ordered after all of o's own:
        (1) no thread's context satisfies D (o is off every CPU and is never taken again);
        (2) D, once true of an object, stays true until the object is freed;
        (3) only o's own context makes D true (so o ran, and its last step is the one that did it).
        A breach of any is a `context` race report. The reaper's side needs no check of its own:
        its access is tagged only in a state where D holds, and the search covers every
        interleaving, so if the same access can happen while D is false (o may still run) it is
        an ordinary access there and is paired with o's own. It can thus only learn that D holds
        through shared locations, D's own or ones written after D became true, and the accesses
        to those are race-checked like any other: the learning is lock-ordered (fork1: wait1
        reads p_stat and p_oncpu under sched_lock, which the CPU's release holds as it writes
        p_oncpu). Not covered: that chain passing through a `ghost` or an atomic (not checked)."""
        threads = state[2]
        for tid, cx in enumerate(self.ctx_local):
            if cx is None or cx[1] not in self.ctx_dead:
                continue
            o = threads[tid][1][cx[0]]
            if o and trans and self._new_at(idx, state, cx[1], o, dead=True):
                self._breach(idx, tid, trans[0].step, cx[1], o, "runs an object of which `dead` holds", "dead")
        for t in trans:
            step = t.step
            for pool, (_, _, locs) in self.ctx_dead.items():
                if not (step.writes & locs):
                    continue
                cx = self.ctx_local[t.thread]
                mine = threads[t.thread][1][cx[0]] if cx is not None and cx[1] == pool else 0
                n = len(state[1][self.sem.pindex[pool]])
                for o in range(1, n + 1):
                    if not (self._allocated(state, pool, o) and self._allocated(t.state, pool, o)):
                        continue
                    before, after = self._new_at(idx, state, pool, o, dead=True), self._is_dead(t.state, pool, o)
                    if before and not after:
                        self._breach(idx, t.thread, step, pool, o, "makes `dead` false of a live object", "dead")
                    elif after and not before and mine != o:
                        self._breach(idx, t.thread, step, pool, o,
                                     "makes `dead` hold of an object it does not run", "dead")

    def who(self, state: Any, tid: int) -> frozenset[tuple[Any, ...]]:
        """The lockset rule's thread for thread tid's next access: its context object, else itself
        (a set: an access by a creator to an object not run yet is also that object's)."""
        cx = self.ctx_local[tid]
        if cx is not None:
            ref = state[2][tid][1][cx[0]]
            if ref:
                return frozenset({("ctx", cx[1], ref)})
        return frozenset({("thread", tid)})

    def _record(self, idx: int, state: Any, t: Transition, a: Access, who: frozenset[tuple[Any, ...]]) -> bool:
        """Eraser over the whole explored space: pair this access with earlier ones. False if the
        access was not recorded because its object is not shared yet (so it must be seen again)."""
        atomic = t.step.kind is ir.StepKind.ATOMIC
        key = (a.loc, a.slot, who, a.write, a.held, atomic)
        if key in self.rec_keys:
            return True
        if a.loc.pool is not None and not self.published(state, a.loc.pool, a.slot, t.thread):
            return False  # initialisation of an object no one else can reach yet (not recorded: retried later)
        self.rec_keys.add(key)
        recs = self.records.setdefault((a.loc, a.slot), [])
        for tid, owho, write, held, at, sidx, sid in recs:
            if not (write or a.write) or held & a.held or (at and atomic):
                continue
            if any(i[0] == "ctx" for i in owho & who):
                continue    # one context: ordered through the scheduler (see __init__)
            if any(i[0] == "dead" and ("ctx",) + i[1:] in b for x, b in ((who, owho), (owho, who)) for i in x):
                continue    # after all of a dead object's own accesses (see _check_dead)
            if tid == t.thread and tid not in self.sym_threads:
                continue    # one thread: its steps are in program order, whatever it runs for
            names = self.sem.thread_names
            rw = lambda w: "writes" if w else "reads"
            hl = lambda h: ("holding " + ", ".join(sorted(h))) if h else "holding no lock"
            msg = (f"data race on {self._where(a.loc, a.slot)}: {names[tid]} {rw(write)} ({hl(held)}) and "
                   f"{names[t.thread]} {rw(a.write)} ({hl(a.held)}); no lock in common (lockset)")
            self.pairs[a.loc] = LocksetWitness(a.loc, a.slot, (sidx, tid, sid), (idx, t.thread, t.step.id), msg)
            return True
        recs.append((t.thread, who, a.write, a.held, atomic, idx, t.step.id))
        return True

    def on_end(self, search: Any) -> None:
        pass

    # ------------------------------------------------------------ checks

    def _lockset(self, a: Access) -> None:
        cur = self.lockset.get(a.loc)
        self.lockset[a.loc] = a.held if cur is None else cur & a.held

    def _where(self, loc: ir.Loc, slot: int) -> str:
        return loc.name if loc.pool is None else f"{loc.pool}#{slot}.{loc.name}"

    def _race(self, idx: int, first: tuple[Transition, Access], second: tuple[Transition, Access]) -> None:
        (t1, a1), (t2, a2) = first, second
        names = self.sem.thread_names
        rw = lambda a: "write" if a.write else "read"
        held = lambda a: ("holding " + ", ".join(sorted(a.held))) if a.held else "holding no lock"
        msg = (f"data race on {self._where(a1.loc, a1.slot)}: {names[t1.thread]} {rw(a1)}s "
               f"({held(a1)}) and {names[t2.thread]} {rw(a2)}s ({held(a2)}) with no common lock")
        self.races[a1.loc] = RaceWitness(a1.loc, a1.slot, idx, (t1.thread, t1.step.id, a1.write),
                                         (t2.thread, t2.step.id, a2.write), msg)

    def _guard_instances(self, loc: ir.Loc, slot: int) -> list[tuple[str, bool]]:
        out = []
        for g in self.guard_of[loc]:
            if loc.pool is not None and (loc.pool, g) in self.field_locks:
                out.append((f"{loc.pool}#{slot}.{g}", (loc.pool, g) in self.sx_fields))
            else:
                out.append((g, g in self.sx_globals))
        return out

    def _check_guard(self, idx: int, state: Any, t: Transition, a: Access) -> bool:
        """False if the check depended on the state (the object is not shared yet)."""
        inst = self._guard_instances(a.loc, a.slot)
        for name, is_sx in inst:
            if name in (a.xheld if (a.write and is_sx) else a.held):
                return True
        if a.loc.pool is not None and not self.published(state, a.loc.pool, a.slot, t.thread):
            return False
        need = " or ".join(n + (" (exclusive)" if sx and a.write else "") for n, sx in inst)
        msg = (f"{self.sem.thread_names[t.thread]} {'writes' if a.write else 'reads'} "
               f"{self._where(a.loc, a.slot)} without {need} (guarded_by)")
        self.guards[a.loc] = GuardWitness(a.loc, a.slot, idx, t.thread, t.step.id, msg)
        return True

    def _ref_places(self, pool: str) -> tuple[Any, ...]:
        """Where a ref into `pool` can be: (global index, is a list), (pool index, field index, is a
        list), per thread (local index, is a list), and the pool's own index. Computed once per
        pool: published() only looks there."""
        hit = self._places.get(pool)
        if hit is not None:
            return hit

        def into(t: ir.Type) -> bool | None:
            if isinstance(t, ir.RefT) and t.pool == pool:
                return False
            if isinstance(t, ir.ListT) and t.pool == pool:
                return True
            return None

        s = self.system
        gl = [(i, k) for i, gv in enumerate(s.globals) if (k := into(gv.type)) is not None]
        fl = [(pi, fi, k) for pi, p in enumerate(s.pools) for fi, f in enumerate(p.fields)
              if (k := into(f.type)) is not None]
        tl = [[(li, k) for li, lvar in enumerate(self.sem.thread_code[t].locals) if (k := into(lvar.type)) is not None]
              for t in range(len(s.threads))]
        own = next(pi for pi, p in enumerate(s.pools) if p.name == pool)
        hit = self._places[pool] = (gl, fl, tl, own)
        return hit

    def published(self, state: Any, pool: str, slot: int, tid: int) -> bool:
        """Whether anything but thread `tid`'s locals refers to pool slot `slot`."""
        g, pools, threads = state
        gl, fl, tl, own = self._ref_places(pool)
        if not 1 <= slot <= len(pools[own]) or pools[own][slot - 1] is None:
            return False    # free before this step: the step allocates it (a stale ref names old memory)
        for i, lst in gl:
            if (slot in g[i]) if lst else g[i] == slot:
                return True
        for pi, fi, lst in fl:
            for si, obj in enumerate(pools[pi]):
                if obj is None or (pi == own and si + 1 == slot):
                    continue
                if (slot in obj[fi]) if lst else obj[fi] == slot:
                    return True
        for other, (pc, locs, _) in enumerate(threads):
            if other == tid:
                continue
            for li, lst in tl[other]:
                if (slot in locs[li]) if lst else locs[li] == slot:
                    return True
        return False

