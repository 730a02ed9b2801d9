"""Name resolution and type checking of declarations and expressions.

`Symbols` holds every top-level declaration, resolved; `Elab.expr` turns an
AST expression into a typed, constant-folded IR expression or raises a
SpecError at the offending span.
"""

from __future__ import annotations

import difflib
import operator
from dataclasses import dataclass, field
from typing import Callable

from .. import ir
from ..diagnostics import Note, Span, SpecError
from . import ast as A
from .parser import MAX_INT

BOOL = ir.BoolT()
CHAN_POOL = "__chan__"
ALLOC_FIELD = "#alloc"      # pseudo-field: allocation status of a pool's slots (POR/race Locs)
WCHAN_LOC = ir.Loc(None, "#wchan")  # pseudo-location touched by sleep, wakeup and wake steps

BUILTIN_EXPRS = {"alive", "first", "next", "len", "empty", "owned", "held", "xowned"}
BUILTIN_STMTS = {"lock", "unlock", "slock", "sunlock", "upgrade", "insert_head", "insert_tail",
                 "insert_after", "remove", "clear", "msleep", "wakeup", "wakeup_one", "mtx_assert"}


def err(msg: str, span: Span, notes: list[Note] | None = None) -> SpecError:
    return SpecError(msg, span if span.line > 0 else None, notes)


def did_you_mean(name: str, candidates: object) -> str:
    """` (did you mean `x`?)` for a close known name, else ``."""
    close = difflib.get_close_matches(name, [c for c in candidates if not c.startswith("__")], n=1)  # type: ignore
    return f" (did you mean `{close[0]}`?)" if close else ""


@dataclass
class PoolInfo:
    name: str
    size: int
    fields: dict[str, ir.Field]
    refcount: str | None
    decl: A.StructD


@dataclass
class Symbols:
    consts: dict[str, ir.Constant] = field(default_factory=dict)
    enums: dict[str, ir.EnumT] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    members: dict[str, tuple[ir.EnumT, int]] = field(default_factory=dict)
    aliases: dict[str, ir.Type] = field(default_factory=dict)
    globals: dict[str, ir.GlobalVar] = field(default_factory=dict)
    chans: list[str] = field(default_factory=list)
    pools: dict[str, PoolInfo] = field(default_factory=dict)
    procs: dict[str, A.ProcD] = field(default_factory=dict)
    where: dict[str, Span] = field(default_factory=dict)   # name -> declaring span

    def lock_classes(self) -> set[str]:
        out = {g.type.cls for g in self.globals.values() if isinstance(g.type, ir.LockT)}
        for p in self.pools.values():
            out |= {f.type.cls for f in p.fields.values() if isinstance(f.type, ir.LockT)}
        return out


@dataclass
class Scope:
    """What names mean inside one procedure instance, thread body or property."""
    locals: dict[str, ir.LocalVar] = field(default_factory=dict)
    bound: dict[str, ir.Type] = field(default_factory=dict)
    static: dict[str, ir.Const] = field(default_factory=dict)       # init-block locals
    index_var: str | None = None
    index_expr: ir.Expr | None = None
    in_code: bool = False

    def child_bound(self, name: str, t: ir.Type) -> "Scope":
        s = Scope(self.locals, {**self.bound, name: t}, self.static, self.index_var, self.index_expr,
                  self.in_code)
        return s


def compatible(a: ir.Type, b: ir.Type) -> bool:
    if isinstance(a, ir.IntT) and isinstance(b, ir.IntT):
        return True
    return a == b


def type_name(t: ir.Type) -> str:
    if isinstance(t, ir.IntT):
        return "int" if t.lo == t.hi else f"int {t.lo}..{t.hi}"
    return str(t)


def default_init(t: ir.Type) -> object:
    if isinstance(t, ir.BoolT):
        return False
    if isinstance(t, ir.IntT):
        return t.lo if t.lo > 0 or t.hi < 0 else 0
    if isinstance(t, ir.ListT):
        return ()
    if isinstance(t, ir.LockT):
        return None
    return 0


