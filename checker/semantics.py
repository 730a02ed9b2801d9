"""The reference interpreter of the IR: the executable meaning of checker/ir.py.

Written for clarity, not speed: every engine that needs speed (the compiled
successor function in checker/explore/compiled.py) is tested against this.

State (hashable, immutable nested tuples)::

    (globals, pools, threads)
    globals = tuple of values, in System.globals order
    pools   = tuple per pool of tuple per slot: None (free) or tuple of field values
    threads = tuple per thread of (pc, locals tuple, wchan)

Values follow the IR module docstring. A step that produces a violation
(runtime error, failed assert, witness rule) is still returned as a
transition, whose state is the state the effects reached before the error;
engines treat such states as terminal (the kernel would have panicked).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple

from . import ir
from .diagnostics import ForkcheckError

Value = Any
State = tuple  # (globals, pools, threads)

FREE_MUTEX = (-1, 0)
FREE_SX = (-1, 0)


class ViolationKind(str, enum.Enum):
    RUNTIME = "runtime"
    WITNESS = "witness"
    ASSERT = "assert"


@dataclass(frozen=True)
class Violation:
    prop: str                  # property name: "runtime", "witness" or the assert's name
    kind: ViolationKind
    message: str


@dataclass(frozen=True)
class Access:
    """One shared-memory access made by a step (for lockset race checking)."""
    loc: ir.Loc
    slot: int                  # 0 for a global
    write: bool
    held: frozenset[str]       # lock instance names held by the thread at the access
    xheld: frozenset[str]      # of those, held exclusively (or a mutex)


@dataclass(frozen=True)
class Acquisition:
    """A lock acquired by a step, with the locks already held (for lock order)."""
    lock: str                  # instance name: "allproc_lock", "proc#2.p_mtx"
    cls: str                   # lock class
    held: tuple[tuple[str, str], ...]   # (instance, class) held before, in acquisition-independent order
    mode: ir.LockMode


class Transition(NamedTuple):
    """One enabled step from a state (a NamedTuple: created per successor, so cheap)."""
    thread: int
    step: ir.Step
    state: State
    accesses: tuple[Access, ...] = ()
    acquisitions: tuple[Acquisition, ...] = ()
    violations: tuple[Violation, ...] = ()


class _Abort(Exception):
    """Raised inside a step: runtime error or blocked effect."""


class _Disabled(_Abort):
    pass


class _RuntimeErr(_Abort):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def default_value(t: ir.Type, init: object) -> Value:
    """The stored initial value of a declared variable/field of type t."""
    if isinstance(t, ir.LockT):
        return FREE_SX if t.kind is ir.LockKind.SX else FREE_MUTEX
    if isinstance(t, ir.ListT):
        return tuple(init) if init else ()
    if init is None:
        if isinstance(t, ir.RefT):
            return 0
        if isinstance(t, ir.BoolT):
            return False
        if isinstance(t, ir.IntT):
            return t.lo
        return 0
    if isinstance(t, ir.BoolT):
        return bool(init)
    return init


def _c_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _c_mod(a: int, b: int) -> int:
    return a - b * _c_div(a, b)


class _Ctx:
    """A mutable working copy of a state while one step runs."""

    __slots__ = ("sem", "g", "pools", "threads", "tid", "locals", "accesses", "acqs", "viols",
                 "env", "track")

    def __init__(self, sem: "Semantics", state: State, tid: int, track: bool = True):
        self.sem = sem
        g, pools, threads = state
        self.g = list(g)
        self.pools = [list(p) for p in pools]
        self.threads = list(threads)
        self.tid = tid
        self.locals = list(threads[tid][1]) if tid >= 0 else []
        self.accesses: list[Access] = []
        self.acqs: list[Acquisition] = []
        self.viols: list[Violation] = []
        self.env: dict[str, int] = {}
        self.track = track

    def freeze(self) -> State:
        if self.tid >= 0:
            pc, _, w = self.threads[self.tid]
            self.threads[self.tid] = (pc, tuple(self.locals), w)
        return (tuple(self.g), tuple(tuple(p) for p in self.pools), tuple(self.threads))


class Semantics:
    """Successor generation, property evaluation and valuations for one System."""

    def __init__(self, system: ir.System):
        self.system = system
        s = system
        self.gindex = {g.name: i for i, g in enumerate(s.globals)}
        self.pindex = {p.name: i for i, p in enumerate(s.pools)}
        self.findex = {p.name: {f.name: i for i, f in enumerate(p.fields)} for p in s.pools}
        self.codes = s.code
        self.lindex = {c.name: {v.name: i for i, v in enumerate(c.locals)} for c in s.codes}
        self.thread_code = [s.code[t.code] for t in s.threads]
        self.thread_names = [t.name for t in s.threads]
        sizes = [p.size for p in s.pools]
        if "__chan__" not in self.pindex:
            self.pindex_chan = len(sizes)
            sizes.append(len(s.chans))
        else:
            self.pindex_chan = self.pindex["__chan__"]
        self.pool_sizes = tuple(sizes)
        # Every lock location, for "locks held by thread t" (spin rule, traces).
        self.global_locks = [(i, g.name, g.type) for i, g in enumerate(s.globals)
                             if isinstance(g.type, ir.LockT)]
        self.field_locks = [(pi, fi, p.name, f.name, f.type) for pi, p in enumerate(s.pools)
                            for fi, f in enumerate(p.fields) if isinstance(f.type, ir.LockT)]
        self.lock_global_names = {g.name for g in s.globals if isinstance(g.type, ir.LockT)}

    # ------------------------------------------------------------ initial

    def initial_state(self) -> State:
        s = self.system
        g = tuple(default_value(v.type, v.init) for v in s.globals)
        pools = tuple(tuple(None for _ in range(p.size)) for p in s.pools)
        threads = tuple((self.codes[t.code].entry,
                         tuple(default_value(v.type, v.init) for v in self.codes[t.code].locals), 0)
                        for t in s.threads)
        state = (g, pools, threads)
        if s.init:
            ctx = _Ctx(self, state, -1, track=False)
            try:
                for e in s.init:
                    self._effect(ctx, e)
            except _RuntimeErr as err:
                raise InitError(f"the init block fails: {err.message}") from None
            except _Disabled:
                raise InitError("the init block blocks (a pool too small or a lock unavailable)") from None
            if ctx.viols:
                raise InitError(f"the init block fails: {ctx.viols[0].message}")
            state = ctx.freeze()
        return state

    # --------------------------------------------------------- successors

    def successors(self, state: State) -> Iterator[Transition]:
        """Every transition from `state`, thread by thread, step by step (deterministic order)."""
        for tid in range(len(self.thread_code)):
            yield from self.thread_successors(state, tid)

    def thread_successors(self, state: State, tid: int) -> Iterator[Transition]:
        code = self.thread_code[tid]
        pc = state[2][tid][0]
        for step in code.steps_from[pc]:
            t = self.run_step(state, tid, step)
            if t is not None:
                yield t

    def run_step(self, state: State, tid: int, step: ir.Step) -> Transition | None:
        ctx = _Ctx(self, state, tid)
        try:
            if step.guard is not None and not self._eval(ctx, step.guard):
                return None
            for e in step.effects:
                self._effect(ctx, e)
                if ctx.viols:
                    break
        except _Disabled:
            return None
        except _RuntimeErr as err:
            ctx.viols.append(Violation("runtime", ViolationKind.RUNTIME, f"{err.message} in `{step.label}`"))
        if not ctx.viols:
            pc, loc, w = ctx.threads[tid]
            ctx.threads[tid] = (step.dst, loc, w)
        return Transition(tid, step, ctx.freeze(), tuple(ctx.accesses), tuple(ctx.acqs), tuple(ctx.viols))

    def enabled(self, state: State, tid: int) -> bool:
        return any(True for _ in self.thread_successors(state, tid))

    def is_terminated(self, state: State, tid: int) -> bool:
        return state[2][tid][0] == self.thread_code[tid].exit

    # ------------------------------------------------------- expressions

    def eval_in(self, state: State, expr: ir.Expr, env: dict[str, int] | None = None, tid: int = -1) -> Value:
        """Evaluate an invariant / leads-to expression. Raises EvalError on a runtime error."""
        ctx = _Ctx(self, state, tid, track=False)
        if env:
            ctx.env = dict(env)
        try:
            return self._eval(ctx, expr)
        except _RuntimeErr as err:
            raise EvalError(err.message) from None

    def _read_slot(self, ctx: _Ctx, pool: str, ref: int) -> tuple:
        if ref == 0:
            raise _RuntimeErr(f"null dereference of a ref {pool}")
        slots = ctx.pools[self.pindex[pool]]
        if not 1 <= ref <= len(slots):
            raise _RuntimeErr(f"bad ref {pool}#{ref}")
        obj = slots[ref - 1]
        if obj is None:
            raise _RuntimeErr(f"use of freed object {pool}#{ref}")
        return obj

    def _access(self, ctx: _Ctx, loc: ir.Loc, slot: int, write: bool) -> None:
        if ctx.track and ctx.tid >= 0:
            held, xheld = self._held_sets(ctx)
            ctx.accesses.append(Access(loc, slot, write, held, xheld))

    def _eval(self, ctx: _Ctx, e: ir.Expr) -> Value:
        if isinstance(e, ir.Const):
            return e.value
        if isinstance(e, ir.GlobalRead):
            v = ctx.g[self.gindex[e.name]]
            if not isinstance(e.type, ir.LockT):
                self._access(ctx, ir.Loc(None, e.name), 0, False)
            return v
        if isinstance(e, ir.LocalRead):
            return ctx.locals[self.lindex[self.thread_code[ctx.tid].name][e.name]]
        if isinstance(e, ir.BoundRead):
            return ctx.env[e.name]
        if isinstance(e, ir.SelfIndex):
            return self.system.threads[ctx.tid].index
        if isinstance(e, ir.SelfId):
            return ctx.tid
        if isinstance(e, ir.FieldRead):
            ref = self._eval(ctx, e.obj)
            obj = self._read_slot(ctx, e.pool, ref)
            if not isinstance(e.type, ir.LockT):
                self._access(ctx, ir.Loc(e.pool, e.field), ref, False)
            return obj[self.findex[e.pool][e.field]]
        if isinstance(e, ir.Unary):
            a = self._eval(ctx, e.arg)
            return (not a) if e.op is ir.UnOp.NOT else -a
        if isinstance(e, ir.Binary):
            return self._binary(ctx, e)
        if isinstance(e, ir.Ite):
            return self._eval(ctx, e.then) if self._eval(ctx, e.cond) else self._eval(ctx, e.other)
        if isinstance(e, ir.Quant):
            return self._quant(ctx, e)
        if isinstance(e, ir.Alive):
            ref = self._eval(ctx, e.obj)
            pool = e.obj.type.pool if isinstance(e.obj.type, ir.RefT) else None
            if ref == 0 or pool is None:
                return False
            slots = ctx.pools[self.pindex[pool]]
            return 1 <= ref <= len(slots) and slots[ref - 1] is not None
        if isinstance(e, ir.ListQuery):
            return self._list_query(ctx, e)
        if isinstance(e, ir.LockQuery):
            return self._lock_query(ctx, e)
        if isinstance(e, ir.Woken):
            return ctx.threads[ctx.tid][2] == 0
        raise TypeError(f"unknown expression {e!r}")

    def _binary(self, ctx: _Ctx, e: ir.Binary) -> Value:
        op = e.op
        if op is ir.BinOp.AND:
            return bool(self._eval(ctx, e.left)) and bool(self._eval(ctx, e.right))
        if op is ir.BinOp.OR:
            return bool(self._eval(ctx, e.left)) or bool(self._eval(ctx, e.right))
        if op is ir.BinOp.IMPLIES:
            return (not self._eval(ctx, e.left)) or bool(self._eval(ctx, e.right))
        a = self._eval(ctx, e.left)
        b = self._eval(ctx, e.right)
        if op is ir.BinOp.ADD:
            return a + b
        if op is ir.BinOp.SUB:
            return a - b
        if op is ir.BinOp.MUL:
            return a * b
        if op is ir.BinOp.DIV:
            if b == 0:
                raise _RuntimeErr("division by zero")
            return _c_div(a, b)
        if op is ir.BinOp.MOD:
            if b == 0:
                raise _RuntimeErr("division by zero (modulo)")
            return _c_mod(a, b)
        if op is ir.BinOp.EQ:
            return a == b
        if op is ir.BinOp.NE:
            return a != b
        if op is ir.BinOp.LT:
            return a < b
        if op is ir.BinOp.LE:
            return a <= b
        if op is ir.BinOp.GT:
            return a > b
        if op is ir.BinOp.GE:
            return a >= b
        if op is ir.BinOp.UNION:
            return a | b
        if op is ir.BinOp.INTER:
            return a & b
        if op is ir.BinOp.DIFF:
            return a & ~b
        if op is ir.BinOp.IN:
            return bool((b >> a) & 1)
        raise TypeError(f"unknown operator {op}")

    def _quant(self, ctx: _Ctx, e: ir.Quant) -> Value:
        slots = ctx.pools[self.pindex[e.pool]]
        saved = ctx.env.get(e.var)
        n = 0
        try:
            for i, obj in enumerate(slots):
                if obj is None:
                    continue
                ctx.env[e.var] = i + 1
                v = bool(self._eval(ctx, e.body))
                if e.kind is ir.QuantKind.FORALL and not v:
                    return False
                if e.kind is ir.QuantKind.EXISTS and v:
                    return True
                n += v
        finally:
            if saved is None:
                ctx.env.pop(e.var, None)
            else:
                ctx.env[e.var] = saved
        if e.kind is ir.QuantKind.FORALL:
            return True
        if e.kind is ir.QuantKind.EXISTS:
            return False
        return n

    def _list_query(self, ctx: _Ctx, e: ir.ListQuery) -> Value:
        lst = self._load(ctx, e.lst)
        if e.op is ir.ListOp.FIRST:
            return lst[0] if lst else 0
        if e.op is ir.ListOp.LEN:
            return len(lst)
        if e.op is ir.ListOp.EMPTY:
            return not lst
        x = self._eval(ctx, e.elem) if e.elem is not None else 0
        if e.op is ir.ListOp.CONTAINS:
            return x in lst
        if e.op is ir.ListOp.NEXT:
            if x in lst:
                i = lst.index(x)
                return lst[i + 1] if i + 1 < len(lst) else 0
            return 0
        raise TypeError(f"unknown list query {e.op}")

    def _lock_query(self, ctx: _Ctx, e: ir.LockQuery) -> bool:
        v = self._load(ctx, e.lock)
        kind = e.lock.type.kind  # type: ignore[union-attr]
        me = ctx.tid
        if kind is ir.LockKind.SX:
            xo, sh = v
            if e.q is ir.LockQ.HELD:
                return xo != -1 or sh != 0
            if e.q is ir.LockQ.XOWNED:
                return xo == me
            return xo == me or (me >= 0 and bool((sh >> me) & 1))
        owner, _ = v
        if e.q is ir.LockQ.HELD:
            return owner != -1
        return owner == me

    # ----------------------------------------------------------- lvalues

    def _where(self, ctx: _Ctx, lv: ir.LValue) -> tuple:
        """Resolve an lvalue to a location handle (evaluating its object ref once)."""
        if isinstance(lv, ir.GlobalVarRef):
            return ("g", self.gindex[lv.name])
        if isinstance(lv, ir.LocalVarRef):
            return ("l", self.lindex[self.thread_code[ctx.tid].name][lv.name])
        ref = self._eval(ctx, lv.obj)
        self._read_slot(ctx, lv.pool, ref)
        return ("f", self.pindex[lv.pool], ref, self.findex[lv.pool][lv.field])

    def _get(self, ctx: _Ctx, w: tuple) -> Value:
        if w[0] == "g":
            return ctx.g[w[1]]
        if w[0] == "l":
            return ctx.locals[w[1]]
        return ctx.pools[w[1]][w[2] - 1][w[3]]

    def _set(self, ctx: _Ctx, w: tuple, v: Value) -> None:
        if w[0] == "g":
            ctx.g[w[1]] = v
        elif w[0] == "l":
            ctx.locals[w[1]] = v
        else:
            slots = ctx.pools[w[1]]
            obj = list(slots[w[2] - 1])
            obj[w[3]] = v
            slots[w[2] - 1] = tuple(obj)

    def _loc_of(self, lv: ir.LValue, w: tuple) -> tuple[ir.Loc, int] | None:
        if isinstance(lv, ir.GlobalVarRef):
            return ir.Loc(None, lv.name), 0
        if isinstance(lv, ir.FieldRef):
            return ir.Loc(lv.pool, lv.field), w[2]
        return None

    def _load(self, ctx: _Ctx, lv: ir.LValue) -> Value:
        w = self._where(ctx, lv)
        if not isinstance(lv.type, ir.LockT):
            loc = self._loc_of(lv, w)
            if loc is not None:
                self._access(ctx, loc[0], loc[1], False)
        return self._get(ctx, w)

    def _store(self, ctx: _Ctx, lv: ir.LValue, w: tuple, v: Value) -> None:
        t = lv.type
        if isinstance(t, ir.IntT) and not isinstance(v, bool) and not t.lo <= v <= t.hi:
            raise _RuntimeErr(f"value {v} out of range {t.lo}..{t.hi} for {self._lv_text(ctx, lv, w)}")
        if isinstance(t, ir.BoolT):
            v = bool(v)
        loc = self._loc_of(lv, w)
        if loc is not None:
            self._access(ctx, loc[0], loc[1], True)
        self._set(ctx, w, v)

    def _lv_text(self, ctx: _Ctx, lv: ir.LValue, w: tuple) -> str:
        if isinstance(lv, ir.FieldRef):
            return f"{lv.pool}#{w[2]}.{lv.field}"
        if isinstance(lv, ir.LocalVarRef):
            code = self.thread_code[ctx.tid]
            return code.locals[w[1]].display
        return lv.name

    # ------------------------------------------------------------- locks

    def lock_name(self, lv: ir.LValue, w: tuple) -> str:
        if w[0] == "g":
            return lv.name  # type: ignore[union-attr]
        if w[0] == "f":
            return f"{self.system.pools[w[1]].name}#{w[2]}.{self.system.pools[w[1]].fields[w[3]].name}"
        return f"local {lv.name}"  # type: ignore[union-attr]

    def locks_of(self, state: State, tid: int) -> list[tuple[str, str, ir.LockT, bool]]:
        """Locks thread `tid` holds: (instance name, class, type, exclusive)."""
        return self._locks_of_parts(state[0], state[1], tid)

    def _locks_of_parts(self, g: Any, pools: Any, tid: int) -> list[tuple[str, str, ir.LockT, bool]]:
        out = []
        for i, name, t in self.global_locks:
            h = _holds(g[i], t, tid)
            if h:
                out.append((name, t.cls, t, h == 2))
        for pi, fi, pname, fname, t in self.field_locks:
            for slot, obj in enumerate(pools[pi]):
                if obj is not None:
                    h = _holds(obj[fi], t, tid)
                    if h:
                        out.append((f"{pname}#{slot + 1}.{fname}", t.cls, t, h == 2))
        return out

    def _held_sets(self, ctx: _Ctx) -> tuple[frozenset[str], frozenset[str]]:
        hs = self._locks_of_parts(ctx.g, ctx.pools, ctx.tid)
        return frozenset(h[0] for h in hs), frozenset(h[0] for h in hs if h[3])

    def _spin_held(self, ctx: _Ctx, except_name: str | None = None) -> list[str]:
        return [h[0] for h in self._locks_of_parts(ctx.g, ctx.pools, ctx.tid)
                if h[2].kind is ir.LockKind.SPIN and h[0] != except_name]

    def _witness(self, ctx: _Ctx, msg: str) -> None:
        ctx.viols.append(Violation("witness", ViolationKind.WITNESS, msg))

    def _acquire(self, ctx: _Ctx, e: ir.Acquire) -> None:
        t = e.lock.type
        assert isinstance(t, ir.LockT)
        w = self._where(ctx, e.lock)
        name = self.lock_name(e.lock, w)
        v = self._get(ctx, w)
        me = ctx.tid
        if t.kind is ir.LockKind.SX:
            xo, sh = v
            if xo == me or (e.mode is ir.LockMode.EXCLUSIVE and (sh >> me) & 1) or \
                    (e.mode is ir.LockMode.SHARED and (sh >> me) & 1):
                self._witness(ctx, f"recursion on sx lock {name} (class \"{t.cls}\")")
                return
            if e.mode is ir.LockMode.EXCLUSIVE:
                if xo != -1 or sh != 0:
                    raise _Disabled()
                new = (me, 0)
            else:
                if xo != -1:
                    raise _Disabled()
                new = (-1, sh | (1 << me))
        else:
            owner, depth = v
            if owner == me:
                if not t.recursive:
                    self._witness(ctx, f"recursed on non-recursive mutex {name} (class \"{t.cls}\")")
                    return
                new = (me, depth + 1)
            elif owner != -1:
                raise _Disabled()
            else:
                new = (me, 1)
        if t.kind is not ir.LockKind.SPIN:
            spins = self._spin_held(ctx)
            if spins:
                self._witness(ctx, f"acquiring sleepable lock {name} with spin lock {spins[0]} held")
                return
        if ctx.track:
            held = tuple(sorted((h[0], h[1]) for h in self._locks_of_parts(ctx.g, ctx.pools, me)))
            ctx.acqs.append(Acquisition(name, t.cls, held, e.mode))
        self._set(ctx, w, new)

    def _release(self, ctx: _Ctx, lv: ir.LValue, mode: ir.LockMode) -> None:
        t = lv.type
        assert isinstance(t, ir.LockT)
        w = self._where(ctx, lv)
        name = self.lock_name(lv, w)
        v = self._get(ctx, w)
        me = ctx.tid
        if t.kind is ir.LockKind.SX:
            xo, sh = v
            if mode is ir.LockMode.EXCLUSIVE or xo == me:
                if xo != me:
                    who = "not held" if xo == -1 and sh == 0 else "held by another thread or shared"
                    self._witness(ctx, f"exclusive unlock of sx lock {name} {who}")
                    return
                self._set(ctx, w, (-1, sh))
            else:
                if not (sh >> me) & 1:
                    self._witness(ctx, f"shared unlock of sx lock {name} not held by this thread")
                    return
                self._set(ctx, w, (-1, sh & ~(1 << me)))
            return
        owner, depth = v
        if owner != me:
            who = "not held" if owner == -1 else f"held by {self.thread_names[owner]}"
            self._witness(ctx, f"unlock of mutex {name} {who}")
            return
        self._set(ctx, w, (-1, 0) if depth <= 1 else (me, depth - 1))

    # ----------------------------------------------------------- effects

    def _chan(self, ctx: _Ctx, e: ir.Expr) -> int:
        ref = self._eval(ctx, e)
        if not isinstance(e.type, ir.RefT):
            raise TypeError("a channel must be a ref")
        if ref == 0:
            raise _RuntimeErr("sleep or wakeup on a null channel")
        pi = self.pindex_chan if e.type.pool == "__chan__" else self.pindex[e.type.pool]
        return ir.chan_id(pi, ref, self.pool_sizes)

    def chan_name(self, cid: int) -> str:
        base = 0
        for pi, size in enumerate(self.pool_sizes):
            if cid <= base + size:
                ref = cid - base
                if pi == self.pindex_chan and pi >= len(self.system.pools):
                    return self.system.chans[ref - 1]
                name = self.system.pools[pi].name
                if name == "__chan__":
                    return self.system.chans[ref - 1] if ref <= len(self.system.chans) else f"chan#{ref}"
                return f"{name}#{ref}"
            base += size
        return f"chan {cid}"

    def _effect(self, ctx: _Ctx, e: ir.Effect) -> None:
        if isinstance(e, ir.Assign):
            v = self._eval(ctx, e.value)
            w = self._where(ctx, e.target)
            self._store(ctx, e.target, w, v)
        elif isinstance(e, ir.Acquire):
            self._acquire(ctx, e)
        elif isinstance(e, ir.Release):
            self._release(ctx, e.lock, e.mode)
        elif isinstance(e, ir.Alloc):
            p = self.system.pool[e.pool]
            slots = ctx.pools[self.pindex[e.pool]]
            try:
                i = slots.index(None)
            except ValueError:
                if e.blocking:
                    raise _Disabled() from None
                raise _RuntimeErr(f"pool {e.pool} is full (non-blocking alloc)") from None
            if e.blocking and ctx.tid >= 0:
                spins = self._spin_held(ctx)
                if spins:
                    self._witness(ctx, f"blocking allocation from {e.pool} with spin lock {spins[0]} held")
                    return
            slots[i] = tuple(default_value(f.type, f.init) for f in p.fields)
            w = self._where(ctx, e.target)
            self._store(ctx, e.target, w, i + 1)
        elif isinstance(e, ir.Free):
            ref = self._eval(ctx, e.obj)
            pool = e.obj.type.pool  # type: ignore[union-attr]
            self._read_slot(ctx, pool, ref)
            ctx.pools[self.pindex[pool]][ref - 1] = None
        elif isinstance(e, ir.ListUpdate):
            self._list_update(ctx, e)
        elif isinstance(e, ir.Upgrade):
            t = e.lock.type
            w = self._where(ctx, e.lock)
            name = self.lock_name(e.lock, w)
            xo, sh = self._get(ctx, w)
            me = ctx.tid
            if not (sh >> me) & 1:
                self._witness(ctx, f"upgrade of sx lock {name} not held shared")
                return
            if sh & ~(1 << me):
                others = [self.thread_names[i] for i in range(len(self.thread_names)) if (sh >> i) & 1 and i != me]
                self._witness(ctx, f"upgrade of sx lock {name} while {', '.join(others)} hold it shared")
                return
            self._set(ctx, w, (me, 0))
        elif isinstance(e, ir.Sleep):
            cid = self._chan(ctx, e.chan)
            il = None
            if e.interlock is not None:
                wi = self._where(ctx, e.interlock)
                il = self.lock_name(e.interlock, wi)
            spins = self._spin_held(ctx, except_name=il)
            if spins:
                self._witness(ctx, f"sleeping on {self.chan_name(cid)} with spin lock {spins[0]} held")
                return
            if e.interlock is not None:
                self._release(ctx, e.interlock, ir.LockMode.EXCLUSIVE)
                if ctx.viols:
                    return
            pc, loc, _ = ctx.threads[ctx.tid]
            ctx.threads[ctx.tid] = (pc, loc, cid)
        elif isinstance(e, ir.Wakeup):
            cid = self._chan(ctx, e.chan)
            for i, (pc, loc, wch) in enumerate(ctx.threads):
                if wch == cid:
                    ctx.threads[i] = (pc, loc, 0)
                    if e.one:
                        break
        elif isinstance(e, ir.Assert):
            if not self._eval(ctx, e.cond):
                ctx.viols.append(Violation(e.name, ViolationKind.ASSERT, f"assertion {e.name} failed"))
        elif isinstance(e, ir.LockAssert):
            w = self._where(ctx, e.lock)
            name = self.lock_name(e.lock, w)
            owned = _holds(self._get(ctx, w), e.lock.type, ctx.tid) != 0  # type: ignore[arg-type]
            if e.kind is ir.LockAssertKind.OWNED and not owned:
                self._witness(ctx, f"mtx_assert({name}, MA_OWNED) failed: not owned")
            elif e.kind is ir.LockAssertKind.NOTOWNED and owned:
                self._witness(ctx, f"mtx_assert({name}, MA_NOTOWNED) failed: owned")
        else:
            raise TypeError(f"unknown effect {e!r}")

    def _list_update(self, ctx: _Ctx, e: ir.ListUpdate) -> None:
        w = self._where(ctx, e.lst)
        loc = self._loc_of(e.lst, w)
        if loc is not None:
            self._access(ctx, loc[0], loc[1], False)
        lst = list(self._get(ctx, w))
        if e.op is ir.ListEdit.CLEAR:
            self._store(ctx, e.lst, w, ())
            return
        x = self._eval(ctx, e.elem) if e.elem is not None else 0
        if x == 0:
            raise _RuntimeErr(f"null element in {e.op.value}")
        if e.op is ir.ListEdit.REMOVE:
            if x not in lst:
                raise _RuntimeErr(f"remove of an element not in the list")
            lst.remove(x)
        else:
            if x in lst:
                raise _RuntimeErr(f"insert of an element already in the list")
            if e.op is ir.ListEdit.INSERT_HEAD:
                lst.insert(0, x)
            elif e.op is ir.ListEdit.INSERT_TAIL:
                lst.append(x)
            else:
                a = self._eval(ctx, e.after) if e.after is not None else 0
                if a not in lst:
                    raise _RuntimeErr("insert_after an element not in the list")
                lst.insert(lst.index(a) + 1, x)
        self._store(ctx, e.lst, w, tuple(lst))

    # ------------------------------------------------------- valuations

    def _value(self, t: ir.Type, v: Value) -> Any:
        if isinstance(t, ir.BoolT):
            return bool(v)
        if isinstance(t, ir.EnumT):
            return t.members[v] if 0 <= v < len(t.members) else v
        if isinstance(t, ir.SetT):
            return sorted(m for i, m in enumerate(t.enum.members) if (v >> i) & 1)
        if isinstance(t, ir.RefT):
            if v == 0:
                return None
            if t.pool == "__chan__":
                return self.system.chans[v - 1] if v <= len(self.system.chans) else f"chan#{v}"
            return f"{t.pool}#{v}"
        if isinstance(t, ir.ListT):
            return [f"{t.pool}#{x}" for x in v]
        if isinstance(t, ir.LockT):
            if t.kind is ir.LockKind.SX:
                xo, sh = v
                return {"xowner": None if xo == -1 else self.thread_names[xo],
                        "shared": [self.thread_names[i] for i in range(len(self.thread_names)) if (sh >> i) & 1]}
            owner, depth = v
            return {"owner": None if owner == -1 else self.thread_names[owner], "depth": depth}
        return v

    def thread_status(self, state: State, tid: int) -> str:
        if self.is_terminated(state, tid):
            return "done"
        if state[2][tid][2] != 0:
            return "sleeping"
        return "running" if self.enabled(state, tid) else "blocked"

    def valuation(self, state: State) -> dict[str, Any]:
        """The state in itf.py's naming convention (JSON-able)."""
        s = self.system
        g, pools, threads = state
        out: dict[str, Any] = {}
        for i, v in enumerate(s.globals):
            out[v.name] = self._value(v.type, g[i])
        for pi, p in enumerate(s.pools):
            if p.name == "__chan__":
                continue
            objs = {}
            for slot, obj in enumerate(pools[pi]):
                if obj is not None:
                    objs[f"{p.name}#{slot + 1}"] = {f.name: self._value(f.type, obj[fi])
                                                     for fi, f in enumerate(p.fields)}
            out[p.name] = objs
        ths = {}
        for tid, t in enumerate(s.threads):
            code = self.thread_code[tid]
            pc, locs, wch = threads[tid]
            label = code.pc_labels[pc] if pc < len(code.pc_labels) and code.pc_labels[pc] else (
                "exit" if pc == code.exit else f"pc {pc}")
            ths[t.name] = {"pc": label,
                           "locals": {v.display: self._value(v.type, locs[i]) for i, v in enumerate(code.locals)},
                           "wchan": None if wch == 0 else self.chan_name(wch),
                           "status": self.thread_status(state, tid)}
        out["#threads"] = ths
        return out

    def blocked_reason(self, state: State, tid: int) -> str:
        """Why thread `tid` cannot move in `state` (for traces and deadlock reports)."""
        wch = state[2][tid][2]
        if wch:
            return f"sleeping on {self.chan_name(wch)}"
        code = self.thread_code[tid]
        reasons = []
        for step in code.steps_from[state[2][tid][0]]:
            reasons.append(self._why_disabled(state, tid, step))
        return "; ".join(dict.fromkeys(r for r in reasons if r)) or "no step"

    def waiting_for(self, state: State, tid: int) -> list[tuple[str, str]]:
        """Locks (instance, class) that thread `tid` is blocked acquiring in `state`."""
        out = []
        for step in self.thread_code[tid].steps_from[state[2][tid][0]]:
            ctx = _Ctx(self, state, tid, track=False)
            try:
                if step.guard is not None and not self._eval(ctx, step.guard):
                    continue
                for e in step.effects:
                    if isinstance(e, ir.Acquire):
                        w = self._where(ctx, e.lock)
                        try:
                            self._acquire(ctx, e)
                        except _Disabled:
                            out.append((self.lock_name(e.lock, w), e.lock.type.cls))  # type: ignore[union-attr]
                            break
                    else:
                        self._effect(ctx, e)
            except (_RuntimeErr, _Disabled):
                continue
        return out

    def _why_disabled(self, state: State, tid: int, step: ir.Step) -> str:
        ctx = _Ctx(self, state, tid, track=False)
        try:
            if step.guard is not None and not self._eval(ctx, step.guard):
                return f"waiting: {step.label}"
            for e in step.effects:
                if isinstance(e, ir.Acquire):
                    w = self._where(ctx, e.lock)
                    v = self._get(ctx, w)
                    name = self.lock_name(e.lock, w)
                    try:
                        self._acquire(ctx, e)
                    except _Disabled:
                        owner = v[0]
                        holders = [self.thread_names[owner]] if owner != -1 else []
                        if isinstance(e.lock.type, ir.LockT) and e.lock.type.kind is ir.LockKind.SX:
                            holders += [self.thread_names[i] for i in range(len(self.thread_names))
                                        if (v[1] >> i) & 1]
                        return f"waiting for lock {name} held by {', '.join(holders) or '?'}"
                elif isinstance(e, ir.Alloc):
                    try:
                        self._effect(ctx, e)
                    except _Disabled:
                        return f"waiting for a free {e.pool} slot"
                else:
                    self._effect(ctx, e)
        except (_RuntimeErr, _Disabled):
            return ""
        return ""


def _holds(v: Value, t: ir.LockT, tid: int) -> int:
    """0 not held by tid, 1 held shared, 2 held exclusively."""
    if tid < 0:
        return 0
    if t.kind is ir.LockKind.SX:
        xo, sh = v
        if xo == tid:
            return 2
        return 1 if (sh >> tid) & 1 else 0
    return 2 if v[0] == tid else 0


class InitError(ForkcheckError):
    """The init block cannot run."""


class EvalError(Exception):
    """A runtime error while evaluating an invariant or leads-to predicate."""
