"""Each syscall's effect on reference counts, derived from the spec's IR.

For every refcounted pool K of the spec (a `struct ... refcount FIELD`) and
one arbitrary object o of K (a symbolic slot), the abstraction of
checker/prove/refcount.py is

    refcnt(o)   o's count field
    holders(o)  allocated records with a `ref K` field pointing to o
    zombies(o)  the holders that are zombie processes (in the exit's state, SZOMB)
    freed(o)    o's slot is not allocated

No name of fork1.fk is built in. What the pointer lemma needs about
processes is found in the IR (process_facts), or the derivation stops with
a DeriveError at the spec's file:line:col:

    process     the record every CPU-frame syscall call passes (`sys_fork(p)`)
    running     the state its pick requires (`pick proc where p.p_stat == SRUN`)
    zombie      the other state one syscall, the exit, sets on its own process
    lists       the global list the exit takes it off and the one it puts it on
    released    the holder fields the exit clears, or whose count (object) it releases
    live, kept  the pointer fields set in every running process / zombie: the
                greatest set that init establishes and every event gives back

One CPU thread runs one syscall through the IR steps (encode.py's step
encoding), every other thread frozen, from a symbolic quiescent pre-state
in which every count equals its holders. Syscalls whose count changes all
lie in one procedure that several of them call (fork1) are one event, that
procedure entered with every argument symbolic. Paths are merged at join
points (if-then-else states, as BMC's unrolling), and a loop that writes no
count, no holder pointer and allocates or frees nothing of the kinds is
summarised by havocking what it writes. The run stops where no such step
(nor a write of the state or a live field) is reachable any more: the
counts are final there, and the pointer lemma the pre-state assumes
(running processes hold the live pointers, zombies the kept ones and none
the exit releases) is checked to hold again. z3 then lists every possible
(delta refcnt, delta holders, delta zombies, freed after) for each case of
o (freed; held by the caller; held by a zombie; count 1), over every flag
combination at once. Those deltas are constants, so the counter proof in
refcount.py holds for any number of processes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import z3

from .. import interrupt, ir
from ..diagnostics import ForkcheckError, Span
from .encode import Z3_STOPPED, Encoder, SymState, _ite, make_solver, solve

DEFAULT_SPEC = Path(__file__).resolve().parents[2] / "spec" / "fork1.fk"


class DeriveError(ForkcheckError):
    """The spec's IR does not have the shape the derivation needs."""


class DeriveInterrupted(KeyboardInterrupt):
    """Ctrl-C/SIGTERM during the derivation: the events derived so far and the one in progress."""

    def __init__(self, done: list[tuple[str, float]], current: str) -> None:
        super().__init__(current)
        self.done, self.current = done, current


class DeriveTimeout(DeriveError):
    """z3 gave up (--timeout): no verdict, exit 3 as any limit."""
    exit_code = 3


@dataclass(frozen=True)
class KindIR:
    name: str                                # pool ("filedesc")
    counter: str                             # its refcount field
    holders: tuple[tuple[str, str], ...]     # (pool, field) of every `ref K` field
    freed_at_zero: bool                      # some step frees an object of K
    racy: tuple["RacyStep", ...]             # load/store pairs on the counter


@dataclass(frozen=True)
class RacyStep:
    """A `racy` read-modify-write of a counter: its load and store steps."""
    kind: str
    line: int | None                          # seed line, when the spec cites one
    where: str                                # "kern_fork.c:470", else the step label
    frames: tuple[str, ...]
    label: str
    load: int                                 # step ids
    store: int
    delta: int                                # +1 increment, -1 decrement


@dataclass(frozen=True)
class Case:
    freed: bool      # o is free before the call
    actor: bool      # the calling process holds o
    zombie: bool     # some zombie holds o
    last: bool       # refcnt(o) == 1

    def describe(self) -> str:
        if self.freed:
            return "o free"
        return ", ".join([("caller holds o" if self.actor else "caller does not hold o"),
                          ("a zombie holds o" if self.zombie else "no zombie holds o"),
                          ("count 1" if self.last else "count != 1")])


@dataclass(frozen=True)
class Delta:
    case: Case
    dr: int
    dh: int
    dz: int
    freed_after: bool
    flags: str = ""          # a flag-set argument taking this delta (fork1's rflags), for the reader

    def describe(self) -> str:
        d = f"refcnt {self.dr:+d}, holders {self.dh:+d}"
        if self.dz:
            d += f", zombies {self.dz:+d}"
        return d + (", freed" if self.freed_after else "")


@dataclass
class EventIR:
    name: str
    deltas: dict[str, list[Delta]] = field(default_factory=dict)   # kind -> every delta
    seconds: float = 0.0
    lines: tuple[int, ...] = ()                                      # seed lines of its refcount steps
    lemma: bool | None = None            # the pointer lemma holds after it (None: solver gave up)
    lemma_cex: str = ""
    proc: str = ""                       # the procedure it runs ("fork1", "exit1")


@dataclass
class Derivation:
    spec: str
    kinds: list[KindIR]
    events: list[EventIR]
    seconds: float
    init_ok: dict[str, bool]         # the init block establishes count == holders
    facts: ProcFacts | None = None   # the process facts the pointer lemma was built from


# ------------------------------------------------------------------ IR scans

def _lv_targets(e: ir.Effect) -> list[ir.LValue]:
    if isinstance(e, (ir.Assign, ir.Alloc)):
        return [e.target]
    if isinstance(e, ir.ListUpdate):
        return [e.lst]
    if isinstance(e, (ir.Acquire, ir.Release, ir.Upgrade)):
        return [e.lock]
    if isinstance(e, ir.Sleep) and e.interlock is not None:
        return [e.interlock]
    return []


