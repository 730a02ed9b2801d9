"""Files -> one checked IR System: imports, declarations, threads, init, properties."""

from __future__ import annotations

from pathlib import Path

from .. import ir
from ..diagnostics import Note, Span, SpecError
from . import ast as A
from .elab import (BOOL, BUILTIN_EXPRS, BUILTIN_STMTS, Elab, PoolInfo, Scope, Symbols,
                   compatible, default_init, did_you_mean, err, type_name)
from .lower import MAX_THREADS, Lowerer, _Ctx, build_step
from .parser import MAX_INT, parse_module

# A pool's slots are in every state and every quantifier walks them; the fork1
# models use at most 8. Beyond this the first state alone would not fit in memory.
MAX_POOL_SIZE = 1024
from .static import check_ghost_reads, check_module_statics

class OverrideError(SpecError):
    """A constant override (from a model file) that the spec does not accept."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


# Reserved: not usable as names of declarations.
_RESERVED = BUILTIN_EXPRS | BUILTIN_STMTS | {"MA_OWNED", "MA_NOTOWNED"}


def load_modules(path: str | Path, text: str | None = None) -> list[A.Module]:
    """The main file and every file it imports, imports first (each once)."""
    out: list[A.Module] = []
    done: set[Path] = set()

    def visit(p: Path, txt: str | None, stack: list[tuple[Path, Span | None]]) -> None:
        rp = p.resolve() if txt is None else p
        if rp in done:
            return
        for q, sp in stack:
            if q == rp:
                chain = " -> ".join(x.name for x, _ in stack) + f" -> {p.name}"
                raise SpecError(f"import cycle: {chain}", stack[-1][1])
        if txt is None:
            try:
                txt = p.read_text(encoding="utf-8")
            except OSError as e:
                where = stack[-1][1] if stack else None
                raise SpecError(f"cannot read {p}: {e.strerror}", where) from None
        m = parse_module(txt, str(p))
        stack = stack + [(rp, None)]
        for d in m.decls:
            if isinstance(d, A.ImportD):
                stack[-1] = (rp, d.span)
                visit(p.parent / d.path, None, stack)
        done.add(rp)
        out.append(m)

    visit(Path(path), text, [])
    return out


class Builder:
    def __init__(self, modules: list[A.Module], overrides: dict[str, int | bool] | None) -> None:
        self.mods = modules
        self.overrides = dict(overrides or {})
        self.s = Symbols()
        self.el = Elab(self.s)
        self.decls = [d for m in modules for d in m.decls]
        self.const_decls: dict[str, A.ConstD | A.FixD] = {}
        self.evaluating: list[str] = []
        self.hidden: list[ir.GlobalVar] = []

    # -- names
    def declare(self, name: str, span: Span, what: str) -> None:
        if name.startswith("__"):
            raise err(f"names starting with `__` are reserved for forkcheck: `{name}`", span)
        if name in _RESERVED:
            raise err(f"`{name}` is a built-in name", span)
        if name in self.s.where:
            raise err(f"`{name}` is already declared", span, [Note(self.s.where[name], "first declared here")])
        self.s.where[name] = span

    def build(self) -> ir.System:
        s = self.s
        # 1. names
        for d in self.decls:
            if isinstance(d, (A.ConstD, A.FixD)):
                self.declare(d.name, d.span, "constant")
                self.const_decls[d.name] = d
            elif isinstance(d, A.EnumD):
                self.declare(d.name, d.span, "type")
                for m in d.members:
                    self.declare(m, d.span, "member")
            elif isinstance(d, (A.TypeD, A.LockD, A.VarD, A.StructD, A.ProcD)):
                self.declare(d.name, d.span, "name")
            elif isinstance(d, A.ChanD):
                for n in d.names:
                    self.declare(n, d.span, "chan")
        for n in self.overrides:
            if n not in self.const_decls:
                raise OverrideError(n, f"no constant `{n}` in the spec{did_you_mean(n, self.const_decls)}")
        self.el.on_name = self._on_name
        # 2. constants (in order; forward references resolve on demand)
        for n in self.const_decls:
            self.resolve_const(n)
        # 3. enums and flags
        for d in self.decls:
            if isinstance(d, A.EnumD):
                if len(set(d.members)) != len(d.members):
                    raise err(f"duplicate member in `{d.name}`", d.span)
                en = ir.EnumT(d.name, d.members)
                s.enums[d.name] = en
                if d.flags:
                    s.flags.add(d.name)
                for i, m in enumerate(d.members):
                    s.members[m] = (en, i)
        # 4. pools (sizes), then type aliases, then fields
        for d in self.decls:
            if isinstance(d, A.StructD):
                size = self.el.const_int(d.size, "a struct's pool size")
                if size < 1:
                    raise err(f"a pool needs at least one slot, not {size}", d.size.span)
                if size > MAX_POOL_SIZE:
                    raise err(f"pool `{d.name}` has {size} slots; the limit is {MAX_POOL_SIZE}", d.size.span)
                s.pools[d.name] = PoolInfo(d.name, size, {}, d.refcount, d)
        for d in self.decls:
            if isinstance(d, A.TypeD):
                t = self.el.type(d.type)
                s.aliases[d.name] = t
        for d in self.decls:
            if isinstance(d, A.ChanD):
                s.chans.extend(d.names)
            elif isinstance(d, A.LockD):
                t = self.el.type(d.type, None, d.name)
                s.globals[d.name] = ir.GlobalVar(d.name, t, None, (), "", d.span)
        for d in self.decls:
            if isinstance(d, A.StructD):
                self.fields(d)
            elif isinstance(d, A.VarD):
                t = self.el.type(d.type)
                if isinstance(t, ir.LockT):
                    raise err("declare locks with `lock NAME: ...`", d.type.span)
                init = self.init_value(t, d.init)
                s.globals[d.name] = ir.GlobalVar(d.name, t, init, (), "", d.span)
        for d in self.decls:  # guards may name locks declared later
            if isinstance(d, A.VarD):
                for g in d.guarded_by:
                    gv = s.globals.get(g)
                    if gv is None or not isinstance(gv.type, ir.LockT):
                        raise err(f"`guarded_by {g}`: no global lock `{g}`", d.span)
                if d.ghost and d.guarded_by:
                    raise err(f"ghost `{d.name}` is model bookkeeping, not kernel state: it has no lock "
                              "(drop `guarded_by` or `ghost`)", d.span)
                s.globals[d.name] = ir.GlobalVar(d.name, s.globals[d.name].type, s.globals[d.name].init,
                                                 d.guarded_by, "", d.span, d.ghost)
            elif isinstance(d, A.ProcD):
                s.procs[d.name] = d
        # 5. static checks on procedure and thread bodies, then lowering
        source_of = {m.file: next((d.file for d in m.decls if isinstance(d, A.SourceD)), None)
                     for m in self.mods}
        main_src = source_of.get(self.mods[-1].file) or next((v for v in source_of.values() if v), None) or ""
        low = Lowerer(s, source_of, main_src)
        check_module_statics(self.decls, s)
        check_ghost_reads(self.decls, s)
        for d in self.decls:
            if isinstance(d, A.ProcD):
                low.check_proc(d)
        codes: list[ir.Code] = []
        threads: list[ir.Thread] = []
        raw_steps: list[tuple[ir.Code, list]] = []
        tnames: dict[str, Span] = {}
        for d in self.decls:
            if isinstance(d, A.ThreadD):
                if d.name in tnames:
                    raise err(f"thread `{d.name}` is already declared", d.span, [Note(tnames[d.name], "here")])
                if d.name in s.where:
                    raise err(f"`{d.name}` is already declared", d.span, [Note(s.where[d.name], "here")])
                tnames[d.name] = d.span
                code, ts, steps = low.thread_code(d)
                raw_steps.append((code, steps))
                threads += ts
                if len(threads) > MAX_THREADS:
                    raise err(f"{len(threads)} threads; the limit is {MAX_THREADS}", d.span)
        sid = 0
        for code, steps in raw_steps:
            built = []
            for st in steps:
                built.append(build_step(st, sid, code.name, s.pools))
                sid += 1
            codes.append(ir.Code(code.name, code.locals, code.npcs, code.entry, code.exit, tuple(built),
                                 code.pc_labels))
        init = self.init(low)
        invariants, leadsto = self.properties(low)
        names: dict[str, Span] = {}
        for n, sp in [(i.name, i.span) for i in invariants] + [(l.name, l.span) for l in leadsto] + \
                list(low.asserts.items()):
            if n in ir.BUILTIN_PROPERTIES or n in ("race",):
                raise err(f"`{n}` is the name of a built-in property", sp)
            if n in names:
                raise err(f"property `{n}` is already declared", sp, [Note(names[n], "here")])
            names[n] = sp
        pools = tuple(ir.Pool(p.name, p.size, tuple(p.fields.values()), p.refcount, True, p.decl.span)
                      for p in s.pools.values())
        enums = tuple(s.enums.values())
        constants = tuple(ir.Constant(n, s.consts[n].value, isinstance(d, A.FixD),
                                      d.doc if isinstance(d, A.FixD) else "", d.span)
                          for n, d in self.const_decls.items())
        main = self.mods[-1].file
        return ir.System(
            name=Path(main).stem, spec_file=main, source_file=main_src, constants=constants,
            enums=enums, globals=tuple(s.globals.values()) + tuple(self.hidden), pools=pools,
            codes=tuple(codes), threads=tuple(threads), init=tuple(init), invariants=tuple(invariants),
            leadsto=tuple(leadsto), asserts=tuple(low.asserts), lock_orders=tuple(self.lock_orders()),
            abstracted=tuple(ir.Abstracted(d.lo, d.hi, d.reason, d.span) for d in self.decls
                             if isinstance(d, A.AbstractD)),
            chans=tuple(s.chans))

    # -- constants
    def _on_name(self, n: str) -> None:
        if n in self.const_decls and n not in self.s.consts:
            self.resolve_const(n)

    def resolve_const(self, n: str) -> ir.Constant:
        if n in self.s.consts:
            return self.s.consts[n]
        d = self.const_decls[n]
        if n in self.evaluating:
            raise err(f"constant `{n}` is defined in terms of itself", d.span)
        self.evaluating.append(n)
        try:
            v = self.el.const_value(d.value, f"the value of `{n}`")
        finally:
            self.evaluating.pop()
        if isinstance(d, A.FixD) and not isinstance(v, bool):
            raise err(f"a fix toggle is a boolean, not {v}", d.value.span)
        if n in self.overrides:
            o = self.overrides[n]
            if not isinstance(o, bool) and abs(o) > MAX_INT:
                raise OverrideError(n, f"`{n}` = {o} is beyond the limit {MAX_INT} (2^63-1)")
            if isinstance(o, bool) != isinstance(v, bool):
                raise OverrideError(n, f"`{n}` is {'a boolean' if isinstance(v, bool) else 'an integer'} "
                                       f"in the spec, not {str(o).lower() if isinstance(o, bool) else o}")
            v = o
        c = ir.Constant(n, v, isinstance(d, A.FixD), d.doc if isinstance(d, A.FixD) else "", d.span)
        self.s.consts[n] = c
        return c

    def init_value(self, t: ir.Type, e: A.Expr | None) -> object:
        if e is None:
            return default_init(t)
        if isinstance(t, (ir.ListT, ir.LockT)):
            raise err(f"a {type_name(t)} cannot have an initial value", e.span)
        v = self.el.expr(e, Scope(), t)
        if not isinstance(v, ir.Const):
            raise err("an initial value must be a constant (set it in `init`)", e.span)
        if not compatible(t, v.type):
            raise err(f"type mismatch: initial value is {type_name(v.type)}, the type is {type_name(t)}", e.span)
        if isinstance(t, ir.IntT) and not t.lo <= v.value <= t.hi:  # type: ignore[operator]
            raise err(f"initial value {v.value} is out of range {t.lo}..{t.hi}", e.span)
        if isinstance(t, ir.RefT) and v.value != 0:
            raise err("a reference starts as null", e.span)
        return v.value

    def fields(self, d: A.StructD) -> None:
        p = self.s.pools[d.name]
        for f in d.fields:
            if f.name in p.fields:
                raise err(f"duplicate field `{f.name}` in `{d.name}`", f.span)
            t = self.el.type(f.type, d.name, f.name)
            p.fields[f.name] = ir.Field(f.name, t, self.init_value(t, f.init), (), "", f.span)
        for f in d.fields:
            for g in f.guarded_by:
                ok = (g in p.fields and isinstance(p.fields[g].type, ir.LockT)) or (
                    g in self.s.globals and isinstance(self.s.globals[g].type, ir.LockT))
                if not ok:
                    raise err(f"`guarded_by {g}`: no lock field `{g}` in `{d.name}` and no global lock `{g}`",
                              f.span)
            old = p.fields[f.name]
            p.fields[f.name] = ir.Field(old.name, old.type, old.init, f.guarded_by, "", f.span)
        if d.refcount is not None:
            rf = p.fields.get(d.refcount)
            if rf is None or not isinstance(rf.type, ir.IntT):
                raise err(f"refcount `{d.refcount}` must be an integer field of `{d.name}`", d.span)

    def lock_orders(self) -> list[ir.LockOrder]:
        classes = self.s.lock_classes()
        out = []
        for d in self.decls:
            if not isinstance(d, A.LockOrderD):
                continue
            cl = []
            for name, quoted in d.classes:
                if quoted:
                    if name not in classes:
                        raise err(f"no lock has class \"{name}\"", d.span)
                    cl.append(name)
                else:
                    g = self.s.globals.get(name)
                    if g is None or not isinstance(g.type, ir.LockT):
                        raise err(f"`{name}` is not a global lock (quote a class name: \"...\")", d.span)
                    cl.append(g.type.cls)
            for a, b in zip(cl, cl[1:]):
                out.append(ir.LockOrder(a, b, d.span))
        return out

    # -- init
    def init(self, low: Lowerer) -> list:
        bodies = [d for d in self.decls if isinstance(d, A.InitD)]
        if len(bodies) > 1:
            raise err("only one `init` block", bodies[1].span, [Note(bodies[0].span, "the first one")])
        if not bodies:
            return []
        sc = Scope(static={})
        used = {p: [False] * info.size for p, info in self.s.pools.items()}
        effects: list = []
        hidden: dict[str, ir.GlobalVar] = {}
        ctx = _Ctx(sc, ("init",))

        def is_static_target(t: A.Expr) -> bool:
            return isinstance(t, A.Name) and (t.id in sc.static or (
                t.id not in self.s.globals and t.id not in self.s.consts and t.id not in self.s.members))

        def run(body: tuple) -> None:
            for st in body:
                sp = st.span
                if isinstance(st, A.VarS):
                    t = self.el.type(st.type)
                    v = self.init_value(t, st.init)
                    sc.static[st.name] = ir.Const(v, t)  # type: ignore[arg-type]
                elif isinstance(st, A.Assign) and is_static_target(st.target):
                    prev = sc.static.get(st.target.id)  # type: ignore[union-attr]
                    v = self.el.expr(st.value, sc, prev.type if prev else None)
                    if not isinstance(v, ir.Const):
                        raise err("a local of `init` must get a value known before the run", st.value.span)
                    if prev is not None:
                        low.check_value(prev.type, v, st.value.span, "assign")
                        v = ir.Const(v.value, prev.type)
                    sc.static[st.target.id] = v  # type: ignore[union-attr]
                elif isinstance(st, A.Assign):
                    if isinstance(st.value, A.Call) and st.value.name in self.s.procs:
                        raise err("no procedure calls in `init`", sp)
                    lv = self.el.lvalue(st.target, sc)
                    v = self.el.expr(st.value, sc, lv.type)
                    low.check_value(lv.type, v, st.value.span, "assign")
                    effects.append(ir.Assign(lv, v, sp))
                elif isinstance(st, A.AllocS):
                    if st.pool not in self.s.pools:
                        raise err(f"unknown struct `{st.pool}`", sp)
                    slots = used[st.pool]
                    if all(slots):
                        raise err(f"`init` allocates more than the {len(slots)} slot(s) of `{st.pool}`", sp)
                    k = slots.index(False) + 1
                    slots[k - 1] = True
                    if is_static_target(st.target):
                        h = hidden.get(st.pool)
                        if h is None:
                            h = hidden[st.pool] = ir.GlobalVar(f"__init_{st.pool}", ir.RefT(st.pool), 0)
                        effects.append(ir.Alloc(ir.GlobalVarRef(h.name, h.type, sp), st.pool, False, sp))
                        sc.static[st.target.id] = ir.Const(k, ir.RefT(st.pool))  # type: ignore[union-attr]
                    else:
                        lv = self.el.lvalue(st.target, sc)
                        if lv.type != ir.RefT(st.pool):
                            raise err(f"type mismatch: `alloc {st.pool}` gives ref {st.pool}", sp)
                        effects.append(ir.Alloc(lv, st.pool, False, sp))
                elif isinstance(st, A.FreeS):
                    o = self.el.expr(st.obj, sc)
                    if not isinstance(o, ir.Const) or not isinstance(o.type, ir.RefT):
                        raise err("`free` in `init` needs an object known before the run", st.obj.span)
                    used[o.type.pool][o.value - 1] = False  # type: ignore[index]
                    effects.append(ir.Free(o, sp))
                elif isinstance(st, A.CallS):
                    if st.name in self.s.procs:
                        raise err("no procedure calls in `init`", sp)
                    if st.name == "msleep":
                        raise err("`init` cannot sleep", sp)
                    _, eff, _, _ = low.builtin_effects(st, ctx)
                    effects.extend(eff)
                elif isinstance(st, A.IfS):
                    chosen = st.other or ()
                    for b in st.branches:
                        c = low.bool_cond(b.cond, sc, "`if`")
                        if not isinstance(c, ir.Const):
                            raise err("`init` runs before any thread: its `if` conditions must be constant",
                                      b.cond.span)
                        if c.value:
                            chosen = b.body
                            break
                    run(chosen)
                elif isinstance(st, A.AssertS):
                    low.note_assert(st)
                    effects.append(ir.Assert(low.bool_cond(st.cond, sc, "`assert`"), st.name, sp))
                elif isinstance(st, A.SkipS):
                    pass
                else:
                    raise err(f"`init` is straight-line code: `{_kw(st)}` is not allowed here", sp)

        run(bodies[0].body)
        for h in hidden.values():
            self.hidden.append(h)
            effects.append(ir.Assign(ir.GlobalVarRef(h.name, h.type), ir.Const(0, h.type)))
        return effects

    # -- properties
    def properties(self, low: Lowerer) -> tuple[list[ir.Invariant], list[ir.LeadsTo]]:
        invs, lts = [], []
        for d in self.decls:
            if isinstance(d, A.InvariantD):
                e = low.bool_cond(d.expr, Scope(), f"{'lemma' if d.lemma else 'invariant'} `{d.name}`")
                invs.append(ir.Invariant(d.name, e, d.span, lemma=d.lemma))
            elif isinstance(d, A.PropertyD):
                binders: list[tuple[str, str]] = []
                sc = Scope()
                e = d.expr
                while isinstance(e, A.QuantE) and e.kind is A.QKind.FORALL and _has_temporal(e.body):
                    if e.pool not in self.s.pools:
                        raise err(f"unknown struct `{e.pool}`", e.span)
                    binders.append((e.var, e.pool))
                    sc = sc.child_bound(e.var, ir.RefT(e.pool))
                    e = e.body
                eventually = isinstance(e, A.Eventually)
                if isinstance(e, A.Binary) and e.op is A.Op.LEADSTO:
                    p = low.bool_cond(e.left, sc, "the left side of `~>`")
                    q = low.bool_cond(e.right, sc, "the right side of `~>`")
                elif isinstance(e, A.Eventually):
                    p = ir.Const(True, BOOL, e.span)
                    q = low.bool_cond(e.arg, sc, "`eventually`")
                else:
                    raise err("a property is `P ~> Q` or `eventually Q` (optionally under `forall x in S:`); "
                              "use `invariant` for a state property", d.expr.span)
                lts.append(ir.LeadsTo(d.name, tuple(binders), p, q, d.span, eventually=eventually))
        return invs, lts


def _has_temporal(e: A.Expr) -> bool:
    if isinstance(e, A.Eventually):
        return True
    if isinstance(e, A.Binary) and e.op is A.Op.LEADSTO:
        return True
    if isinstance(e, A.QuantE) and e.kind is A.QKind.FORALL:
        return _has_temporal(e.body)
    return False


def _kw(s: A.Stmt) -> str:
    from .fmt import stmt_label
    return stmt_label(s).split(" ")[0]


def build_system(path: str | Path, overrides: dict[str, int | bool] | None = None,
                 text: str | None = None) -> ir.System:
    try:
        return Builder(load_modules(path, text), overrides).build()
    except RecursionError:  # a backstop: parse_module already refuses over-deep trees
        raise SpecError("the spec nests too deeply to check") from None
    except SpecError as e:
        # text in memory: let the diagnostic quote it
        if text is not None and e.text is None and e.span is not None and e.span.file == str(path):
            e.text = text
        raise
