"""Each syscall's effect on reference counts, derived from the spec's IR.

For every refcounted pool K of the spec (a `struct ... refcount FIELD`) and
one arbitrary object o of K (a symbolic slot), the abstraction of
checker/prove/refcount.py is

    refcnt(o)   o's count field
    holders(o)  allocated records with a `ref K` field pointing to o
    zombies(o)  the holders that are zombie processes (p_stat == SZOMB)
    freed(o)    o's slot is not allocated

One CPU thread runs one syscall through the IR steps (encode.py's step
encoding), every other thread frozen, from a symbolic quiescent pre-state
in which every count equals its holders. Paths are merged at join points
(if-then-else states, as BMC's unrolling), and a loop that writes no count,
no holder pointer and allocates or frees nothing of the kinds is summarised
by havocking what it writes. The run stops where no such step (nor a write
of p_stat) is reachable any more: the counts are final there, and the
pointer lemma the pre-state assumes (running processes hold every counted
pointer, zombies none that exit1 releases) is checked to hold again. z3 then lists every possible
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
from ..diagnostics import ForkcheckError
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
    flags: str = ""          # an rflags value taking this delta (fork1), for the reader

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


@dataclass
class Derivation:
    spec: str
    kinds: list[KindIR]
    events: list[EventIR]
    seconds: float
    init_ok: dict[str, bool]         # the init block establishes count == holders


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
                    yield RacyStep(p.name, st.ref.line if st.ref else None, st.frames, st.label.split(" [")[0],
                                   ld.id, st.id, d)


# Runs also go on to the last write of these, so the quiescence lemma can be
# checked after them (exit1's SZOMB, fork1's SRUN).
STOP_FIELDS = frozenset({("proc", "p_stat")})


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


class _Runner:
    def __init__(self, enc: Encoder, tid: int, kinds: list[KindIR]):
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
        region: set[int] = {entry}
        todo = [entry]
        while todo:
            pc = todo.pop()
            if pc in stop:
                continue
            for st in code.steps_from[pc]:
                if st.dst not in region:
                    region.add(st.dst)
                    todo.append(st.dst)
        edges = [st for pc in region if pc not in stop for st in code.steps_from[pc]]
        rel = {st.id for st in edges if relevant(st, self.kinds, STOP_FIELDS)}
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

    def __init__(self, enc: Encoder, k: KindIR, o: z3.ArithRef):
        self.enc, self.k, self.o = enc, k, o
        self.size = enc.pools[k.name].size
        fields = {f.name: f for f in enc.system.pool["proc"].fields} if "proc" in enc.pools else {}
        self.stat_zomb = None
        if "p_stat" in fields and isinstance(fields["p_stat"].type, ir.EnumT) and "SZOMB" in fields["p_stat"].type.members:
            self.stat_zomb = fields["p_stat"].type.members.index("SZOMB")

    def refcnt(self, s: SymState) -> z3.ArithRef:
        return self.enc._select(self.k.name, self.o, [f[self.k.counter] for f in s.fields[self.k.name]])

    def freed(self, s: SymState) -> z3.BoolRef:
        return z3.Not(z3.Or([z3.And(self.o == j + 1, a) for j, a in enumerate(s.alive[self.k.name])]))

    def _holds(self, s: SymState, pl: str, j: int) -> z3.BoolRef:
        return z3.Or([s.fields[pl][j][f] == self.o for p2, f in self.k.holders if p2 == pl] or [z3.BoolVal(False)])

    def holders(self, s: SymState, zombies: bool = False) -> z3.ArithRef:
        terms = []
        for pl in sorted({p for p, _ in self.k.holders}):
            for j, a in enumerate(s.alive[pl]):
                for p2, f in self.k.holders:
                    if p2 != pl:
                        continue
                    c = z3.And(a, s.fields[pl][j][f] == self.o)
                    if zombies:
                        if pl != "proc" or self.stat_zomb is None:
                            continue
                        c = z3.And(c, s.fields[pl][j]["p_stat"] == self.stat_zomb)
                    terms.append(z3.If(c, 1, 0))
        return z3.Sum(terms) if terms else z3.IntVal(0)


def _type_ok(enc: Encoder, s: SymState, tid: int) -> z3.BoolRef:
    """encode.py's type_ok for the globals, the pools and the running thread
    only: the frozen threads' locals are never read."""
    out = enc.shared_type_ok(s)
    for v in enc.codes[tid].locals:
        out.append(enc._in_type(v.type, s.locs[tid][v.name]))
    return z3.And(out)