def kinds_of(system: ir.System) -> list[KindIR]:
    out = []
    for p in system.pools:
        if p.refcount_field is None:
            continue
        holders = tuple((q.name, f.name) for q in system.pools for f in q.fields
                        if isinstance(f.type, ir.RefT) and f.type.pool == p.name)
        frees = any(isinstance(e, ir.Free) and isinstance(e.obj.type, ir.RefT) and e.obj.type.pool == p.name
                    for s in system.steps for e in s.effects)
        out.append(KindIR(p.name, p.refcount_field, holders, frees, tuple(_racy(system, p))))
    return out


def _racy(system: ir.System, p: ir.Pool) -> Iterator[RacyStep]:
    """Load/store pairs on p's counter: the store writes the counter from the
    local the load computed (`racy x := x + d`)."""
    for code in system.codes:
        for st in code.steps:
            if st.kind is not ir.StepKind.STORE:
                continue
            a = st.effects[0]
            if not (isinstance(a, ir.Assign) and isinstance(a.target, ir.FieldRef) and a.target.pool == p.name
                    and a.target.field == p.refcount_field and isinstance(a.value, ir.LocalRead)):
                continue
            for ld in code.steps:
                if ld.kind is ir.StepKind.LOAD and ld.dst == st.src and isinstance(ld.effects[0], ir.Assign) \
                        and getattr(ld.effects[0].target, "name", None) == a.value.name:
                    v = ld.effects[0].value
                    d = 0
                    if isinstance(v, ir.Binary) and isinstance(v.right, ir.Const):
                        d = int(v.right.value) * (1 if v.op is ir.BinOp.ADD else -1)
                    label = st.label.split(" [")[0]
                    yield RacyStep(p.name, st.ref.line if st.ref else None, str(st.ref) if st.ref else label,
                                   st.frames, label, ld.id, st.id, d)


def relevant(step: ir.Step, kinds: list[KindIR], extra: frozenset[tuple[str, str]] = frozenset()) -> bool:
    """The step may change a count, a holder pointer, or the allocation of an
    object of a kind or of a holder (or one of the `extra` fields)."""
    pools = {k.name for k in kinds}
    hold = {h for k in kinds for h in k.holders} | extra
    counters = {(k.name, k.counter) for k in kinds}
    owners = {pl for pl, _ in hold}
    for e in step.effects:
        if isinstance(e, ir.Alloc) and (e.pool in pools or e.pool in owners):
            return True
        if isinstance(e, ir.Free) and isinstance(e.obj.type, ir.RefT) and (
                e.obj.type.pool in pools or e.obj.type.pool in owners):
            return True
        for lv in _lv_targets(e):
            if isinstance(lv, ir.FieldRef) and ((lv.pool, lv.field) in counters or (lv.pool, lv.field) in hold):
                return True
    return False


# ---------------------------------------------------------- process facts
# What the pointer lemma needs to know about processes, found in the IR rather
# than by name, so a spec with other names gets the same proof or a DeriveError.

@dataclass
class ProcFacts:
    pool: str                        # the records a CPU runs syscalls for ("proc")
    actor: str                       # the CPU-frame local holding it ("p")
    stat: str                        # its state field, from the CPU's pick ("p_stat")
    running: int                     # the state the pick requires (SRUN)
    zombie: int                      # the state an exit leaves its own process in (SZOMB)
    names: tuple[str, ...]           # the state enum's members, for messages
    run_list: str                    # the global list the exit takes it off (allproc)
    zombie_list: str                 # the one it puts it on (zombproc)
    exit_event: str                  # that syscall ("exit1")
    released: tuple[str, ...]        # holder fields the exit clears or releases: null in a zombie
    live: tuple[str, ...] = ()       # pointer fields set in every running process (a fixpoint)
    kept: tuple[str, ...] = ()       # those set in every zombie (a fixpoint)


def _conjuncts(e: ir.Expr | None) -> Iterator[ir.Expr]:
    if isinstance(e, ir.Binary) and e.op is ir.BinOp.AND:
        yield from _conjuncts(e.left)
        yield from _conjuncts(e.right)
    elif e is not None:
        yield e


def _actor(code: ir.Code, span: Span) -> ir.LocalVar:
    """The CPU-frame local every syscall is called with (`sys_fork(p)`)."""
    args = {e.value.name for st in code.steps if st.frames == (code.name,) and st.kind is ir.StepKind.CALL
            for e in st.effects if isinstance(e, ir.Assign) and isinstance(e.value, ir.LocalRead)}
    cands = [v for v in code.locals if v.frame == code.name and v.name in args and isinstance(v.type, ir.RefT)]
    if len(cands) != 1:
        raise DeriveError(f"thread code {code.name!r}: cannot tell the process it runs syscalls for: "
                          f"its calls pass {len(cands)} record locals (need exactly one)", span)
    return cands[0]


def _running(code: ir.Code, actor: ir.LocalVar, span: Span) -> tuple[str, int, ir.EnumT]:
    """The state field and value of the CPU's pick (`p := pick proc where p.p_stat == SRUN ...`)."""
    pool = actor.type.pool
    found = set()
    for st in code.steps:
        if st.frames != (code.name,):
            continue
        slots = [e.value for e in st.effects if isinstance(e, ir.Assign) and isinstance(e.target, ir.LocalVarRef)
                 and e.target.name == actor.name and isinstance(e.value, ir.Const) and e.value.value]
        for c in _conjuncts(st.guard) if slots else ():
            if isinstance(c, ir.Binary) and c.op is ir.BinOp.EQ and isinstance(c.left, ir.FieldRead) \
                    and c.left.pool == pool and c.left.obj == slots[0] and isinstance(c.right, ir.Const) \
                    and isinstance(c.left.type, ir.EnumT):
                found.add((c.left.field, int(c.right.value), c.left.type))
    if len(found) != 1:
        raise DeriveError(f"thread code {code.name!r}: its `{actor.display} := pick {pool} where ...` must "
                          f"compare one state field with one enum member (`{actor.display}.F == RUNNING`), "
                          f"so running processes can be told; found {len(found)}", span)
    return found.pop()


