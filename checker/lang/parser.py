"""Text -> AST: the lark LALR parser, the newline postlexer, syntax errors."""

from __future__ import annotations

import sys
from functools import lru_cache
from importlib import resources
from typing import Any, Iterator

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ..diagnostics import Span, SpecError
from . import ast as A

# Nesting deeper than this is refused before lark's recursive tree walk can
# overflow the Python stack; real specs nest < 15 deep.
MAX_NESTING = 100
# Syntax trees deeper than this are refused: every later stage (checker, formatter,
# engines evaluating expressions) recurses over them. fork1.fk's deepest is ~25.
MAX_DEPTH = 150
# Integers (literals, folded constants, model overrides) fit a signed 64-bit word: every
# engine (state packing, z3 bit-vectors, JSON) handles that, and no huge value can make
# constant folding run for hours. Real specs stay below a few thousand.
MAX_INT = 2**63 - 1

# A newline is dropped after these tokens (the line continues) ...
_CONT_AFTER = {"LBRACE", "LPAR", "LSQB", "COMMA", "COLON", "EQUAL", "PLUS", "MINUS", "STAR", "SLASH",
               "PERCENT", "AMPERSAND", "VBAR", "__ANON_AMPTILDE", "BANG", "QMARK", "MORETHAN",
               "LESSTHAN"}
_CONT_AFTER_VALUES = {"&&", "||", "=>", "~>", "==", "!=", "<=", ">=", ":=", "..", "->", "&~", "in",
                      "notin", "where", "else", "or", "choose", "atomic", "loop", "if", "while",
                      "foreach", "racy", "alloc", "pick", "free", "await", "assert", "guarded_by",
                      "lock_order", "forall", "exists", "eventually", "refcount", "class"}
# ... and before these.
_CONT_BEFORE_VALUES = {"{", "}", "else", "or", "&&", "||", "=>", "~>", "?", ":", ")", "]", ",", ".",
                       "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "&", "|", "&~",
                       "..", "where", "in", "notin", "=", ":="}
_OPEN = {"(", "["}
_CLOSE = {")", "]"}



class _ContextDecl:
    """`context NAME [new EXPR] [dead EXPR]` of a thread declaration (between the parser's rules)."""

    def __init__(self, name: str, new: object, dead: object = None) -> None:
        self.name = name
        self.new = new
        self.dead = dead

class _PostLex:
    """Newlines and `;` are statement separators unless the line continues."""

    always_accept = ("_SEP",)

    def __init__(self, filename: str) -> None:
        self.filename = filename

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        depth = 0
        prefix_run = 0          # consecutive `!`/`-`: each nests one level deeper
        braces: list[Token] = []
        prev: Token | None = None
        pending: Token | None = None
        for tok in stream:
            if tok.type == "_SEP":
                if depth > 0 and tok.value != ";":
                    continue
                if prev is None or prev.value in ("{", ";") or (
                        tok.value != ";" and prev.type != "STRING" and prev.value in _CONT_AFTER_VALUES
                        | {"{", "(", "[", ",", ":", "=", "+", "-", "*", "/", "%", "&", "|", "!", "?", ">", "<"}):
                    continue
                if pending is None or tok.value == ";":
                    pending = tok
                continue
            if pending is not None:
                if not (tok.type != "STRING" and tok.value in _CONT_BEFORE_VALUES):
                    yield pending
                pending = None
            v = tok.value
            prefix_run = prefix_run + 1 if tok.type in ("BANG", "MINUS") else 0
            if prefix_run > MAX_NESTING:
                raise SpecError(f"nesting deeper than {MAX_NESTING} levels", _tok_span(self.filename, tok))
            if tok.type != "STRING":
                if v in _OPEN:
                    depth += 1
                elif v in _CLOSE:
                    depth = max(0, depth - 1)
                elif v == "{":
                    braces.append(tok)
                elif v == "}" and braces:
                    braces.pop()
                if depth + len(braces) > MAX_NESTING:
                    raise SpecError(f"nesting deeper than {MAX_NESTING} levels", _tok_span(self.filename, tok))
            if tok.type == "NAME" and v.startswith("__"):
                # every kind of name (threads, locals, fields, bound variables...): the lowering's
                # own temporaries (`__racy0`, `__ret`, `__chan__`) must never meet a spec's
                raise SpecError(f"names starting with `__` are reserved for forkcheck: `{v}`",
                                _tok_span(self.filename, tok))
            prev = tok
            yield tok
        self.open_braces = braces


