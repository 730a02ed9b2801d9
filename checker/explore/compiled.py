"""The compiled successor function: one generated Python function per IR step.

Each step's guard and effects are translated once into straight-line Python
over the same state shape as checker/semantics.py (so stores, symmetry and
traces are shared), with copy-on-write of exactly the parts the step writes
(decided statically), and no per-state dispatch on IR node types.

Nothing from the spec is pasted into generated code: globals, fields,
locals and pools become integer indices, constants are ints, bound
variables get generated names (`b0`, `b1`), and names or messages live in
data tables. The generated code handles the common path only; whenever a
step would end in a violation (runtime error, failed assert, witness rule)
or an analysis needs the step's accesses and acquisitions, the step is run
by the reference interpreter instead, so both always agree on what is
reported (tests/explore/test_compiled.py checks they agree on successors).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from .. import ir
from ..semantics import Access, Acquisition, EvalError, Semantics, State, Transition

# Transition(...) goes through the NamedTuple's Python-level __new__; building the tuple
# directly is a single C call (successors() makes one per transition)
_new_tuple = tuple.__new__


class _Rt(Exception):
    """The generated code met a runtime error: defer to the interpreter for the report."""


class _Off(Exception):
    """The step is disabled (lock unavailable, pool full)."""


_VIOL = object()   # marker: the step violates something; the interpreter reports it


# ------------------------------------------------------------- helpers
# Called from generated code; they take and return plain values.

def _deref(slots: Any, r: int) -> Any:
    if r <= 0:
        raise _Rt()
    o = slots[r - 1]
    if o is None:
        raise _Rt()
    return o


def _alive(slots: Any, r: int) -> bool:
    return 0 < r <= len(slots) and slots[r - 1] is not None


def _live(slots: Any) -> Iterator[int]:
    return (i + 1 for i, o in enumerate(slots) if o is not None)


def _div(a: int, b: int) -> int:
    if b == 0:
        raise _Rt()
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _mod(a: int, b: int) -> int:
    return a - b * _div(a, b)


def _first(lst: tuple) -> int:
    return lst[0] if lst else 0


def _next(lst: tuple, x: int) -> int:
    if x in lst:
        i = lst.index(x)
        return lst[i + 1] if i + 1 < len(lst) else 0
    return 0


def _rng(v: int, lo: int, hi: int) -> int:
    if not lo <= v <= hi:
        raise _Rt()
    return v


def _acq_mutex(v: tuple, me: int, recursive: bool) -> tuple:
    owner, depth = v
    if owner == me:
        if not recursive:
            raise _Rt()          # witness: recursion; the interpreter reports it
        return (me, depth + 1)
    if owner != -1:
        raise _Off()
    return (me, 1)


def _acq_sx(v: tuple, me: int, exclusive: bool) -> tuple:
    xo, sh = v
    if xo == me or (sh >> me) & 1:
        raise _Rt()
    if exclusive:
        if xo != -1 or sh:
            raise _Off()
        return (me, 0)
    if xo != -1:
        raise _Off()
    return (-1, sh | (1 << me))


def _rel_mutex(v: tuple, me: int) -> tuple:
    owner, depth = v
    if owner != me:
        raise _Rt()
    return (-1, 0) if depth <= 1 else (me, depth - 1)


def _rel_sx(v: tuple, me: int, exclusive: bool) -> tuple:
    xo, sh = v
    if exclusive or xo == me:
        if xo != me:
            raise _Rt()
        return (-1, sh)
    if not (sh >> me) & 1:
        raise _Rt()
    return (-1, sh & ~(1 << me))


def _upgrade(v: tuple, me: int) -> tuple:
    xo, sh = v
    if not (sh >> me) & 1 or sh & ~(1 << me):
        raise _Rt()
    return (me, 0)


def _list_ins(lst: tuple, x: int, how: int, after: int) -> tuple:
    if x == 0 or x in lst:
        raise _Rt()
    if how == 0:
        return (x,) + lst
    if how == 1:
        return lst + (x,)
    if after not in lst:
        raise _Rt()
    i = lst.index(after) + 1
    return lst[:i] + (x,) + lst[i:]


def _list_rm(lst: tuple, x: int) -> tuple:
    if x == 0 or x not in lst:
        raise _Rt()
    i = lst.index(x)
    return lst[:i] + lst[i + 1:]


def _owned(v: tuple, me: int, sx: bool) -> bool:
    if sx:
        return v[0] == me or (me >= 0 and bool((v[1] >> me) & 1))
    return v[0] == me


def _held(v: tuple, sx: bool) -> bool:
    return v[0] != -1 or (sx and v[1] != 0)


# Tracked variants log events for the lock and race analyses:
# (0 read | 1 write, loc id, slot), (2 acquire, lock key, class id, exclusive), (3 release, lock key),
# (4 upgrade, lock key). A lock key is a global index (int) or (pool, slot, field).

def _gr(ev: list, loc: int, v: Any) -> Any:
    ev.append((0, loc, 0))
    return v


def _fr(ev: list, loc: int, slots: Any, r: int, fi: int) -> Any:
    o = _deref(slots, r)
    ev.append((0, loc, r))
    return o[fi]


HELPERS = {n: f for n, f in globals().items() if n.startswith("_") and callable(f) and n not in (
    "_Rt", "_Off")}
HELPERS.update({"_Rt": _Rt, "_Off": _Off, "_VIOL": _VIOL})


# ------------------------------------------------------------- codegen

class _Gen:
    """Translates expressions and effects of one system to Python source."""

    def __init__(self, sem: Semantics):
        self.sem = sem
        self.s = sem.system
        self.consts: list[Any] = []        # data table: tuples of refs etc. (never spec text in code)
        self.locs: list[ir.Loc] = []       # loc id -> location (tracked variants)
        self.loc_ids: dict[ir.Loc, int] = {}
        self.classes: list[str] = []       # class id -> lock class name
        self.cls_ids: dict[str, int] = {}

    def const(self, v: Any) -> str:
        if isinstance(v, bool):
            return "True" if v else "False"
        if isinstance(v, int):
            return str(int(v))
        self.consts.append(v)
        return f"K[{len(self.consts) - 1}]"

    def pool(self, name: str) -> int:
        return self.sem.pindex[name]

    def field(self, pool: str, f: str) -> int:
        return self.sem.findex[pool][f]

    def x(self, e: ir.Expr, code: ir.Code | None, env: dict[str, str]) -> str:
        s = self
        if isinstance(e, ir.Const):
            return s.const(e.value)
        if isinstance(e, ir.GlobalRead):
            if s.track and not isinstance(e.type, ir.LockT):
                return f"_gr(EV, {s.loc_id(ir.Loc(None, e.name))}, G[{s.sem.gindex[e.name]}])"
            return f"G[{s.sem.gindex[e.name]}]"
        if isinstance(e, ir.LocalRead):
            assert code is not None
            return f"L[{s.sem.lindex[code.name][e.name]}]"
        if isinstance(e, ir.BoundRead):
            return env[e.name]
        if isinstance(e, ir.SelfIndex):
            return "IDX[tid]"
        if isinstance(e, ir.SelfId):
            return "tid"
        if isinstance(e, ir.FieldRead):
            if s.track and not isinstance(e.type, ir.LockT):
                return (f"_fr(EV, {s.loc_id(ir.Loc(e.pool, e.field))}, P[{s.pool(e.pool)}], "
                        f"{s.x(e.obj, code, env)}, {s.field(e.pool, e.field)})")
            return f"_deref(P[{s.pool(e.pool)}], {s.x(e.obj, code, env)})[{s.field(e.pool, e.field)}]"
        if isinstance(e, ir.Unary):
            a = s.x(e.arg, code, env)
            return f"(not {a})" if e.op is ir.UnOp.NOT else f"(-{a})"
        if isinstance(e, ir.Binary):
            a, b = s.x(e.left, code, env), s.x(e.right, code, env)
            op = e.op
            simple = {ir.BinOp.ADD: "+", ir.BinOp.SUB: "-", ir.BinOp.MUL: "*", ir.BinOp.EQ: "==",
                      ir.BinOp.NE: "!=", ir.BinOp.LT: "<", ir.BinOp.LE: "<=", ir.BinOp.GT: ">",
                      ir.BinOp.GE: ">=", ir.BinOp.UNION: "|", ir.BinOp.INTER: "&"}
            if op in simple:
                return f"({a} {simple[op]} {b})"
            if op is ir.BinOp.AND:
                return f"(bool({a}) and bool({b}))"
            if op is ir.BinOp.OR:
                return f"(bool({a}) or bool({b}))"
            if op is ir.BinOp.IMPLIES:
                return f"((not {a}) or bool({b}))"
            if op is ir.BinOp.DIV:
                return f"_div({a}, {b})"
            if op is ir.BinOp.MOD:
                return f"_mod({a}, {b})"
            if op is ir.BinOp.DIFF:
                return f"({a} & ~{b})"
            if op is ir.BinOp.IN:
                return f"(((({b}) >> ({a})) & 1) == 1)"
            raise TypeError(op)
        if isinstance(e, ir.Ite):
            return f"({s.x(e.then, code, env)} if {s.x(e.cond, code, env)} else {s.x(e.other, code, env)})"
        if isinstance(e, ir.Quant):
            var = f"b{len(env)}"
            body = s.x(e.body, code, {**env, e.var: var})
            src = f"_live(P[{s.pool(e.pool)}])"
            if e.kind is ir.QuantKind.FORALL:
                return f"all({body} for {var} in {src})"
            if e.kind is ir.QuantKind.EXISTS:
                return f"any({body} for {var} in {src})"
            return f"sum(1 for {var} in {src} if {body})"
        if isinstance(e, ir.Alive):
            assert isinstance(e.obj.type, ir.RefT)
            return f"_alive(P[{s.pool(e.obj.type.pool)}], {s.x(e.obj, code, env)})"
        if isinstance(e, ir.ListQuery):
            lst = s.read_lv(e.lst, code, env)
            if e.op is ir.ListOp.FIRST:
                return f"_first({lst})"
            if e.op is ir.ListOp.LEN:
                return f"len({lst})"
            if e.op is ir.ListOp.EMPTY:
                return f"(not {lst})"
            el = s.x(e.elem, code, env) if e.elem is not None else "0"
            if e.op is ir.ListOp.CONTAINS:
                return f"({el} in {lst})"
            return f"_next({lst}, {el})"
        if isinstance(e, ir.LockQuery):
            t = e.lock.type
            assert isinstance(t, ir.LockT)
            v = s.read_lv(e.lock, code, env)
            sx = t.kind is ir.LockKind.SX
            if e.q is ir.LockQ.HELD:
                return f"_held({v}, {sx})"
            if e.q is ir.LockQ.XOWNED:
                return f"({v}[0] == tid)"
            return f"_owned({v}, tid, {sx})"
        if isinstance(e, ir.Woken):
            return "(T[tid][2] == 0)"
        raise TypeError(f"cannot compile {e!r}")

    def read_lv(self, lv: ir.LValue, code: ir.Code | None, env: dict[str, str], log: bool = True) -> str:
        track = self.track and log and not isinstance(lv.type, ir.LockT)
        if isinstance(lv, ir.GlobalVarRef):
            if track:
                return f"_gr(EV, {self.loc_id(ir.Loc(None, lv.name))}, G[{self.sem.gindex[lv.name]}])"
            return f"G[{self.sem.gindex[lv.name]}]"
        if isinstance(lv, ir.LocalVarRef):
            assert code is not None
            return f"L[{self.sem.lindex[code.name][lv.name]}]"
        if track:
            return (f"_fr(EV, {self.loc_id(ir.Loc(lv.pool, lv.field))}, P[{self.pool(lv.pool)}], "
                    f"{self.x(lv.obj, code, env)}, {self.field(lv.pool, lv.field)})")
        return f"_deref(P[{self.pool(lv.pool)}], {self.x(lv.obj, code, env)})[{self.field(lv.pool, lv.field)}]"

    def loc_id(self, loc: ir.Loc) -> int:
        if loc not in self.loc_ids:
            self.loc_ids[loc] = len(self.locs)
            self.locs.append(loc)
        return self.loc_ids[loc]

    def lock_key(self, lv: ir.LValue, code: ir.Code) -> str:
        """Python source for the lock's key, evaluated before the lock effect runs."""
        if isinstance(lv, ir.GlobalVarRef):
            return str(self.sem.gindex[lv.name])
        if isinstance(lv, ir.FieldRef):
            return f"({self.pool(lv.pool)}, {self.x(lv.obj, code, {})}, {self.field(lv.pool, lv.field)})"
        raise TypeError("a lock in a local variable")

    def class_id(self, cls: str) -> int:
        if cls not in self.cls_ids:
            self.cls_ids[cls] = len(self.classes)
            self.classes.append(cls)
        return self.cls_ids[cls]

    # -------------------------------------------------------- effects

    def store(self, lv: ir.LValue, val: str, code: ir.Code, out: list[str], check_type: bool = True) -> None:
        t = lv.type
        if check_type and isinstance(t, ir.IntT):
            val = f"_rng({val}, {t.lo}, {t.hi})"
        elif check_type and isinstance(t, ir.BoolT):
            val = f"bool({val})"
        log = self.track and not isinstance(t, ir.LockT)
        if isinstance(lv, ir.GlobalVarRef):
            if log:
                out.append(f"_v = {val}")
                out.append(f"EV.append((1, {self.loc_id(ir.Loc(None, lv.name))}, 0))")
                val = "_v"
            out.append(f"G[{self.sem.gindex[lv.name]}] = {val}")
        elif isinstance(lv, ir.LocalVarRef):
            out.append(f"L[{self.sem.lindex[code.name][lv.name]}] = {val}")
        else:
            pi, fi = self.pool(lv.pool), self.field(lv.pool, lv.field)
            out.append(f"_v = {val}")
            out.append(f"_r = {self.x(lv.obj, code, {})}")
            out.append(f"_o = list(_deref(P[{pi}], _r))")
            if log:
                out.append(f"EV.append((1, {self.loc_id(ir.Loc(lv.pool, lv.field))}, _r))")
            out.append(f"_o[{fi}] = _v; P[{pi}][_r - 1] = tuple(_o)")

    def effect(self, e: ir.Effect, code: ir.Code, out: list[str]) -> None:
        if isinstance(e, ir.Assign):
            self.store(e.target, self.x(e.value, code, {}), code, out)
        elif isinstance(e, (ir.Acquire, ir.Release, ir.Upgrade)):
            t = e.lock.type
            assert isinstance(t, ir.LockT)
            cur = self.read_lv(e.lock, code, {})
            sx = t.kind is ir.LockKind.SX
            if self.track:
                out.append(f"_key = {self.lock_key(e.lock, code)}")
            if isinstance(e, ir.Acquire):
                if self.spin_check and t.kind is not ir.LockKind.SPIN:
                    out.append("if SPIN(G, P, tid): raise _Rt()")
                new = (f"_acq_sx({cur}, tid, {e.mode is ir.LockMode.EXCLUSIVE})" if sx
                       else f"_acq_mutex({cur}, tid, {t.recursive})")
            elif isinstance(e, ir.Release):
                new = f"_rel_sx({cur}, tid, {e.mode is ir.LockMode.EXCLUSIVE})" if sx else f"_rel_mutex({cur}, tid)"
            else:
                if not sx:
                    raise TypeError("upgrade of a non-sx lock")
                new = f"_upgrade({cur}, tid)"
            self.store(e.lock, new, code, out, check_type=False)
            if self.track:
                if isinstance(e, ir.Acquire):
                    out.append(f"EV.append((2, _key, {self.class_id(t.cls)}, "
                               f"{not sx or e.mode is ir.LockMode.EXCLUSIVE}))")
                elif isinstance(e, ir.Release):
                    out.append("EV.append((3, _key))")
                else:
                    out.append("EV.append((4, _key))")
        elif isinstance(e, ir.Alloc):
            pi = self.pool(e.pool)
            p = self.s.pools[pi]
            from ..semantics import default_value
            init = tuple(default_value(f.type, f.init) for f in p.fields)
            out.append(f"_s = P[{pi}]")
            out.append("try:\n    _i = _s.index(None)\nexcept ValueError:\n    "
                       + ("raise _Off()" if e.blocking else "raise _Rt()"))
            if e.blocking and self.spin_check:
                out.append("if SPIN(G, P, tid): raise _Rt()")
            out.append(f"_s[_i] = {self.const(init)}")
            self.store(e.target, "_i + 1", code, out)
        elif isinstance(e, ir.Free):
            assert isinstance(e.obj.type, ir.RefT)
            pi = self.pool(e.obj.type.pool)
            out.append(f"_r = {self.x(e.obj, code, {})}")
            out.append(f"_deref(P[{pi}], _r); P[{pi}][_r - 1] = None")
        elif isinstance(e, ir.ListUpdate):
            lst = self.read_lv(e.lst, code, {})
            if e.op is ir.ListEdit.CLEAR:
                new = f"(({lst}) and ())"
            elif e.op is ir.ListEdit.REMOVE:
                new = f"_list_rm({lst}, {self.x(e.elem, code, {}) if e.elem is not None else '0'})"
            else:
                how = {ir.ListEdit.INSERT_HEAD: 0, ir.ListEdit.INSERT_TAIL: 1, ir.ListEdit.INSERT_AFTER: 2}[e.op]
                after = self.x(e.after, code, {}) if e.after is not None else "0"
                new = f"_list_ins({lst}, {self.x(e.elem, code, {}) if e.elem is not None else '0'}, {how}, {after})"
            self.store(e.lst, new, code, out, check_type=False)
        elif isinstance(e, ir.Assert):
            out.append(f"if not ({self.x(e.cond, code, {})}): raise _Rt()")
        elif isinstance(e, ir.LockAssert):
            t = e.lock.type
            assert isinstance(t, ir.LockT)
            owned = f"_owned({self.read_lv(e.lock, code, {})}, tid, {t.kind is ir.LockKind.SX})"
            want = e.kind is ir.LockAssertKind.OWNED
            out.append(f"if {owned} != {want}: raise _Rt()")
        elif isinstance(e, ir.Sleep):
            assert isinstance(e.chan.type, ir.RefT)
            cp = self.sem.pindex_chan if e.chan.type.pool == "__chan__" else self.pool(e.chan.type.pool)
            base = sum(self.sem.pool_sizes[:cp])
            out.append(f"_c = {self.x(e.chan, code, {})}")
            out.append("if _c == 0: raise _Rt()")
            if self.spin_check:
                out.append("raise _Rt()  # spin locks exist: the interpreter decides (interlock excepted)")
            if e.interlock is not None:
                t = e.interlock.type
                assert isinstance(t, ir.LockT)
                cur = self.read_lv(e.interlock, code, {})
                new = (f"_rel_sx({cur}, tid, True)" if t.kind is ir.LockKind.SX else f"_rel_mutex({cur}, tid)")
                if self.track:
                    out.append(f"_key = {self.lock_key(e.interlock, code)}")
                self.store(e.interlock, new, code, out, check_type=False)
                if self.track:
                    out.append("EV.append((3, _key))")
            out.append(f"_W = _c + {base}")
        elif isinstance(e, ir.Wakeup):
            assert isinstance(e.chan.type, ir.RefT)
            cp = self.sem.pindex_chan if e.chan.type.pool == "__chan__" else self.pool(e.chan.type.pool)
            base = sum(self.sem.pool_sizes[:cp])
            out.append(f"_c = {self.x(e.chan, code, {})}")
            out.append("if _c == 0: raise _Rt()")
            out.append(f"_c += {base}")
            # the running thread's own wchan is kept in _W (it cannot be asleep while running)
            out.append("for _k in range(NT):\n"
                       "    if _k != tid and T[_k][2] == _c:\n"
                       "        T[_k] = (T[_k][0], T[_k][1], 0)" + ("\n        break" if e.one else ""))
            out.append("if _W == _c:\n    _W = 0")
        else:
            raise TypeError(f"cannot compile {e!r}")

    spin_check = False
    track = False

    def step_fn(self, step: ir.Step, track: bool = False, tid: int | None = None) -> str:
        """The step's function; with `tid`, for that thread only (it still takes tid): the new
        threads tuple is built in one go rather than from slices of the old one."""
        self.track = track
        try:
            return self._step_fn(step, tid)
        finally:
            self.track = False

    def _blocked(self, e: ir.Effect) -> str | None:
        """For an Acquire of a global lock as a step's first effect: a test of the state before
        the step that holds iff the acquisition would block (_Off, not a violation), so a
        disabled step returns before copying anything or raising. Else None."""
        if not isinstance(e, ir.Acquire) or not isinstance(e.lock, ir.GlobalVarRef):
            return None
        t = e.lock.type
        assert isinstance(t, ir.LockT)
        if self.spin_check and t.kind is not ir.LockKind.SPIN:
            return None     # the spin check comes first and may be a violation
        v = f"G[{self.sem.gindex[e.lock.name]}]"
        if t.kind is ir.LockKind.SX:
            # as _acq_sx: own (exclusive or shared) is a violation, else blocked when taken
            busy = "(_v[0] != -1 or _v[1])" if e.mode is ir.LockMode.EXCLUSIVE else "_v[0] != -1"
            return f"_v = {v}; {busy} and _v[0] != tid and not (_v[1] >> tid) & 1"
        return f"_v = {v}; _v[0] != -1 and _v[0] != tid"      # as _acq_mutex

    def _step_fn(self, step: ir.Step, tid: int | None = None) -> str:
        code = self.s.code[step.code]
        w_g = w_l = w_t = False
        w_p: set[int] = set()

        def lv_w(lv: ir.LValue) -> None:
            nonlocal w_g, w_l
            if isinstance(lv, ir.GlobalVarRef):
                w_g = True
            elif isinstance(lv, ir.LocalVarRef):
                w_l = True
            else:
                w_p.add(self.pool(lv.pool))

        for e in step.effects:
            if isinstance(e, ir.Assign):
                lv_w(e.target)
            elif isinstance(e, (ir.Acquire, ir.Release, ir.Upgrade)):
                lv_w(e.lock)
            elif isinstance(e, ir.Alloc):
                w_p.add(self.pool(e.pool))
                lv_w(e.target)
            elif isinstance(e, ir.Free):
                assert isinstance(e.obj.type, ir.RefT)
                w_p.add(self.pool(e.obj.type.pool))
            elif isinstance(e, ir.ListUpdate):
                lv_w(e.lst)
            elif isinstance(e, ir.Sleep):
                if e.interlock is not None:
                    lv_w(e.interlock)
            elif isinstance(e, ir.Wakeup):
                w_t = True
        body: list[str] = []
        for e in step.effects:
            self.effect(e, code, body)
        # G, P: the state's globals and pools until the step copies them (P0 then keeps the pools)
        lines = ["def f(state, tid, EV=None):",
                 "    G, P, T = state",
                 "    T0 = T",
                 f"    pc, L, _W = T0[{'tid' if tid is None else tid}]"]
        if step.guard is not None:
            lines.append("    try:")
            lines.append(f"        if not ({self.x(step.guard, code, {})}): return None")
            lines.append("    except _Rt:")
            lines.append("        return _VIOL")
        blocked = self._blocked(step.effects[0]) if step.effects else None
        if blocked is not None:
            setup, test = blocked.split("; ", 1)
            lines.append(f"    {setup}")
            lines.append(f"    if {test}: return None")
        if w_g:
            lines.append("    G = list(G)")
        if w_p:
            lines.append("    P0 = P")
            lines.append("    P = list(P0)")
            for pi in sorted(w_p):
                lines.append(f"    P[{pi}] = list(P0[{pi}])")
        if w_l:
            lines.append("    L = list(L)")
        if w_t:
            lines.append("    T = list(T0)")
        if body:
            lines.append("    try:")
            for b in body:
                for ln in b.split("\n"):
                    lines.append("        " + ln)
            lines.append("    except _Off:")
            lines.append("        return None")
            lines.append("    except _Rt:")
            lines.append("        return _VIOL")
        g_out = "tuple(G)" if w_g else "G"
        p_out = ("(" + ", ".join(f"tuple(P[{i}])" if i in w_p else f"P0[{i}]"
                                 for i in range(len(self.s.pools))) + ("," if len(self.s.pools) == 1 else "") + ")"
                 ) if w_p else "P"
        l_out = "tuple(L)" if w_l else "L"
        if w_t:
            lines.append(f"    T[tid] = ({step.dst}, {l_out}, _W)")
            lines.append(f"    return ({g_out}, {p_out}, tuple(T))")
        elif tid is not None:
            ts = [f"T0[{k}]" if k != tid else f"({step.dst}, {l_out}, _W)" for k in range(len(self.s.threads))]
            lines.append(f"    return ({g_out}, {p_out}, ({', '.join(ts)},))")
        else:
            lines.append(f"    return ({g_out}, {p_out}, T0[:tid] + (({step.dst}, {l_out}, _W),) + T0[tid + 1:])")
        return "\n".join(lines)