_EXIT_FIELDS = ("p_limit", "p_fd", "p_vmspace", "p_textvp")        # exit1 releases them
_LIVE_FIELDS = ("p_ucred", "p_limit", "p_procsig", "p_fd", "p_vmspace", "p_pgrp")


def pointer_lemma(enc: Encoder, s: SymState) -> z3.BoolRef:
    """The part of the pre-state each event must give back: a running process
    has every counted pointer set, a zombie none of those exit1 releases."""
    pr = enc.system.pool["proc"]
    stat = next(f for f in pr.fields if f.name == "p_stat").type
    srun, szomb = stat.members.index("SRUN"), stat.members.index("SZOMB")
    names = {f.name for f in pr.fields}
    out = []
    for j in range(pr.size):
        f, a = s.fields["proc"][j], s.alive["proc"][j]
        out.append(z3.Implies(z3.And(a, f["p_stat"] == srun),
                              z3.And([f[n] != 0 for n in _LIVE_FIELDS if n in names and n != "p_pgrp"])))
        out.append(z3.Implies(z3.And(a, f["p_stat"] == szomb),
                              z3.And(f["p_ucred"] != 0, f["p_procsig"] != 0,
                                     *[f[n] == 0 for n in _EXIT_FIELDS if n in names])))
    return z3.And(out)


def _quiescent(enc: Encoder, s: SymState, kinds: list[KindIR], actor: z3.ArithRef, tid: int) -> z3.BoolRef:
    """The pre-state of a syscall: no lock held, every process either running
    (on allproc, every counted pointer set) or a zombie (on zombproc, the
    pointers exit1 releases null), every count equal to its holders."""
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
    pr = sysm.pool["proc"]
    stat = next(f for f in pr.fields if f.name == "p_stat").type
    srun, szomb = stat.members.index("SRUN"), stat.members.index("SZOMB")
    exit_fields = [f.name for f in pr.fields if isinstance(f.type, ir.RefT) and f.name in _EXIT_FIELDS]
    live_fields = [f.name for f in pr.fields if isinstance(f.type, ir.RefT) and f.name in _LIVE_FIELDS]
    allproc, zombproc = s.g["allproc"], s.g["zombproc"]

    def on(lst, j):  # noqa: ANN001, ANN202
        elems, n = lst
        return z3.Or([z3.And(k < n, x == j + 1) for k, x in enumerate(elems)])

    for j in range(pr.size):
        f = s.fields["proc"][j]
        running = z3.And(f["p_stat"] == srun, on(allproc, j), z3.Not(on(zombproc, j)),
                         *[f[n] != 0 for n in live_fields])
        zombie = z3.And(f["p_stat"] == szomb, on(zombproc, j), z3.Not(on(allproc, j)),
                        f["p_ucred"] != 0, f["p_procsig"] != 0, *[f[n] == 0 for n in exit_fields])
        out.append(z3.Implies(s.alive["proc"][j], z3.Or(running, zombie)))

        out.append(z3.Implies(z3.Not(s.alive["proc"][j]), z3.And(z3.Not(on(allproc, j)), z3.Not(on(zombproc, j)))))
        out.append(z3.Implies(actor == j + 1, z3.And(s.alive["proc"][j], running)))
    for k in kinds:
        for j in range(enc.pools[k.name].size):
            a = _Abs(enc, k, z3.IntVal(j + 1))
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
    pc: int
    binds: tuple[tuple[str, str], ...]     # (local, "actor" | "rflags")