def const_of(t: ir.Type, v: object) -> ir.Const:
    return ir.Const(v, t)  # type: ignore[arg-type]


_ARITH: dict[ir.BinOp, Callable[[int, int], int]] = {
    ir.BinOp.ADD: operator.add, ir.BinOp.SUB: operator.sub, ir.BinOp.MUL: operator.mul}
_CMP: dict[ir.BinOp, Callable[[int, int], bool]] = {
    ir.BinOp.EQ: operator.eq, ir.BinOp.NE: operator.ne, ir.BinOp.LT: operator.lt,
    ir.BinOp.LE: operator.le, ir.BinOp.GT: operator.gt, ir.BinOp.GE: operator.ge}


def c_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def fold_binary(op: ir.BinOp, l: ir.Expr, r: ir.Expr, t: ir.Type, span: Span) -> ir.Expr:
    """Constant folding, including the short-circuit cases a fix toggle creates."""
    lc = l if isinstance(l, ir.Const) else None
    rc = r if isinstance(r, ir.Const) else None
    if op is ir.BinOp.AND:
        if lc is not None:
            return r if lc.value else lc
        if rc is not None and rc.value:
            return l
    if op is ir.BinOp.OR:
        if lc is not None:
            return lc if lc.value else r
        if rc is not None and not rc.value:
            return l
    if op is ir.BinOp.IMPLIES and lc is not None:
        return r if lc.value else ir.Const(True, BOOL, span)
    if lc is None or rc is None:
        return ir.Binary(op, l, r, t, span)
    a, b = lc.value, rc.value
    if op in _ARITH:
        v = _ARITH[op](a, b)  # type: ignore[arg-type]
        if abs(v) > MAX_INT:
            # refused at once: a chain of `C2 = C1 * C1` would otherwise grow without bound
            raise err(f"constant expression overflows: {str(v)[:20]}... is beyond the limit {MAX_INT} (2^63-1)",
                      span)
        return ir.Const(v, ir.IntT(v, v), span)
    if op in (ir.BinOp.DIV, ir.BinOp.MOD):
        if b == 0:
            raise err("division by zero in a constant expression", span)
        v = c_div(a, b) if op is ir.BinOp.DIV else a - b * c_div(a, b)  # type: ignore
        return ir.Const(v, ir.IntT(v, v), span)
    if op in _CMP:
        return ir.Const(_CMP[op](a, b), BOOL, span)  # type: ignore
    if op is ir.BinOp.OR:
        return ir.Const(bool(a or b), BOOL, span)
    if op is ir.BinOp.AND:
        return ir.Const(bool(a and b), BOOL, span)
    if op is ir.BinOp.UNION:
        return ir.Const(a | b, t, span)  # type: ignore
    if op is ir.BinOp.INTER:
        return ir.Const(a & b, t, span)  # type: ignore
    if op is ir.BinOp.DIFF:
        return ir.Const(a & ~b, t, span)  # type: ignore
    if op is ir.BinOp.IN:
        return ir.Const(bool(b & (1 << a)), BOOL, span)  # type: ignore
    return ir.Binary(op, l, r, t, span)