def _tok_span(filename: str, tok: Token) -> Span:
    end_col = (tok.end_column or tok.column or 1) if tok.end_line == tok.line else 0
    return Span(filename, tok.line or 1, tok.column or 1, tok.line or 1, end_col)


@lru_cache(maxsize=1)
def _grammar() -> str:
    return resources.files("checker.lang").joinpath("fk.lark").read_text(encoding="utf-8")


class _Parser:
    """One lark parser per file name (the postlexer reports with it)."""

    def __init__(self, filename: str) -> None:
        self.comments: list[Token] = []
        self.postlex = _PostLex(filename)
        self.lark = Lark(_grammar(), start="module", parser="lalr", lexer="basic",
                         propagate_positions=True, maybe_placeholders=False,
                         postlex=self.postlex,
                         lexer_callbacks={"COMMENT": self.comments.append,
                                          "BLOCK_COMMENT": self.comments.append})


_cached: dict[str, _Parser] = {}


def _get_parser(filename: str) -> _Parser:
    # Building the LALR tables takes ~0.2s: share them, only the postlexer differs.
    base = _cached.get("")
    if base is None:
        base = _cached[""] = _Parser("")
    base.comments.clear()
    base.postlex.filename = filename
    return base


def _span(filename: str, meta: Any) -> Span:
    if getattr(meta, "empty", True):
        return Span(filename, 0, 0)
    return Span(filename, meta.line, meta.column, meta.end_line, meta.end_column)


def _int(digits: str, sp: Span) -> int:
    """A decimal literal, refused (not a crash) beyond MAX_INT."""
    digits = digits.lstrip("0") or "0"
    if len(digits) > len(str(MAX_INT)) or int(digits) > MAX_INT:
        raise SpecError(f"integer {digits[:20]}{'...' if len(digits) > 20 else ''} is too large "
                        f"(the limit is {MAX_INT}, 2^63-1)", sp)
    return int(digits)


def _ref(filename: str, tok: Token | None) -> A.SrcRefA | None:
    if tok is None:
        return None
    body = tok.value[1:]
    sp = _tok_span(filename, tok)
    if ":" in body:
        f, _, n = body.rpartition(":")
        return A.SrcRefA(f, _int(n, sp), sp)
    return A.SrcRefA(None, _int(body, sp), sp)


def _unquote(s: str) -> str:
    return bytes(s[1:-1], "utf-8").decode("unicode_escape")


_BIN = {"leadsto": A.Op.LEADSTO, "implies": A.Op.IMPLIES, "or_": A.Op.OR, "and_": A.Op.AND,
        "eq": A.Op.EQ, "ne": A.Op.NE, "lt": A.Op.LT, "le": A.Op.LE, "gt": A.Op.GT, "ge": A.Op.GE,
        "in_": A.Op.IN, "notin": A.Op.NOTIN, "inter": A.Op.INTER, "union": A.Op.UNION,
        "diff": A.Op.DIFF, "add": A.Op.ADD, "sub": A.Op.SUB, "mul": A.Op.MUL, "div": A.Op.DIV,
        "mod": A.Op.MOD}