def _aliases(code: ir.Code, root: str) -> set[str]:
    """Locals that only ever hold `root`'s value (call parameters bound from it) or their initial constant."""
    vals: dict[str, list[ir.Expr]] = {}
    for st in code.steps:
        for e in st.effects:
            if isinstance(e, ir.Assign) and isinstance(e.target, ir.LocalVarRef):
                vals.setdefault(e.target.name, []).append(e.value)
    out = {root}
    grew = True
    while grew:
        grew = False
        for n, vs in vals.items():
            if n not in out and all(isinstance(v, ir.Const) or isinstance(v, ir.LocalRead) and v.name in out
                                    for v in vs) and any(isinstance(v, ir.LocalRead) for v in vs):
                out.add(n)
                grew = True
    return out


def _field_aliases(code: ir.Code, pool: str, actors: set[str]) -> dict[str, str]:
    """Locals that only ever hold `actor.F` for one field F (`fdfree(p.p_fd)` binds f := p.p_fd)."""
    vals: dict[str, list[ir.Expr]] = {}
    for st in code.steps:
        for e in st.effects:
            if isinstance(e, ir.Assign) and isinstance(e.target, ir.LocalVarRef):
                vals.setdefault(e.target.name, []).append(e.value)
    out: dict[str, str] = {}
    for n, vs in vals.items():
        fs = {v.field for v in vs if isinstance(v, ir.FieldRead) and v.pool == pool
              and isinstance(v.obj, ir.LocalRead) and v.obj.name in actors}
        if len(fs) == 1 and all(isinstance(v, ir.Const) or isinstance(v, ir.FieldRead) and v.field in fs
                                and v.pool == pool and isinstance(v.obj, ir.LocalRead) and v.obj.name in actors
                                for v in vs):
            out[n] = fs.pop()
    return out


def _exit_facts(code: ir.Code, kinds: list[KindIR], pool: str, stat: str, running: int, enum: ir.EnumT,
                actor: ir.LocalVar, regions: dict[str, list[ir.Step]], span: Span) -> dict[str, object]:
    """The syscall that leaves its own process in another state than running (exit1 -> SZOMB), the
    lists it moves the process between, and the counted pointers it clears or releases (a count
    written, or the object freed, through `p.F` or a local bound to it: `fdfree(p.p_fd)`)."""
    me = _aliases(code, actor.name)
    mine = lambda x: isinstance(x, ir.LocalRead) and x.name in me            # noqa: E731
    exits: dict[str, set[int]] = {}
    for name, steps in regions.items():
        for st in steps:
            for e in st.effects:
                if isinstance(e, ir.Assign) and isinstance(e.target, ir.FieldRef) and e.target.pool == pool \
                        and e.target.field == stat and mine(e.target.obj) and isinstance(e.value, ir.Const) \
                        and e.value.value != running:
                    exits.setdefault(name, set()).add(int(e.value.value))
    states = {v for vs in exits.values() for v in vs}
    run_name = enum.members[running]
    if len(exits) != 1 or len(states) != 1:
        what = ", ".join(f"{n} -> {'/'.join(enum.members[v] for v in sorted(vs))}" for n, vs in exits.items())
        raise DeriveError(f"cannot tell zombies: exactly one syscall must set its own process's {stat} to one "
                          f"state other than {run_name} (an exit); found {len(exits)}" + (f" ({what})" if what
                                                                                            else ""), span)
    name = next(iter(exits))
    moved: dict[ir.ListEdit, set[str]] = {}
    for st in regions[name]:
        for e in st.effects:
            if isinstance(e, ir.ListUpdate) and isinstance(e.lst, ir.GlobalVarRef) and mine(e.elem):
                moved.setdefault(ir.ListEdit.REMOVE if e.op is ir.ListEdit.REMOVE else ir.ListEdit.INSERT_HEAD,
                                 set()).add(e.lst.name)
    off, on = moved.get(ir.ListEdit.REMOVE, set()), moved.get(ir.ListEdit.INSERT_HEAD, set())
    if len(off) != 1 or len(on) != 1:
        raise DeriveError(f"{name}: to tell running processes from zombies it must take its process off one "
                          f"global list and put it on another (allproc -> zombproc); it removes it from "
                          f"{sorted(off) or 'none'} and inserts it into {sorted(on) or 'none'}", span)
    fa = _field_aliases(code, pool, me)
    holders = {f: k for k in kinds for p2, f in k.holders if p2 == pool}

    def field_of(x: ir.Expr) -> str | None:
        if isinstance(x, ir.FieldRead) and x.pool == pool and mine(x.obj):
            return x.field
        return fa.get(x.name) if isinstance(x, ir.LocalRead) else None

    released = set()
    for st in regions[name]:
        for e in st.effects:
            if isinstance(e, ir.Assign) and isinstance(e.target, ir.FieldRef) and e.target.pool == pool \
                    and mine(e.target.obj) and isinstance(e.value, ir.Const) and not e.value.value:
                f = e.target.field          # cleared (`p.p_limit := null`)
            elif isinstance(e, ir.Free):
                f = field_of(e.obj)
            elif isinstance(e, ir.Assign) and isinstance(e.target, ir.FieldRef) \
                    and any(e.target.pool == k.name and e.target.field == k.counter for k in kinds):
                f = field_of(e.target.obj)
            else:
                continue
            if f in holders:
                released.add(f)
    return {"zombie": states.pop(), "run_list": off.pop(), "zombie_list": on.pop(), "exit_event": name,
            "released": tuple(f for f in holders if f in released)}


# -------------------------------------------------------- symbolic execution

