"""The canonical form of a spec (`forkcheck fmt`) and one-line statement labels.

Printing adds only the parentheses precedence needs, so parse(format(m))
equals m up to spans; whole-line and end-of-line comments are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ast as A

INDENT = "  "
_ATOM = 12
_POSTFIX = 11


def _prec(e: A.Expr) -> int:
    if isinstance(e, A.Binary):
        return A.PRECEDENCE[e.op]
    if isinstance(e, A.CondE):
        return A.COND_PREC
    if isinstance(e, A.Unary):
        return A.UNARY_PREC
    if isinstance(e, A.IntLit) and e.value < 0:
        return A.UNARY_PREC
    if isinstance(e, (A.QuantE, A.Eventually)):
        return 0
    if isinstance(e, A.FieldAcc):
        return _POSTFIX
    return _ATOM


def _paren(e: A.Expr, need: bool) -> str:
    s = expr_str(e)
    return f"({s})" if need else s


_NONASSOC = {A.Op.LEADSTO, A.Op.EQ, A.Op.NE, A.Op.LT, A.Op.LE, A.Op.GT, A.Op.GE, A.Op.IN, A.Op.NOTIN}


def expr_str(e: A.Expr) -> str:
    if isinstance(e, A.IntLit):
        return str(e.value)
    if isinstance(e, A.BoolLit):
        return "true" if e.value else "false"
    if isinstance(e, A.NullLit):
        return "null"
    if isinstance(e, A.SelfLit):
        return "self"
    if isinstance(e, A.Name):
        return e.id
    if isinstance(e, A.SetLit):
        return "{" + ", ".join(e.members) + "}"
    if isinstance(e, A.FieldAcc):
        return f"{_paren(e.obj, _prec(e.obj) < _POSTFIX)}.{e.field}"
    if isinstance(e, A.Call):
        return f"{e.name}({', '.join(expr_str(a) for a in e.args)})"
    if isinstance(e, A.Unary):
        return f"{e.op.value}{_paren(e.arg, _prec(e.arg) < A.UNARY_PREC)}"
    if isinstance(e, A.Binary):
        p = A.PRECEDENCE[e.op]
        lp, rp = _prec(e.left), _prec(e.right)
        right_assoc = e.op is A.Op.IMPLIES
        lneed = lp < p or (lp == p and (right_assoc or e.op in _NONASSOC)) or lp == 0
        rneed = rp < p or (rp == p and (not right_assoc or e.op in _NONASSOC))
        return f"{_paren(e.left, lneed)} {e.op.value} {_paren(e.right, rneed)}"
    if isinstance(e, A.CondE):
        c = _paren(e.cond, _prec(e.cond) < 3)
        t = _paren(e.then, _prec(e.then) < A.COND_PREC)
        o = _paren(e.other, _prec(e.other) < A.COND_PREC)
        return f"{c} ? {t} : {o}"
    if isinstance(e, A.QuantE):
        return f"{e.kind.value} {e.var} in {e.pool}: {expr_str(e.body)}"
    if isinstance(e, A.Eventually):
        return f"eventually {expr_str(e.arg)}"
    raise TypeError(e)


def type_str(t: A.TypeA) -> str:
    if isinstance(t, A.TBool):
        return "bool"
    if isinstance(t, A.TRange):
        lo = _paren(t.lo, _prec(t.lo) < 8)
        hi = _paren(t.hi, _prec(t.hi) < 8)
        return f"{lo}..{hi}"
    if isinstance(t, A.TName):
        return t.name
    if isinstance(t, A.TSet):
        return f"set {t.name}"
    if isinstance(t, A.TRef):
        return f"ref {t.name}"
    if isinstance(t, A.TList):
        return f"list {t.name}"
    if isinstance(t, A.TLock):
        out = t.kind + (" recursive" if t.recursive else "")
        return out + (f" class {_q(t.cls)}" if t.cls is not None else "")
    raise TypeError(t)


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ref(r: A.SrcRefA | None) -> str:
    return f" {r}" if r is not None else ""


def _sum(e: A.Expr) -> str:
    """An operand of `..` (the grammar takes a sum there)."""
    return _paren(e, _prec(e) < 8)


def simple_str(s: A.Stmt) -> str:
    """One line for a simple statement, without its source reference."""
    if isinstance(s, A.Assign):
        return f"{expr_str(s.target)} := {expr_str(s.value)}"
    if isinstance(s, A.Racy):
        return f"racy {expr_str(s.target)} := {expr_str(s.value)}"
    if isinstance(s, A.AllocS):
        return f"{expr_str(s.target)} := alloc {s.pool}" + ("" if s.blocking else " nowait")
    if isinstance(s, A.PickRange):
        return f"{expr_str(s.target)} := pick {_sum(s.lo)}..{_sum(s.hi)}"
    if isinstance(s, A.PickPool):
        w = f" where {expr_str(s.where)}" if s.where is not None else ""
        return f"{expr_str(s.target)} := pick {s.pool}{w}"
    if isinstance(s, A.CallS):
        return f"{s.name}({', '.join(expr_str(a) for a in s.args)})"
    if isinstance(s, A.FreeS):
        return f"free {expr_str(s.obj)}"
    if isinstance(s, A.AwaitS):
        return f"await {expr_str(s.cond)}"
    if isinstance(s, A.AssertS):
        return f"assert {s.name}: {expr_str(s.cond)}"
    if isinstance(s, A.ReturnS):
        return "return" + (f" {expr_str(s.value)}" if s.value is not None else "")
    if isinstance(s, A.BreakS):
        return "break"
    if isinstance(s, A.ContinueS):
        return "continue"
    if isinstance(s, A.SkipS):
        return "skip"
    if isinstance(s, A.VarS):
        return f"var {s.name}: {type_str(s.type)}" + (f" = {expr_str(s.init)}" if s.init is not None else "")
    raise TypeError(s)


def stmt_label(s: A.Stmt) -> str:
    """A one-line rendering of any statement (compound ones abbreviated)."""
    if isinstance(s, A.SIMPLE_STMTS):
        return simple_str(s)
    if isinstance(s, A.AtomicS):
        return "atomic { " + "; ".join(stmt_label(x) for x in s.body) + " }"
    if isinstance(s, A.IfS):
        return f"if {expr_str(s.branches[0].cond)}"
    if isinstance(s, A.WhileS):
        return f"while {expr_str(s.cond)}"
    if isinstance(s, A.ForeachS):
        return f"foreach {s.var} in {expr_str(s.lst)}"
    if isinstance(s, A.LoopS):
        return "loop"
    if isinstance(s, A.ChooseS):
        return "choose"
    raise TypeError(s)


# ---------------------------------------------------------------- the formatter


@dataclass
class _Line:
    depth: int
    text: str
    origin: int          # source line the text comes from (0: none)
    blank_before: bool = False


class _Printer:
    def __init__(self) -> None:
        self.out: list[_Line] = []

    def emit(self, depth: int, text: str, origin: int, blank: bool = False) -> None:
        self.out.append(_Line(depth, text, origin, blank))

    def block(self, depth: int, head: str, body: tuple, origin: int, end: int) -> None:
        if not body:
            self.emit(depth, head + " {}", origin)
            return
        self.emit(depth, head + " {", origin)
        self.stmts(depth + 1, body)
        self.emit(depth, "}", end)

    def stmts(self, depth: int, body: tuple) -> None:
        for s in body:
            self.stmt(depth, s)

    def stmt(self, depth: int, s: A.Stmt, blank: bool = False) -> None:
        ln, end = s.span.line, s.span.end_line or s.span.line
        if isinstance(s, A.SIMPLE_STMTS):
            self.emit(depth, simple_str(s) + _ref(s.ref), ln, blank)
        elif isinstance(s, A.IfS):
            first = True
            for b in s.branches:
                head = f"if {expr_str(b.cond)}{_ref(b.ref)}"
                if first:
                    self.emit(depth, head + " {", ln, blank)
                else:
                    self.emit(depth, "} else " + head + " {", b.span.line)
                self.stmts(depth + 1, b.body)
                first = False
            if s.other is not None:
                self.emit(depth, "} else {", 0)
                self.stmts(depth + 1, s.other)
            self.emit(depth, "}", end)
        elif isinstance(s, A.WhileS):
            self._blk(depth, f"while {expr_str(s.cond)}{_ref(s.ref)}", s.body, ln, end, blank)
        elif isinstance(s, A.LoopS):
            self._blk(depth, f"loop{_ref(s.ref)}", s.body, ln, end, blank)
        elif isinstance(s, A.ForeachS):
            self._blk(depth, f"foreach {s.var} in {expr_str(s.lst)}{_ref(s.ref)}", s.body, ln, end, blank)
        elif isinstance(s, A.AtomicS):
            self._blk(depth, f"atomic{_ref(s.ref)}", s.body, ln, end, blank)
        elif isinstance(s, A.ChooseS):
            self.emit(depth, "choose {", ln, blank)
            for i, b in enumerate(s.branches):
                if i:
                    self.emit(depth, "} or {", 0)
                self.stmts(depth + 1, b)
            self.emit(depth, "}", end)
        else:
            raise TypeError(s)

    def _blk(self, depth: int, head: str, body: tuple, ln: int, end: int, blank: bool) -> None:
        self.emit(depth, head + " {", ln, blank)
        self.stmts(depth + 1, body)
        self.emit(depth, "}", end)

    def decl(self, d: A.Decl, blank: bool) -> None:
        ln, end = d.span.line, d.span.end_line or d.span.line
        e = lambda text, depth=0, origin=ln: self.emit(depth, text, origin, blank)  # noqa: E731
        if isinstance(d, A.SourceD):
            e(f"source {_q(d.file)}")
        elif isinstance(d, A.ImportD):
            e(f"import {_q(d.path)}")
        elif isinstance(d, A.ConstD):
            e(f"const {d.name} = {expr_str(d.value)}")
        elif isinstance(d, A.FixD):
            e(f"fix {d.name} = {expr_str(d.value)}" + (f" {_q(d.doc)}" if d.doc else ""))
        elif isinstance(d, A.TypeD):
            e(f"type {d.name} = {type_str(d.type)}")
        elif isinstance(d, A.EnumD):
            e(f"{'flags' if d.flags else 'enum'} {d.name} {{ {', '.join(d.members)} }}")
        elif isinstance(d, A.LockD):
            e(f"lock {d.name}: {type_str(d.type)}")
        elif isinstance(d, A.ChanD):
            e(f"chan {', '.join(d.names)}")
        elif isinstance(d, A.StructD):
            head = f"struct {d.name} [{expr_str(d.size)}]" + (f" refcount {d.refcount}" if d.refcount else "")
            if not d.fields:
                e(head + " {}")
                return
            e(head + " {")
            for f in d.fields:
                self.emit(1, _field(f.name, f.type, f.init, f.guarded_by), f.span.line)
            self.emit(0, "}", end)
        elif isinstance(d, A.VarD):
            e(("ghost " if d.ghost else "") + "var " + _field(d.name, d.type, d.init, d.guarded_by))
        elif isinstance(d, A.LockOrderD):
            e("lock_order " + " < ".join(_q(n) if q else n for n, q in d.classes))
        elif isinstance(d, A.AbstractD):
            rng = f"{d.lo}..{d.hi}" if d.hi != d.lo else f"{d.lo}"
            e(f"abstract {rng} {_q(d.reason)}")
        elif isinstance(d, A.ProcD):
            ps = ", ".join(f"{p.name}: {type_str(p.type)}" for p in d.params)
            ret = f" -> {type_str(d.ret)}" if d.ret is not None else ""
            self._top_block(f"proc {d.name}({ps}){ret}", d.body, ln, end, blank)
        elif isinstance(d, A.ThreadD):
            mods = ("unfair " if d.unfair else "") + ("env " if d.env else "")
            fam = f"[{d.index} in {_sum(d.lo)}..{_sum(d.hi)}]" if d.index else ""  # type: ignore[arg-type]
            cx = f" context {d.context}" if d.context else ""
            cx += f" new {expr_str(d.context_new)}" if d.context_new is not None else ""
            cx += f" dead {expr_str(d.context_dead)}" if d.context_dead is not None else ""
            self._top_block(f"{mods}thread {d.name}{fam}{cx}", d.body, ln, end, blank)
        elif isinstance(d, A.InitD):
            self._top_block("init", d.body, ln, end, blank)
        elif isinstance(d, A.InvariantD):
            e(f"{'lemma' if d.lemma else 'invariant'} {d.name}: {expr_str(d.expr)}")
        elif isinstance(d, A.PropertyD):
            e(f"property {d.name}: {expr_str(d.expr)}")
        else:
            raise TypeError(d)

    def _top_block(self, head: str, body: tuple, ln: int, end: int, blank: bool) -> None:
        if not body:
            self.emit(0, head + " {}", ln, blank)
            return
        self.emit(0, head + " {", ln, blank)
        self.stmts(1, body)
        self.emit(0, "}", end)


def _field(name: str, t: A.TypeA, init: A.Expr | None, guard: tuple[str, ...]) -> str:
    out = f"{name}: {type_str(t)}"
    if init is not None:
        out += f" = {expr_str(init)}"
    if guard:
        out += " guarded_by " + ", ".join(guard)
    return out


def format_module(m: A.Module) -> str:
    """The canonical text of a parsed module, comments included."""
    p = _Printer()
    for d in m.decls:
        p.decl(d, False)
    return _merge_comments(p.out, m.comments, m.blank_lines)


def _merge_comments(lines: list[_Line], comments: tuple[A.Comment, ...], blanks: frozenset[int]) -> str:
    whole = sorted((c for c in comments if c.whole_line), key=lambda c: c.line)
    trailing: dict[int, list[str]] = {}
    for c in comments:
        if not c.whole_line:
            trailing.setdefault(c.line, []).append(c.text)
    # An end-of-line comment goes on the last printed line from its source line.
    last_for: dict[int, int] = {}
    for i, ln in enumerate(lines):
        if ln.origin:
            last_for[ln.origin] = i
    extra: dict[int, str] = {}
    orphans: list[str] = []
    for line_no, texts in trailing.items():
        i = last_for.get(line_no)
        if i is None:
            orphans.extend(texts)
        else:
            extra[i] = " ".join(texts)
    out: list[tuple[str, str | None]] = []

    def put(text: str, origin: int, comment: str | None = None) -> None:
        # Keep one blank line where the source had one before this item.
        if origin and (origin - 1) in blanks and out and out[-1][0] != "":
            out.append(("", None))
        out.append((text, comment))

    ci = 0
    for i, ln in enumerate(lines):
        while ci < len(whole) and ln.origin and whole[ci].line < ln.origin:
            put(INDENT * ln.depth + whole[ci].text, whole[ci].line)
            ci += 1
        put(INDENT * ln.depth + ln.text, ln.origin, extra.get(i))
    for c in whole[ci:]:
        put(c.text, c.line)
    out.extend((o, None) for o in orphans)
    while out and out[-1][0] == "":
        out.pop()
    # End-of-line comments on consecutive lines line up (as gofmt does).
    text: list[str] = []
    i = 0
    while i < len(out):
        if out[i][1] is None:
            text.append(out[i][0])
            i += 1
            continue
        j = i
        while j < len(out) and out[j][1] is not None:
            j += 1
        width = max(len(out[k][0]) for k in range(i, j))
        text += [f"{out[k][0].ljust(width)}  {out[k][1]}" for k in range(i, j)]
        i = j
    return "\n".join(text) + "\n"