def _entries(system: ir.System, code: ir.Code, kinds: list[KindIR]) -> list[_Entry]:
    """One event per syscall the CPU thread makes (its call steps from the
    CPU's own frame). The fork wrappers (sys_fork, sys_vfork, sys_rfork,
    kthread_create) run the same fork1 body with fixed flags: they are one
    event, fork1 entered with symbolic flags (its copy inside sys_rfork),
    after checking that the wrappers themselves touch no count."""
    out = []
    wrappers = {st.frames[1] for st in code.steps if len(st.frames) > 2 and st.frames[2] == "fork1"}
    for st in code.steps:
        if len(st.frames) >= 2 and st.frames[1] in wrappers and "fork1" not in st.frames[2:] \
                and relevant(st, kinds):
            raise DeriveError(f"{st.frames[1]} changes reference counts outside fork1 at {st.label!r}")
    fork_done = False
    for st in code.steps:
        if st.kind is not ir.StepKind.CALL or not st.effects:
            continue
        callee = st.label.split(":= ")[-1].split("(")[0].strip()
        if st.frames == (code.name,) and callee not in ("giant_enter", "giant_exit") and callee not in wrappers:
            out.append(_Entry(callee, st.src, ()))
        elif callee == "fork1" and not fork_done and st.frames[-1] == "sys_rfork":
            names = [e.target.name for e in st.effects if isinstance(e, ir.Assign)
                     and isinstance(e.target, ir.LocalVarRef)]
            out.insert(0, _Entry("fork1 (any rflags)", st.dst, ((names[0], "actor"), (names[1], "rflags"))))
            fork_done = True
    if not fork_done:
        raise DeriveError("no call of fork1 inside sys_rfork: cannot enter fork1 with every flag combination")
    return out


def _stop_pcs(code: ir.Code) -> set[int]:
    """Where the CPU gives its process back: the loop's release step."""
    out = {st.src for st in code.steps if st.frames == (code.name,) and st.kind is ir.StepKind.ATOMIC
           and any(isinstance(e, ir.Assign) and isinstance(e.target, ir.FieldRef) and e.target.field == "p_oncpu"
                   and isinstance(e.value, ir.Const) and not e.value.value for e in st.effects)}
    if not out:
        raise DeriveError(f"thread code {code.name!r}: no step gives the process back (p.p_oncpu := false)")
    return out