def _merge(parts: list[tuple[z3.BoolRef, SymState]], choice: z3.ArithRef) -> tuple[z3.BoolRef, SymState]:
    """One state for the paths reaching a pc. Several may be possible from
    one pre-state (a `choose`, a `pick`): `choice` (a fresh variable) says
    which one this run took, so no nondeterministic outcome is lost."""
    if len(parts) == 1:
        return parts[0]
    parts = [(z3.And(choice == i, g), st) for i, (g, st) in enumerate(parts)]
    g = z3.Or([p for p, _ in parts])
    base = parts[-1][1]

    def m(get):  # noqa: ANN001 -- a getter into a SymState
        v = get(base)
        for c, s in reversed(parts[:-1]):
            v = _ite(c, get(s), v)
        return v

    out = base.copy()
    for k in out.g:
        out.g[k] = m(lambda s, k=k: s.g[k])
    for pl, al in out.alive.items():
        for j in range(len(al)):
            al[j] = m(lambda s, pl=pl, j=j: s.alive[pl][j])
            for f in out.fields[pl][j]:
                out.fields[pl][j][f] = m(lambda s, pl=pl, j=j, f=f: s.fields[pl][j][f])
    for t in range(len(out.pc)):
        out.pc[t] = m(lambda s, t=t: s.pc[t])
        out.wchan[t] = m(lambda s, t=t: s.wchan[t])
        for k in out.locs[t]:
            out.locs[t][k] = m(lambda s, t=t, k=k: s.locs[t][k])
    return g, out


def region(code: ir.Code, entry: int, stop: set[int]) -> list[ir.Step]:
    """The steps a run from `entry` may take before it reaches a `stop` pc."""
    seen: set[int] = {entry}
    todo = [entry]
    while todo:
        pc = todo.pop()
        if pc in stop:
            continue
        for st in code.steps_from[pc]:
            if st.dst not in seen:
                seen.add(st.dst)
                todo.append(st.dst)
    return [st for pc in sorted(seen) if pc not in stop for st in code.steps_from[pc]]


class _Runner:
    def __init__(self, enc: Encoder, tid: int, kinds: list[KindIR], extra: frozenset[tuple[str, str]]):
        self.extra = extra          # the process state and pointer fields: runs go on to their last write
        self.enc = enc
        self.tid = tid
        self.code = enc.codes[tid]
        self.kinds = kinds
        self.assume: list[z3.BoolRef] = []
        self._n = 0

    def _choice(self) -> z3.ArithRef:
        self._n += 1
        return z3.Int(f"choice{self._n}")

    def _havoc(self, s: SymState, steps: list[ir.Step]) -> None:
        """Everything the loop's steps may write gets a fresh value of its type."""
        enc, tid = self.enc, self.tid
        self._n += 1
        tag = f"hv{self._n}"

        def fresh(name: str, t: ir.Type):  # noqa: ANN202
            v = enc._fresh_val(f"{name}@{tag}", t)
            self.assume.append(enc._in_type(t, v))
            return v

        for st in steps:
            for e in st.effects:
                for lv in _lv_targets(e):
                    if isinstance(lv, ir.LocalVarRef):
                        s.locs[tid][lv.name] = fresh(lv.name, lv.type)
                    elif isinstance(lv, ir.GlobalVarRef):
                        s.g[lv.name] = fresh(lv.name, lv.type)
                    else:
                        for j, f in enumerate(s.fields[lv.pool]):
                            f[lv.field] = fresh(f"{lv.pool}#{j + 1}.{lv.field}", lv.type)
                if isinstance(e, ir.Sleep):
                    s.wchan[tid] = fresh("wchan", ir.IntT(0, sum(enc.pool_sizes)))
                if isinstance(e, ir.Wakeup):
                    for t in range(len(s.wchan)):
                        s.wchan[t] = fresh(f"wchan{t}", ir.IntT(0, sum(enc.pool_sizes)))
                if isinstance(e, (ir.Alloc, ir.Free)):
                    raise DeriveError(f"loop at {st.label!r} allocates or frees: cannot summarise it")

    def run(self, entry: int, stop: set[int], pre: SymState) -> tuple[z3.BoolRef, SymState, set[int]]:
        """(reached, merged final state, seed lines of the relevant steps run)."""
        code = self.code
        edges = region(code, entry, stop)
        rel = {st.id for st in edges if relevant(st, self.kinds, self.extra)}
        live: set[int] = set()
        back: dict[int, list[int]] = {}
        for st in edges:
            back.setdefault(st.dst, []).append(st.src)
        todo = [st.src for st in edges if st.id in rel]
        while todo:
            pc = todo.pop()
            if pc in live:
                continue
            live.add(pc)
            todo += back.get(pc, [])
        lines = {st.ref.line for st in edges if st.id in rel and st.ref is not None}
        if entry not in live:
            return z3.BoolVal(True), pre, lines
        succ = {pc: [st for st in code.steps_from[pc]] for pc in live}
        comp = _sccs(live, {pc: [st.dst for st in succ[pc] if st.dst in live] for pc in live})
        cid = {pc: i for i, c in enumerate(comp) for pc in c}
        inbox: dict[int, list[tuple[z3.BoolRef, SymState]]] = {cid[entry]: [(z3.BoolVal(True), pre)]}
        finals: list[tuple[z3.BoolRef, SymState]] = []
        for i in reversed(range(len(comp))):          # Tarjan lists SCCs in reverse topological order
            if i not in inbox:
                continue
            g, s = _merge(inbox.pop(i), self._choice())
            c = comp[i]
            inner = [st for pc in c for st in succ[pc] if st.dst in c]
            if inner:
                bad = [st for st in inner if relevant(st, self.kinds)]
                if bad:
                    raise DeriveError(f"a loop changes reference counts ({bad[0].label!r}): cannot derive its effect")
                s = s.copy()
                self._havoc(s, inner)
            outs = [st for pc in sorted(c) for st in succ[pc] if st.dst not in c]
            for st in outs:
                s2 = s.copy()
                s2.pc[self.tid] = z3.IntVal(st.src)
                e = self.enc.run_step(s2, self.tid, st)
                g2 = z3.simplify(z3.And(g, e.enabled, z3.Not(e.violated)))
                if z3.is_false(g2):
                    continue
                if st.dst in live:
                    inbox.setdefault(cid[st.dst], []).append((g2, e.post))
                else:
                    finals.append((g2, e.post))
        if not finals:
            return z3.BoolVal(False), pre, lines
        g, s = _merge(finals, self._choice())
        return g, s, lines