class _ToAst(Transformer):
    def __init__(self, filename: str) -> None:
        super().__init__()
        self.f = filename
        for rule, op in _BIN.items():
            setattr(self, rule, self._binary(op))

    def _binary(self, op: A.Op) -> Any:
        @v_args(meta=True)
        def make(meta: Any, ch: list) -> A.Binary:
            return A.Binary(op, ch[0], ch[1], _span(self.f, meta))
        return make

    def sp(self, meta: Any) -> Span:
        return _span(self.f, meta)

    # -- declarations
    @v_args(meta=True)
    def module(self, meta: Any, ch: list) -> A.Module:
        return A.Module(self.f, tuple(ch), span=self.sp(meta))

    @v_args(meta=True)
    def source_decl(self, meta: Any, ch: list) -> A.SourceD:
        return A.SourceD(_unquote(ch[0]), self.sp(meta))

    @v_args(meta=True)
    def import_decl(self, meta: Any, ch: list) -> A.ImportD:
        return A.ImportD(_unquote(ch[0]), self.sp(meta))

    @v_args(meta=True)
    def const_decl(self, meta: Any, ch: list) -> A.ConstD:
        return A.ConstD(str(ch[0]), ch[1], self.sp(meta))

    @v_args(meta=True)
    def fix_decl(self, meta: Any, ch: list) -> A.FixD:
        return A.FixD(str(ch[0]), ch[1], _unquote(ch[2]) if len(ch) > 2 else "", self.sp(meta))

    @v_args(meta=True)
    def type_decl(self, meta: Any, ch: list) -> A.TypeD:
        return A.TypeD(str(ch[0]), ch[1], self.sp(meta))

    def names(self, ch: list) -> tuple[str, ...]:
        return tuple(str(c) for c in ch)

    @v_args(meta=True)
    def enum_decl(self, meta: Any, ch: list) -> A.EnumD:
        return A.EnumD(str(ch[0]), ch[1], False, self.sp(meta))

    @v_args(meta=True)
    def flags_decl(self, meta: Any, ch: list) -> A.EnumD:
        return A.EnumD(str(ch[0]), ch[1], True, self.sp(meta))

    @v_args(meta=True)
    def lock_decl(self, meta: Any, ch: list) -> A.LockD:
        return A.LockD(str(ch[0]), ch[1], self.sp(meta))

    @v_args(meta=True)
    def chan_decl(self, meta: Any, ch: list) -> A.ChanD:
        return A.ChanD(tuple(str(c) for c in ch), self.sp(meta))

    def refcount(self, ch: list) -> tuple[str, str]:
        return ("refcount", str(ch[0]))

    def initval(self, ch: list) -> tuple[str, Any]:
        return ("init", ch[0])

    def guard(self, ch: list) -> tuple[str, tuple[str, ...]]:
        return ("guard", tuple(str(c) for c in ch))

    @staticmethod
    def _opts(ch: list) -> dict[str, Any]:
        return {c[0]: c[1] for c in ch if isinstance(c, tuple)}

    @v_args(meta=True)
    def struct_decl(self, meta: Any, ch: list) -> A.StructD:
        o = self._opts(ch[2:])
        fields = tuple(c for c in ch[2:] if isinstance(c, A.FieldD))
        return A.StructD(str(ch[0]), ch[1], o.get("refcount"), fields, self.sp(meta))

    @v_args(meta=True)
    def field_decl(self, meta: Any, ch: list) -> A.FieldD:
        o = self._opts(ch[2:])
        return A.FieldD(str(ch[0]), ch[1], o.get("init"), o.get("guard", ()), self.sp(meta))

    @v_args(meta=True)
    def var_decl(self, meta: Any, ch: list) -> A.VarD:
        ghost = bool(ch) and isinstance(ch[0], Token) and ch[0].type == "GHOST"
        ch = ch[1:] if ghost else ch
        o = self._opts(ch[2:])
        return A.VarD(str(ch[0]), ch[1], o.get("init"), o.get("guard", ()), self.sp(meta), ghost)

    def lock_class(self, ch: list) -> tuple[str, bool]:
        t = ch[0]
        return (_unquote(t), True) if t.type == "STRING" else (str(t), False)

    @v_args(meta=True)
    def lock_order_decl(self, meta: Any, ch: list) -> A.LockOrderD:
        return A.LockOrderD(tuple(ch), self.sp(meta))

    @v_args(meta=True)
    def abstract_decl(self, meta: Any, ch: list) -> A.AbstractD:
        lo = _int(ch[0], _tok_span(self.f, ch[0]))
        hi = _int(ch[1], _tok_span(self.f, ch[1])) if len(ch) > 2 else lo
        return A.AbstractD(lo, hi, _unquote(ch[-1]), self.sp(meta))

    def params(self, ch: list) -> tuple[A.Param, ...]:
        return tuple(ch)

    @v_args(meta=True)
    def param(self, meta: Any, ch: list) -> A.Param:
        return A.Param(str(ch[0]), ch[1], self.sp(meta))

    def ret_type(self, ch: list) -> tuple[str, Any]:
        return ("ret", ch[0])

    @v_args(meta=True)
    def proc_decl(self, meta: Any, ch: list) -> A.ProcD:
        ch = ch[1:]  # the `proc` keyword token
        params: tuple[A.Param, ...] = ()
        ret = None
        for c in ch[1:-1]:
            if isinstance(c, tuple) and c and c[0] == "ret":
                ret = c[1]
            else:
                params = c
        return A.ProcD(str(ch[0]), params, ret, ch[-1], self.sp(meta))

    def family(self, ch: list) -> tuple[str, Any, Any]:
        return (str(ch[0]), ch[1], ch[2])

    def ctx_new(self, ch: list) -> tuple[str, Any]:
        return ("new", ch[0])

    def ctx_dead(self, ch: list) -> tuple[str, Any]:
        return ("dead", ch[0])

    def context(self, ch: list) -> "_ContextDecl":
        parts = dict(ch[1:])
        return _ContextDecl(str(ch[0]), parts.get("new"), parts.get("dead"))

    @v_args(meta=True)
    def thread_decl(self, meta: Any, ch: list) -> A.ThreadD:
        unfair = any(isinstance(c, Token) and c.type == "UNFAIR" for c in ch)
        env = any(isinstance(c, Token) and c.type == "ENV" for c in ch)
        rest = [c for c in ch if not (isinstance(c, Token) and c.type in ("UNFAIR", "ENV"))]
        cx = next((c for c in rest if isinstance(c, _ContextDecl)), None)
        rest = [c for c in rest if not isinstance(c, _ContextDecl)]
        name = str(rest[0])
        fam = rest[1] if len(rest) == 3 else None
        cname, cnew, cdead = (cx.name, cx.new, cx.dead) if cx else (None, None, None)
        if fam:
            return A.ThreadD(name, fam[0], fam[1], fam[2], env, unfair, rest[-1], self.sp(meta), cname, cnew, cdead)
        return A.ThreadD(name, None, None, None, env, unfair, rest[-1], self.sp(meta), cname, cnew, cdead)

    @v_args(meta=True)
    def init_decl(self, meta: Any, ch: list) -> A.InitD:
        return A.InitD(ch[0], self.sp(meta))

    @v_args(meta=True)
    def invariant_decl(self, meta: Any, ch: list) -> A.InvariantD:
        return A.InvariantD(str(ch[0]), ch[1], False, self.sp(meta))

    @v_args(meta=True)
    def lemma_decl(self, meta: Any, ch: list) -> A.InvariantD:
        return A.InvariantD(str(ch[0]), ch[1], True, self.sp(meta))

    @v_args(meta=True)
    def property_decl(self, meta: Any, ch: list) -> A.PropertyD:
        return A.PropertyD(str(ch[0]), ch[1], self.sp(meta))

    # -- types
    @v_args(meta=True)
    def t_bool(self, meta: Any, ch: list) -> A.TBool:
        return A.TBool(self.sp(meta))

    @v_args(meta=True)
    def t_range(self, meta: Any, ch: list) -> A.TRange:
        return A.TRange(ch[0], ch[1], self.sp(meta))

    @v_args(meta=True)
    def t_name(self, meta: Any, ch: list) -> A.TName:
        return A.TName(str(ch[0]), self.sp(meta))

    @v_args(meta=True)
    def t_set(self, meta: Any, ch: list) -> A.TSet:
        return A.TSet(str(ch[0]), self.sp(meta))

    @v_args(meta=True)
    def t_ref(self, meta: Any, ch: list) -> A.TRef:
        return A.TRef(str(ch[0]), self.sp(meta))

    @v_args(meta=True)
    def t_list(self, meta: Any, ch: list) -> A.TList:
        return A.TList(str(ch[0]), self.sp(meta))

    def type(self, ch: list) -> Any:
        return ch[0]

    def lock_opt(self, ch: list) -> tuple[str, Any]:
        if ch and isinstance(ch[0], Token) and ch[0].type == "RECURSIVE":
            return ("recursive", True)
        return ("class", _unquote(ch[0]))

    @v_args(meta=True)
    def lock_type(self, meta: Any, ch: list) -> A.TLock:
        o = self._opts(ch[1:])
        return A.TLock(str(ch[0]), bool(o.get("recursive")), o.get("class"), self.sp(meta))

    # -- statements
    def block(self, ch: list) -> tuple:
        return tuple(ch)

    def simple_stmt(self, ch: list) -> Any:
        s = ch[0]
        if len(ch) > 1:
            s = type(s)(**{**{k: getattr(s, k) for k in s.__dataclass_fields__}, "ref": _ref(self.f, ch[1])})
        return s

    @v_args(meta=True)
    def assign(self, meta: Any, ch: list) -> Any:
        tgt, rhs = ch
        sp = self.sp(meta)
        if isinstance(rhs, tuple) and rhs[0] == "alloc":
            return A.AllocS(tgt, rhs[1], rhs[2], None, sp)
        if isinstance(rhs, tuple) and rhs[0] == "pickr":
            return A.PickRange(tgt, rhs[1], rhs[2], None, sp)
        if isinstance(rhs, tuple) and rhs[0] == "pickp":
            return A.PickPool(tgt, rhs[1], rhs[2], None, sp)
        return A.Assign(tgt, rhs, None, sp)

    def alloc_rhs(self, ch: list) -> tuple:
        return ("alloc", str(ch[0]), len(ch) == 1)

    def pick_range(self, ch: list) -> tuple:
        return ("pickr", ch[0], ch[1])

    def pick_pool(self, ch: list) -> tuple:
        return ("pickp", str(ch[0]), ch[1] if len(ch) > 1 else None)

    @v_args(meta=True)
    def racy_stmt(self, meta: Any, ch: list) -> A.Racy:
        return A.Racy(ch[0], ch[1], None, self.sp(meta))

    def args(self, ch: list) -> tuple:
        return tuple(ch)

    @v_args(meta=True)
    def call_stmt(self, meta: Any, ch: list) -> A.CallS:
        return A.CallS(str(ch[0]), ch[1] if len(ch) > 1 else (), None, self.sp(meta))

    @v_args(meta=True)
    def lock_stmt(self, meta: Any, ch: list) -> A.CallS:
        return A.CallS("lock", ch[0] if ch else (), None, self.sp(meta))

    @v_args(meta=True)
    def free_stmt(self, meta: Any, ch: list) -> A.FreeS:
        return A.FreeS(ch[0], None, self.sp(meta))

    @v_args(meta=True)
    def await_stmt(self, meta: Any, ch: list) -> A.AwaitS:
        return A.AwaitS(ch[0], None, self.sp(meta))

    @v_args(meta=True)
    def assert_stmt(self, meta: Any, ch: list) -> A.AssertS:
        return A.AssertS(str(ch[0]), ch[1], None, self.sp(meta))

    @v_args(meta=True)
    def return_stmt(self, meta: Any, ch: list) -> A.ReturnS:
        return A.ReturnS(ch[0] if ch else None, None, self.sp(meta))

    @v_args(meta=True)
    def break_stmt(self, meta: Any, ch: list) -> A.BreakS:
        return A.BreakS(None, self.sp(meta))

    @v_args(meta=True)
    def continue_stmt(self, meta: Any, ch: list) -> A.ContinueS:
        return A.ContinueS(None, self.sp(meta))

    @v_args(meta=True)
    def skip_stmt(self, meta: Any, ch: list) -> A.SkipS:
        return A.SkipS(None, self.sp(meta))

    @v_args(meta=True)
    def var_stmt(self, meta: Any, ch: list) -> A.VarS:
        o = self._opts(ch[2:])
        return A.VarS(str(ch[0]), ch[1], o.get("init"), None, self.sp(meta))

    @v_args(meta=True)
    def cond_block(self, meta: Any, ch: list) -> A.CondBlock:
        ref = _ref(self.f, ch[1]) if len(ch) == 3 else None
        return A.CondBlock(ch[0], ref, ch[-1], self.sp(meta))

    def elif_block(self, ch: list) -> A.CondBlock:
        return ch[0]

    def else_block(self, ch: list) -> tuple[str, tuple]:
        return ("else", ch[0])

    @v_args(meta=True)
    def if_stmt(self, meta: Any, ch: list) -> A.IfS:
        other = None
        if isinstance(ch[-1], tuple) and ch[-1] and ch[-1][0] == "else":
            other = ch[-1][1]
            ch = ch[:-1]
        return A.IfS(tuple(ch), other, self.sp(meta))

    @v_args(meta=True)
    def while_stmt(self, meta: Any, ch: list) -> A.WhileS:
        ref = _ref(self.f, ch[1]) if len(ch) == 3 else None
        return A.WhileS(ch[0], ref, ch[-1], self.sp(meta))

    @v_args(meta=True)
    def loop_stmt(self, meta: Any, ch: list) -> A.LoopS:
        ref = _ref(self.f, ch[0]) if len(ch) == 2 else None
        return A.LoopS(ref, ch[-1], self.sp(meta))

    @v_args(meta=True)
    def foreach_stmt(self, meta: Any, ch: list) -> A.ForeachS:
        ref = _ref(self.f, ch[2]) if len(ch) == 4 else None
        return A.ForeachS(str(ch[0]), ch[1], ref, ch[-1], self.sp(meta))

    @v_args(meta=True)
    def choose_stmt(self, meta: Any, ch: list) -> A.ChooseS:
        return A.ChooseS(tuple(ch), self.sp(meta))

    @v_args(meta=True)
    def atomic_stmt(self, meta: Any, ch: list) -> A.AtomicS:
        ref = _ref(self.f, ch[0]) if len(ch) == 2 else None
        return A.AtomicS(ref, ch[-1], self.sp(meta))

    @v_args(meta=True)
    def lvalue(self, meta: Any, ch: list) -> Any:
        if len(ch) == 1:
            return A.Name(str(ch[0]), self.sp(meta))
        return A.FieldAcc(ch[0], str(ch[1]), self.sp(meta))

    # -- expressions
    @v_args(meta=True)
    def cond(self, meta: Any, ch: list) -> A.CondE:
        return A.CondE(ch[0], ch[1], ch[2], self.sp(meta))

    @v_args(meta=True)
    def not_(self, meta: Any, ch: list) -> A.Unary:
        return A.Unary(A.UOp.NOT, ch[0], self.sp(meta))

    @v_args(meta=True)
    def neg(self, meta: Any, ch: list) -> Any:
        if isinstance(ch[0], A.IntLit):
            return A.IntLit(-ch[0].value, self.sp(meta))
        return A.Unary(A.UOp.NEG, ch[0], self.sp(meta))

    @v_args(meta=True)
    def field(self, meta: Any, ch: list) -> A.FieldAcc:
        return A.FieldAcc(ch[0], str(ch[1]), self.sp(meta))

    @v_args(meta=True)
    def int_lit(self, meta: Any, ch: list) -> A.IntLit:
        return A.IntLit(_int(ch[0], self.sp(meta)), self.sp(meta))

    @v_args(meta=True)
    def true_lit(self, meta: Any, ch: list) -> A.BoolLit:
        return A.BoolLit(True, self.sp(meta))

    @v_args(meta=True)
    def false_lit(self, meta: Any, ch: list) -> A.BoolLit:
        return A.BoolLit(False, self.sp(meta))

    @v_args(meta=True)
    def null_lit(self, meta: Any, ch: list) -> A.NullLit:
        return A.NullLit(self.sp(meta))

    @v_args(meta=True)
    def self_lit(self, meta: Any, ch: list) -> A.SelfLit:
        return A.SelfLit(self.sp(meta))

    @v_args(meta=True)
    def var(self, meta: Any, ch: list) -> A.Name:
        return A.Name(str(ch[0]), self.sp(meta))

    @v_args(meta=True)
    def call(self, meta: Any, ch: list) -> A.Call:
        return A.Call(str(ch[0]), ch[1] if len(ch) > 1 else (), self.sp(meta))

    @v_args(meta=True)
    def set_lit(self, meta: Any, ch: list) -> A.SetLit:
        return A.SetLit(ch[0] if ch else (), self.sp(meta))

    @v_args(meta=True)
    def quant(self, meta: Any, ch: list) -> A.QuantE:
        return A.QuantE(A.QKind(str(ch[0])), str(ch[1]), str(ch[2]), ch[3], self.sp(meta))

    @v_args(meta=True)
    def count_quant(self, meta: Any, ch: list) -> A.QuantE:
        if str(ch[0]) != "count":
            t = ch[1]
            raise SpecError(f"unexpected name `{t}` after `{ch[0]}` (a quantifier is "
                            "`forall`, `exists` or `count`)", _tok_span(self.f, t))
        return A.QuantE(A.QKind.COUNT, str(ch[1]), str(ch[2]), ch[3], self.sp(meta))

    @v_args(meta=True)
    def eventually(self, meta: Any, ch: list) -> A.Eventually:
        return A.Eventually(ch[0], self.sp(meta))


