"""AST -> IR: declarations, thread codes (procedures inlined), init, properties.

`stmt(s, nxt)` returns the pc where `s` starts, given a fresh pc `nxt` for
what follows; `block` runs through a body in source order (so errors come in
source order) and merges each statement's start with the previous one's
`nxt` (pcs are union-find classes: control flow costs no step). `choose`
uses epsilon edges, removed at the end by copying the target's steps, so the
first step of each branch is an alternative of the choice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .. import ir
from ..diagnostics import NO_SPAN, Note, Span, SpecError
from . import ast as A
from .elab import (ALLOC_FIELD, BOOL, BUILTIN_EXPRS, BUILTIN_STMTS, CHAN_POOL, WCHAN_LOC, Elab, PoolInfo,
                   Scope, Symbols, _ListMarker, compatible, default_init, err, fold_binary, expr_locs, lv_locs,
                   lv_obj_reads, negate, subst_bound, type_name, did_you_mean)
from .fmt import expr_str, simple_str, stmt_label

# Threads in one system: a state holds each one's pc, locals and wait channel, and an
# sx lock's readers are a bitmask of thread numbers. Explicit-state search is hopeless
# long before this; the fork1 models run 2-4. (A typo like `0..NCPU*1000` stops here,
# not after minutes of expanding a family.)
MAX_THREADS = 64

# ------------------------------------------------------------------ steps


@dataclass
class _Step:
    src: int
    dst: int
    guard: ir.Expr | None
    effects: list
    kind: ir.StepKind
    label: str
    ref: ir.SrcRef | None
    frames: tuple[str, ...]
    span: Span


@dataclass
class _Ret:
    """Where `return` goes inside one inlined procedure instance."""
    proc: A.ProcD
    dest: ir.LValue | None
    cont: int
    ret_type: ir.Type | None
    steps: list[_Step] = field(default_factory=list)   # patched with the local resets


@dataclass
class _Ctx:
    scope: Scope
    frames: tuple[str, ...]
    calls: tuple[tuple[str, Span], ...] = ()
    brk: int | None = None
    cont: int | None = None
    ret: _Ret | None = None
    exit: int = 0
    frame_locals: list[ir.LocalVar] | None = None
    top_vars: frozenset[int] = frozenset()   # ids of VarS that need no step


class _CodeBuilder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.npc = 0
        self.steps: list[_Step] = []
        self.eps: dict[int, list[int]] = {}
        self.parent: dict[int, int] = {}
        self.locals: list[ir.LocalVar] = []
        self.local_names: set[str] = set()
        self.instances: dict[str, int] = {}
        self.tmp = 0

    def pc(self) -> int:
        self.npc += 1
        return self.npc - 1

    def find(self, pc: int) -> int:
        root = pc
        while root in self.parent:
            root = self.parent[root]
        while pc != root:
            nxt = self.parent[pc]
            self.parent[pc] = root
            pc = nxt
        return root

    def merge(self, a: int, b: int) -> None:
        """Make pcs a and b one control point."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb

    def add(self, st: _Step) -> _Step:
        self.steps.append(st)
        return st

    def local(self, name: str, t: ir.Type, init: object, display: str, frame: str) -> ir.LocalVar:
        assert name not in self.local_names, name
        v = ir.LocalVar(name, t, init, display, frame)
        self.locals.append(v)
        self.local_names.add(name)
        return v


def _walk_stmts(body: tuple) -> list:
    out = []
    for s in body:
        out.append(s)
        if isinstance(s, A.IfS):
            for b in s.branches:
                out += _walk_stmts(b.body)
            if s.other:
                out += _walk_stmts(s.other)
        elif isinstance(s, (A.WhileS, A.LoopS, A.ForeachS, A.AtomicS)):
            out += _walk_stmts(s.body)
        elif isinstance(s, A.ChooseS):
            for b in s.branches:
                out += _walk_stmts(b)
    return out


# --------------------------------------------------------------- the lowerer


