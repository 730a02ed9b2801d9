"""A small builder for hand-written IR Systems (tests only).

It fills in what the lowering would (step ids, reads/writes/locks footprints)
so tests can state a system in a few lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from checker import ir

BOOL = ir.BoolT()


def I(lo: int, hi: int) -> ir.IntT:
    return ir.IntT(lo, hi)


def c(v: int | bool) -> ir.Const:
    return ir.Const(v, BOOL if isinstance(v, bool) else ir.IntT(v, v))


def g(name: str, t: ir.Type) -> ir.GlobalRead:
    return ir.GlobalRead(name, t)


def gv(name: str, t: ir.Type) -> ir.GlobalVarRef:
    return ir.GlobalVarRef(name, t)


def loc(name: str, t: ir.Type) -> ir.LocalRead:
    return ir.LocalRead(name, t)


def lv(name: str, t: ir.Type) -> ir.LocalVarRef:
    return ir.LocalVarRef(name, t)


def bin(op: ir.BinOp, a: ir.Expr, b: ir.Expr, t: ir.Type | None = None) -> ir.Binary:
    if t is None:
        t = BOOL if op in (ir.BinOp.EQ, ir.BinOp.NE, ir.BinOp.LT, ir.BinOp.LE, ir.BinOp.GT, ir.BinOp.GE,
                           ir.BinOp.AND, ir.BinOp.OR, ir.BinOp.IMPLIES, ir.BinOp.IN) else ir.IntT(-99, 99)
    return ir.Binary(op, a, b, t)


def mutex(cls: str = "", recursive: bool = False) -> ir.LockT:
    return ir.LockT(ir.LockKind.MUTEX, cls, recursive)


def spin(cls: str = "") -> ir.LockT:
    return ir.LockT(ir.LockKind.SPIN, cls)


def sx(cls: str = "") -> ir.LockT:
    return ir.LockT(ir.LockKind.SX, cls)


# ------------------------------------------------------------ footprints

def _expr_fp(e: Any, reads: set[ir.Loc], locks: set[str]) -> None:
    if e is None:
        return
    if isinstance(e, ir.GlobalRead):
        if isinstance(e.type, ir.LockT):
            locks.add(e.type.cls)
        else:
            reads.add(ir.Loc(None, e.name))
    elif isinstance(e, ir.FieldRead):
        reads.add(ir.Loc(e.pool, e.field))
    elif isinstance(e, ir.Quant):
        pass
    for name in ("obj", "arg", "left", "right", "cond", "then", "other", "body", "elem"):
        sub = getattr(e, name, None)
        if sub is not None and not isinstance(sub, (str, int)):
            _expr_fp(sub, reads, locks)
    if isinstance(e, ir.ListQuery):
        _lv_fp(e.lst, reads, reads, locks)
    if isinstance(e, ir.LockQuery):
        _lv_fp(e.lock, reads, reads, locks)


def _lv_fp(v: Any, reads: set[ir.Loc], writes: set[ir.Loc], locks: set[str]) -> None:
    if isinstance(v.type, ir.LockT):
        locks.add(v.type.cls)
        if isinstance(v, ir.FieldRef):
            _expr_fp(v.obj, reads, locks)
        return
    if isinstance(v, ir.GlobalVarRef):
        writes.add(ir.Loc(None, v.name))
    elif isinstance(v, ir.FieldRef):
        writes.add(ir.Loc(v.pool, v.field))
        _expr_fp(v.obj, reads, locks)


def footprint(guard: Any, effects: tuple) -> tuple[frozenset, frozenset, frozenset]:
    reads: set[ir.Loc] = set()
    writes: set[ir.Loc] = set()
    locks: set[str] = set()
    _expr_fp(guard, reads, locks)
    for e in effects:
        if isinstance(e, ir.Assign):
            _expr_fp(e.value, reads, locks)
            _lv_fp(e.target, reads, writes, locks)
        elif isinstance(e, (ir.Acquire, ir.Release, ir.Upgrade, ir.LockAssert)):
            _lv_fp(e.lock, reads, writes, locks)
        elif isinstance(e, ir.Sleep):
            _expr_fp(e.chan, reads, locks)
            if e.interlock is not None:
                _lv_fp(e.interlock, reads, writes, locks)
        elif isinstance(e, ir.Wakeup):
            _expr_fp(e.chan, reads, locks)
        elif isinstance(e, ir.Assert):
            _expr_fp(e.cond, reads, locks)
        elif isinstance(e, ir.Alloc):
            _lv_fp(e.target, reads, writes, locks)
        elif isinstance(e, ir.Free):
            _expr_fp(e.obj, reads, locks)
        elif isinstance(e, ir.ListUpdate):
            _lv_fp(e.lst, reads, writes, locks)
            reads |= {w for w in writes}
            _expr_fp(e.elem, reads, locks)
            _expr_fp(e.after, reads, locks)
    return frozenset(reads), frozenset(writes), frozenset(locks)


# ---------------------------------------------------------------- builder

@dataclass
class CodeBuilder:
    sysb: "SysBuilder"
    name: str
    locals: list[ir.LocalVar] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    npcs: int = 1
    exit: int = 0
    labels: dict[int, str] = field(default_factory=dict)

    def local(self, name: str, t: ir.Type, init: object = 0) -> "CodeBuilder":
        self.locals.append(ir.LocalVar(name, t, init, name, self.name))
        return self

    def step(self, src: int, dst: int, *effects: ir.Effect, guard: ir.Expr | None = None,
             kind: ir.StepKind = ir.StepKind.ASSIGN, label: str = "", line: int | None = None) -> "CodeBuilder":
        self.npcs = max(self.npcs, src + 1, dst + 1)
        self.steps.append(dict(src=src, dst=dst, effects=tuple(effects), guard=guard, kind=kind,
                               label=label or f"{self.name} {src}->{dst}", line=line))
        return self


class SysBuilder:
    def __init__(self, name: str = "test"):
        self.name = name
        self.globals: list[ir.GlobalVar] = []
        self.pools: list[ir.Pool] = []
        self.codes: list[CodeBuilder] = []
        self.threads: list[ir.Thread] = []
        self.init: list[ir.Effect] = []
        self.invariants: list[ir.Invariant] = []
        self.leadsto: list[ir.LeadsTo] = []
        self.asserts: list[str] = []
        self.lock_orders: list[ir.LockOrder] = []
        self.chans: list[str] = []

    def glob(self, name: str, t: ir.Type, init: object = 0, guarded_by: tuple[str, ...] = ()) -> ir.GlobalVarRef:
        if isinstance(t, ir.LockT) and not t.cls:
            t = ir.LockT(t.kind, name, t.recursive)
        self.globals.append(ir.GlobalVar(name, t, init, guarded_by))
        return ir.GlobalVarRef(name, t)

    def pool(self, name: str, size: int, fields: list[ir.Field], symmetric: bool = True) -> None:
        self.pools.append(ir.Pool(name, size, tuple(fields), symmetric=symmetric))

    def code(self, name: str, exit: int) -> CodeBuilder:
        cb = CodeBuilder(self, name, exit=exit)
        cb.npcs = exit + 1
        self.codes.append(cb)
        return cb

    def thread(self, name: str, code: str, family: str | None = None, index: int = 0,
               fair: bool = True) -> None:
        self.threads.append(ir.Thread(name, code, family, index, fair=fair))

    def family(self, fam: str, code: str, n: int) -> None:
        for i in range(n):
            self.thread(f"{fam}[{i}]", code, fam, i)

    def invariant(self, name: str, e: ir.Expr) -> None:
        self.invariants.append(ir.Invariant(name, e))

    def eventually(self, name: str, q: ir.Expr, p: ir.Expr | None = None,
                   binders: tuple[tuple[str, str], ...] = ()) -> None:
        self.leadsto.append(ir.LeadsTo(name, binders, p if p is not None else c(True), q))

    def build(self) -> ir.System:
        sid = 0
        codes = []
        for cb in self.codes:
            steps = []
            for d in cb.steps:
                r, w, lk = footprint(d["guard"], d["effects"])
                for e in d["effects"]:
                    if isinstance(e, ir.Assert) and e.name not in self.asserts:
                        self.asserts.append(e.name)
                steps.append(ir.Step(sid, cb.name, d["src"], d["dst"], d["guard"], d["effects"], d["kind"],
                                     d["label"], ir.SrcRef("kern_fork.c", d["line"]) if d["line"] else None,
                                     (cb.name,), r, w, lk))
                sid += 1
            labels = tuple(cb.labels.get(i, "") for i in range(cb.npcs))
            codes.append(ir.Code(cb.name, tuple(cb.locals), cb.npcs, 0, cb.exit, tuple(steps), labels))
        return ir.System(self.name, f"{self.name}.fk", "kern_fork.c", (), (), tuple(self.globals),
                         tuple(self.pools), tuple(codes), tuple(self.threads), tuple(self.init),
                         tuple(self.invariants), tuple(self.leadsto), tuple(self.asserts),
                         tuple(self.lock_orders), (), tuple(self.chans))


# ------------------------------------------------------- classic examples

def racy_counter(n: int = 2, racy: bool = True) -> ir.System:
    """n threads each do x++ once; racy = a load and a store step."""
    X = I(0, n)
    b = SysBuilder("racy_counter")
    x = b.glob("x", X, 0)
    cb = b.code("inc", exit=2 if racy else 1)
    cb.local("t", X, 0)
    if racy:
        cb.step(0, 1, ir.Assign(lv("t", X), bin(ir.BinOp.ADD, g("x", X), c(1))), kind=ir.StepKind.LOAD,
                label="x := x + 1 [load]")
        cb.step(1, 2, ir.Assign(x, loc("t", X)), kind=ir.StepKind.STORE, label="x := x + 1 [store]")
    else:
        cb.step(0, 1, ir.Assign(x, bin(ir.BinOp.ADD, g("x", X), c(1))), label="x := x + 1")
    b.family("cpu", "inc", n)
    done = c(True)
    for i in range(n):
        pass
    # all done => x == n; expressed without thread pcs: count via a per-thread flag is overkill,
    # so the invariant is the assert at exit in racy_counter_assert below.
    b.invariant("x_bounded", bin(ir.BinOp.LE, g("x", X), c(n)))
    return b.build()


def racy_counter_assert(n: int = 2) -> ir.System:
    """n threads: x++ racily, then done++ atomically; the last one asserts x == n."""
    X = I(0, n)
    b = SysBuilder("racy_counter")
    x = b.glob("x", X, 0)
    done = b.glob("done", X, 0)
    cb = b.code("inc", exit=4)
    cb.local("t", X, 0)
    cb.step(0, 1, ir.Assign(lv("t", X), bin(ir.BinOp.ADD, g("x", X), c(1))), kind=ir.StepKind.LOAD,
            label="x := x + 1 [load]", line=270)
    cb.step(1, 2, ir.Assign(x, loc("t", X)), kind=ir.StepKind.STORE, label="x := x + 1 [store]", line=270)
    cb.step(2, 3, ir.Assign(done, bin(ir.BinOp.ADD, g("done", X), c(1))), label="done := done + 1")
    cb.step(3, 4, ir.Assert(bin(ir.BinOp.IMPLIES, bin(ir.BinOp.EQ, g("done", X), c(n)),
                                bin(ir.BinOp.EQ, g("x", X), c(n))), "all_counted"),
            kind=ir.StepKind.ASSERT, label="assert all_counted")
    b.family("cpu", "inc", n)
    return b.build()


def abba() -> ir.System:
    """Two threads take locks a and b in opposite orders."""
    b = SysBuilder("abba")
    la = b.glob("a", mutex("lock A"))
    lb = b.glob("b", mutex("lock B"))
    for name, first, second in (("t1", la, lb), ("t2", lb, la)):
        cb = b.code(name, exit=4)
        cb.step(0, 1, ir.Acquire(first), kind=ir.StepKind.LOCK, label=f"lock({first.name})")
        cb.step(1, 2, ir.Acquire(second), kind=ir.StepKind.LOCK, label=f"lock({second.name})")
        cb.step(2, 3, ir.Release(second), kind=ir.StepKind.UNLOCK, label=f"unlock({second.name})")
        cb.step(3, 4, ir.Release(first), kind=ir.StepKind.UNLOCK, label=f"unlock({first.name})")
        b.thread(name, name)
    return b.build()


def fork_exit(ncpu: int = 2, nproc: int = 3, pid_max: int = 6) -> ir.System:
    """A fork/exit-like kernel: cpus fork (alloc, pick a pid, link into allproc) and exit
    (unlink, free) under an sx allproc_lock; the shape of fork1/exit1 without the detail."""
    b = SysBuilder("fork_exit")
    N = I(0, nproc)
    PID = I(0, pid_max)
    R = ir.RefT("proc")
    L = ir.ListT("proc")
    X = ir.LockT(ir.LockKind.SX, "allproc")
    b.pool("proc", nproc, [ir.Field("pid", PID, 0)])
    nprocs = b.glob("nprocs", N, 0)
    lastpid = b.glob("lastpid", PID, 0)
    allproc = b.glob("allproc", L, ())
    lk = b.glob("allproc_lock", X)
    cb = b.code("cpu", exit=20)
    cb.local("p", R, 0)
    p = ir.LocalVarRef("p", R)
    P = ir.LocalRead("p", R)
    pid = ir.FieldRef(P, "proc", "pid", PID)
    n = g("nprocs", N)
    cb.step(0, 1, kind=ir.StepKind.SKIP, label="fork()")
    cb.step(0, 10, kind=ir.StepKind.SKIP, label="exit()")
    cb.step(1, 2, ir.Acquire(lk), kind=ir.StepKind.LOCK, label="sx_xlock(allproc_lock)", line=310)
    cb.step(2, 3, guard=bin(ir.BinOp.LT, n, c(nproc)), kind=ir.StepKind.COND, label="nprocs < maxproc")
    cb.step(2, 8, guard=bin(ir.BinOp.GE, n, c(nproc)), kind=ir.StepKind.COND, label="nprocs >= maxproc")
    cb.step(3, 4, ir.Alloc(p, "proc"), kind=ir.StepKind.ALLOC, label="p2 := alloc proc", line=287)
    cb.step(4, 5, ir.Assign(pid, bin(ir.BinOp.ADD, bin(ir.BinOp.MOD, g("lastpid", PID), c(pid_max)), c(1))),
            label="p2.pid := lastpid % PID_MAX + 1")
    cb.step(5, 6, ir.Assign(lastpid, ir.FieldRead(P, "proc", "pid", PID)), ir.ListUpdate(ir.ListEdit.INSERT_HEAD, allproc, P),
            ir.Assign(nprocs, bin(ir.BinOp.ADD, n, c(1))), kind=ir.StepKind.ATOMIC,
            label="lastpid := p2.pid; insert_head(allproc, p2); nprocs++", line=378)
    cb.step(6, 7, ir.Assign(p, ir.Const(0, R)), label="p2 := null")
    cb.step(7, 0, ir.Release(lk), kind=ir.StepKind.UNLOCK, label="sx_xunlock(allproc_lock)", line=380)
    cb.step(8, 0, ir.Release(lk), kind=ir.StepKind.UNLOCK, label="sx_xunlock(allproc_lock) [EAGAIN]")
    cb.step(10, 11, ir.Acquire(lk), kind=ir.StepKind.LOCK, label="sx_xlock(allproc_lock) [exit]")
    cb.step(11, 12, ir.Assign(p, ir.ListQuery(ir.ListOp.FIRST, allproc, None, R)),
            guard=ir.Unary(ir.UnOp.NOT, ir.ListQuery(ir.ListOp.EMPTY, allproc, None, BOOL), BOOL),
            label="p := first(allproc)")
    cb.step(11, 14, guard=ir.ListQuery(ir.ListOp.EMPTY, allproc, None, BOOL), kind=ir.StepKind.COND,
            label="allproc empty")
    cb.step(12, 13, ir.ListUpdate(ir.ListEdit.REMOVE, allproc, P), ir.Free(P),
            ir.Assign(nprocs, bin(ir.BinOp.SUB, n, c(1))), kind=ir.StepKind.ATOMIC,
            label="remove(allproc, p); free p; nprocs--")
    cb.step(13, 14, ir.Assign(p, ir.Const(0, R)), label="p := null")
    cb.step(14, 0, ir.Release(lk), kind=ir.StepKind.UNLOCK, label="sx_xunlock(allproc_lock) [exit]")
    b.family("cpu", "cpu", ncpu)
    a, bb = ir.BoundRead("a", R), ir.BoundRead("b", R)
    b.invariant("nprocs_exact", bin(ir.BinOp.EQ, n, ir.ListQuery(ir.ListOp.LEN, allproc, None, N)))
    b.invariant("pid_unique", ir.Quant(ir.QuantKind.FORALL, "a", "proc", ir.Quant(
        ir.QuantKind.FORALL, "b", "proc", bin(ir.BinOp.IMPLIES, bin(ir.BinOp.NE, a, bb),
                                            bin(ir.BinOp.NE, ir.FieldRead(a, "proc", "pid", PID),
                                                ir.FieldRead(bb, "proc", "pid", PID))), BOOL), BOOL))
    return b.build()