# ---------------------------------------------------------------- syntax errors

# Common mistakes, named (lark's match_examples compares the parser state).
_EXAMPLES: dict[str, list[str]] = {
    "use `:=` to assign (`=` is only for declarations)": [
        "proc f() { x = 1 }", "proc f() { p.x = 1 }", "init { x = 1 }", "thread t { x = 1 }",
        "proc f() { racy x = 1 }"],
    "use `=` in a declaration (`==` compares)": [
        "const X == 1", "var x: bool == true", "fix F == false", "struct s [1] { f: bool == true }"],
    "no `++`, `--` or `+=` in forkcheck: write `x := x + 1` (or `racy x := x + 1` for a C "
    "read-modify-write on SMP)": [
        "proc f() { x++ }", "proc f() { x-- }", "proc f() { p.x++ }", "proc f() { racy x++ }",
        "proc f() { x += 1 }", "proc f() { x -= 1 }", "proc f() { x |= 1 }", "proc f() { p.x += 1 }"],
    "a source reference needs `@`: write `@270` (or `@kern_fork.c:270`)": [
        "proc f() { x := 1 270 }", "proc f() { skip 1 }", "proc f() { return 1 2 }",
        "proc f() { return 2 }\nproc g() { if x 3 { skip } }", "proc f() { while x 3 { skip } }"],
    "use `&&` and `||` for boolean and/or": [
        "invariant a: x and y", "invariant a: x or y", "proc f() { if x and y { skip } }",
        "proc f() { if x or y { skip } }", "proc f() { await x and y }", "proc f() { x := a and b }"],
    "no `for` loop: use `while c { }`, `loop { }` or `foreach x in L { }`": [
        "proc f() { for (;;) { } }", "proc f() { for x in y { } }"],
    "a statement needs its own line or a `;` before the next one": [
        "proc f() { x := 1 y := 2 }", "proc f() { skip skip }", "proc f() { x := 1 lock(m) }"],
}


