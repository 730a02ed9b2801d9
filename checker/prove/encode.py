"""The IR as z3 formulas: states, the initial state, and one transition.

This is a symbolic twin of checker/semantics.py (the reference interpreter):
the same evaluation order, the same runtime errors, the same witness rules,
so BMC and the explorer answer the same question. Every bounded structure
becomes a fixed set of z3 integers:

- bool -> Bool; int, enum, flag set, ref, pc, wait channel -> Int;
- mutex/spin (owner, depth) and sx (xowner, shared bitmask) -> two Ints;
- a list -> `cap` Ints (elements, 0 past the end) and an Int length;
- a pool slot -> an `alive` Bool and one value per field. A free slot's
  fields are kept at their initial values, so a state has exactly one
  encoding (k-induction compares states for equality).

A transition is selected by an Int `sel` per step: transition number i is
(thread, step); `sel == i` implies the step's enabling condition, and each
variable's next value is an if-then-else over the transitions that change
it (the frame condition is the final `else`).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any, Iterator, Union

import z3

from .. import interrupt, ir
from ..diagnostics import ForkcheckError
from ..semantics import default_value

# z3 would catch SIGINT itself during a check (its `ctrl_c` parameter): the check returns
# `unknown` and Python never learns of the Ctrl-C, so the run goes on. Python's handler and
# the CLI's watcher stop z3 instead (checker/interrupt.py).
z3.set_param("ctrl_c", False)

# A symbolic value: a z3 term, or a tuple of them (locks, lists).
SV = Any


def make_solver(timeout_ms: int | None = None) -> z3.Solver:
    """The solver for unrollings. Every state variable is defined by an
    equation over the previous state and the selector, so eliminating them
    first (solve-eqs) leaves a formula over the selectors alone: about six
    times faster than the incremental core on the examples (tests/bench).
    A tactic solver ignores the `timeout` parameter: TryFor bounds it."""
    t = z3.Then("simplify", "propagate-values", "solve-eqs", "smt")
    if timeout_ms is not None:
        t = z3.TryFor(t, max(1, timeout_ms))
    return t.solver()


# What a z3 call raises once the CLI's watcher has stopped it (simplify, eval: only check()
# answers `unknown`), or when a KeyboardInterrupt hits ctypes converting an argument. With the
# interrupt flag set, these are the interrupt.
Z3_STOPPED = (z3.Z3Exception, ctypes.ArgumentError)


def solve(slv: z3.Solver) -> z3.CheckSatResult:
    """`slv.check()` that stops on an interrupt: none is started once one is recorded, and
    after the call a recorded interrupt raises KeyboardInterrupt, whatever z3 answered
    (an interrupted call answers `unknown`: never a time-out)."""
    interrupt.check()
    r = slv.check()
    interrupt.check()
    return r


class EncodeError(ForkcheckError):
    """An IR construct the prover cannot encode."""


def _ite(c: z3.BoolRef, a: SV, b: SV) -> SV:
    if z3.is_true(c):
        return a
    if z3.is_false(c):
        return b
    if isinstance(a, tuple):
        return tuple(_ite(c, x, y) for x, y in zip(a, b))
    if a is b or (isinstance(a, z3.ExprRef) and isinstance(b, z3.ExprRef) and a.eq(b)):
        return a
    return z3.If(c, a, b)


def _flat(v: SV) -> Iterator[z3.ExprRef]:
    if isinstance(v, tuple):
        for x in v:
            yield from _flat(x)
    else:
        yield v


def _same(a: SV, b: SV) -> bool:
    return all(x.eq(y) for x, y in zip(_flat(a), _flat(b)))


@dataclass
class SymState:
    g: dict[str, SV]
    alive: dict[str, list[z3.BoolRef]]
    fields: dict[str, list[dict[str, SV]]]
    pc: list[z3.ArithRef]
    locs: list[dict[str, SV]]
    wchan: list[z3.ArithRef]

    def copy(self) -> "SymState":
        return SymState(dict(self.g), {k: list(v) for k, v in self.alive.items()},
                        {k: [dict(s) for s in v] for k, v in self.fields.items()}, list(self.pc),
                        [dict(x) for x in self.locs], list(self.wchan))

    def items(self) -> Iterator[tuple[str, SV]]:
        """Every variable with a stable name, in a fixed order."""
        for k, v in self.g.items():
            yield k, v
        for p, al in self.alive.items():
            for j, a in enumerate(al):
                yield f"{p}#{j + 1}.alive", a
                for f, v in self.fields[p][j].items():
                    yield f"{p}#{j + 1}.{f}", v
        for t, pc in enumerate(self.pc):
            yield f"#{t}.pc", pc
            for k, v in self.locs[t].items():
                yield f"#{t}.{k}", v
            yield f"#{t}.wchan", self.wchan[t]

    def rebuilt(self, vals: dict[str, SV]) -> "SymState":
        """A state of the same shape with the values named as in items()."""
        n = range(len(self.pc))
        return SymState({k: vals[k] for k in self.g},
                        {p: [vals[f"{p}#{j + 1}.alive"] for j in range(len(al))] for p, al in self.alive.items()},
                        {p: [{f: vals[f"{p}#{j + 1}.{f}"] for f in slot} for j, slot in enumerate(sl)]
                         for p, sl in self.fields.items()},
                        [vals[f"#{t}.pc"] for t in n], [{k: vals[f"#{t}.{k}"] for k in self.locs[t]} for t in n],
                        [vals[f"#{t}.wchan"] for t in n])

    def flat(self) -> list[z3.ExprRef]:
        return [x for _, v in self.items() for x in _flat(v)]


@dataclass
class StepEnc:
    """One (thread, step) as formulas over a pre-state."""
    thread: int
    step: ir.Step
    enabled: z3.BoolRef
    violations: list[tuple[str, z3.BoolRef, str]]   # (property, condition, message)
    post: SymState

    @property
    def violated(self) -> z3.BoolRef:
        return z3.Or([c for _, c, _ in self.violations]) if self.violations else z3.BoolVal(False)


class _Ctx:
    def __init__(self, enc: "Encoder", state: SymState, tid: int):
        self.enc = enc
        self.s = state
        self.tid = tid
        self.ok: z3.BoolRef = z3.BoolVal(True)          # no violation so far
        self.cond: z3.BoolRef = z3.BoolVal(True)        # path condition inside an expression
        self.enabled: list[z3.BoolRef] = []
        self.viols: list[tuple[str, z3.BoolRef, str]] = []
        self.env: dict[str, int] = {}

    def error(self, prop: str, c: z3.BoolRef, msg: str) -> None:
        c = z3.simplify(z3.And(self.ok, self.cond, c))
        if z3.is_false(c):
            return
        self.viols.append((prop, c, msg))
        self.ok = z3.And(self.ok, z3.Not(c))

    def disabled_unless(self, c: z3.BoolRef) -> None:
        self.enabled.append(z3.Implies(z3.And(self.ok, self.cond), c))


class Encoder:
    """z3 encoding of one System (no module state; one per system)."""

    def __init__(self, system: ir.System):
        self.system = system
        s = system
        self.nthreads = len(s.threads)
        self.codes = [s.code[t.code] for t in s.threads]
        self.pools = {p.name: p for p in s.pools}
        sizes = [p.size for p in s.pools]
        names = [p.name for p in s.pools]
        if "__chan__" not in names:
            self.chan_pool = len(sizes)
            sizes.append(len(s.chans))
        else:
            self.chan_pool = names.index("__chan__")
        self.pool_sizes = tuple(sizes)
        self.pool_index = {n: i for i, n in enumerate(names)}
        self.transitions: list[tuple[int, ir.Step]] = [
            (t, st) for t in range(self.nthreads) for st in self.codes[t].steps]
        self._lock_locs = [(g.name, g.type) for g in s.globals if isinstance(g.type, ir.LockT)]
        self._field_locks = [(p.name, f.name, f.type) for p in s.pools for f in p.fields
                             if isinstance(f.type, ir.LockT)]
        self._steps_cache: dict[int, list[StepEnc]] = {}

    # ------------------------------------------------------------ states

    def _fresh_val(self, name: str, t: ir.Type) -> SV:
        if isinstance(t, ir.BoolT):
            return z3.Bool(name)
        if isinstance(t, ir.LockT):
            return (z3.Int(name + ".owner"), z3.Int(name + (".shared" if t.kind is ir.LockKind.SX else ".depth")))
        if isinstance(t, ir.ListT):
            cap = self.pools[t.pool].size
            return (tuple(z3.Int(f"{name}[{k}]") for k in range(cap)), z3.Int(name + ".len"))
        return z3.Int(name)

    def _const_val(self, t: ir.Type, init: object) -> SV:
        return self._val_of(t, default_value(t, init))

    def fresh_state(self, tag: str) -> SymState:
        s = self.system
        g = {v.name: self._fresh_val(f"{v.name}@{tag}", v.type) for v in s.globals}
        alive = {p.name: [z3.Bool(f"{p.name}#{j + 1}@{tag}") for j in range(p.size)] for p in s.pools}
        fields = {p.name: [{f.name: self._fresh_val(f"{p.name}#{j + 1}.{f.name}@{tag}", f.type) for f in p.fields}
                           for j in range(p.size)] for p in s.pools}
        pc = [z3.Int(f"{t.name}.pc@{tag}") for t in s.threads]
        locs = [{v.name: self._fresh_val(f"{t.name}.{v.name}@{tag}", v.type) for v in self.codes[i].locals}
                for i, t in enumerate(s.threads)]
        wchan = [z3.Int(f"{t.name}.wchan@{tag}") for t in s.threads]
        return SymState(g, alive, fields, pc, locs, wchan)

    def _val_of(self, t: ir.Type, v: Any) -> SV:
        """A concrete value of semantics.py as z3 constants (decode's inverse)."""
        if isinstance(t, ir.BoolT):
            return z3.BoolVal(bool(v))
        if isinstance(t, ir.LockT):
            return (z3.IntVal(v[0]), z3.IntVal(v[1]))
        if isinstance(t, ir.ListT):
            cap = self.pools[t.pool].size
            return (tuple(z3.IntVal(x) for x in list(v) + [0] * (cap - len(v))), z3.IntVal(len(v)))
        return z3.IntVal(int(v))

    def concrete(self, state: tuple) -> SymState:
        """A state in semantics.py's representation (g, pools, threads) as
        constants: BMC from a reachable state instead of the initial one. A
        free slot gets its field defaults, as everywhere in the encoding."""
        g, pools, threads = state
        s = self.system
        if len(g) != len(s.globals) or len(pools) != len(s.pools) or len(threads) != self.nthreads:
            raise EncodeError("the state does not have this system's shape")
        gv = {v.name: self._val_of(v.type, g[i]) for i, v in enumerate(s.globals)}
        alive = {p.name: [z3.BoolVal(pools[pi][j] is not None) for j in range(p.size)]
                 for pi, p in enumerate(s.pools)}
        fields = {p.name: [{f.name: (self._const_val(f.type, f.init) if pools[pi][j] is None
                                     else self._val_of(f.type, pools[pi][j][fi]))
                            for fi, f in enumerate(p.fields)} for j in range(p.size)]
                  for pi, p in enumerate(s.pools)}
        pc = [z3.IntVal(th[0]) for th in threads]
        locs = [{v.name: self._val_of(v.type, threads[t][1][i]) for i, v in enumerate(self.codes[t].locals)}
                for t in range(self.nthreads)]
        wchan = [z3.IntVal(th[2]) for th in threads]
        return SymState(gv, alive, fields, pc, locs, wchan)

    def pcs_of(self, state: tuple) -> list[set[int]]:
        """Each thread's pc in a concrete state (the unrolling's first pcs)."""
        return [{th[0]} for th in state[2]]

    def _pre_init_state(self) -> SymState:
        s = self.system
        g = {v.name: self._const_val(v.type, v.init) for v in s.globals}
        alive = {p.name: [z3.BoolVal(False)] * p.size for p in s.pools}
        fields = {p.name: [{f.name: self._const_val(f.type, f.init) for f in p.fields} for _ in range(p.size)]
                  for p in s.pools}
        pc = [z3.IntVal(c.entry) for c in self.codes]
        locs = [{v.name: self._const_val(v.type, v.init) for v in c.locals} for c in self.codes]
        wchan = [z3.IntVal(0)] * self.nthreads
        return SymState(g, alive, fields, pc, locs, wchan)

    def initial(self) -> SymState:
        """The state after the init block (concrete terms; the init block is
        deterministic). Errors in the init block are input errors."""
        st = self._pre_init_state()
        if not self.system.init:
            return st
        ctx = _Ctx(self, st, -1)
        for e in self.system.init:
            self._effect(ctx, e)
        for _, c, msg in ctx.viols:
            if not z3.is_false(z3.simplify(c)):
                raise EncodeError(f"the init block fails: {msg}")
        return st

    def init_formula(self, s: SymState) -> z3.BoolRef:
        return z3.And([a == b for a, b in zip(s.flat(), self.initial().flat())])

    def equal(self, a: SymState, b: SymState) -> z3.BoolRef:
        return z3.And([x == y for x, y in zip(a.flat(), b.flat())])

    def type_ok(self, s: SymState) -> z3.BoolRef:
        """The domain of every variable (assumed of an arbitrary pre-state in
        induction; every transition without a runtime error preserves it)."""
        out = self.shared_type_ok(s)
        for t in range(self.nthreads):
            code = self.codes[t]
            out.append(z3.And(0 <= s.pc[t], s.pc[t] < code.npcs))
            for v in code.locals:
                out.append(self._in_type(v.type, s.locs[t][v.name]))
            out.append(z3.And(0 <= s.wchan[t], s.wchan[t] <= sum(self.pool_sizes)))
        return z3.And(out)

    def shared_type_ok(self, s: SymState) -> list[z3.BoolRef]:
        """type_ok's part for the globals and the pools (a free slot holds its field defaults)."""
        out: list[z3.BoolRef] = [self._in_type(v.type, s.g[v.name]) for v in self.system.globals]
        for p in self.system.pools:
            for j in range(p.size):
                for f in p.fields:
                    val = s.fields[p.name][j][f.name]
                    out.append(self._in_type(f.type, val))
                    dflt = self._const_val(f.type, f.init)
                    out.append(z3.Implies(z3.Not(s.alive[p.name][j]),
                                          z3.And([x == y for x, y in zip(_flat(val), _flat(dflt))])))
        return out

    def _in_type(self, t: ir.Type, v: SV) -> z3.BoolRef:
        if isinstance(t, ir.BoolT):
            return z3.BoolVal(True)
        if isinstance(t, ir.IntT):
            return z3.And(t.lo <= v, v <= t.hi)
        if isinstance(t, ir.EnumT):
            return z3.And(0 <= v, v < len(t.members))
        if isinstance(t, ir.SetT):
            return z3.And(0 <= v, v < 2 ** len(t.enum.members))
        if isinstance(t, ir.RefT):
            size = self.pool_sizes[self.chan_pool] if t.pool == "__chan__" else self.pools[t.pool].size
            return z3.And(0 <= v, v <= size)
        if isinstance(t, ir.ListT):
            elems, n = v
            cap = len(elems)
            out = [0 <= n, n <= cap]
            for k, x in enumerate(elems):
                out.append(z3.If(k < n, z3.And(1 <= x, x <= cap), x == 0))
            if cap > 1:
                out.append(z3.Distinct(*[z3.If(k < n, x, -1 - k) for k, x in enumerate(elems)]))
            return z3.And(out)
        if isinstance(t, ir.LockT):
            a, b = v
            if t.kind is ir.LockKind.SX:
                return z3.And(-1 <= a, a < self.nthreads, 0 <= b, b < 2 ** self.nthreads,
                              z3.Implies(a != -1, b == 0))
            return z3.And(-1 <= a, a < self.nthreads, z3.If(a == -1, b == 0, b >= 1))
        raise EncodeError(f"unsupported type {t}")

    # ------------------------------------------------------------ steps

    def steps(self, s: SymState, pcs: list[set[int]] | None = None) -> list[StepEnc]:
        """Every (thread, step); with `pcs`, only steps from those pcs of each
        thread (the others cannot be enabled in s)."""
        out = []
        for t, st in self.transitions:
            if pcs is None or st.src in pcs[t]:
                interrupt.check()       # a large spec encodes for seconds between solver calls
                out.append(self.run_step(s, t, st))
        return out

    def entry_pcs(self) -> list[set[int]]:
        return [{c.entry} for c in self.codes]

    def pcs_after(self, pcs: list[set[int]]) -> list[set[int]]:
        """The pcs each thread may be at one step later (guards ignored)."""
        out = []
        for t, ps in enumerate(pcs):
            nxt = set(ps)
            for pc in ps:
                nxt.update(st.dst for st in self.codes[t].steps_from[pc])
            out.append(nxt)
        return out

    def run_step(self, s: SymState, tid: int, step: ir.Step) -> StepEnc:
        ctx = _Ctx(self, s.copy(), tid)
        ctx.enabled.append(s.pc[tid] == step.src)
        if step.guard is not None:
            g = self._eval(ctx, step.guard)
            ctx.disabled_unless(g)
        for e in step.effects:
            self._effect(ctx, e)
        ctx.s.pc[tid] = z3.IntVal(step.dst)
        return StepEnc(tid, step, z3.And(ctx.enabled), ctx.viols, ctx.s)

    def successor(self, pre: SymState, sel: z3.ArithRef,
                  encs: list[StepEnc] | None = None) -> tuple[z3.BoolRef, SymState]:
        """(ok, post): post is the successor of pre by transition number `sel`
        as terms over pre and sel (an if-then-else per variable over the
        transitions that change it; the frame is the final `else`), and ok says
        that `sel` names a transition that is enabled and raises no violation.
        BMC chains these terms instead of equating fresh variables: the solver
        then gets no equations to eliminate at every check."""
        encs = encs if encs is not None else self.steps(pre)
        ok: list[z3.BoolRef] = [0 <= sel, sel < len(encs)]
        for i, e in enumerate(encs):
            ok.append(z3.Implies(sel == i, z3.And(e.enabled, z3.Not(e.violated))))
        posts = [dict(e.post.items()) for e in encs]
        vals: dict[str, SV] = {}
        for n, val in pre.items():
            old = val
            for i in reversed(range(len(encs))):
                nv = posts[i][n]
                if not _same(nv, old):
                    val = _ite(sel == i, nv, val)
            vals[n] = val
        return z3.And(ok), pre.rebuilt(vals)

    def next_formula(self, pre: SymState, post: SymState, sel: z3.ArithRef,
                     encs: list[StepEnc] | None = None) -> z3.BoolRef:
        """post is the successor of pre by transition number `sel`, which is
        enabled and raises no violation."""
        ok, nxt = self.successor(pre, sel, encs)
        return z3.And([ok] + [x == y for x, y in zip(post.flat(), nxt.flat())])

    # --------------------------------------------------------- expressions

    def _slot(self, ctx: _Ctx, pool: str, ref: z3.ArithRef, what: str) -> None:
        """Runtime errors of dereferencing `ref` (semantics._read_slot)."""
        p = self.pools[pool]
        ctx.error("runtime", ref == 0, f"null dereference of a ref {pool}")
        ctx.error("runtime", z3.Or(ref < 1, ref > p.size), f"bad ref {pool}")
        dead = z3.Or([z3.And(ref == j + 1, z3.Not(ctx.s.alive[pool][j])) for j in range(p.size)] or
                     [z3.BoolVal(False)])
        ctx.error("runtime", dead, f"use of freed object {pool} ({what})")

    def _select(self, pool: str, ref: z3.ArithRef, vals: list[SV]) -> SV:
        out = vals[-1]
        for j in reversed(range(len(vals) - 1)):
            out = _ite(ref == j + 1, vals[j], out)
        return out

    def _eval(self, ctx: _Ctx, e: ir.Expr) -> SV:
        if isinstance(e, ir.Const):
            return z3.BoolVal(bool(e.value)) if isinstance(e.type, ir.BoolT) or isinstance(e.value, bool) \
                else z3.IntVal(int(e.value))
        if isinstance(e, ir.GlobalRead):
            return ctx.s.g[e.name]
        if isinstance(e, ir.LocalRead):
            return ctx.s.locs[ctx.tid][e.name]
        if isinstance(e, ir.BoundRead):
            return z3.IntVal(ctx.env[e.name])
        if isinstance(e, ir.SelfIndex):
            return z3.IntVal(self.system.threads[ctx.tid].index)
        if isinstance(e, ir.SelfId):
            return z3.IntVal(ctx.tid)
        if isinstance(e, ir.FieldRead):
            ref = self._eval(ctx, e.obj)
            self._slot(ctx, e.pool, ref, e.field)
            return self._select(e.pool, ref, [f[e.field] for f in ctx.s.fields[e.pool]])
        if isinstance(e, ir.Unary):
            a = self._eval(ctx, e.arg)
            return z3.Not(a) if e.op is ir.UnOp.NOT else -a
        if isinstance(e, ir.Binary):
            return self._binary(ctx, e)
        if isinstance(e, ir.Ite):
            c = self._eval(ctx, e.cond)
            saved = ctx.cond
            ctx.cond = z3.And(saved, c)
            a = self._eval(ctx, e.then)
            ctx.cond = z3.And(saved, z3.Not(c))
            b = self._eval(ctx, e.other)
            ctx.cond = saved
            return _ite(c, a, b)
        if isinstance(e, ir.Quant):
            return self._quant(ctx, e)
        if isinstance(e, ir.Alive):
            ref = self._eval(ctx, e.obj)
            if not isinstance(e.obj.type, ir.RefT) or e.obj.type.pool not in self.pools:
                return z3.BoolVal(False)
            al = ctx.s.alive[e.obj.type.pool]
            return z3.Or([z3.And(ref == j + 1, a) for j, a in enumerate(al)] or [z3.BoolVal(False)])
        if isinstance(e, ir.ListQuery):
            return self._list_query(ctx, e)
        if isinstance(e, ir.LockQuery):
            return self._lock_query(ctx, e)
        if isinstance(e, ir.Woken):
            return ctx.s.wchan[ctx.tid] == 0
        raise EncodeError(f"cannot encode expression {type(e).__name__}")

    def _binary(self, ctx: _Ctx, e: ir.Binary) -> SV:
        op = e.op
        if op in (ir.BinOp.AND, ir.BinOp.OR, ir.BinOp.IMPLIES):
            a = self._eval(ctx, e.left)
            saved = ctx.cond
            # short circuit: the right side's errors only when it is evaluated
            ctx.cond = z3.And(saved, z3.Not(a) if op is ir.BinOp.OR else a)
            b = self._eval(ctx, e.right)
            ctx.cond = saved
            if op is ir.BinOp.AND:
                return z3.And(a, b)
            if op is ir.BinOp.OR:
                return z3.Or(a, b)
            return z3.Implies(a, b)
        a = self._eval(ctx, e.left)
        b = self._eval(ctx, e.right)
        if op is ir.BinOp.ADD:
            return a + b
        if op is ir.BinOp.SUB:
            return a - b
        if op is ir.BinOp.MUL:
            return a * b
        if op in (ir.BinOp.DIV, ir.BinOp.MOD):
            ctx.error("runtime", b == 0, "division by zero" + (" (modulo)" if op is ir.BinOp.MOD else ""))
            bb = z3.If(b == 0, 1, b)
            # C truncating division, as semantics._c_div
            q = z3.If((a >= 0) == (bb >= 0), z3.Abs(a) / z3.Abs(bb), -(z3.Abs(a) / z3.Abs(bb)))
            return q if op is ir.BinOp.DIV else a - bb * q
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
        if op in (ir.BinOp.UNION, ir.BinOp.INTER, ir.BinOp.DIFF, ir.BinOp.IN):
            return self._bits(op, a, b, e)
        raise EncodeError(f"cannot encode operator {op.value}")

    def _bits(self, op: ir.BinOp, a: z3.ArithRef, b: z3.ArithRef, e: ir.Binary) -> SV:
        """Flag sets are small bitmasks: go through 32-bit vectors."""
        A, B = z3.Int2BV(a, 32), z3.Int2BV(b, 32)
        if op is ir.BinOp.IN:
            return z3.Extract(0, 0, z3.LShR(B, A)) == 1
        r = A | B if op is ir.BinOp.UNION else (A & B if op is ir.BinOp.INTER else A & ~B)
        return z3.BV2Int(r)

    def _quant(self, ctx: _Ctx, e: ir.Quant) -> SV:
        al = ctx.s.alive[e.pool]
        saved_cond, saved_env = ctx.cond, ctx.env.get(e.var)
        acc: list[z3.BoolRef] = []
        prefix: z3.BoolRef = z3.BoolVal(True)   # the loop got this far (no early return)
        for j, a in enumerate(al):
            ctx.env[e.var] = j + 1
            ctx.cond = z3.And(saved_cond, prefix, a)
            v = self._eval(ctx, e.body)
            acc.append(z3.And(a, v) if e.kind is not ir.QuantKind.FORALL else z3.Implies(a, v))
            if e.kind is ir.QuantKind.FORALL:
                prefix = z3.And(prefix, z3.Implies(a, v))
            elif e.kind is ir.QuantKind.EXISTS:
                prefix = z3.And(prefix, z3.Not(z3.And(a, v)))
        ctx.cond = saved_cond
        if saved_env is None:
            ctx.env.pop(e.var, None)
        else:
            ctx.env[e.var] = saved_env
        if e.kind is ir.QuantKind.FORALL:
            return z3.And(acc) if acc else z3.BoolVal(True)
        if e.kind is ir.QuantKind.EXISTS:
            return z3.Or(acc) if acc else z3.BoolVal(False)
        return z3.Sum([z3.If(x, 1, 0) for x in acc]) if acc else z3.IntVal(0)

    def _list_query(self, ctx: _Ctx, e: ir.ListQuery) -> SV:
        elems, n = self._load(ctx, e.lst)
        if e.op is ir.ListOp.FIRST:
            return z3.If(n > 0, elems[0], 0)
        if e.op is ir.ListOp.LEN:
            return n
        if e.op is ir.ListOp.EMPTY:
            return n == 0
        x = self._eval(ctx, e.elem) if e.elem is not None else z3.IntVal(0)
        if e.op is ir.ListOp.CONTAINS:
            return _contains(elems, n, x)
        if e.op is ir.ListOp.NEXT:
            out: SV = z3.IntVal(0)
            for k in reversed(range(len(elems) - 1)):
                out = z3.If(z3.And(k + 1 < n, elems[k] == x), elems[k + 1], out)
            return out
        raise EncodeError(f"cannot encode list query {e.op.value}")

    def _lock_query(self, ctx: _Ctx, e: ir.LockQuery) -> SV:
        a, b = self._load(ctx, e.lock)
        kind = e.lock.type.kind  # type: ignore[union-attr]
        me = ctx.tid
        if kind is ir.LockKind.SX:
            if e.q is ir.LockQ.HELD:
                return z3.Or(a != -1, b != 0)
            if e.q is ir.LockQ.XOWNED:
                return a == me
            return z3.Or(a == me, _bit(b, me)) if me >= 0 else a == me
        if e.q is ir.LockQ.HELD:
            return a != -1
        return a == me

    # ------------------------------------------------------------ lvalues

    def _where(self, ctx: _Ctx, lv: ir.LValue) -> tuple:
        if isinstance(lv, ir.GlobalVarRef):
            return ("g", lv.name)
        if isinstance(lv, ir.LocalVarRef):
            return ("l", lv.name)
        ref = self._eval(ctx, lv.obj)
        self._slot(ctx, lv.pool, ref, lv.field)
        return ("f", lv.pool, ref, lv.field)

    def _get(self, ctx: _Ctx, w: tuple) -> SV:
        if w[0] == "g":
            return ctx.s.g[w[1]]
        if w[0] == "l":
            return ctx.s.locs[ctx.tid][w[1]]
        return self._select(w[1], w[2], [f[w[3]] for f in ctx.s.fields[w[1]]])

    def _set(self, ctx: _Ctx, w: tuple, v: SV) -> None:
        """Assign. The post-state only matters when the step raises no
        violation, so the assignment need not be guarded by `ok`."""
        c = ctx.cond
        if w[0] == "g":
            ctx.s.g[w[1]] = _ite(c, v, ctx.s.g[w[1]])
        elif w[0] == "l":
            ctx.s.locs[ctx.tid][w[1]] = _ite(c, v, ctx.s.locs[ctx.tid][w[1]])
        else:
            for j, f in enumerate(ctx.s.fields[w[1]]):
                f[w[3]] = _ite(z3.And(c, w[2] == j + 1), v, f[w[3]])

    def _load(self, ctx: _Ctx, lv: ir.LValue) -> SV:
        return self._get(ctx, self._where(ctx, lv))

    def _store(self, ctx: _Ctx, lv: ir.LValue, w: tuple, v: SV) -> None:
        t = lv.type
        if isinstance(t, ir.IntT) and not z3.is_bool(v):
            ctx.error("runtime", z3.Or(v < t.lo, v > t.hi), f"value out of range {t.lo}..{t.hi} for {_lv_name(lv)}")
        if isinstance(t, ir.BoolT) and not z3.is_bool(v):
            v = v != 0
        self._set(ctx, w, v)

    # ------------------------------------------------------------- locks

    def _held_spins(self, ctx: _Ctx, except_w: tuple | None = None) -> list[tuple[z3.BoolRef, str]]:
        """(held by this thread, name) for every spin lock location."""
        me = ctx.tid
        out = []
        for name, t in self._lock_locs:
            if t.kind is ir.LockKind.SPIN:
                held = ctx.s.g[name][0] == me
                if except_w is not None and except_w[0] == "g" and except_w[1] == name:
                    continue
                out.append((held, name))
        for pool, fname, t in self._field_locks:
            if t.kind is not ir.LockKind.SPIN:
                continue
            for j in range(self.pools[pool].size):
                held = z3.And(ctx.s.alive[pool][j], ctx.s.fields[pool][j][fname][0] == me)
                if except_w is not None and except_w[0] == "f" and except_w[1] == pool and except_w[3] == fname:
                    held = z3.And(held, except_w[2] != j + 1)
                out.append((held, f"{pool}#{j + 1}.{fname}"))
        return out

    def _spin_witness(self, ctx: _Ctx, what: str, except_w: tuple | None = None) -> None:
        spins = self._held_spins(ctx, except_w)
        if spins:
            ctx.error("witness", z3.Or([h for h, _ in spins]), f"{what} with a spin lock held")

    def _acquire(self, ctx: _Ctx, e: ir.Acquire) -> None:
        t = e.lock.type
        assert isinstance(t, ir.LockT)
        w = self._where(ctx, e.lock)
        a, b = self._get(ctx, w)
        me = ctx.tid
        if t.kind is ir.LockKind.SX:
            mine = _bit(b, me)
            ctx.error("witness", z3.Or(a == me, mine), f"recursion on sx lock {_lv_name(e.lock)}")
            if e.mode is ir.LockMode.EXCLUSIVE:
                ctx.disabled_unless(z3.And(a == -1, b == 0))
                new = (z3.IntVal(me), z3.IntVal(0))
            else:
                ctx.disabled_unless(a == -1)
                new = (z3.IntVal(-1), b + (1 << me))
        else:
            if t.recursive:
                ctx.disabled_unless(z3.Or(a == -1, a == me))
                new = (z3.IntVal(me), z3.If(a == me, b + 1, 1))
            else:
                ctx.error("witness", a == me, f"recursed on non-recursive mutex {_lv_name(e.lock)}")
                ctx.disabled_unless(a == -1)
                new = (z3.IntVal(me), z3.IntVal(1))
        if t.kind is not ir.LockKind.SPIN:
            self._spin_witness(ctx, f"acquiring sleepable lock {_lv_name(e.lock)}")
        self._set(ctx, w, new)

    def _release(self, ctx: _Ctx, lv: ir.LValue, mode: ir.LockMode) -> None:
        t = lv.type
        assert isinstance(t, ir.LockT)
        w = self._where(ctx, lv)
        a, b = self._get(ctx, w)
        me = ctx.tid
        if t.kind is ir.LockKind.SX:
            if mode is ir.LockMode.EXCLUSIVE:
                ctx.error("witness", a != me, f"exclusive unlock of sx lock {_lv_name(lv)} not held")
                self._set(ctx, w, (z3.IntVal(-1), b))
            else:
                # a shared release by the exclusive owner releases it (semantics)
                xo = a == me
                ctx.error("witness", z3.And(z3.Not(xo), z3.Not(_bit(b, me))),
                          f"shared unlock of sx lock {_lv_name(lv)} not held by this thread")
                self._set(ctx, w, (z3.IntVal(-1), z3.If(xo, b, b - (1 << me))))
            return
        ctx.error("witness", a != me, f"unlock of mutex {_lv_name(lv)} not held by this thread")
        self._set(ctx, w, (z3.If(b <= 1, -1, me), z3.If(b <= 1, 0, b - 1)))

    # ------------------------------------------------------------ effects

    def _chan(self, ctx: _Ctx, e: ir.Expr) -> z3.ArithRef:
        ref = self._eval(ctx, e)
        if not isinstance(e.type, ir.RefT):
            raise EncodeError("a channel must be a ref")
        ctx.error("runtime", ref == 0, "sleep or wakeup on a null channel")
        pi = self.chan_pool if e.type.pool == "__chan__" else self.pool_index[e.type.pool]
        return sum(self.pool_sizes[:pi]) + ref

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
            self._alloc(ctx, e)
        elif isinstance(e, ir.Free):
            ref = self._eval(ctx, e.obj)
            pool = e.obj.type.pool  # type: ignore[union-attr]
            self._slot(ctx, pool, ref, "free")
            c = ctx.cond
            p = self.pools[pool]
            for j in range(p.size):
                hit = z3.And(c, ref == j + 1)
                ctx.s.alive[pool][j] = z3.And(ctx.s.alive[pool][j], z3.Not(hit))
                for f in p.fields:   # canonical free slot: fields back to their initial values
                    ctx.s.fields[pool][j][f.name] = _ite(hit, self._const_val(f.type, f.init),
                                                          ctx.s.fields[pool][j][f.name])
        elif isinstance(e, ir.ListUpdate):
            self._list_update(ctx, e)
        elif isinstance(e, ir.Upgrade):
            w = self._where(ctx, e.lock)
            a, b = self._get(ctx, w)
            me = ctx.tid
            ctx.error("witness", z3.Not(_bit(b, me)), f"upgrade of sx lock {_lv_name(e.lock)} not held shared")
            ctx.error("witness", b != (1 << me), f"upgrade of sx lock {_lv_name(e.lock)} while others hold it shared")
            self._set(ctx, w, (z3.IntVal(me), z3.IntVal(0)))
        elif isinstance(e, ir.Sleep):
            cid = self._chan(ctx, e.chan)
            wi = self._where(ctx, e.interlock) if e.interlock is not None else None
            self._spin_witness(ctx, "sleeping", except_w=wi)
            if e.interlock is not None:
                self._release(ctx, e.interlock, ir.LockMode.EXCLUSIVE)
            c = ctx.cond
            ctx.s.wchan[ctx.tid] = _ite(c, cid, ctx.s.wchan[ctx.tid])
        elif isinstance(e, ir.Wakeup):
            cid = self._chan(ctx, e.chan)
            c = ctx.cond
            earlier: z3.BoolRef = z3.BoolVal(False)
            for i in range(self.nthreads):
                hit = ctx.s.wchan[i] == cid
                clear = z3.And(c, hit, z3.Not(earlier)) if e.one else z3.And(c, hit)
                ctx.s.wchan[i] = z3.If(clear, 0, ctx.s.wchan[i])
                earlier = z3.Or(earlier, hit)
        elif isinstance(e, ir.Assert):
            v = self._eval(ctx, e.cond)
            ctx.error(e.name, z3.Not(v), f"assertion {e.name} failed")
        elif isinstance(e, ir.LockAssert):
            w = self._where(ctx, e.lock)
            a, b = self._get(ctx, w)
            t = e.lock.type
            me = ctx.tid
            owned = z3.Or(a == me, _bit(b, me)) if t.kind is ir.LockKind.SX else a == me  # type: ignore[union-attr]
            if e.kind is ir.LockAssertKind.OWNED:
                ctx.error("witness", z3.Not(owned), f"mtx_assert({_lv_name(e.lock)}, MA_OWNED) failed")
            else:
                ctx.error("witness", owned, f"mtx_assert({_lv_name(e.lock)}, MA_NOTOWNED) failed")
        else:
            raise EncodeError(f"cannot encode effect {type(e).__name__}")

    def _alloc(self, ctx: _Ctx, e: ir.Alloc) -> None:
        p = self.pools[e.pool]
        al = ctx.s.alive[e.pool]
        full = z3.And(al) if al else z3.BoolVal(True)
        if e.blocking:
            ctx.disabled_unless(z3.Not(full))
            if ctx.tid >= 0:
                self._spin_witness(ctx, f"blocking allocation from {e.pool}")
        else:
            ctx.error("runtime", full, f"pool {e.pool} is full (non-blocking alloc)")
        c = ctx.cond
        ref: z3.ArithRef = z3.IntVal(0)
        taken: z3.BoolRef = z3.BoolVal(False)
        chosen = []
        for j in range(p.size):
            ch = z3.And(z3.Not(al[j]), z3.Not(taken))
            chosen.append(ch)
            taken = z3.Or(taken, z3.Not(al[j]))
        for j in reversed(range(p.size)):
            ref = z3.If(chosen[j], j + 1, ref)
        for j in range(p.size):
            hit = z3.And(c, chosen[j])
            al[j] = z3.Or(al[j], hit)
            for f in p.fields:
                ctx.s.fields[e.pool][j][f.name] = _ite(hit, self._const_val(f.type, f.init),
                                                        ctx.s.fields[e.pool][j][f.name])
        w = self._where(ctx, e.target)
        self._store(ctx, e.target, w, ref)

    def _list_update(self, ctx: _Ctx, e: ir.ListUpdate) -> None:
        w = self._where(ctx, e.lst)
        elems, n = self._get(ctx, w)
        cap = len(elems)
        if e.op is ir.ListEdit.CLEAR:
            self._set(ctx, w, (tuple(z3.IntVal(0) for _ in elems), z3.IntVal(0)))
            return
        x = self._eval(ctx, e.elem) if e.elem is not None else z3.IntVal(0)
        ctx.error("runtime", x == 0, f"null element in {e.op.value}")
        inside = _contains(elems, n, x)
        pos = _index(elems, n, x)
        if e.op is ir.ListEdit.REMOVE:
            ctx.error("runtime", z3.Not(inside), "remove of an element not in the list")
            new = tuple(z3.If(k < pos, elems[k], elems[k + 1] if k + 1 < cap else z3.IntVal(0))
                        for k in range(cap))
            self._set(ctx, w, (new, n - 1))
            return
        ctx.error("runtime", inside, "insert of an element already in the list")
        # capacity is the pool size and elements are distinct live refs, so no overflow
        if e.op is ir.ListEdit.INSERT_HEAD:
            new = tuple(x if k == 0 else elems[k - 1] for k in range(cap))
        elif e.op is ir.ListEdit.INSERT_TAIL:
            new = tuple(z3.If(n == k, x, elems[k]) for k in range(cap))
        else:
            a = self._eval(ctx, e.after) if e.after is not None else z3.IntVal(0)
            ctx.error("runtime", z3.Not(_contains(elems, n, a)), "insert_after an element not in the list")
            pa = _index(elems, n, a)
            new = tuple(z3.If(k <= pa, elems[k], z3.If(k == pa + 1, x, elems[k - 1] if k >= 1 else elems[0]))
                        for k in range(cap))
        ctx.error("runtime", n >= cap, "list full")
        self._set(ctx, w, (new, n + 1))

    # ------------------------------------------------------- properties

    def invariant(self, s: SymState, inv: ir.Invariant) -> z3.BoolRef:
        """The invariant holds in s (an evaluation error counts as false,
        as in the explorer)."""
        ctx = _Ctx(self, s, -1)
        v = self._eval(ctx, inv.expr)
        return z3.And(v, z3.Not(z3.Or([c for _, c, _ in ctx.viols]))) if ctx.viols else v

    def deadlock(self, s: SymState, encs: list[StepEnc] | None = None) -> z3.BoolRef:
        encs = encs if encs is not None else self.steps(s)
        none = z3.And([z3.Not(e.enabled) for e in encs]) if encs else z3.BoolVal(True)
        running = z3.Or([s.pc[t] != self.codes[t].exit for t in range(self.nthreads)] or [z3.BoolVal(False)])
        return z3.And(none, running)

    def expr(self, s: SymState, e: ir.Expr) -> z3.BoolRef:
        """A state predicate (a lemma or a user expression) in s."""
        return self.invariant(s, ir.Invariant("<expr>", e))


def _bit(b: z3.ArithRef, i: int) -> z3.BoolRef:
    if i < 0:
        return z3.BoolVal(False)
    return (b / (1 << i)) % 2 == 1


def _contains(elems: tuple, n: z3.ArithRef, x: z3.ArithRef) -> z3.BoolRef:
    return z3.Or([z3.And(k < n, y == x) for k, y in enumerate(elems)] or [z3.BoolVal(False)])


def _index(elems: tuple, n: z3.ArithRef, x: z3.ArithRef) -> z3.ArithRef:
    out: z3.ArithRef = z3.IntVal(len(elems))
    for k in reversed(range(len(elems))):
        out = z3.If(z3.And(k < n, elems[k] == x), k, out)
    return out


def _lv_name(lv: ir.LValue) -> str:
    if isinstance(lv, ir.FieldRef):
        return f"{lv.pool}.{lv.field}"
    return lv.name


# ------------------------------------------------------------ decoding

def decode(enc: Encoder, s: SymState, m: z3.ModelRef) -> tuple:
    """A concrete state in semantics.py's representation, from a model."""
    def val(v: SV, t: ir.Type) -> Any:
        if isinstance(t, ir.LockT):
            return (_int(m, v[0]), _int(m, v[1]))
        if isinstance(t, ir.ListT):
            elems, n = v
            k = _int(m, n)
            return tuple(_int(m, x) for x in elems[:k])
        if isinstance(t, ir.BoolT):
            return z3.is_true(m.eval(v, model_completion=True))
        return _int(m, v)

    sys_ = enc.system
    g = tuple(val(s.g[v.name], v.type) for v in sys_.globals)
    pools = tuple(tuple((tuple(val(s.fields[p.name][j][f.name], f.type) for f in p.fields)
                         if z3.is_true(m.eval(s.alive[p.name][j], model_completion=True)) else None)
                        for j in range(p.size)) for p in sys_.pools)
    threads = tuple((_int(m, s.pc[t]), tuple(val(s.locs[t][v.name], v.type) for v in enc.codes[t].locals),
                     _int(m, s.wchan[t])) for t in range(enc.nthreads))
    return (g, pools, threads)


def _int(m: z3.ModelRef, v: z3.ExprRef) -> int:
    r = m.eval(v, model_completion=True)
    if z3.is_true(r):
        return 1
    if z3.is_false(r):
        return 0
    return r.as_long()