class Lowerer:
    def __init__(self, syms: Symbols, source_of: dict[str, str | None], default_source: str) -> None:
        self.s = syms
        self.el = Elab(syms)
        self.source_of = source_of
        self.default_source = default_source
        self.asserts: dict[str, Span] = {}

    # -- helpers
    def srcref(self, r: A.SrcRefA | None) -> ir.SrcRef | None:
        if r is None:
            return None
        if r.file:
            return ir.SrcRef(r.file, r.line)
        f = self.source_of.get(r.span.file) or self.default_source
        if not f:
            raise err("a bare `@LINE` needs a `source \"file.c\"` declaration (or write `@file.c:LINE`)",
                      r.span)
        return ir.SrcRef(f, r.line)

    def step(self, cb: _CodeBuilder, ctx: _Ctx, src: int, dst: int, guard: ir.Expr | None, effects: list,
             kind: ir.StepKind, label: str, ref: A.SrcRefA | None, span: Span) -> _Step:
        return cb.add(_Step(src, dst, guard, effects, kind, label, self.srcref(ref), ctx.frames, span))

    def check_assign(self, lv: ir.LValue, v: ir.Expr, span: Span) -> None:
        """check_value, with an `info` line at the target's declaration."""
        try:
            self.check_value(lv.type, v, span, "assign")
        except SpecError as e:
            decl = None
            if isinstance(lv, ir.GlobalVarRef) and lv.name in self.s.globals:
                decl = self.s.globals[lv.name].span
            elif isinstance(lv, ir.FieldRef):
                decl = self.s.pools[lv.pool].fields[lv.field].span
            if decl is not None and decl.line > 0:
                e.notes.append(Note(decl, f"`{_lv_name(lv)}` is declared here"))
            raise

    def check_value(self, lv_type: ir.Type, v: ir.Expr, span: Span, what: str) -> None:
        if isinstance(v, _ListMarker):
            raise err(f"cannot {what} a whole list", span)
        if isinstance(lv_type, (ir.LockT, ir.ListT)):
            raise err(f"cannot {what} a {type_name(lv_type)}", span)
        if not compatible(lv_type, v.type):
            raise err(f"type mismatch: cannot {what} {type_name(v.type)} to {type_name(lv_type)}", span)
        if isinstance(lv_type, ir.IntT) and isinstance(v, ir.Const) and not (
                lv_type.lo <= v.value <= lv_type.hi):  # type: ignore[operator]
            raise err(f"constant {v.value} is out of range {lv_type.lo}..{lv_type.hi}", span)

    def bool_cond(self, e: A.Expr, sc: Scope, what: str) -> ir.Expr:
        c = self.el.expr(e, sc)
        self.el.want(c, BOOL, e.span, what)
        return c

    # -- locals
    def declare_locals(self, cb: _CodeBuilder, body: tuple, frame: str, prefix: str,
                       scope: Scope, frame_locals: list[ir.LocalVar]) -> frozenset[int]:
        top: set[int] = set()
        seen_other = False
        for s in body:
            if isinstance(s, A.VarS) and not seen_other:
                top.add(id(s))
            else:
                seen_other = True
        for s in _walk_stmts(body):
            if isinstance(s, A.VarS):
                if s.name in scope.locals:
                    raise err(f"`{s.name}` is already declared in this procedure", s.span)
                t = self.el.type(s.type)
                if isinstance(t, ir.LockT):
                    raise err("a lock cannot be a local variable", s.type.span)
                init = default_init(t)
                if s.init is not None:
                    v = self.el.expr(s.init, Scope(), t)
                    if not isinstance(v, ir.Const):
                        raise err("a local's initial value must be a constant (assign it in the body)",
                                  s.init.span)
                    self.check_value(t, v, s.init.span, "initialise")
                    init = v.value
                lv = cb.local(prefix + s.name, t, init, s.name, frame)
                scope.locals[s.name] = lv
                frame_locals.append(lv)
        return frozenset(top)

    # -- threads
    def thread_code(self, td: A.ThreadD) -> tuple[ir.Code, list[ir.Thread], list[_Step]]:
        if td.index is not None:
            lo = self.el.const_int(td.lo, "a family bound")  # type: ignore[arg-type]
            hi = self.el.const_int(td.hi, "a family bound")  # type: ignore[arg-type]
            if hi < lo:
                raise err(f"empty thread family {lo}..{hi}", td.span)
            n = hi - lo + 1
            if n > MAX_THREADS:
                raise err(f"thread family `{td.name}` has {n} threads; the limit is {MAX_THREADS}", td.span)
            idx: ir.Expr = ir.SelfIndex(ir.IntT(0, n - 1))
            if lo:
                idx = ir.Binary(ir.BinOp.ADD, idx, ir.Const(lo, ir.IntT(lo, lo)), ir.IntT(lo, hi))
            threads = [ir.Thread(f"{td.name}[{lo + k}]", td.name, td.name, k, td.env, not td.unfair)
                       for k in range(n)]
        else:
            idx = ir.SelfIndex(ir.IntT(0, 0))
            threads = [ir.Thread(td.name, td.name, None, 0, td.env, not td.unfair)]
        cb = _CodeBuilder(td.name)
        scope = Scope(index_var=td.index, index_expr=idx, in_code=True)
        fl: list[ir.LocalVar] = []
        top = self.declare_locals(cb, td.body, td.name, "", scope, fl)
        if td.context is not None:
            lv = scope.locals.get(td.context)
            if lv is None or not isinstance(lv.type, ir.RefT):
                raise err(f"`context {td.context}`: thread `{td.name}` has no local `{td.context}` of a "
                          "`ref` type (the context names the object the thread runs for, e.g. its process)",
                          td.span)
            # E(p) and D(p) are state properties of one object: p is bound, as in `forall p in proc: E`
            new = dead = None
            if td.context_new is not None:
                new = self.el.expr(td.context_new, Scope(bound={td.context: lv.type}), ir.BoolT())
            if td.context_dead is not None:
                dead = self.el.expr(td.context_dead, Scope(bound={td.context: lv.type}), ir.BoolT())
            import dataclasses
            threads = [dataclasses.replace(t, context=lv.name, context_new=new, context_dead=dead)
                       for t in threads]
        entry, exit_pc = cb.pc(), cb.pc()
        ctx = _Ctx(scope, (td.name,), exit=exit_pc, frame_locals=fl, top_vars=top)
        cb.merge(self.block(cb, td.body, entry, ctx), exit_pc)
        code, steps = self.finish(cb, entry, exit_pc)
        return code, threads, steps

    def check_proc(self, pd: A.ProcD) -> None:
        """Type-check a procedure on its own (also the ones never called)."""
        cb = _CodeBuilder("__check__")
        ctx = _Ctx(Scope(index_expr=ir.SelfIndex(ir.IntT(0, 0)), in_code=True), ("__check__",),
                   exit=cb.pc(), frame_locals=[])
        args = tuple(A.Name(f"__arg{i}") for i in range(len(pd.params)))
        for i, p in enumerate(pd.params):
            t = self.el.type(p.type)
            if isinstance(t, (ir.LockT, ir.ListT)):
                raise err(f"a parameter cannot be a {type_name(t)} (pass the struct reference)", p.type.span)
            ctx.scope.locals[f"__arg{i}"] = cb.local(f"__arg{i}", t, default_init(t), "arg", "__check__")
        dest = None
        if pd.ret is not None:
            t = self.el.type(pd.ret)
            ctx.scope.locals["__ret"] = cb.local("__ret", t, default_init(t), "ret", "__check__")
            dest = A.Name("__ret")
        self.call(cb, A.CallS(pd.name, args, None, pd.span), dest, cb.pc(), ctx, pd.span)

    def finish(self, cb: _CodeBuilder, entry: int, exit_pc: int) -> tuple[ir.Code, list[_Step]]:
        """Remove epsilon edges, drop unreachable pcs, number pcs from the entry."""
        f = cb.find
        entry, exit_pc = f(entry), f(exit_pc)
        by_src: dict[int, list[_Step]] = {}
        for st in cb.steps:
            st.src, st.dst = f(st.src), f(st.dst)
            by_src.setdefault(st.src, []).append(st)
        eps: dict[int, list[int]] = {}
        for a, bs in cb.eps.items():
            eps.setdefault(f(a), []).extend(f(b) for b in bs)

        def closure(pc: int) -> list[int]:
            out, todo, seen = [], [pc], {pc}
            while todo:
                q = todo.pop(0)
                out.append(q)
                for r in eps.get(q, ()):
                    if r not in seen:
                        seen.add(r)
                        todo.append(r)
            return out

        order: list[int] = []
        index: dict[int, int] = {}
        todo = [entry]
        index[entry] = 0
        order.append(entry)
        outs: dict[int, list[_Step]] = {}
        while todo:
            pc = todo.pop(0)
            cl = closure(pc)
            lst = [st for q in cl for st in by_src.get(q, ())]
            for q in cl[1:]:
                if not by_src.get(q) and not eps.get(q):
                    # a `choose` branch that only jumps (break) to a pc with no step, e.g. the end:
                    # a skip step keeps it an alternative
                    proto = next((st for st in cb.steps if st.dst == q), None) or (lst[0] if lst else None)
                    frames = proto.frames if proto else (cb.name,)
                    lst.append(_Step(pc, q, None, [], ir.StepKind.SKIP, "skip", None, frames, NO_SPAN))
            outs[pc] = lst
            for st in lst:
                if st.dst not in index:
                    index[st.dst] = len(order)
                    order.append(st.dst)
                    todo.append(st.dst)
        if exit_pc not in index:
            index[exit_pc] = len(order)
            order.append(exit_pc)
            outs[exit_pc] = []
        if exit_pc != order[-1] and not outs.get(exit_pc):
            # keep the terminal pc last: easier to read in `parse --steps`
            order.remove(exit_pc)
            order.append(exit_pc)
            index = {pc: i for i, pc in enumerate(order)}
        final: list[_Step] = []
        for pc in order:
            for st in outs.get(pc, ()):
                final.append(dataclasses.replace(st, src=index[pc], dst=index[st.dst]))
        labels = []
        for pc in order:
            o = outs.get(pc) or []
            labels.append(o[0].label if o else ("end" if pc == exit_pc else "(no step)"))
        code = ir.Code(cb.name, tuple(cb.locals), len(order), 0, index[exit_pc], (), tuple(labels))
        return code, final

    # -- statements
    def block(self, cb: _CodeBuilder, body: tuple, src: int, ctx: _Ctx) -> int:
        """Lower `body` starting at pc `src`; the pc where it ends."""
        cur = src
        for s in body:
            nxt = cb.pc()
            cb.merge(self.stmt(cb, s, nxt, ctx), cur)
            cur = nxt
        return cur

    def stmt(self, cb: _CodeBuilder, s: A.Stmt, nxt: int, ctx: _Ctx) -> int:
        sc = ctx.scope
        K = ir.StepKind
        if isinstance(s, A.Assign):
            if isinstance(s.value, A.Call) and s.value.name in self.s.procs:
                return self.call(cb, A.CallS(s.value.name, s.value.args, s.ref, s.value.span), s.target,
                                 nxt, ctx, s.span)
            lv = self.el.lvalue(s.target, sc)
            v = self.el.expr(s.value, sc, lv.type)
            self.check_assign(lv, v, s.value.span)
            src = cb.pc()
            self.step(cb, ctx, src, nxt, None, [ir.Assign(lv, v, s.span)], K.ASSIGN, simple_str(s), s.ref, s.span)
            return src
        if isinstance(s, A.Racy):
            lv = self.el.lvalue(s.target, sc)
            v = self.el.expr(s.value, sc, lv.type)
            self.check_assign(lv, v, s.value.span)
            cb.tmp += 1
            t = v.type
            if isinstance(t, ir.IntT):  # holds 0 between uses: reads better in traces
                t = ir.IntT(min(t.lo, 0), max(t.hi, 0))
            tmp = cb.local(f"__racy{cb.tmp}", t, default_init(t), f"{expr_str(s.target)} (loaded)",
                           ctx.frames[-1])
            tr = ir.LocalVarRef(tmp.name, t, s.span)
            mid, src = cb.pc(), cb.pc()
            lab = simple_str(dataclasses.replace(s, ref=None))[5:]
            self.step(cb, ctx, src, mid, None, [ir.Assign(tr, v, s.span)], K.LOAD, lab + " [load]", s.ref, s.span)
            self.step(cb, ctx, mid, nxt, None,
                      [ir.Assign(lv, ir.LocalRead(tmp.name, t, s.span), s.span),
                       ir.Assign(tr, ir.Const(tmp.init, t), s.span)],  # type: ignore[arg-type]
                      K.STORE, lab + " [store]", s.ref, s.span)
            return src
        if isinstance(s, A.AllocS):
            if s.pool not in self.s.pools:
                raise err(f"unknown struct `{s.pool}`", s.span)
            lv = self.el.lvalue(s.target, sc)
            if lv.type != ir.RefT(s.pool):
                raise err(f"type mismatch: `alloc {s.pool}` gives ref {s.pool}, the target is "
                          f"{type_name(lv.type)}", s.span)
            src = cb.pc()
            self.step(cb, ctx, src, nxt, None, [ir.Alloc(lv, s.pool, s.blocking, s.span)], K.ALLOC,
                      simple_str(s), s.ref, s.span)
            return src
        if isinstance(s, (A.PickRange, A.PickPool)):
            src = cb.pc()
            for g, eff, tag in self.pick_candidates(s, sc):
                self.step(cb, ctx, src, nxt, g, [eff], K.ASSIGN, f"{simple_str(s)} [{tag}]", s.ref, s.span)
            return src
        if isinstance(s, A.CallS):
            if s.name in self.s.procs:
                return self.call(cb, s, None, nxt, ctx, s.span)
            return self.builtin(cb, s, nxt, ctx)
        if isinstance(s, A.FreeS):
            o = self.el.expr(s.obj, sc)
            if isinstance(o, _ListMarker) or not isinstance(o.type, ir.RefT) or o.type.pool == CHAN_POOL:
                raise err("`free` needs a struct reference", s.obj.span)
            src = cb.pc()
            self.step(cb, ctx, src, nxt, None, [ir.Free(o, s.span)], K.FREE, simple_str(s), s.ref, s.span)
            return src
        if isinstance(s, A.AwaitS):
            c = self.bool_cond(s.cond, sc, "`await`")
            if isinstance(c, ir.Const) and c.value:
                c = None  # type: ignore[assignment]
            src = cb.pc()
            self.step(cb, ctx, src, nxt, c, [], K.AWAIT, simple_str(s), s.ref, s.span)
            return src
        if isinstance(s, A.AssertS):
            c = self.bool_cond(s.cond, sc, "`assert`")
            self.note_assert(s)
            src = cb.pc()
            self.step(cb, ctx, src, nxt, None, [ir.Assert(c, s.name, s.span)], K.ASSERT, simple_str(s),
                      s.ref, s.span)
            return src
        if isinstance(s, A.ReturnS):
            return self.ret(cb, s, ctx)
        if isinstance(s, A.BreakS):
            if ctx.brk is None:
                raise err("`break` outside a loop", s.span)
            return ctx.brk
        if isinstance(s, A.ContinueS):
            if ctx.cont is None:
                raise err("`continue` outside a loop", s.span)
            return ctx.cont
        if isinstance(s, A.SkipS):
            src = cb.pc()
            self.step(cb, ctx, src, nxt, None, [], K.SKIP, "skip", s.ref, s.span)
            return src
        if isinstance(s, A.VarS):
            if id(s) in ctx.top_vars or s.init is None:
                return nxt
            v = sc.locals[s.name]
            src = cb.pc()
            self.step(cb, ctx, src, nxt, None,
                      [ir.Assign(ir.LocalVarRef(v.name, v.type, s.span), ir.Const(v.init, v.type), s.span)],  # type: ignore
                      K.ASSIGN, simple_str(s), s.ref, s.span)
            return src
        if isinstance(s, A.IfS):
            entry = cur = cb.pc()
            done = False
            for br in s.branches:
                c = self.bool_cond(br.cond, sc, "`if`")
                if isinstance(c, ir.Const):
                    if c.value:
                        cb.merge(self.block(cb, br.body, cur, ctx), nxt)
                        done = True
                        break
                    continue
                then, other = cb.pc(), cb.pc()
                cs = expr_str(br.cond)
                self.step(cb, ctx, cur, then, c, [], K.COND, f"if {cs}", br.ref, br.span)
                self.step(cb, ctx, cur, other, negate(c), [], K.COND, f"if {cs} [else]", br.ref, br.span)
                cb.merge(self.block(cb, br.body, then, ctx), nxt)
                cur = other
            if not done:
                cb.merge(self.block(cb, s.other or (), cur, ctx), nxt)
            return entry
        if isinstance(s, A.WhileS):
            c = self.bool_cond(s.cond, sc, "`while`")
            if isinstance(c, ir.Const) and not c.value:
                return nxt
            head = cb.pc()
            inner = dataclasses.replace(ctx, brk=nxt, cont=head)
            if isinstance(c, ir.Const):
                self.loop_body(cb, inner, head, s)
            else:
                body = cb.pc()
                cs = expr_str(s.cond)
                self.step(cb, ctx, head, body, c, [], K.COND, f"while {cs}", s.ref, s.span)
                self.step(cb, ctx, head, nxt, negate(c), [], K.COND, f"while {cs} [exit]", s.ref, s.span)
                cb.merge(self.block(cb, s.body, body, inner), head)
            return head
        if isinstance(s, A.LoopS):
            head = cb.pc()
            self.loop_body(cb, dataclasses.replace(ctx, brk=nxt, cont=head), head, s)
            return head
        if isinstance(s, A.ForeachS):
            return self.foreach(cb, s, nxt, ctx)
        if isinstance(s, A.ChooseS):
            src = cb.pc()
            for b in s.branches:
                if not b:
                    self.step(cb, ctx, src, nxt, None, [], K.SKIP, "skip", None, s.span)
                    continue
                start = cb.pc()
                cb.merge(self.block(cb, b, start, ctx), nxt)
                cb.eps.setdefault(src, []).append(start)
            return src
        if isinstance(s, A.AtomicS):
            return self.atomic(cb, s, nxt, ctx)
        raise TypeError(s)

    def pick_candidates(self, s: A.PickRange | A.PickPool, sc: Scope) -> list[tuple[ir.Expr | None, ir.Assign, str]]:
        """One (guard, assignment, tag) per value a `pick` may choose."""
        out: list[tuple[ir.Expr | None, ir.Assign, str]] = []
        lv = self.el.lvalue(s.target, sc)
        if isinstance(s, A.PickRange):
            lo = self.el.const_int(s.lo, "a `pick` bound")
            hi = self.el.const_int(s.hi, "a `pick` bound")
            if hi < lo:
                raise err(f"empty range {lo}..{hi}", s.span)
            if not isinstance(lv.type, ir.IntT):
                raise err(f"`pick {lo}..{hi}` gives an integer, the target is {type_name(lv.type)}", s.span)
            if lo < lv.type.lo or hi > lv.type.hi:
                raise err(f"`pick {lo}..{hi}` can give values out of the target's range "
                          f"{lv.type.lo}..{lv.type.hi}", s.span)
            for val in range(lo, hi + 1):
                c = ir.Const(val, ir.IntT(val, val), s.span)
                self.check_value(lv.type, c, s.span, "assign")
                out.append((None, ir.Assign(lv, c, s.span), str(val)))
            return out
        if s.pool not in self.s.pools:
            raise err(f"unknown struct `{s.pool}`", s.span)
        if lv.type != ir.RefT(s.pool):
            raise err(f"`pick {s.pool}` gives ref {s.pool}, the target is {type_name(lv.type)}", s.span)
        cond = None
        var = s.target.id if isinstance(s.target, A.Name) else None
        if s.where is not None:
            if var is None:
                raise err("`pick ... where` needs a plain variable as its target", s.target.span)
            cond = self.bool_cond(s.where, sc.child_bound(var, ir.RefT(s.pool)), "`where`")
        for k in range(1, self.s.pools[s.pool].size + 1):
            c = ir.Const(k, ir.RefT(s.pool), s.span)
            g: ir.Expr = ir.Alive(c, BOOL, s.span)
            if cond is not None:
                gc = subst_bound(cond, var, c)  # type: ignore[arg-type]
                if isinstance(gc, ir.Const) and not gc.value:
                    continue
                if not (isinstance(gc, ir.Const) and gc.value):
                    g = ir.Binary(ir.BinOp.AND, g, gc, BOOL, s.span)
            out.append((g, ir.Assign(lv, c, s.span), f"{s.pool}#{k}"))
        return out

    def loop_body(self, cb: _CodeBuilder, ctx: _Ctx, head: int, s: A.Stmt) -> None:
        end = self.block(cb, s.body, head, ctx)  # type: ignore[union-attr]
        if cb.find(end) == cb.find(head) and not any(st for st in cb.steps if cb.find(st.src) == cb.find(head)):
            # an empty infinite loop spins: one skip step to itself
            self.step(cb, ctx, head, head, None, [], ir.StepKind.SKIP, "skip (empty loop)",
                      getattr(s, "ref", None), s.span)
        cb.merge(end, head)

    def note_assert(self, s: A.AssertS) -> None:
        prev = self.asserts.get(s.name)
        if prev is not None and prev != s.span:
            raise err(f"duplicate assertion name `{s.name}`", s.span, [Note(prev, "first used here")])
        self.asserts[s.name] = s.span

    def foreach(self, cb: _CodeBuilder, s: A.ForeachS, nxt: int, ctx: _Ctx) -> int:
        sc = ctx.scope
        lv = self.el.list_lv(s.lst, sc, "`foreach`")
        pool = lv.type.pool  # type: ignore[union-attr]
        rt = ir.RefT(pool)
        if s.var in sc.locals:
            var = sc.locals[s.var]
            if var.type != rt:
                raise err(f"the loop variable `{s.var}` is {type_name(var.type)}, the list holds ref {pool}",
                          s.span)
        else:
            if s.var in self.s.globals or s.var in self.s.consts:
                raise err(f"the loop variable `{s.var}` must be a local", s.span)
            cb.tmp += 1
            prefix = ctx.frames[-1] if len(ctx.frames) > 1 else ""
            var = cb.local(f"{prefix + '.' if prefix else ''}{s.var}~{cb.tmp}", rt, 0, s.var, ctx.frames[-1])
            sc.locals[s.var] = var
            if ctx.frame_locals is not None:
                ctx.frame_locals.append(var)
        K = ir.StepKind
        x = ir.LocalRead(var.name, rt, s.span)
        xr = ir.LocalVarRef(var.name, rt, s.span)
        null = ir.Const(0, rt, s.span)
        first, head, nextpc, body = cb.pc(), cb.pc(), cb.pc(), cb.pc()
        cb.merge(self.block(cb, s.body, body, dataclasses.replace(ctx, brk=nxt, cont=nextpc)), nextpc)
        ls = expr_str(s.lst)
        self.step(cb, ctx, first, head, None,
                  [ir.Assign(xr, ir.ListQuery(ir.ListOp.FIRST, lv, None, rt, s.span), s.span)], K.ASSIGN,
                  f"{s.var} := first({ls})", s.ref, s.span)
        self.step(cb, ctx, head, body, ir.Binary(ir.BinOp.NE, x, null, BOOL, s.span), [], K.COND,
                  f"foreach {s.var} in {ls}: {s.var} != null", s.ref, s.span)
        self.step(cb, ctx, head, nxt, ir.Binary(ir.BinOp.EQ, x, null, BOOL, s.span), [], K.COND,
                  f"foreach {s.var} in {ls}: done", s.ref, s.span)
        self.step(cb, ctx, nextpc, head, None,
                  [ir.Assign(xr, ir.ListQuery(ir.ListOp.NEXT, lv, x, rt, s.span), s.span)], K.ASSIGN,
                  f"{s.var} := next({ls}, {s.var})", s.ref, s.span)
        return first

    # -- built-in statements
    def builtin(self, cb: _CodeBuilder, s: A.CallS, nxt: int, ctx: _Ctx) -> int:
        guard, effects, kind, extra = self.builtin_effects(s, ctx)
        src = cb.pc()
        lab = simple_str(s)
        if extra is not None:  # msleep: sleep, then wake
            mid = cb.pc()
            self.step(cb, ctx, src, mid, None, effects, kind, lab + " [sleep]", s.ref, s.span)
            self.step(cb, ctx, mid, nxt, ir.Woken(BOOL, s.span), extra, ir.StepKind.WAKE, lab + " [wake]",
                      s.ref, s.span)
            return src
        self.step(cb, ctx, src, nxt, guard, effects, kind, lab, s.ref, s.span)
        return src

    def builtin_effects(self, s: A.CallS, ctx: _Ctx) -> tuple[ir.Expr | None, list, ir.StepKind, list | None]:
        n, args, sp, sc = s.name, s.args, s.span, ctx.scope
        K = ir.StepKind
        if n not in BUILTIN_STMTS:
            if n in BUILTIN_EXPRS:
                raise err(f"`{n}(...)` is an expression, not a statement", sp)
            raise err(f"unknown procedure `{n}`{did_you_mean(n, [*self.s.procs, *BUILTIN_STMTS])}", sp)

        def arity(*ok: int) -> None:
            if len(args) not in ok:
                want = " or ".join(str(k) for k in ok)
                raise err(f"`{n}` takes {want} argument{'s' if max(ok) > 1 else ''}, not {len(args)}", sp)

        if n in ("lock", "unlock", "slock", "sunlock", "upgrade"):
            arity(1)
            lv = self.el.lock_lv(args[0], sc, f"`{n}`")
            lt: ir.LockT = lv.type  # type: ignore[assignment]
            if n in ("slock", "sunlock", "upgrade") and lt.kind is not ir.LockKind.SX:
                raise err(f"`{n}` needs an sx lock; `{expr_str(args[0])}` is a {lt.kind.value}", args[0].span)
            mode = ir.LockMode.SHARED if n in ("slock", "sunlock") else ir.LockMode.EXCLUSIVE
            if n in ("lock", "slock"):
                return None, [ir.Acquire(lv, mode, sp)], K.LOCK, None
            if n == "upgrade":
                return None, [ir.Upgrade(lv, sp)], K.LOCK, None
            return None, [ir.Release(lv, mode, sp)], K.UNLOCK, None
        if n in ("insert_head", "insert_tail", "remove"):
            arity(2)
            lv = self.el.list_lv(args[0], sc, f"`{n}`")
            rt = ir.RefT(lv.type.pool)  # type: ignore[union-attr]
            x = self.el.expr(args[1], sc, rt)
            self.el.want(x, rt, args[1].span, f"`{n}`")
            return None, [ir.ListUpdate(ir.ListEdit(n), lv, x, None, sp)], K.LIST, None
        if n == "insert_after":
            arity(3)
            lv = self.el.list_lv(args[0], sc, f"`{n}`")
            rt = ir.RefT(lv.type.pool)  # type: ignore[union-attr]
            after = self.el.expr(args[1], sc, rt)
            self.el.want(after, rt, args[1].span, f"`{n}`")
            x = self.el.expr(args[2], sc, rt)
            self.el.want(x, rt, args[2].span, f"`{n}`")
            return None, [ir.ListUpdate(ir.ListEdit.INSERT_AFTER, lv, x, after, sp)], K.LIST, None
        if n == "clear":
            arity(1)
            lv = self.el.list_lv(args[0], sc, f"`{n}`")
            return None, [ir.ListUpdate(ir.ListEdit.CLEAR, lv, None, None, sp)], K.LIST, None
        if n in ("wakeup", "wakeup_one"):
            arity(1)
            c = self.chan(args[0], sc)
            return None, [ir.Wakeup(c, n == "wakeup_one", sp)], K.WAKEUP, None
        if n == "msleep":
            arity(1, 2)
            c = self.chan(args[0], sc)
            m = None
            if len(args) == 2 and not isinstance(args[1], A.NullLit):
                m = self.el.lock_lv(args[1], sc, "the interlock of `msleep`")
                if m.type.kind is ir.LockKind.SX:  # type: ignore[union-attr]
                    raise err("an sx lock cannot be the interlock of `msleep` (use a mutex)", args[1].span)
            wake = [ir.Acquire(m, ir.LockMode.EXCLUSIVE, sp)] if m is not None else []
            return None, [ir.Sleep(c, m, sp)], K.SLEEP, wake
        if n == "mtx_assert":
            arity(2)
            lv = self.el.lock_lv(args[0], sc, "`mtx_assert`")
            k = args[1]
            if not isinstance(k, A.Name) or k.id not in ("MA_OWNED", "MA_NOTOWNED"):
                raise err("the second argument of `mtx_assert` is MA_OWNED or MA_NOTOWNED", k.span)
            return None, [ir.LockAssert(lv, ir.LockAssertKind(k.id), sp)], K.ASSERT, None
        raise AssertionError(n)

    def chan(self, e: A.Expr, sc: Scope) -> ir.Expr:
        c = self.el.expr(e, sc)
        if isinstance(c, _ListMarker) or not isinstance(c.type, ir.RefT):
            raise err("a wait channel is a struct reference or a `chan`", e.span)
        return c

    # -- atomic
    def atomic(self, cb: _CodeBuilder, s: A.AtomicS, nxt: int, ctx: _Ctx) -> int:
        body = s.body
        cands: list[tuple[ir.Expr | None, list, str]] = [(None, [], "")]
        if body and isinstance(body[0], (A.PickRange, A.PickPool)):
            # a pick first: one atomic step per value, the rest after it
            cands = [(g, [eff], f" [{tag}]") for g, eff, tag in self.pick_candidates(body[0], ctx.scope)]
            body = body[1:]
        guard: ir.Expr | None = None
        effects: list = []
        for i, x in enumerate(body):
            g, eff = self.atomic_stmt(x, ctx, first=(i == 0 and len(cands) == 1 and cands[0][0] is None
                                                     and not cands[0][1]))
            if g is not None:
                guard = g
            effects += eff
        src = cb.pc()
        for g, eff, tag in cands:
            self.step(cb, ctx, src, nxt, g if g is not None else guard, eff + effects, ir.StepKind.ATOMIC,
                      stmt_label(s) + tag, s.ref, s.span)
        return src

    def atomic_stmt(self, x: A.Stmt, ctx: _Ctx, first: bool) -> tuple[ir.Expr | None, list]:
        sc = ctx.scope
        blocking_msg = "only the first statement of `atomic` may block"
        if isinstance(x, A.Assign):
            if isinstance(x.value, A.Call) and x.value.name in self.s.procs:
                raise err("no procedure calls inside `atomic`", x.span)
            lv = self.el.lvalue(x.target, sc)
            v = self.el.expr(x.value, sc, lv.type)
            self.check_assign(lv, v, x.value.span)
            return None, [ir.Assign(lv, v, x.span)]
        if isinstance(x, A.AwaitS):
            if not first:
                raise err(blocking_msg, x.span)
            return self.bool_cond(x.cond, sc, "`await`"), []
        if isinstance(x, A.AllocS):
            if x.blocking and not first:
                raise err(blocking_msg + " (use `alloc ... nowait`)", x.span)
            lv = self.el.lvalue(x.target, sc)
            if lv.type != ir.RefT(x.pool):
                raise err(f"type mismatch: `alloc {x.pool}` gives ref {x.pool}", x.span)
            return None, [ir.Alloc(lv, x.pool, x.blocking, x.span)]
        if isinstance(x, A.FreeS):
            return None, [ir.Free(self.el.expr(x.obj, sc), x.span)]
        if isinstance(x, A.AssertS):
            self.note_assert(x)
            return None, [ir.Assert(self.bool_cond(x.cond, sc, "`assert`"), x.name, x.span)]
        if isinstance(x, A.SkipS):
            return None, []
        if isinstance(x, A.CallS):
            if x.name in self.s.procs:
                raise err("no procedure calls inside `atomic`", x.span)
            if x.name == "msleep":
                raise err("`msleep` cannot be inside `atomic` (it is two steps)", x.span)
            if x.name in ("lock", "slock", "upgrade") and not first:
                raise err(blocking_msg, x.span)
            _, eff, _, _ = self.builtin_effects(x, ctx)
            return None, eff
        if isinstance(x, A.IfS):
            # only assignments in the branches: each becomes `x := c ? v : x`
            return None, self.atomic_if(x, ctx)
        raise err(f"`{stmt_label(x)}` is not allowed inside `atomic`", x.span)

    def atomic_if(self, x: A.IfS, ctx: _Ctx) -> list:
        out: list = []
        rest: ir.Expr = ir.Const(True, BOOL)   # no earlier branch taken
        for b in x.branches:
            c = self.bool_cond(b.cond, ctx.scope, "`if`")
            out += self.atomic_assigns(b.body, ctx, fold_binary(ir.BinOp.AND, rest, c, BOOL, b.span))
            rest = fold_binary(ir.BinOp.AND, rest, negate(c), BOOL, b.span)
        if x.other:
            out += self.atomic_assigns(x.other, ctx, rest)
        return out

    def atomic_assigns(self, body: tuple, ctx: _Ctx, c: ir.Expr | None) -> list:
        out = []
        for y in body:
            if not isinstance(y, A.Assign) or (isinstance(y.value, A.Call) and y.value.name in self.s.procs):
                raise err("inside `atomic`, the branches of `if` may only assign", y.span)
            lv = self.el.lvalue(y.target, ctx.scope)
            v = self.el.expr(y.value, ctx.scope, lv.type)
            self.check_assign(lv, v, y.value.span)
            if c is None or (isinstance(c, ir.Const) and c.value):
                out.append(ir.Assign(lv, v, y.span))
            elif not isinstance(c, ir.Const):
                out.append(ir.Assign(lv, ir.Ite(c, v, _lv_read(lv), lv.type, y.span), y.span))
        return out

    # -- calls and returns
    def call(self, cb: _CodeBuilder, s: A.CallS, dest_e: A.Expr | None, nxt: int, ctx: _Ctx, span: Span) -> int:
        pd = self.s.procs[s.name]
        for name, where in ctx.calls:
            if name == pd.name:
                raise err(f"recursive call of `{pd.name}` (procedures are inlined; use a loop)", span,
                          [Note(where, "the outer call")])
        if len(s.args) != len(pd.params):
            raise err(f"`{pd.name}` takes {len(pd.params)} argument{'s' if len(pd.params) != 1 else ''}, "
                      f"not {len(s.args)}", span, [Note(pd.span, f"`{pd.name}` is declared here")])
        dest = None
        ret_t = self.el.type(pd.ret) if pd.ret is not None else None
        if dest_e is not None:
            dest = self.el.lvalue(dest_e, ctx.scope)
            if ret_t is None:
                raise err(f"`{pd.name}` returns no value", span, [Note(pd.span, "declared here")])
            if not compatible(dest.type, ret_t):
                raise err(f"type mismatch: `{pd.name}` returns {type_name(ret_t)}, the target is "
                          f"{type_name(dest.type)}", span)
        k = cb.instances.get(pd.name, 0) + 1
        cb.instances[pd.name] = k
        prefix = f"{pd.name}#{k}."
        scope = Scope(index_var=None, index_expr=ctx.scope.index_expr, in_code=True)
        fl: list[ir.LocalVar] = []
        params = []
        for p in pd.params:
            t = self.el.type(p.type)
            if isinstance(t, (ir.LockT, ir.ListT)):
                raise err(f"a parameter cannot be a {type_name(t)} (pass the struct reference)", p.type.span)
            if p.name in scope.locals:
                raise err(f"duplicate parameter `{p.name}`", p.span)
            v = cb.local(prefix + p.name, t, default_init(t), p.name, pd.name)
            scope.locals[p.name] = v
            fl.append(v)
            params.append(v)
        # arguments are evaluated in the caller's scope
        effects = []
        for p, v, a in zip(pd.params, params, s.args):
            x = self.el.expr(a, ctx.scope, v.type)
            self.check_value(v.type, x, a.span, f"pass as `{p.name}`")
            effects.append(ir.Assign(ir.LocalVarRef(v.name, v.type, a.span), x, a.span))
        top = self.declare_locals(cb, pd.body, pd.name, prefix, scope, fl)
        ret = _Ret(pd, dest, nxt, ret_t)
        inner = _Ctx(scope, ctx.frames + (pd.name,), ctx.calls + ((pd.name, span),), None, None, ret,
                     ctx.exit, fl, top)
        body = cb.pc()
        end = self.block(cb, pd.body, body, inner)
        K = ir.StepKind
        end_step = self.step(cb, inner, end, nxt, None, [], K.RETURN, f"end of {pd.name}", None, pd.span)
        ret.steps.append(end_step)
        resets = [ir.Assign(ir.LocalVarRef(v.name, v.type), ir.Const(v.init, v.type))  # type: ignore
                  for v in fl]
        for st in ret.steps:
            st.effects = st.effects + resets
        src = cb.pc()
        lab = f"{expr_str(dest_e)} := " if dest_e is not None else ""
        self.step(cb, ctx, src, body, None, effects, K.CALL,
                  f"{lab}{pd.name}({', '.join(expr_str(a) for a in s.args)})", s.ref, span)
        return src

    def ret(self, cb: _CodeBuilder, s: A.ReturnS, ctx: _Ctx) -> int:
        K = ir.StepKind
        r = ctx.ret
        src = cb.pc()
        if r is None:  # `return` in a thread body: go to its end
            if s.value is not None:
                raise err("a thread's `return` takes no value", s.value.span)
            self.step(cb, ctx, src, ctx.exit, None, [], K.RETURN, "return", s.ref, s.span)
            return src
        effects: list = []
        if r.ret_type is None:
            if s.value is not None:
                raise err(f"`{r.proc.name}` returns no value", s.value.span,
                          [Note(r.proc.span, "declared without `-> type`")])
        else:
            if s.value is None:
                raise err(f"`return` needs a value of type {type_name(r.ret_type)}", s.span)
            v = self.el.expr(s.value, ctx.scope, r.ret_type)
            if not compatible(v.type, r.ret_type):
                raise err(f"type mismatch: `{r.proc.name}` returns {type_name(r.ret_type)}, not "
                          f"{type_name(v.type)}", s.value.span)
            self.check_value(r.ret_type, v, s.value.span, "return")
            if r.dest is not None:
                effects.append(ir.Assign(r.dest, v, s.span))
        st = self.step(cb, ctx, src, r.cont, None, effects, K.RETURN, simple_str(s), s.ref, s.span)
        r.steps.append(st)
        return src


