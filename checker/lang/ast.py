"""The AST of a `.fk` file: frozen dataclasses; spans never take part in equality."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Union

from ..diagnostics import NO_SPAN, Span


def _span() -> Span:
    return field(default=NO_SPAN, compare=False)  # type: ignore[return-value]


class Op(str, enum.Enum):
    """Binary operators as written in the source (a superset of ir.BinOp)."""
    LEADSTO = "~>"
    IMPLIES = "=>"
    OR = "||"
    AND = "&&"
    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    IN = "in"
    NOTIN = "notin"
    INTER = "&"
    UNION = "|"
    DIFF = "&~"
    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"
    MOD = "%"


# Binding strength, higher binds tighter (used by the formatter for parentheses).
PRECEDENCE: dict[Op, int] = {
    Op.LEADSTO: 1, Op.IMPLIES: 3, Op.OR: 4, Op.AND: 5,
    Op.EQ: 6, Op.NE: 6, Op.LT: 6, Op.LE: 6, Op.GT: 6, Op.GE: 6, Op.IN: 6, Op.NOTIN: 6,
    Op.INTER: 7, Op.UNION: 7, Op.DIFF: 7, Op.ADD: 8, Op.SUB: 8, Op.MUL: 9, Op.DIV: 9, Op.MOD: 9,
}
COND_PREC = 2
UNARY_PREC = 10


class UOp(str, enum.Enum):
    NOT = "!"
    NEG = "-"


class QKind(str, enum.Enum):
    FORALL = "forall"
    EXISTS = "exists"
    COUNT = "count"


@dataclass(frozen=True)
class SrcRefA:
    file: str | None          # None: the file's `source`
    line: int
    span: Span = _span()

    def __str__(self) -> str:
        return f"@{self.file}:{self.line}" if self.file else f"@{self.line}"


# ------------------------------------------------------------------ expressions

@dataclass(frozen=True)
class IntLit:
    value: int
    span: Span = _span()


@dataclass(frozen=True)
class BoolLit:
    value: bool
    span: Span = _span()


@dataclass(frozen=True)
class NullLit:
    span: Span = _span()


@dataclass(frozen=True)
class SelfLit:
    span: Span = _span()


@dataclass(frozen=True)
class Name:
    id: str
    span: Span = _span()


@dataclass(frozen=True)
class SetLit:
    members: tuple[str, ...]
    span: Span = _span()


@dataclass(frozen=True)
class FieldAcc:
    obj: "Expr"
    field: str
    span: Span = _span()


@dataclass(frozen=True)
class Unary:
    op: UOp
    arg: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Binary:
    op: Op
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class CondE:
    cond: "Expr"
    then: "Expr"
    other: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class QuantE:
    kind: QKind
    var: str
    pool: str
    body: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Eventually:
    arg: "Expr"
    span: Span = _span()


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple["Expr", ...]
    span: Span = _span()


Expr = Union[IntLit, BoolLit, NullLit, SelfLit, Name, SetLit, FieldAcc, Unary, Binary, CondE,
             QuantE, Eventually, Call]

# ------------------------------------------------------------------------ types


@dataclass(frozen=True)
class TBool:
    span: Span = _span()


@dataclass(frozen=True)
class TRange:
    lo: Expr
    hi: Expr
    span: Span = _span()


@dataclass(frozen=True)
class TName:
    name: str
    span: Span = _span()


@dataclass(frozen=True)
class TSet:
    name: str
    span: Span = _span()


@dataclass(frozen=True)
class TRef:
    name: str
    span: Span = _span()


@dataclass(frozen=True)
class TList:
    name: str
    span: Span = _span()


@dataclass(frozen=True)
class TLock:
    kind: str                 # mutex | spin | sx
    recursive: bool = False
    cls: str | None = None
    span: Span = _span()


TypeA = Union[TBool, TRange, TName, TSet, TRef, TList, TLock]

# ------------------------------------------------------------------- statements


@dataclass(frozen=True)
class Assign:
    target: Expr              # Name or FieldAcc
    value: Expr
    ref: SrcRefA | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Racy:
    target: Expr
    value: Expr
    ref: SrcRefA | None = None
    span: Span = _span()


@dataclass(frozen=True)
class AllocS:
    target: Expr
    pool: str
    blocking: bool = True
    ref: SrcRefA | None = None
    span: Span = _span()


@dataclass(frozen=True)
class PickRange:
    target: Expr
    lo: Expr
    hi: Expr
    ref: SrcRefA | None = None
    span: Span = _span()


@dataclass(frozen=True)
class PickPool:
    target: Expr
    pool: str
    where: Expr | None = None
    ref: SrcRefA | None = None
    span: Span = _span()


@dataclass(frozen=True)
class CallS:
    """A call statement: a procedure or a built-in (lock, unlock, msleep, insert_head...)."""
    name: str
    args: tuple[Expr, ...]
    ref: SrcRefA | None = None
    span: Span = _span()


@dataclass(frozen=True)
class FreeS:
    obj: Expr
    ref: SrcRefA | None = None
    span: Span = _span()


@dataclass(frozen=True)
class AwaitS:
    cond: Expr
    ref: SrcRefA | None = None
    span: Span = _span()


@dataclass(frozen=True)
class AssertS:
    name: str
    cond: Expr
    ref: SrcRefA | None = None
    span: Span = _span()


@dataclass(frozen=True)
class ReturnS:
    value: Expr | None = None
    ref: SrcRefA | None = None
    span: Span = _span()


@dataclass(frozen=True)
class BreakS:
    ref: SrcRefA | None = None
    span: Span = _span()


@dataclass(frozen=True)
class ContinueS:
    ref: SrcRefA | None = None
    span: Span = _span()


@dataclass(frozen=True)
class SkipS:
    ref: SrcRefA | None = None
    span: Span = _span()


@dataclass(frozen=True)
class VarS:
    name: str
    type: TypeA
    init: Expr | None = None
    ref: SrcRefA | None = None
    span: Span = _span()


@dataclass(frozen=True)
class CondBlock:
    cond: Expr
    ref: SrcRefA | None
    body: tuple["Stmt", ...]
    span: Span = _span()


@dataclass(frozen=True)
class IfS:
    branches: tuple[CondBlock, ...]       # if, else if...
    other: tuple["Stmt", ...] | None = None
    span: Span = _span()


@dataclass(frozen=True)
class WhileS:
    cond: Expr
    ref: SrcRefA | None
    body: tuple["Stmt", ...]
    span: Span = _span()


@dataclass(frozen=True)
class LoopS:
    ref: SrcRefA | None
    body: tuple["Stmt", ...]
    span: Span = _span()


@dataclass(frozen=True)
class ForeachS:
    var: str
    lst: Expr
    ref: SrcRefA | None
    body: tuple["Stmt", ...]
    span: Span = _span()


@dataclass(frozen=True)
class ChooseS:
    branches: tuple[tuple["Stmt", ...], ...]
    span: Span = _span()


@dataclass(frozen=True)
class AtomicS:
    ref: SrcRefA | None
    body: tuple["Stmt", ...]
    span: Span = _span()


Stmt = Union[Assign, Racy, AllocS, PickRange, PickPool, CallS, FreeS, AwaitS, AssertS, ReturnS,
             BreakS, ContinueS, SkipS, VarS, IfS, WhileS, LoopS, ForeachS, ChooseS, AtomicS]
SIMPLE_STMTS = (Assign, Racy, AllocS, PickRange, PickPool, CallS, FreeS, AwaitS, AssertS,
                ReturnS, BreakS, ContinueS, SkipS, VarS)

# ----------------------------------------------------------------- declarations


@dataclass(frozen=True)
class SourceD:
    file: str
    span: Span = _span()


@dataclass(frozen=True)
class ImportD:
    path: str
    span: Span = _span()


@dataclass(frozen=True)
class ConstD:
    name: str
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class FixD:
    name: str
    value: Expr
    doc: str = ""
    span: Span = _span()


@dataclass(frozen=True)
class TypeD:
    name: str
    type: TypeA
    span: Span = _span()


@dataclass(frozen=True)
class EnumD:
    name: str
    members: tuple[str, ...]
    flags: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class LockD:
    name: str
    type: TLock
    span: Span = _span()


@dataclass(frozen=True)
class ChanD:
    names: tuple[str, ...]
    span: Span = _span()


@dataclass(frozen=True)
class FieldD:
    name: str
    type: TypeA
    init: Expr | None = None
    guarded_by: tuple[str, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class StructD:
    name: str
    size: Expr
    refcount: str | None
    fields: tuple[FieldD, ...]
    span: Span = _span()


@dataclass(frozen=True)
class VarD:
    name: str
    type: TypeA
    init: Expr | None = None
    guarded_by: tuple[str, ...] = ()
    span: Span = _span()
    ghost: bool = False       # model bookkeeping, not kernel state (races ignore it)


@dataclass(frozen=True)
class LockOrderD:
    classes: tuple[tuple[str, bool], ...]   # (name, quoted: a class string rather than a lock name)
    span: Span = _span()


@dataclass(frozen=True)
class AbstractD:
    lo: int
    hi: int
    reason: str
    span: Span = _span()


@dataclass(frozen=True)
class Param:
    name: str
    type: TypeA
    span: Span = _span()


@dataclass(frozen=True)
class ProcD:
    name: str
    params: tuple[Param, ...]
    ret: TypeA | None
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True)
class ThreadD:
    name: str
    index: str | None          # family index variable
    lo: Expr | None
    hi: Expr | None
    env: bool
    unfair: bool
    body: tuple[Stmt, ...]
    span: Span = _span()
    context: str | None = None  # `context p`: the local naming the process the thread runs (races)
    context_new: Expr | None = None   # `context p new E`: E(p) says p has not run yet (races)
    context_dead: Expr | None = None  # `context p dead D`: D(p) says p will not run again (races)


@dataclass(frozen=True)
class InitD:
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True)
class InvariantD:
    name: str
    expr: Expr
    lemma: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class PropertyD:
    name: str
    expr: Expr
    span: Span = _span()


Decl = Union[SourceD, ImportD, ConstD, FixD, TypeD, EnumD, LockD, ChanD, StructD, VarD,
             LockOrderD, AbstractD, ProcD, ThreadD, InitD, InvariantD, PropertyD]


@dataclass(frozen=True)
class Comment:
    text: str                 # including the leading //
    line: int
    col: int
    whole_line: bool          # nothing but whitespace before it on its line


@dataclass(frozen=True)
class Module:
    file: str
    decls: tuple[Decl, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False)
    blank_lines: frozenset[int] = field(default=frozenset(), compare=False)  # for fmt
    span: Span = _span()