def _interval(op: ir.BinOp, a: ir.IntT, b: ir.IntT) -> ir.IntT:
    if op in (ir.BinOp.ADD, ir.BinOp.SUB, ir.BinOp.MUL):
        f = _ARITH[op]
        vals = [f(x, y) for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
        return ir.IntT(min(vals), max(vals))
    m = max(abs(a.lo), abs(a.hi))
    if op is ir.BinOp.DIV:
        return ir.IntT(-m if a.lo < 0 or b.lo < 0 else 0, m)
    d = max(abs(b.lo), abs(b.hi), 1)
    if a.lo >= 0:
        return ir.IntT(0, min(a.hi, d - 1))
    return ir.IntT(-(d - 1), d - 1)


_BINOP = {A.Op.IMPLIES: ir.BinOp.IMPLIES, A.Op.OR: ir.BinOp.OR, A.Op.AND: ir.BinOp.AND,
          A.Op.EQ: ir.BinOp.EQ, A.Op.NE: ir.BinOp.NE, A.Op.LT: ir.BinOp.LT, A.Op.LE: ir.BinOp.LE,
          A.Op.GT: ir.BinOp.GT, A.Op.GE: ir.BinOp.GE, A.Op.INTER: ir.BinOp.INTER,
          A.Op.UNION: ir.BinOp.UNION, A.Op.DIFF: ir.BinOp.DIFF, A.Op.ADD: ir.BinOp.ADD,
          A.Op.SUB: ir.BinOp.SUB, A.Op.MUL: ir.BinOp.MUL, A.Op.DIV: ir.BinOp.DIV,
          A.Op.MOD: ir.BinOp.MOD}


def negate(e: ir.Expr) -> ir.Expr:
    if isinstance(e, ir.Const):
        return ir.Const(not e.value, BOOL, e.span)
    if isinstance(e, ir.Unary) and e.op is ir.UnOp.NOT:
        return e.arg
    return ir.Unary(ir.UnOp.NOT, e, BOOL, e.span)


class Elab:
    """Typed elaboration of expressions against the resolved symbols."""

    def __init__(self, syms: Symbols, on_name: Callable[[str], None] | None = None) -> None:
        self.s = syms
        self.on_name = on_name   # lets constants resolve on first use (forward references)

    # ------------------------------------------------------------ constants
    def const_value(self, e: A.Expr, what: str) -> int | bool:
        v = self.expr(e, Scope())
        if not isinstance(v, ir.Const):
            raise err(f"{what} must be a constant expression", e.span)
        return v.value

    def const_int(self, e: A.Expr, what: str) -> int:
        v = self.const_value(e, what)
        if isinstance(v, bool):
            raise err(f"{what} must be an integer, not a boolean", e.span)
        return v

    # ---------------------------------------------------------------- types
    def type(self, t: A.TypeA, owner_pool: str | None = None, owner_field: str | None = None) -> ir.Type:
        if isinstance(t, A.TBool):
            return BOOL
        if isinstance(t, A.TRange):
            lo = self.const_int(t.lo, "a range bound")
            hi = self.const_int(t.hi, "a range bound")
            if lo > hi:
                raise err(f"empty range {lo}..{hi}", t.span)
            return ir.IntT(lo, hi)
        if isinstance(t, A.TName):
            if t.name in self.s.aliases:
                return self.s.aliases[t.name]
            if t.name in self.s.enums:
                if t.name in self.s.flags:
                    raise err(f"`{t.name}` is a flags type: write `set {t.name}`", t.span)
                return self.s.enums[t.name]
            if t.name in self.s.pools:
                raise err(f"`{t.name}` is a struct: write `ref {t.name}`", t.span)
            known = [*self.s.aliases, *self.s.enums, "bool"]
            raise err(f"unknown type `{t.name}`{did_you_mean(t.name, known)}", t.span)
        if isinstance(t, A.TSet):
            if t.name not in self.s.enums or t.name not in self.s.flags:
                if t.name in self.s.enums:
                    raise err(f"`{t.name}` is an enum; `set` needs a `flags` type", t.span)
                raise err(f"unknown flags type `{t.name}`", t.span)
            return ir.SetT(self.s.enums[t.name])
        if isinstance(t, (A.TRef, A.TList)):
            if t.name not in self.s.pools:
                raise err(f"unknown struct `{t.name}`{did_you_mean(t.name, self.s.pools)}", t.span)
            return ir.RefT(t.name) if isinstance(t, A.TRef) else ir.ListT(t.name)
        if isinstance(t, A.TLock):
            if t.recursive and t.kind != "mutex":
                raise err("only a sleep mutex may be `recursive`", t.span)
            cls = t.cls
            if cls is None:
                cls = owner_field if owner_pool is None else f"{owner_pool}.{owner_field}"
            return ir.LockT(ir.LockKind(t.kind), cls or "?", t.recursive)
        raise TypeError(t)

    # ---------------------------------------------------------- expressions
    def expr(self, e: A.Expr, sc: Scope, expected: ir.Type | None = None) -> ir.Expr:
        sp = e.span
        if isinstance(e, A.IntLit):
            return ir.Const(e.value, ir.IntT(e.value, e.value), sp)
        if isinstance(e, A.BoolLit):
            return ir.Const(e.value, BOOL, sp)
        if isinstance(e, A.NullLit):
            if isinstance(expected, ir.RefT):
                return ir.Const(0, expected, sp)
            raise err("cannot tell which struct this `null` refers to here", sp)
        if isinstance(e, A.SelfLit):
            if sc.index_expr is None:
                raise err("`self` is only meaningful inside a thread or procedure", sp)
            return sc.index_expr
        if isinstance(e, A.Name):
            return self.name(e, sc)
        if isinstance(e, A.SetLit):
            return self.set_lit(e, expected)
        if isinstance(e, A.FieldAcc):
            obj = self.expr(e.obj, sc)
            pool, f = self.field_of(obj, e)
            if isinstance(f.type, ir.LockT):
                raise err(f"lock `{e.field}` used as a value (use owned()/held())", sp)
            if isinstance(f.type, ir.ListT):
                return _ListMarker(ir.FieldRef(obj, pool, f.name, f.type, sp))  # type: ignore[return-value]
            return ir.FieldRead(obj, pool, f.name, f.type, sp)
        if isinstance(e, A.Unary):
            a = self.expr(e.arg, sc)
            if e.op is A.UOp.NOT:
                self.want(a, BOOL, e.arg.span, "`!`")
                if isinstance(a, ir.Const):
                    return ir.Const(not a.value, BOOL, sp)
                return ir.Unary(ir.UnOp.NOT, a, BOOL, sp)
            self.want_int(a, e.arg.span, "unary `-`")
            if isinstance(a, ir.Const):
                return ir.Const(-a.value, ir.IntT(-a.value, -a.value), sp)  # type: ignore
            return ir.Unary(ir.UnOp.NEG, a, ir.IntT(-a.type.hi, -a.type.lo), sp)  # type: ignore
        if isinstance(e, A.Binary):
            return self.binary(e, sc)
        if isinstance(e, A.CondE):
            c = self.expr(e.cond, sc)
            self.want(c, BOOL, e.cond.span, "the condition of `?:`")
            a, b = self.pair(e.then, e.other, sc, expected)
            if not compatible(a.type, b.type):
                raise err(f"the branches of `?:` have different types: {type_name(a.type)} and "
                          f"{type_name(b.type)}", sp)
            t = a.type
            if isinstance(a.type, ir.IntT) and isinstance(b.type, ir.IntT):
                t = ir.IntT(min(a.type.lo, b.type.lo), max(a.type.hi, b.type.hi))
            if isinstance(c, ir.Const):
                return a if c.value else b
            return ir.Ite(c, a, b, t, sp)
        if isinstance(e, A.QuantE):
            if e.pool not in self.s.pools:
                raise err(f"unknown struct `{e.pool}`{did_you_mean(e.pool, self.s.pools)}", sp)
            inner = sc.child_bound(e.var, ir.RefT(e.pool))
            body = self.expr(e.body, inner)
            self.want(body, BOOL, e.body.span, f"the body of `{e.kind.value}`")
            t: ir.Type = BOOL if e.kind is not A.QKind.COUNT else ir.IntT(0, self.s.pools[e.pool].size)
            return ir.Quant(ir.QuantKind(e.kind.value), e.var, e.pool, body, t, sp)
        if isinstance(e, A.Eventually):
            raise err("`eventually` is only allowed at the top of a `property`", sp)
        if isinstance(e, A.Call):
            return self.call(e, sc)
        raise TypeError(e)

    def pair(self, a: A.Expr, b: A.Expr, sc: Scope, expected: ir.Type | None = None
             ) -> tuple[ir.Expr, ir.Expr]:
        """Elaborate two operands, letting `null`/`{}` take the other side's type."""
        if _untyped(a) and not _untyped(b):
            y = self.expr(b, sc, expected)
            return self.expr(a, sc, y.type), y
        x = self.expr(a, sc, expected)
        return x, self.expr(b, sc, x.type if expected is None else expected)

    def binary(self, e: A.Binary, sc: Scope) -> ir.Expr:
        sp = e.span
        op = e.op
        if op is A.Op.LEADSTO:
            raise err("`~>` is only allowed at the top of a `property`", sp)
        if op in (A.Op.IN, A.Op.NOTIN):
            r = self.expr(e.right, sc)
            if isinstance(r, _ListMarker):
                l = self.expr(e.left, sc, ir.RefT(r.lv.type.pool))  # type: ignore[union-attr]
                self.want(l, ir.RefT(r.lv.type.pool), e.left.span, "the element of `in`")  # type: ignore
                q: ir.Expr = ir.ListQuery(ir.ListOp.CONTAINS, r.lv, l, BOOL, sp)
            elif isinstance(r.type, ir.SetT):
                l = self.expr(e.left, sc)
                if l.type != r.type.enum:
                    raise err(f"`{op.value}` needs a member of `{r.type.enum.name}` on the left, "
                              f"not {type_name(l.type)}", e.left.span)
                q = fold_binary(ir.BinOp.IN, l, r, BOOL, sp)
            else:
                raise err(f"the right side of `{op.value}` must be a flag set or a list, not "
                          f"{type_name(r.type)}", e.right.span)
            return negate(q) if op is A.Op.NOTIN else q
        bop = _BINOP[op]
        if op in (A.Op.EQ, A.Op.NE):
            l, r = self.pair(e.left, e.right, sc)
            for x, s in ((l, e.left.span), (r, e.right.span)):
                if isinstance(x.type, (ir.LockT, ir.ListT)):
                    raise err(f"cannot compare a {type_name(x.type)}", s)
            if not compatible(l.type, r.type):
                raise err(f"cannot compare {type_name(l.type)} with {type_name(r.type)}", sp)
            return fold_binary(bop, l, r, BOOL, sp)
        if op in (A.Op.AND, A.Op.OR, A.Op.IMPLIES):
            l = self.expr(e.left, sc)
            r = self.expr(e.right, sc)
            self.want(l, BOOL, e.left.span, f"`{op.value}`")
            self.want(r, BOOL, e.right.span, f"`{op.value}`")
            return fold_binary(bop, l, r, BOOL, sp)
        if op in (A.Op.INTER, A.Op.UNION, A.Op.DIFF):
            l, r = self.pair(e.left, e.right, sc)
            if not isinstance(l.type, ir.SetT) or l.type != r.type:
                hint = ""
                if isinstance(l.type, ir.BoolT) or isinstance(r.type, ir.BoolT):
                    hint = f" (for booleans use `{'&&' if op is A.Op.INTER else '||'}`)"
                raise err(f"`{op.value}` needs two flag sets of one type, not {type_name(l.type)} and "
                          f"{type_name(r.type)}{hint}", sp)
            return fold_binary(bop, l, r, l.type, sp)
        l = self.expr(e.left, sc)
        r = self.expr(e.right, sc)
        self.want_int(l, e.left.span, f"`{op.value}`")
        self.want_int(r, e.right.span, f"`{op.value}`")
        if op in (A.Op.LT, A.Op.LE, A.Op.GT, A.Op.GE):
            return fold_binary(bop, l, r, BOOL, sp)
        if op in (A.Op.DIV, A.Op.MOD) and isinstance(r, ir.Const) and r.value == 0:
            raise err("division by zero", e.right.span)
        return fold_binary(bop, l, r, _interval(bop, l.type, r.type), sp)  # type: ignore[arg-type]

    def want(self, x: ir.Expr, t: ir.Type, span: Span, what: str) -> None:
        if isinstance(x, _ListMarker) or not compatible(x.type, t):
            got = "a list" if isinstance(x, _ListMarker) else type_name(x.type)
            raise err(f"{what} needs {type_name(t)}, not {got}", span)

    def want_int(self, x: ir.Expr, span: Span, what: str) -> None:
        if isinstance(x, _ListMarker) or not isinstance(x.type, ir.IntT):
            got = "a list" if isinstance(x, _ListMarker) else type_name(x.type)
            raise err(f"{what} needs an integer, not {got}", span)

    def set_lit(self, e: A.SetLit, expected: ir.Type | None) -> ir.Expr:
        if not e.members:
            if isinstance(expected, ir.SetT):
                return ir.Const(0, expected, e.span)
            raise err("cannot tell which flags type this `{}` has here", e.span)
        enum = None
        mask = 0
        for m in e.members:
            if m not in self.s.members:
                raise err(f"unknown flag `{m}`", e.span)
            en, i = self.s.members[m]
            if en.name not in self.s.flags:
                raise err(f"`{m}` is a member of enum `{en.name}`, not of a flags type", e.span)
            if enum is not None and en != enum:
                raise err(f"`{m}` is a `{en.name}` flag, not a `{enum.name}` flag", e.span)
            enum = en
            mask |= 1 << i
        assert enum is not None
        return ir.Const(mask, ir.SetT(enum), e.span)

    def name(self, e: A.Name, sc: Scope) -> ir.Expr:
        n, sp = e.id, e.span
        if self.on_name is not None and n not in sc.bound and n not in sc.locals:
            self.on_name(n)
        if n in sc.bound:
            return ir.BoundRead(n, sc.bound[n], sp)
        if n in sc.static:
            c = sc.static[n]
            return ir.Const(c.value, c.type, sp)
        if n in sc.locals:
            v = sc.locals[n]
            if isinstance(v.type, ir.ListT):
                return _ListMarker(ir.LocalVarRef(v.name, v.type, sp))
            return ir.LocalRead(v.name, v.type, sp)
        if n == sc.index_var and sc.index_expr is not None:
            return sc.index_expr
        if n in self.s.globals:
            g = self.s.globals[n]
            if isinstance(g.type, ir.LockT):
                raise err(f"lock `{n}` used as a value (use owned({n}) or held({n}))", sp)
            if isinstance(g.type, ir.ListT):
                return _ListMarker(ir.GlobalVarRef(n, g.type, sp))
            return ir.GlobalRead(n, g.type, sp)
        if n in self.s.consts:
            c = self.s.consts[n]
            t: ir.Type = BOOL if isinstance(c.value, bool) else ir.IntT(c.value, c.value)  # type: ignore
            return ir.Const(c.value, t, sp)
        if n in self.s.members:
            en, i = self.s.members[n]
            return ir.Const(i, en, sp)
        if n in self.s.chans:
            return ir.Const(self.s.chans.index(n) + 1, ir.RefT(CHAN_POOL), sp)
        if n in self.s.procs:
            raise err(f"procedure `{n}` used as a value", sp)
        if n in self.s.pools:
            raise err(f"struct `{n}` used as a value", sp)
        known = [*sc.bound, *sc.locals, *self.s.globals, *self.s.consts, *self.s.members, *self.s.chans]
        raise err(f"unknown name `{n}`{did_you_mean(n, known)}", sp)

    def field_of(self, obj: ir.Expr, e: A.FieldAcc) -> tuple[str, ir.Field]:
        if isinstance(obj, _ListMarker) or not isinstance(obj.type, ir.RefT) or obj.type.pool == CHAN_POOL:
            got = "a list" if isinstance(obj, _ListMarker) else type_name(obj.type)
            raise err(f"`.{e.field}` needs a struct reference on the left, not {got}", e.obj.span)
        p = self.s.pools[obj.type.pool]
        if e.field not in p.fields:
            raise err(f"struct `{p.name}` has no field `{e.field}`{did_you_mean(e.field, p.fields)}", e.span)
        return p.name, p.fields[e.field]

    def lvalue(self, e: A.Expr, sc: Scope, what: str = "assign to") -> ir.LValue:
        if isinstance(e, A.Name):
            n = e.id
            if n in sc.bound:
                raise err(f"cannot {what} the bound variable `{n}`", e.span)
            if n in sc.locals:
                v = sc.locals[n]
                return ir.LocalVarRef(v.name, v.type, e.span)
            if n == sc.index_var:
                raise err(f"cannot {what} the thread index `{n}`", e.span)
            if n in self.s.globals:
                return ir.GlobalVarRef(n, self.s.globals[n].type, e.span)
            if n in self.s.consts:
                raise err(f"cannot {what} the constant `{n}`", e.span)
            raise err(f"unknown name `{n}`{did_you_mean(n, [*sc.locals, *self.s.globals])}", e.span)
        if isinstance(e, A.FieldAcc):
            obj = self.expr(e.obj, sc)
            pool, f = self.field_of(obj, e)
            return ir.FieldRef(obj, pool, f.name, f.type, e.span)
        raise err(f"cannot {what} this expression", e.span)

    def lock_lv(self, e: A.Expr, sc: Scope, what: str) -> ir.LValue:
        lv = self.lvalue(e, sc, "use")
        if not isinstance(lv.type, ir.LockT):
            raise err(f"{what} needs a lock, not {type_name(lv.type)}", e.span)
        return lv

    def list_lv(self, e: A.Expr, sc: Scope, what: str) -> ir.LValue:
        lv = self.lvalue(e, sc, "use")
        if not isinstance(lv.type, ir.ListT):
            raise err(f"{what} needs a list, not {type_name(lv.type)}", e.span)
        return lv

    def call(self, e: A.Call, sc: Scope) -> ir.Expr:
        n, args, sp = e.name, e.args, e.span
        if n not in BUILTIN_EXPRS:
            if n in self.s.procs:
                raise err(f"a call of procedure `{n}` must be a statement of its own "
                          f"(`x := {n}(...)`)", sp)
            if n in BUILTIN_STMTS:
                raise err(f"`{n}` is a statement, not an expression", sp)
            raise err(f"unknown function `{n}`{did_you_mean(n, BUILTIN_EXPRS)}", sp)
        arity = {"alive": 1, "first": 1, "next": 2, "len": 1, "empty": 1, "owned": 1, "held": 1,
                 "xowned": 1}[n]
        if len(args) != arity:
            raise err(f"`{n}` takes {arity} argument{'s' if arity > 1 else ''}, not {len(args)}", sp)
        if n == "alive":
            x = self.expr(args[0], sc)
            if isinstance(x, _ListMarker) or not isinstance(x.type, ir.RefT):
                raise err("`alive` needs a struct reference", args[0].span)
            return ir.Alive(x, BOOL, sp)
        if n in ("owned", "held", "xowned"):
            lv = self.lock_lv(args[0], sc, f"`{n}`")
            return ir.LockQuery(ir.LockQ(n), lv, BOOL, sp)
        lv = self.list_lv(args[0], sc, f"`{n}`")
        pool = lv.type.pool  # type: ignore[union-attr]
        if n == "first":
            return ir.ListQuery(ir.ListOp.FIRST, lv, None, ir.RefT(pool), sp)
        if n == "next":
            x = self.expr(args[1], sc, ir.RefT(pool))
            self.want(x, ir.RefT(pool), args[1].span, "`next`")
            return ir.ListQuery(ir.ListOp.NEXT, lv, x, ir.RefT(pool), sp)
        if n == "len":
            return ir.ListQuery(ir.ListOp.LEN, lv, None, ir.IntT(0, self.s.pools[pool].size), sp)
        return ir.ListQuery(ir.ListOp.EMPTY, lv, None, BOOL, sp)


@dataclass(frozen=True)
class _ListMarker:
    """A list named in an expression: only `in` and the list built-ins accept it."""
    lv: ir.LValue

    @property
    def type(self) -> ir.Type:
        return self.lv.type

    @property
    def span(self) -> Span:
        return self.lv.span


def _untyped(e: A.Expr) -> bool:
    return isinstance(e, A.NullLit) or (isinstance(e, A.SetLit) and not e.members)


# -------------------------------------------------------------- locations


def expr_locs(e: object, out: set[ir.Loc]) -> None:
    """Shared locations an expression reads (over-approximation)."""
    if isinstance(e, ir.GlobalRead):
        out.add(ir.Loc(None, e.name))
    elif isinstance(e, ir.FieldRead):
        out.add(ir.Loc(e.pool, e.field))
        expr_locs(e.obj, out)
    elif isinstance(e, (ir.Unary,)):
        expr_locs(e.arg, out)
    elif isinstance(e, ir.Binary):
        expr_locs(e.left, out)
        expr_locs(e.right, out)
    elif isinstance(e, ir.Ite):
        expr_locs(e.cond, out)
        expr_locs(e.then, out)
        expr_locs(e.other, out)
    elif isinstance(e, ir.Quant):
        out.add(ir.Loc(e.pool, ALLOC_FIELD))
        expr_locs(e.body, out)
    elif isinstance(e, ir.Alive):
        if isinstance(e.obj.type, ir.RefT):
            out.add(ir.Loc(e.obj.type.pool, ALLOC_FIELD))
        expr_locs(e.obj, out)
    elif isinstance(e, ir.ListQuery):
        lv_locs(e.lst, out)
        expr_locs(e.elem, out)
    elif isinstance(e, ir.LockQuery):
        lv_locs(e.lock, out)
    elif isinstance(e, ir.Woken):
        out.add(WCHAN_LOC)


def lv_locs(lv: object, out: set[ir.Loc]) -> None:
    """The location an lvalue names (the object expression's reads go to `out` too)."""
    if isinstance(lv, ir.GlobalVarRef):
        out.add(ir.Loc(None, lv.name))
    elif isinstance(lv, ir.FieldRef):
        out.add(ir.Loc(lv.pool, lv.field))


def lv_obj_reads(lv: object, out: set[ir.Loc]) -> None:
    if isinstance(lv, ir.FieldRef):
        expr_locs(lv.obj, out)


def subst_bound(e: ir.Expr, name: str, value: ir.Const) -> ir.Expr:
    """Replace a bound variable by a constant (for `pick P where c`)."""
    import dataclasses
    if isinstance(e, ir.BoundRead):
        return ir.Const(value.value, value.type, e.span) if e.name == name else e
    if isinstance(e, ir.Quant) and e.var == name:
        return e
    if not dataclasses.is_dataclass(e):
        return e
    changes = {}
    for f in dataclasses.fields(e):
        v = getattr(e, f.name)
        if dataclasses.is_dataclass(v) and not isinstance(v, type) and f.name not in ("type", "span"):
            nv = subst_bound(v, name, value)  # type: ignore[arg-type]
            if nv is not v:
                changes[f.name] = nv
    return dataclasses.replace(e, **changes) if changes else e  # type: ignore[type-var]