_MATCH: dict[tuple, str] = {}


def _key(e: UnexpectedInput, exact: bool) -> tuple:
    tok = getattr(e, "token", None)
    st = getattr(e, "state", None)
    pos = getattr(st, "position", None)
    if tok is None:
        return (pos, "$END") if not exact else (pos, "$END", "")
    return (pos, tok.type, tok.value) if exact else (pos, tok.type)


def _friendly(parser: _Parser, e: UnexpectedInput) -> str | None:
    """Name a common mistake: like lark's match_examples, keyed on the LALR state on top of
    the stack and the token (lark compares whole stacks, which differ with nesting depth)."""
    if not _MATCH:
        for label, examples in _EXAMPLES.items():
            for ex in examples:
                try:
                    parser.lark.parse(ex)
                except UnexpectedInput as u:
                    _MATCH.setdefault(_key(u, True), label)
                    _MATCH.setdefault(_key(u, False), label)
                except SpecError:
                    pass
        parser.comments.clear()
    return _MATCH.get(_key(e, True)) or _MATCH.get(_key(e, False))


def _describe(tok: Token) -> str:
    if tok.type == "_SEP":
        return "end of line" if tok.value != ";" else "`;`"
    if tok.type == "$END":
        return "end of file"
    return f"`{tok.value}`"