def _sccs(nodes: set[int], succ: dict[int, list[int]]) -> list[list[int]]:
    """Tarjan, iterative; SCCs in reverse topological order."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on: set[int] = set()
    stack: list[int] = []
    out: list[list[int]] = []
    n = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = n
                n += 1
                stack.append(v)
                on.add(v)
            ws = succ[v]
            if i < len(ws):
                work.append((v, i + 1))
                w = ws[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            for w in ws:
                if w in on and index[w] > index[v]:
                    low[v] = min(low[v], low[w])
            if low[v] == index[v]:
                c = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    c.append(w)
                    if w == v:
                        break
                out.append(c)
    # a single pc is a loop only with a self edge
    return out


class _ArithEncoder(Encoder):
    """Flag sets bit by bit in integer arithmetic: the same values as
    encode.py's bit-vectors, which are slow to enumerate models over."""

    def _bits(self, op: ir.BinOp, a: z3.ArithRef, b: z3.ArithRef, e: ir.Binary):  # noqa: ANN201
        t = e.right.type if op is ir.BinOp.IN else e.type
        width = len(t.enum.members) if isinstance(t, ir.SetT) else 32

        def bit(x, i):  # noqa: ANN001, ANN202
            x = z3.simplify(x)
            if z3.is_int_value(x):
                return z3.BoolVal(bool(x.as_long() >> i & 1))
            return (x / (1 << i)) % 2 == 1

        if op is ir.BinOp.IN:
            a = z3.simplify(a)
            if z3.is_int_value(a):
                return bit(b, a.as_long())
            return z3.Or([z3.And(a == i, bit(b, i)) for i in range(width)])
        f = {ir.BinOp.UNION: z3.Or, ir.BinOp.INTER: z3.And,
             ir.BinOp.DIFF: lambda x, y: z3.And(x, z3.Not(y))}[op]
        return z3.Sum([z3.If(f(bit(a, i), bit(b, i)), 1 << i, 0) for i in range(width)])


# ------------------------------------------------------------- the abstraction

class _Abs:
    """refcnt/holders/zombies/freed of object slot `o` of a kind in a state."""

    def __init__(self, enc: Encoder, k: KindIR, o: z3.ArithRef, pf: ProcFacts):
        self.enc, self.k, self.o, self.pf = enc, k, o, pf
        self.size = enc.pools[k.name].size

    def refcnt(self, s: SymState) -> z3.ArithRef:
        return self.enc._select(self.k.name, self.o, [f[self.k.counter] for f in s.fields[self.k.name]])

    def freed(self, s: SymState) -> z3.BoolRef:
        return z3.Not(z3.Or([z3.And(self.o == j + 1, a) for j, a in enumerate(s.alive[self.k.name])]))

    def _holds(self, s: SymState, pl: str, j: int) -> z3.BoolRef:
        return z3.Or([s.fields[pl][j][f] == self.o for p2, f in self.k.holders if p2 == pl] or [z3.BoolVal(False)])

    def holders(self, s: SymState, zombies: bool = False) -> z3.ArithRef:
        terms = []
        for pl in sorted({p for p, _ in self.k.holders}):
            if zombies and pl != self.pf.pool:
                continue
            for j, a in enumerate(s.alive[pl]):
                for p2, f in self.k.holders:
                    if p2 != pl:
                        continue
                    c = z3.And(a, s.fields[pl][j][f] == self.o)
                    if zombies:
                        c = z3.And(c, s.fields[pl][j][self.pf.stat] == self.pf.zombie)
                    terms.append(z3.If(c, 1, 0))
        return z3.Sum(terms) if terms else z3.IntVal(0)


def _type_ok(enc: Encoder, s: SymState, tid: int) -> z3.BoolRef:
    """encode.py's type_ok for the globals, the pools and the running thread
    only: the frozen threads' locals are never read."""
    out = enc.shared_type_ok(s)
    for v in enc.codes[tid].locals:
        out.append(enc._in_type(v.type, s.locs[tid][v.name]))
    return z3.And(out)


def _pointer_terms(pf: ProcFacts, s: SymState, j: int) -> list[tuple[str, z3.BoolRef]]:
    """(what, condition) of process slot j: running => `live` set; zombie => `kept` set, `released` null."""
    f, a = s.fields[pf.pool][j], s.alive[pf.pool][j]
    run, zomb = z3.And(a, f[pf.stat] == pf.running), z3.And(a, f[pf.stat] == pf.zombie)
    return ([("live " + n, z3.Implies(run, f[n] != 0)) for n in pf.live]
            + [("kept " + n, z3.Implies(zomb, f[n] != 0)) for n in pf.kept]
            + [("released " + n, z3.Implies(zomb, f[n] == 0)) for n in pf.released])


def pointer_lemma(enc: Encoder, s: SymState, pf: ProcFacts) -> z3.BoolRef:
    """The part of the pre-state each event must give back: a running process
    has every `live` pointer set, a zombie its `kept` ones and none the exit releases."""
    return z3.And([c for j in range(enc.pools[pf.pool].size) for _, c in _pointer_terms(pf, s, j)])