def derive(system: ir.System, spec: str = "", timeout_ms: int = 60_000,
           only: frozenset[str] | None = None) -> Derivation:
    """`only`: derive the deltas of these kinds alone (the runs still see
    every kind's steps)."""
    t0 = time.monotonic()
    kinds = kinds_of(system)
    if not kinds:
        raise DeriveError("the spec declares no refcounted struct")
    cpus = [i for i, t in enumerate(system.threads) if t.family == "cpu"]
    if not cpus:
        raise DeriveError("the spec has no cpu thread family")
    tid = cpus[0]
    code = system.code[system.threads[tid].code]
    # only the CPUs' syscalls may touch counts: anything else would be missed
    for c in system.codes:
        if c.name != code.name:
            for st in c.steps:
                if relevant(st, kinds):
                    raise DeriveError(f"thread code {c.name!r} changes reference counts at {st.label!r}: "
                                      f"not covered by the derivation")
    enc = _ArithEncoder(system)
    init_ok = _init_ok(enc, kinds)
    stop = _stop_pcs(code)
    pvar = next((v.name for v in code.locals if v.frame == code.name and v.display == "p"), None)
    if pvar is None:
        raise DeriveError("the cpu thread has no local `p` (the process it runs)")
    events = []
    current = ""
    try:
        for ent in _entries(system, code, kinds):
            current = ent.name
            t1 = time.monotonic()
            pre = enc.fresh_state("pre")
            actor = z3.Int("actor")
            for v in code.locals:
                pre.locs[tid][v.name] = enc._const_val(v.type, v.init)
            pre.locs[tid][pvar] = actor
            rflags = None
            for name, what in ent.binds:
                if what == "actor":
                    pre.locs[tid][name] = actor
                else:
                    t = next(v.type for v in code.locals if v.name == name)
                    rflags = enc._fresh_val("rflags", t)
                    pre.locs[tid][name] = rflags
            pre.pc[tid] = z3.IntVal(ent.pc)
            run = _Runner(enc, tid, kinds)
            reached, post, lines = run.run(ent.pc, stop, pre)
            if post is pre:          # no step that touches a count is reachable
                # nothing it can do writes a count, a counted pointer or p_stat: the lemma stays
                events.append(EventIR(ent.name, {k.name: [] for k in kinds}, time.monotonic() - t1,
                                      tuple(sorted(lines)), lemma=True))
                continue
            common = z3.And(reached, *run.assume,
                            *[enc._in_type(next(v.type for v in code.locals if v.name == n), pre.locs[tid][n])
                              for n, w in ent.binds if w == "rflags"])
            slv = make_solver(timeout_ms)
            slv.add(z3.And(_quiescent(enc, pre, kinds, actor, tid), common))
            r = solve(slv)
            if r == z3.unknown:
                raise DeriveTimeout(f"{ent.name}: solver gave up; raise --timeout")
            if r != z3.sat:
                raise DeriveError(f"{ent.name}: no run from a quiescent state gets through its reference counting")
            ev = EventIR(ent.name, lines=tuple(sorted(lines)))
            q = make_solver(timeout_ms)
            q.add(_quiescent(enc, pre, kinds, actor, tid), common, z3.Not(pointer_lemma(enc, post)))
            r = solve(q)
            ev.lemma = None if r == z3.unknown else r == z3.unsat
            if r == z3.sat:
                ev.lemma_cex = f"actor proc#{q.model().eval(actor, model_completion=True)}"
            for k in kinds:
                if only is not None and k.name not in only:
                    continue
                # only k's counts are assumed: a weaker pre-state can only add deltas
                base = z3.And(_quiescent(enc, pre, [k], actor, tid), common)
                ev.deltas[k.name] = _deltas(enc, k, pre, post, base, actor, rflags, timeout_ms)
            ev.seconds = time.monotonic() - t1
            events.append(ev)
    except (KeyboardInterrupt, *Z3_STOPPED) as e:
        # Ctrl-C: say which events were derived before it (the stats so far). The watcher's
        # z3 interrupt can also surface as a "canceled" error from any z3 call (model.eval).
        if not isinstance(e, KeyboardInterrupt) and not interrupt.requested():
            raise
        raise DeriveInterrupted([(e.name, e.seconds) for e in events], current) from None
    if only is not None:
        kinds = [k for k in kinds if k.name in only]
    return Derivation(spec, kinds, events, time.monotonic() - t0, init_ok)


def _init_ok(enc: Encoder, kinds: list[KindIR]) -> dict[str, bool]:
    s = enc.initial()
    out = {}
    for k in kinds:
        ok = []
        for j in range(enc.pools[k.name].size):
            a = _Abs(enc, k, z3.IntVal(j + 1))
            h = a.holders(s)
            ok.append(z3.If(s.alive[k.name][j], a.refcnt(s) == h, h == 0))
        out[k.name] = z3.is_true(z3.simplify(z3.And(ok)))
    return out


def _deltas(enc: Encoder, k: KindIR, pre: SymState, post: SymState, base: z3.BoolRef, actor: z3.ArithRef,
            rflags: z3.ArithRef | None, timeout_ms: int) -> list[Delta]:
    """Every (case, delta) some run of the event has, by enumeration."""
    o = z3.Int(f"o_{k.name}")
    a = _Abs(enc, k, o)
    pr = enc.pools["proc"]
    held_by_actor = z3.Or([z3.And(actor == j + 1, a._holds(pre, "proc", j)) for j in range(pr.size)])
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
        if rflags is not None:
            fl = _flags(enc, rflags, m)
        out.append(Delta(Case(*b), n[0], n[1], n[2], z3.is_true(vals[7]), fl))
        s.add(z3.Or([x != v for x, v in zip(keys, vals)]))
        if len(out) > 200:
            raise DeriveError(f"{k.name}: more than 200 distinct deltas: the counts are not a function of the case")
    return sorted(out, key=lambda d: (d.case.freed, not d.case.actor, d.case.zombie, d.case.last, d.dr, d.dh))


def _flags(enc: Encoder, rflags: z3.ArithRef, m: z3.ModelRef) -> str:
    v = m.eval(rflags, model_completion=True).as_long()
    for e in enc.system.enums:
        if e.name == "rfflag":
            return "|".join(n for i, n in enumerate(e.members) if v >> i & 1) or "0"
    return str(v)