def _expected(e: UnexpectedToken) -> str:
    """"; expected X, Y or Z" when the choice is short enough to help."""
    names = {"NAME": "a name", "INT": "a number", "STRING": "a string", "SRCREF": "`@LINE`",
             "_SEP": "end of line", "LOCKKIND": "`mutex`, `spin` or `sx`", "FORALL": "`forall`",
             "EXISTS": "`exists`"}
    out = set()
    for t in e.accepts or e.expected:
        if t in names:
            out.add(names[t])
        elif t in _TERMINAL_TEXT:
            out.add(f"`{_TERMINAL_TEXT[t]}`")
    if not out or len(out) > 8:
        return ""
    items = sorted(out)
    return "; expected " + ", ".join(items[:-1]) + (" or " if len(items) > 1 else "") + items[-1]


_TERMINAL_TEXT: dict[str, str] = {}


def _syntax_error(parser: _Parser, e: UnexpectedInput, filename: str, text: str) -> SpecError:
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream is not None and e.pos_in_stream < len(text) else "?"
        sp = Span(filename, e.line, e.column, e.line, e.column + 1)
        if ch == "@":
            return SpecError("a source reference is `@LINE` or `@FILE:LINE` (e.g. `@270`, "
                             "`@kern_fork.c:270`)", sp, text=text)
        if ch == '"':
            return SpecError("unterminated string", sp, text=text)
        shown = ch if ch.isprintable() else ascii(ch)   # a NUL or control character must be visible
        return SpecError(f"unexpected character `{shown}`", sp, text=text)
    assert isinstance(e, (UnexpectedToken, UnexpectedEOF))
    tok = getattr(e, "token", None)
    if tok is None or tok.type == "$END" or isinstance(e, UnexpectedEOF):
        braces = getattr(parser.postlex, "open_braces", [])
        if braces:
            b = braces[-1]
            return SpecError("unclosed `{`: end of file reached", _tok_span(filename, b), text=text)
        lines = text.splitlines() or [""]
        return SpecError("unexpected end of file", Span(filename, len(lines), len(lines[-1]) + 1),
                         text=text)
    sp = _tok_span(filename, tok)
    friendly = _friendly(parser, e)
    if friendly:
        return SpecError(friendly, sp, text=text)
    return SpecError(f"unexpected {_describe(tok)}{_expected(e)}", sp, text=text)  # type: ignore[arg-type]