def _quiescent(enc: Encoder, s: SymState, kinds: list[KindIR], actor: z3.ArithRef, tid: int,
               pf: ProcFacts) -> z3.BoolRef:
    """The pre-state of a syscall: no lock held, every process either running
    (on the run list, every live pointer set) or a zombie (on the zombie list,
    the pointers the exit releases null), every count equal to its holders."""
    sysm = enc.system
    out = [_type_ok(enc, s, tid)]
    for g in sysm.globals:
        if isinstance(g.type, ir.LockT):
            out += [s.g[g.name][0] == -1, s.g[g.name][1] == 0]
    for pl in sysm.pools:
        for f in pl.fields:
            if isinstance(f.type, ir.LockT):
                for j in range(pl.size):
                    out += [s.fields[pl.name][j][f.name][0] == -1, s.fields[pl.name][j][f.name][1] == 0]
    runq, zombq = s.g[pf.run_list], s.g[pf.zombie_list]

    def on(lst, j):  # noqa: ANN001, ANN202
        elems, n = lst
        return z3.Or([z3.And(k < n, x == j + 1) for k, x in enumerate(elems)])

    for j in range(enc.pools[pf.pool].size):
        f = s.fields[pf.pool][j]
        running = z3.And(f[pf.stat] == pf.running, on(runq, j), z3.Not(on(zombq, j)),
                         *[f[n] != 0 for n in pf.live])
        zombie = z3.And(f[pf.stat] == pf.zombie, on(zombq, j), z3.Not(on(runq, j)),
                        *[f[n] != 0 for n in pf.kept], *[f[n] == 0 for n in pf.released])
        out.append(z3.Implies(s.alive[pf.pool][j], z3.Or(running, zombie)))
        out.append(z3.Implies(z3.Not(s.alive[pf.pool][j]), z3.And(z3.Not(on(runq, j)), z3.Not(on(zombq, j)))))
        out.append(z3.Implies(actor == j + 1, z3.And(s.alive[pf.pool][j], running)))
    for k in kinds:
        for j in range(enc.pools[k.name].size):
            a = _Abs(enc, k, z3.IntVal(j + 1), pf)
            h = a.holders(s)
            alive = s.alive[k.name][j]
            out.append(z3.If(alive, z3.And(a.refcnt(s) == h, h >= 1 if k.freed_at_zero else h >= 0), h == 0))
    # pointers into pools without counts (pgrp, session...) lead to live objects
    for pl in sysm.pools:
        for f in pl.fields:
            if isinstance(f.type, ir.RefT) and f.type.pool in enc.pools and f.type.pool not in {k.name for k in kinds}:
                for j in range(pl.size):
                    v = s.fields[pl.name][j][f.name]
                    tgt = s.alive[f.type.pool]
                    out.append(z3.Implies(z3.And(s.alive[pl.name][j], v != 0),
                                          z3.Or([z3.And(v == i + 1, t) for i, t in enumerate(tgt)])))
    return z3.And(out)


# ------------------------------------------------------------------ events

@dataclass(frozen=True)
class _Entry:
    name: str
    proc: str                              # the procedure the event runs
    pc: int
    binds: tuple[tuple[str, str], ...]     # (local, "actor" | "any"): parameters set at entry
    steps: tuple[ir.Step, ...] = ()        # what it may run (for the fact scans)


def _callee(st: ir.Step) -> str:
    return st.label.split(":= ")[-1].split("(")[0].strip()


def _entries(code: ir.Code, kinds: list[KindIR], actor: ir.LocalVar, stop: set[int]) -> list[_Entry]:
    """One event per syscall, a CPU-frame call with the process as argument.
    Syscalls whose count changes all lie in one procedure F that several of
    them call (sys_fork, sys_vfork, sys_rfork, kthread_create: fork1 with
    fixed flags) are one event: F entered with every argument but the
    process symbolic, which covers each wrapper's fixed arguments."""
    me = _aliases(code, actor.name)
    calls = [st for st in code.steps if st.frames == (code.name,) and st.kind is ir.StepKind.CALL
             and any(isinstance(e, ir.Assign) and isinstance(e.value, ir.LocalRead) and e.value.name == actor.name
                     for e in st.effects)]
    inner: dict[str, set[str]] = {}
    regions = {}
    for st in calls:
        steps = region(code, st.dst, stop)
        regions[st.id] = steps
        rel = [s for s in steps if relevant(s, kinds)]
        fs = {s.frames[2] if len(s.frames) > 2 else None for s in rel}
        if len(fs) == 1 and None not in fs:
            inner.setdefault(fs.pop(), set()).add(st.id)
    wrapped = {w: f for f, ws in inner.items() if len(ws) >= 2 for w in ws}
    out: list[_Entry] = []
    done: set[str] = set()
    for st in calls:
        f = wrapped.get(st.id)
        if f is None:
            out.append(_Entry(_callee(st), _callee(st), st.src, (), tuple(regions[st.id])))
            continue
        if f in done:
            continue
        done.add(f)
        call = next(s for s in regions[st.id] if s.kind is ir.StepKind.CALL and len(s.frames) == 2
                    and _callee(s) == f)
        binds = tuple((e.target.name, "actor" if isinstance(e.value, ir.LocalRead) and e.value.name in me else "any")
                      for e in call.effects if isinstance(e, ir.Assign) and isinstance(e.target, ir.LocalVarRef))
        disp = {v.name: v.display for v in code.locals}
        anys = ", ".join(disp[n] for n, w in binds if w == "any")
        out.insert(len(done) - 1, _Entry(f"{f} (any {anys})" if anys else f, f, call.dst, binds,
                                         tuple(region(code, call.dst, stop))))
    return out


def _stop_pcs(code: ir.Code, actor: ir.LocalVar, span: Span) -> set[int]:
    """Where the CPU gives its process back: the CPU-frame steps that set the process local again."""
    out = {st.src for st in code.steps if st.frames == (code.name,) and st.kind is not ir.StepKind.CALL
           and any(isinstance(e, ir.Assign) and isinstance(e.target, ir.LocalVarRef) and e.target.name == actor.name
                   and isinstance(e.value, ir.Const) and not e.value.value for e in st.effects)}
    if not out:
        raise DeriveError(f"thread code {code.name!r}: no step gives the process back "
                          f"(`{actor.display} := null` after the syscall)", span)
    return out