class CompiledSystem:
    """Drop-in for Semantics in the search: initial_state, successors, is_terminated, eval_in."""

    def __init__(self, system: ir.System, tracking: bool = False):
        self.system = system
        self.sem = Semantics(system)
        self.tracking = tracking
        gen = _Gen(self.sem)
        gen.spin_check = bool([1 for _, _, t in self.sem.global_locks if t.kind is ir.LockKind.SPIN] +
                              [1 for *_, t in self.sem.field_locks if t.kind is ir.LockKind.SPIN])
        self.gen = gen
        ns: dict[str, Any] = dict(HELPERS)
        ns["K"] = gen.consts
        ns["IDX"] = tuple(t.index for t in system.threads)
        ns["NT"] = len(system.threads)
        ns["SPIN"] = self._spin_held
        self.ns = ns
        # Steps are compiled on first use: a model that turns syscalls off never pays for them.
        self._fn_cache: dict[tuple[int, bool, int], Callable[..., Any]] = {}
        # per thread, per pc: ((step, fn, tracked fn or None), ...), built lazily
        self.table: list[list[Any]] = [[None] * system.code[t.code].npcs for t in system.threads]
        self.exits = tuple(system.code[t.code].exit for t in system.threads)
        self._expr_cache: dict[tuple[int, tuple[str, ...]], tuple[ir.Expr, Callable[..., Any]]] = {}
        self._plain: dict[int, Callable[..., Any]] = {}     # id(expr) -> fn; the expr is kept alive in _expr_cache
        self._lock_names: dict[Any, str] = {}
        self._access_cache: dict[tuple[Any, ...], Access] = {}
        self._lock_pools = sorted({pi for pi, *_ in self.sem.field_locks})
        self._spin_globals = [i for i, _, t in self.sem.global_locks if t.kind is ir.LockKind.SPIN]
        self._spin_fields = [(pi, fi) for pi, fi, _, _, t in self.sem.field_locks if t.kind is ir.LockKind.SPIN]
        self._held_memo: dict[tuple[int, ...], tuple[Any, Any]] = {}

    def step_source(self, step: ir.Step, tracked: bool = False) -> str:
        return self.gen.step_fn(step, track=tracked)

    def _fn(self, step: ir.Step, tracked: bool, tid: int) -> Callable[..., Any]:
        key = (step.id, tracked, tid)
        fn = self._fn_cache.get(key)
        if fn is None:
            src = self.gen.step_fn(step, track=tracked, tid=tid)
            loc: dict[str, Any] = {}
            exec(compile(src, f"<forkcheck step {step.id}{' tracked' if tracked else ''}>", "exec"), self.ns, loc)
            fn = self._fn_cache[key] = loc["f"]
        return fn

    def _entry(self, tid: int, pc: int) -> Any:
        code = self.system.code[self.system.threads[tid].code]
        # (step, fn, tracked fn or None, step id); with tracking a non-local step only ever runs its
        # tracked fn, so its plain one is not compiled (fn None)
        tracked = [self.tracking and not s.is_local for s in code.steps_from[pc]]
        e = tuple((s, None if tr else self._fn(s, False, tid), self._fn(s, True, tid) if tr else None, s.id)
                  for s, tr in zip(code.steps_from[pc], tracked))
        self.table[tid][pc] = e
        return e

    # ----------------------------------------------------------- tracking

    def _lock_name(self, key: Any) -> str:
        n = self._lock_names.get(key)
        if n is None:
            s = self.system
            if isinstance(key, int):
                n = s.globals[key].name
            else:
                pi, slot, fi = key
                n = f"{s.pools[pi].name}#{slot}.{s.pools[pi].fields[fi].name}"
            self._lock_names[key] = n
        return n

    def _events(self, state: State, tid: int, ev: list, pre: dict[int, Any]) -> tuple[tuple, tuple]:
        """Turn logged events into the interpreter's Access and Acquisition records."""
        h = pre.get(tid)
        if h is None:
            h = pre[tid] = self._held(state, tid)
        classes, names, xnames = h
        cls = dict(classes)
        hs, xs = names, xnames
        accesses = []
        acqs = []
        locs, classes_t = self.gen.locs, self.gen.classes
        for e in ev:
            k = e[0]
            if k <= 1:
                key = (e[1], e[2], k, hs, xs)
                a = self._access_cache.get(key)
                if a is None:
                    a = Access(locs[e[1]], e[2], k == 1, hs, xs)
                    if len(self._access_cache) < 100_000:
                        self._access_cache[key] = a
                accesses.append(a)
            elif k == 2:
                name = self._lock_name(e[1])
                c = classes_t[e[2]]
                acqs.append(Acquisition(name, c, tuple(sorted(cls.items())),
                                        ir.LockMode.EXCLUSIVE if e[3] else ir.LockMode.SHARED))
                if name not in hs:
                    cls[name] = c
                    hs = hs | {name}
                if e[3] and name not in xs:
                    xs = xs | {name}
            elif k == 3:
                name = self._lock_name(e[1])
                if name in hs:
                    cls.pop(name, None)
                    hs = hs - {name}
                    xs = xs - {name}
            else:
                name = self._lock_name(e[1])
                xs = xs | {name}
        return tuple(accesses), tuple(acqs)

    def _held(self, state: State, tid: int) -> tuple[dict[str, str], frozenset[str], frozenset[str]]:
        """The locks `tid` holds: (instance -> class, instances, exclusively held instances).

        They depend only on the globals and the pools with lock fields, which most states
        share with many others (they differ in threads), so the answer is memoised by the
        identity of those components. The entry keeps the components alive, so an id in a
        key cannot be reused by another object while the entry exists."""
        g, P = state[0], state[1]
        key = (tid, id(g), *[id(P[i]) for i in self._lock_pools])
        e = self._held_memo.get(key)
        if e is not None:
            return e[1]
        held = self.sem.locks_of(state, tid)
        h = ({x[0]: x[1] for x in held}, frozenset(x[0] for x in held), frozenset(x[0] for x in held if x[3]))
        if len(self._held_memo) >= 100_000:
            self._held_memo.clear()
        self._held_memo[key] = ((g, [P[i] for i in self._lock_pools]), h)
        return h

    def _spin_held(self, G: Any, P: Any, tid: int) -> bool:
        for i in self._spin_globals:
            if G[i][0] == tid:
                return True
        for pi, fi in self._spin_fields:
            for o in P[pi]:
                if o is not None and o[fi][0] == tid:
                    return True
        return False

    def initial_state(self) -> State:
        return self.sem.initial_state()

    def successors(self, state: State) -> Iterable[Transition]:
        if not self.tracking:
            return self._successors_plain(state)
        return self._successors_tracking(state)

    def successors_fn(self) -> Callable[[State], Iterable[Transition]]:
        """The function successors() dispatches to, for a caller that makes one call per state."""
        return self.successors if self.tracking else self._successors_plain

    def _successors_tracking(self, state: State) -> Iterator[Transition]:
        table = self.table
        mk, T = _new_tuple, Transition
        pre: dict[int, Any] = {}
        for tid, th in enumerate(state[2]):
            entry = table[tid][th[0]]
            if entry is None:
                entry = self._entry(tid, th[0])
            for step, fn, tfn, _ in entry:
                if tfn is not None:
                    ev: list = []
                    r = tfn(state, tid, ev)
                else:
                    r = fn(state, tid)
                if r is None:
                    continue
                if r is _VIOL:
                    t = self.sem.run_step(state, tid, step)
                    if t is not None:
                        yield t
                    continue
                if tfn is not None and ev:
                    acc, acq = self._events(state, tid, ev, pre)
                    yield mk(T, (tid, step, r, acc, acq, ()))
                else:
                    yield mk(T, (tid, step, r, (), (), ()))

    def _successors_plain(self, state: State) -> list[Transition]:
        """successors() without access tracking (no step has a tracking variant): a list, not a
        generator, and no per-step test for one; it runs once per state."""
        table = self.table
        mk, T = _new_tuple, Transition
        out: list[Transition] = []
        for tid, th in enumerate(state[2]):
            entry = table[tid][th[0]]
            if entry is None:
                entry = self._entry(tid, th[0])
            for step, fn, _, _ in entry:
                r = fn(state, tid)
                if r is None:
                    continue
                if r is _VIOL:
                    t = self.sem.run_step(state, tid, step)
                    if t is not None:
                        out.append(t)
                    continue
                out.append(mk(T, (tid, step, r, (), (), ())))
        return out

    def raw_successors_fn(self) -> Callable[[State], list[tuple[int, int, State]] | None] | None:
        """For a search that needs only (thread, step id, next state) of each successor: a function
        giving those in successors()' order, or None for a state where a step would be run by the
        interpreter (a violation: the caller then asks successors()). None with access tracking."""
        return None if self.tracking else self._successors_raw

    def _successors_raw(self, state: State) -> list[tuple[int, int, State]] | None:
        table = self.table
        out: list[tuple[int, int, State]] = []
        for tid, th in enumerate(state[2]):
            entry = table[tid][th[0]]
            if entry is None:
                entry = self._entry(tid, th[0])
            for _, fn, _, sid in entry:
                r = fn(state, tid)
                if r is None:
                    continue
                if r is _VIOL:
                    return None
                out.append((tid, sid, r))
        return out

    def thread_successors(self, state: State, tid: int) -> Iterator[Transition]:
        for t in self.successors(state):
            if t.thread == tid:
                yield t

    def is_terminated(self, state: State, tid: int) -> bool:
        return state[2][tid][0] == self.exits[tid]

    def eval_in(self, state: State, expr: ir.Expr, env: dict[str, int] | None = None, tid: int = -1) -> Any:
        if not env:
            fn = self._plain.get(id(expr))
            if fn is not None:
                try:
                    return fn(state, tid)
                except (_Rt, IndexError, TypeError):
                    return self.sem.eval_in(state, expr, env, tid)
        names = tuple(sorted(env)) if env else ()
        key = (id(expr), names)
        hit = self._expr_cache.get(key)
        if hit is None:
            genv = {n: f"b{i}" for i, n in enumerate(names)}
            # quantifier variables are numbered after the binders
            src = (f"def f(state, tid{''.join(', ' + genv[n] for n in names)}):\n"
                   f"    G, P, T = state\n"
                   f"    return {self.gen.x(expr, None, genv)}\n")
            loc: dict[str, Any] = {}
            exec(compile(src, "<forkcheck expr>", "exec"), self.ns, loc)
            hit = (expr, loc["f"])
            self._expr_cache[key] = hit
            if not names:
                self._plain[id(expr)] = loc["f"]
        try:
            return hit[1](state, tid, *((env[n] for n in names) if env else ()))
        except (_Rt, IndexError, TypeError):
            try:
                return self.sem.eval_in(state, expr, env, tid)
            except EvalError:
                raise


def compile_system(system: ir.System, tracking: bool = False) -> CompiledSystem:
    return CompiledSystem(system, tracking)