def _lv_name(lv: ir.LValue) -> str:
    return f"{lv.pool}.{lv.field}" if isinstance(lv, ir.FieldRef) else lv.name


def _lv_read(lv: ir.LValue) -> ir.Expr:
    if isinstance(lv, ir.GlobalVarRef):
        return ir.GlobalRead(lv.name, lv.type, lv.span)
    if isinstance(lv, ir.LocalVarRef):
        return ir.LocalRead(lv.name, lv.type, lv.span)
    return ir.FieldRead(lv.obj, lv.pool, lv.field, lv.type, lv.span)


# ------------------------------------------------------------- step metadata


def effect_locs(e: object, reads: set[ir.Loc], writes: set[ir.Loc], locks: set[str], pools: dict[str, PoolInfo]) -> None:
    if isinstance(e, ir.Assign):
        expr_locs(e.value, reads)
        lv_obj_reads(e.target, reads)
        lv_locs(e.target, writes)
    elif isinstance(e, ir.Alloc):
        lv_obj_reads(e.target, reads)
        lv_locs(e.target, writes)
        reads.add(ir.Loc(e.pool, ALLOC_FIELD))
        writes.add(ir.Loc(e.pool, ALLOC_FIELD))
        writes.update(ir.Loc(e.pool, f) for f in pools[e.pool].fields)
    elif isinstance(e, ir.Free):
        expr_locs(e.obj, reads)
        if isinstance(e.obj.type, ir.RefT):
            reads.add(ir.Loc(e.obj.type.pool, ALLOC_FIELD))
            writes.add(ir.Loc(e.obj.type.pool, ALLOC_FIELD))
    elif isinstance(e, ir.ListUpdate):
        lv_obj_reads(e.lst, reads)
        lv_locs(e.lst, reads)
        lv_locs(e.lst, writes)
        expr_locs(e.elem, reads)
        expr_locs(e.after, reads)
    elif isinstance(e, (ir.Acquire, ir.Release, ir.Upgrade)):
        lv_obj_reads(e.lock, reads)
        lv_locs(e.lock, reads)
        lv_locs(e.lock, writes)
        locks.add(e.lock.type.cls)  # type: ignore[union-attr]
    elif isinstance(e, ir.Sleep):
        expr_locs(e.chan, reads)
        reads.add(WCHAN_LOC)
        writes.add(WCHAN_LOC)
        if e.interlock is not None:
            lv_obj_reads(e.interlock, reads)
            lv_locs(e.interlock, reads)
            lv_locs(e.interlock, writes)
            locks.add(e.interlock.type.cls)  # type: ignore[union-attr]
    elif isinstance(e, ir.Wakeup):
        expr_locs(e.chan, reads)
        reads.add(WCHAN_LOC)
        writes.add(WCHAN_LOC)
    elif isinstance(e, ir.Assert):
        expr_locs(e.cond, reads)
    elif isinstance(e, ir.LockAssert):
        lv_obj_reads(e.lock, reads)
        lv_locs(e.lock, reads)


def build_step(st: _Step, sid: int, code: str, pools: dict[str, PoolInfo]) -> ir.Step:
    reads: set[ir.Loc] = set()
    writes: set[ir.Loc] = set()
    locks: set[str] = set()
    expr_locs(st.guard, reads)
    for e in st.effects:
        effect_locs(e, reads, writes, locks, pools)
    return ir.Step(sid, code, st.src, st.dst, st.guard, tuple(st.effects), st.kind, st.label, st.ref,
                   st.frames, frozenset(reads), frozenset(writes), frozenset(locks), st.span)