@dataclass
class _Run:
    ent: _Entry
    pre: SymState
    post: SymState
    common: z3.BoolRef
    actor: z3.ArithRef
    flags: tuple[z3.ArithRef, ir.EnumT] | None      # a symbolic flag-set argument, for the reader
    lines: tuple[int, ...]
    seconds: float


def process_facts(system: ir.System, kinds: list[KindIR],
                  enc: Encoder) -> tuple[ProcFacts, ir.Code, set[int], list[_Entry]]:
    """The process pool, its states and lists, the exit's releases, the stop pcs and the events."""
    # the CPUs: the one thread code whose steps change counts (the syscalls run in it)
    codes = [c for c in system.codes if any(relevant(st, kinds) for st in c.steps)]
    if len(codes) != 1:
        raise DeriveError(f"the syscalls must run in one thread code (the CPUs); {len(codes)} thread codes "
                          f"change reference counts of {kinds[0].name} and the other refcounted structs"
                          + (f": {', '.join(c.name for c in codes)}" if codes else ""),
                          system.pool[kinds[0].name].span)
    code = codes[0]
    span = next((st.span for st in code.steps if st.frames == (code.name,)), None)
    actor = _actor(code, span)
    pool = actor.type.pool
    stat, running, enum = _running(code, actor, span)
    stop = _stop_pcs(code, actor, span)
    entries = _entries(code, kinds, actor, stop)
    ex = _exit_facts(code, kinds, pool, stat, running, enum, actor, {e.name: list(e.steps) for e in entries}, span)
    pf = ProcFacts(pool, actor.name, stat, running, names=enum.members, **ex)
    # candidates for the fixpoint: pointers out of the process pool that init sets in every process
    init = enc.initial()
    pr = system.pool[pool]
    cand = []
    for fld in pr.fields:
        if not (isinstance(fld.type, ir.RefT) and fld.type.pool != pool and fld.type.pool in system.pool):
            continue
        ok = z3.And([z3.Implies(z3.And(init.alive[pool][j], init.fields[pool][j][stat] == running),
                                init.fields[pool][j][fld.name] != 0) for j in range(pr.size)])
        if z3.is_true(z3.simplify(ok)):
            cand.append(fld.name)
    pf.live = tuple(cand)
    pf.kept = tuple(n for n in cand if n not in pf.released)
    return pf, code, stop, entries


def derive(system: ir.System, spec: str = "", timeout_ms: int = 60_000,
           only: frozenset[str] | None = None) -> Derivation:
    """`only`: derive the deltas of these kinds alone (the runs still see
    every kind's steps)."""
    t0 = time.monotonic()
    kinds = kinds_of(system)
    if not kinds:
        raise DeriveError("the spec declares no refcounted struct")
    enc = _ArithEncoder(system)
    pf, code, stop, entries = process_facts(system, kinds, enc)
    tid = next(i for i, t in enumerate(system.threads) if t.code == code.name)
    extra = frozenset({(pf.pool, pf.stat)} | {(pf.pool, n) for n in pf.live})
    # only the CPUs' syscalls may touch counts or the process facts: anything else would be missed
    for c in system.codes:
        if c.name != code.name:
            for st in c.steps:
                if relevant(st, kinds, extra):
                    raise DeriveError(f"thread code {c.name!r} changes reference counts or process pointers at "
                                      f"{st.label!r}: not covered by the derivation", st.span)
    init_ok = _init_ok(enc, kinds, pf)
    events: list[EventIR] = []
    done: list[EventIR] = []                # derived to the end (for an interrupt's report)
    runs: list[_Run] = []
    current = ""
    try:
        for ent in entries:
            current = ent.name
            t1 = time.monotonic()
            r = _run(enc, tid, code, kinds, extra, pf, ent, stop)
            if r.post is r.pre:     # nothing it can do writes a count, a counted pointer or the state
                events.append(EventIR(ent.name, {k.name: [] for k in kinds}, time.monotonic() - t1, r.lines,
                                      lemma=True, proc=ent.proc))
                done.append(events[-1])
                continue
            r.seconds = time.monotonic() - t1
            runs.append(r)
            events.append(EventIR(ent.name, lines=r.lines, proc=ent.proc))
        current = "the pointer lemma"
        _fixpoint(enc, kinds, pf, runs, tid, timeout_ms)
        for r in runs:
            current = r.ent.name
            t1 = time.monotonic()
            ev = next(e for e in events if e.name == r.ent.name)
            pre_ok = z3.And(_quiescent(enc, r.pre, kinds, r.actor, tid, pf), r.common)
            slv = make_solver(timeout_ms)
            slv.add(pre_ok)
            res = solve(slv)
            if res == z3.unknown:
                raise DeriveTimeout(f"{ev.name}: solver gave up; raise --timeout")
            if res != z3.sat:
                raise DeriveError(f"{ev.name}: no run from a quiescent state gets through its reference counting")
            q = make_solver(timeout_ms)
            q.add(pre_ok, z3.Not(pointer_lemma(enc, r.post, pf)))
            res = solve(q)
            ev.lemma = None if res == z3.unknown else res == z3.unsat
            if res == z3.sat:
                ev.lemma_cex = f"actor {pf.pool}#{q.model().eval(r.actor, model_completion=True)}"
            for k in kinds:
                if only is not None and k.name not in only:
                    continue
                # only k's counts are assumed: a weaker pre-state can only add deltas
                base = z3.And(_quiescent(enc, r.pre, [k], r.actor, tid, pf), r.common)
                ev.deltas[k.name] = _deltas(enc, k, r.pre, r.post, base, r.actor, r.flags, timeout_ms, pf)
            ev.seconds = r.seconds + time.monotonic() - t1
            done.append(ev)
    except (KeyboardInterrupt, *Z3_STOPPED) as e:
        # Ctrl-C: say which events were derived before it (the stats so far). The watcher's
        # z3 interrupt can also surface as a "canceled" error from any z3 call (model.eval).
        if not isinstance(e, KeyboardInterrupt) and not interrupt.requested():
            raise
        raise DeriveInterrupted([(e.name, e.seconds) for e in done], current) from None
    if only is not None:
        kinds = [k for k in kinds if k.name in only]
    return Derivation(spec, kinds, events, time.monotonic() - t0, init_ok, pf)