# The last few parses, by (file name, text): `forkcheck verify` loads the same spec files for
# every model, and the AST is immutable (frozen dataclasses, tuples), so a hit is shared safely.
_PARSED: dict[tuple[str, str], A.Module] = {}
_PARSED_MAX = 16


def parse_module(text: str, filename: str) -> A.Module:
    """Parse one file's text into a Module (no imports followed, no type checks)."""
    key = (filename, text)
    hit = _PARSED.get(key)
    if hit is not None:
        return hit
    mod = _parse_module(text, filename)
    if len(_PARSED) >= _PARSED_MAX:
        del _PARSED[next(iter(_PARSED))]
    _PARSED[key] = mod
    return mod


def _parse_module(text: str, filename: str) -> A.Module:
    parser = _get_parser(filename)
    if not _TERMINAL_TEXT:
        for t in parser.lark.terminals:
            if t.pattern.type == "str":
                _TERMINAL_TEXT[t.name] = t.pattern.value
    try:
        tree = parser.lark.parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(parser, e, filename, text) from None
    except SpecError as e:
        e.text = text
        raise
    comments = _comments(parser.comments, text)
    limit = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(max(limit, 10000))
        mod = _ToAst(filename).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, SpecError):
            e.orig_exc.text = text
            raise e.orig_exc from None
        raise
    except RecursionError:
        raise SpecError("expression nested too deeply", Span(filename, 1, 1), text=text) from None
    finally:
        sys.setrecursionlimit(limit)
    assert isinstance(mod, A.Module)
    _check_depth(mod, text)
    blanks = frozenset(i + 1 for i, ln in enumerate(text.splitlines()) if not ln.strip())
    return A.Module(mod.file, mod.decls, comments, blanks, mod.span)


def _check_depth(mod: A.Module, text: str) -> None:
    """Refuse over-deep trees, iteratively (no recursion of our own)."""
    stack: list[tuple[object, int]] = [(d, 1) for d in mod.decls]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            sp = getattr(node, "span", None)
            raise SpecError(f"nested more than {MAX_DEPTH} levels deep (split the expression or statement)",
                            sp if sp is not None and sp.line > 0 else None, text=text)
        for f in getattr(node, "__dataclass_fields__", ()):
            v = getattr(node, f)
            if isinstance(v, tuple):
                stack.extend((x, depth + 1) for x in v if hasattr(x, "__dataclass_fields__"))
            elif hasattr(v, "__dataclass_fields__") and f != "span":
                stack.append((v, depth + 1))


def _comments(toks: list[Token], text: str) -> tuple[A.Comment, ...]:
    lines = text.splitlines()
    out = []
    for t in toks:
        line = lines[t.line - 1] if 0 < t.line <= len(lines) else ""
        whole = line[: t.column - 1].strip() == ""
        out.append(A.Comment(str(t.value).rstrip(), t.line, t.column, whole))
    return tuple(out)