def _run(enc: Encoder, tid: int, code: ir.Code, kinds: list[KindIR], extra: frozenset[tuple[str, str]],
         pf: ProcFacts, ent: _Entry, stop: set[int]) -> _Run:
    pre = enc.fresh_state("pre")
    actor = z3.Int("actor")
    for v in code.locals:
        pre.locs[tid][v.name] = enc._const_val(v.type, v.init)
    pre.locs[tid][pf.actor] = actor
    flags = None
    types = {v.name: v.type for v in code.locals}
    anys = []
    for name, what in ent.binds:
        if what == "actor":
            pre.locs[tid][name] = actor
        else:
            pre.locs[tid][name] = enc._fresh_val(name, types[name])
            anys.append(enc._in_type(types[name], pre.locs[tid][name]))
            if flags is None and isinstance(types[name], ir.SetT):
                flags = (pre.locs[tid][name], types[name].enum)
    pre.pc[tid] = z3.IntVal(ent.pc)
    run = _Runner(enc, tid, kinds, extra)
    reached, post, lines = run.run(ent.pc, stop, pre)
    return _Run(ent, pre, post, z3.And(reached, *run.assume, *anys), actor, flags, tuple(sorted(lines)), 0.0)


def _fixpoint(enc: Encoder, kinds: list[KindIR], pf: ProcFacts, runs: list[_Run], tid: int,
              timeout_ms: int) -> None:
    """Shrink pf.live/pf.kept to what every event gives back when it may assume them (the greatest
    inductive set): a field some event can leave null in a running process (zombie) is dropped."""
    changed = True
    while changed:
        changed = False
        for r in runs:
            terms = [(w, c) for j in range(enc.pools[pf.pool].size) for w, c in _pointer_terms(pf, r.post, j)
                     if not w.startswith("released ")]
            if not terms:
                continue
            q = make_solver(timeout_ms)
            q.add(_quiescent(enc, r.pre, kinds, r.actor, tid, pf), r.common, z3.Not(z3.And([c for _, c in terms])))
            res = solve(q)
            if res == z3.unknown:
                raise DeriveTimeout(f"{r.ent.name}: solver gave up on the pointer lemma; raise --timeout")
            if res == z3.unsat:
                continue
            m = q.model()
            bad = {w for w, c in terms if not z3.is_true(m.eval(c, model_completion=True))}
            pf.live = tuple(n for n in pf.live if "live " + n not in bad)
            pf.kept = tuple(n for n in pf.kept if "kept " + n not in bad)
            changed = True


def _init_ok(enc: Encoder, kinds: list[KindIR], pf: ProcFacts) -> dict[str, bool]:
    s = enc.initial()
    out = {}
    for k in kinds:
        ok = []
        for j in range(enc.pools[k.name].size):
            a = _Abs(enc, k, z3.IntVal(j + 1), pf)
            h = a.holders(s)
            ok.append(z3.If(s.alive[k.name][j], a.refcnt(s) == h, h == 0))
        out[k.name] = z3.is_true(z3.simplify(z3.And(ok)))
    return out


def _deltas(enc: Encoder, k: KindIR, pre: SymState, post: SymState, base: z3.BoolRef, actor: z3.ArithRef,
            flags: tuple[z3.ArithRef, ir.EnumT] | None, timeout_ms: int, pf: ProcFacts) -> list[Delta]:
    """Every (case, delta) some run of the event has, by enumeration."""
    o = z3.Int(f"o_{k.name}")
    a = _Abs(enc, k, o, pf)
    pr = enc.pools[pf.pool]
    held_by_actor = z3.Or([z3.And(actor == j + 1, a._holds(pre, pf.pool, j)) for j in range(pr.size)])
    F, A, Z, L = a.freed(pre), held_by_actor, a.holders(pre, zombies=True) >= 1, a.refcnt(pre) == 1
    dr = a.refcnt(post) - a.refcnt(pre)
    dh = a.holders(post) - a.holders(pre)
    dz = a.holders(post, zombies=True) - a.holders(pre, zombies=True)
    fa = a.freed(post)
    # solve-eqs first: the incremental core is several times slower here
    s = make_solver(timeout_ms)
    s.add(base, 1 <= o, o <= a.size)
    # a run that leaves o as it was keeps every invariant: list only changes
    s.add(z3.Or(dr != 0, dh != 0, fa != F))
    keys = [F, A, Z, L, dr, dh, dz, fa]
    out = []
    while True:
        r = solve(s)                      # an answer after Ctrl-C is the interrupt, not a timeout
        if r == z3.unknown:
            raise DeriveTimeout(f"{k.name}: solver gave up ({s.reason_unknown()}); raise --timeout")
        if r == z3.unsat:
            break
        m = s.model()
        vals = [m.eval(x, model_completion=True) for x in keys]
        b = [z3.is_true(v) for v in vals[:4]]
        n = [v.as_long() for v in vals[4:7]]
        fl = ""
        if flags is not None:
            fl = _flags(flags, m)
        out.append(Delta(Case(*b), n[0], n[1], n[2], z3.is_true(vals[7]), fl))
        s.add(z3.Or([x != v for x, v in zip(keys, vals)]))
        if len(out) > 200:
            raise DeriveError(f"{k.name}: more than 200 distinct deltas: the counts are not a function of the case")
    return sorted(out, key=lambda d: (d.case.freed, not d.case.actor, d.case.zombie, d.case.last, d.dr, d.dh))


def _flags(flags: tuple[z3.ArithRef, ir.EnumT], m: z3.ModelRef) -> str:
    v = m.eval(flags[0], model_completion=True).as_long()
    return "|".join(n for i, n in enumerate(flags[1].members) if v >> i & 1) or "0"
