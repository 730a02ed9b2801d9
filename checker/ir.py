"""The IR: a frozen transition system that every engine consumes.

Data flows one way: text -> AST (checker.lang) -> this IR -> engines
(explore, prove, kernel replay, trace). Engines never see the AST.

Shape
-----
A `System` has global variables, bounded object pools (records), thread
`Code`s (control-flow graphs with procedures already inlined), `Thread`
instances that run a code, an init block, and properties.

One atomic step
---------------
A `Step` is an edge `src -> dst` of a code's control-flow graph with an
optional guard and a sequence of effects. A thread at pc `src` may take the
step when the guard holds and every effect is enabled (a lock acquired must
be available, an `await`ed condition true, a blocking `alloc` must find a
free slot); the effects then run in order, atomically, and the thread moves
to `dst`. Nothing else interleaves inside a step. The lowering makes each
simple statement one step, each branch/loop condition test one step (so a C
`if` reads shared state at one instant), `atomic { }` one step, and splits a
`racy` read-modify-write into a load step and a store step.

A thread with no step from its pc is *terminated* if the pc is its code's
`exit`, otherwise *blocked*. Every thread blocked or terminated, and at least
one blocked, is a deadlock.

Values (the semantic domain, shared by all engines and by ITF traces)
---------------------------------------------------------------------
- bool: Python bool; int range lo..hi: int (leaving the range is a runtime
  error, not a wrap); enum: member index (int); flag set: bitmask int, bit i
  is member i of the enum.
- ref to pool P: 0 is null, 1..P.size are the slots.
- list of refs: a tuple of refs, head first, no duplicates, no nulls.
- mutex / spin lock: (owner, depth): owner is a thread number or -1; depth is
  the recursion depth (0 when free).
- sx lock: (xowner, shared): xowner a thread number or -1, shared a bitmask
  of thread numbers holding it shared.
- a thread's wait channel (msleep): 0 when not sleeping, else a channel id
  given by `chan_id()`.

Runtime errors (dereferencing null or a freed object, division by zero,
leaving an int range, a list operation on a missing element, a non-blocking
alloc in a full pool) are violations of the built-in property `runtime`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property
from typing import Union

from .diagnostics import NO_SPAN, Span

# --------------------------------------------------------------------- types


@dataclass(frozen=True)
class BoolT:
    def __str__(self) -> str:
        return "bool"


@dataclass(frozen=True)
class IntT:
    lo: int
    hi: int

    def __str__(self) -> str:
        return f"{self.lo}..{self.hi}"


@dataclass(frozen=True)
class EnumT:
    name: str
    members: tuple[str, ...]

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class SetT:
    """A flag set over an enum (p_flag, RF* flags); value is a bitmask."""
    enum: EnumT

    def __str__(self) -> str:
        return f"set {self.enum.name}"


@dataclass(frozen=True)
class RefT:
    pool: str

    def __str__(self) -> str:
        return f"ref {self.pool}"


@dataclass(frozen=True)
class ListT:
    """A queue(3) list of refs into `pool`; capacity is the pool size."""
    pool: str

    def __str__(self) -> str:
        return f"list {self.pool}"


class LockKind(str, enum.Enum):
    MUTEX = "mutex"   # sleep mutex: owner-only unlock; contention blocks; msleep interlock
    SPIN = "spin"     # spin mutex: no sleeping while held
    SX = "sx"         # shared/exclusive, sleepable


@dataclass(frozen=True)
class LockT:
    kind: LockKind
    cls: str                  # lock class for order checking ("process lock")
    recursive: bool = False

    def __str__(self) -> str:
        return f"{self.kind.value} class {self.cls!r}"


Type = Union[BoolT, IntT, EnumT, SetT, RefT, ListT, LockT]

# ------------------------------------------------------------------- sources


@dataclass(frozen=True)
class SrcRef:
    """A seed source line cited by a step: `@kern_fork.c:270`."""
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


# --------------------------------------------------------------- expressions


class UnOp(str, enum.Enum):
    NOT = "!"
    NEG = "-"


class BinOp(str, enum.Enum):
    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"
    MOD = "%"
    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    AND = "&&"
    OR = "||"
    IMPLIES = "=>"
    UNION = "|"     # flag sets
    INTER = "&"
    DIFF = "&~"
    IN = "in"       # enum member in flag set


class QuantKind(str, enum.Enum):
    FORALL = "forall"
    EXISTS = "exists"
    COUNT = "count"


@dataclass(frozen=True)
class Const:
    value: int | bool
    type: Type
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class GlobalRead:
    name: str
    type: Type
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class LocalRead:
    name: str                 # unique within the thread's Code
    type: Type
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class BoundRead:
    """A quantifier- or leads-to-bound variable (a ref)."""
    name: str
    type: Type
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class SelfIndex:
    """The running thread's index in its family (0 for a lone thread)."""
    type: Type = IntT(0, 0)
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class SelfId:
    """The running thread's number in System.threads (lock owner identity)."""
    type: Type = IntT(0, 0)
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class FieldRead:
    obj: "Expr"               # a ref; null or freed is a runtime error
    pool: str
    field: str
    type: Type
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Unary:
    op: UnOp
    arg: "Expr"
    type: Type
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Binary:
    op: BinOp
    left: "Expr"
    right: "Expr"
    type: Type
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Ite:
    cond: "Expr"
    then: "Expr"
    other: "Expr"
    type: Type
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Quant:
    """forall/exists/count over the *allocated* objects of a pool."""
    kind: QuantKind
    var: str
    pool: str
    body: "Expr"
    type: Type
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Alive:
    """The ref is non-null and its slot is allocated."""
    obj: "Expr"
    type: Type = BoolT()
    span: Span = field(default=NO_SPAN, compare=False)


class ListOp(str, enum.Enum):
    FIRST = "first"       # first(L): head or null
    NEXT = "next"         # next(L, x): successor of x, null at the end or if x not in L
    CONTAINS = "contains" # x in L
    LEN = "len"
    EMPTY = "empty"


@dataclass(frozen=True)
class ListQuery:
    op: ListOp
    lst: "LValue"
    elem: "Expr | None"
    type: Type
    span: Span = field(default=NO_SPAN, compare=False)


class LockQ(str, enum.Enum):
    OWNED = "owned"            # held (any mode) by the running thread: mtx_owned
    HELD = "held"              # held by anyone
    XOWNED = "xowned"          # held exclusively by the running thread


@dataclass(frozen=True)
class LockQuery:
    q: LockQ
    lock: "LValue"
    type: Type = BoolT()
    span: Span = field(default=NO_SPAN, compare=False)


Expr = Union[Const, GlobalRead, LocalRead, BoundRead, SelfIndex, SelfId, FieldRead,
             Unary, Binary, Ite, Quant, Alive, ListQuery, LockQuery, "Woken"]

# ------------------------------------------------------------------ lvalues


@dataclass(frozen=True)
class GlobalVarRef:
    name: str
    type: Type
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class LocalVarRef:
    name: str
    type: Type
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class FieldRef:
    obj: Expr
    pool: str
    field: str
    type: Type
    span: Span = field(default=NO_SPAN, compare=False)


LValue = Union[GlobalVarRef, LocalVarRef, FieldRef]

# ------------------------------------------------------------------- effects


@dataclass(frozen=True)
class Assign:
    target: LValue
    value: Expr
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Alloc:
    """target := a fresh object of `pool`, the lowest free slot, fields at
    their declared initial values. `blocking` (M_WAITOK, zalloc): the step is
    disabled while the pool is full; otherwise a full pool is a runtime error.
    A blocking alloc counts as a sleep for the no-sleep-with-spin-lock rule."""
    target: LValue
    pool: str
    blocking: bool = True
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Free:
    obj: Expr
    span: Span = field(default=NO_SPAN, compare=False)


class ListEdit(str, enum.Enum):
    INSERT_HEAD = "insert_head"
    INSERT_TAIL = "insert_tail"
    INSERT_AFTER = "insert_after"   # LIST_INSERT_AFTER(after, elem)
    REMOVE = "remove"
    CLEAR = "clear"                 # LIST_INIT


@dataclass(frozen=True)
class ListUpdate:
    op: ListEdit
    lst: LValue
    elem: Expr | None = None
    after: Expr | None = None
    span: Span = field(default=NO_SPAN, compare=False)


class LockMode(str, enum.Enum):
    EXCLUSIVE = "x"
    SHARED = "s"


@dataclass(frozen=True)
class Acquire:
    """Enabled when the lock is available to this thread in `mode`.
    Recursion on a non-recursive mutex, or acquiring a sleepable lock with a
    spin lock held, is a `witness` violation (checked, not blocked)."""
    lock: LValue
    mode: LockMode = LockMode.EXCLUSIVE
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Release:
    """Releasing a lock not held by this thread is a `witness` violation."""
    lock: LValue
    mode: LockMode = LockMode.EXCLUSIVE
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Upgrade:
    """sx_try_upgrade semantics are not modelled; sx_upgrade blocks. Upgrading
    while other threads hold the lock shared is a `witness` violation."""
    lock: LValue
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Sleep:
    """First half of msleep(chan, interlock): release the interlock (if any)
    and set this thread's wait channel. The second half is a step whose
    guard is `Woken()` and whose effect re-acquires the interlock. Sleeping
    with a spin lock held is a `witness` violation."""
    chan: Expr
    interlock: LValue | None
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Wakeup:
    """Clear the wait channel of every thread sleeping on `chan` (one=True:
    only the lowest-numbered one, wakeup_one)."""
    chan: Expr
    one: bool = False
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Woken:
    """Guard-only expression: this thread's wait channel is clear."""
    type: Type = BoolT()
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Assert:
    """A named `assert`: a violation of property `name` when false."""
    cond: Expr
    name: str
    span: Span = field(default=NO_SPAN, compare=False)


class LockAssertKind(str, enum.Enum):
    OWNED = "MA_OWNED"
    NOTOWNED = "MA_NOTOWNED"


@dataclass(frozen=True)
class LockAssert:
    """mtx_assert: a `witness` violation when it does not hold."""
    lock: LValue
    kind: LockAssertKind
    span: Span = field(default=NO_SPAN, compare=False)


Effect = Union[Assign, Alloc, Free, ListUpdate, Acquire, Release, Upgrade, Sleep,
               Wakeup, Assert, LockAssert]


def chan_id(pool_index: int, ref: int, pool_sizes: tuple[int, ...]) -> int:
    """Channel id of a ref: distinct per (pool, slot), never 0.

    Global channels (`chan` declarations) are encoded as refs into the
    pseudo-pool `__chan__`, which the lowering appends last.
    """
    base = sum(pool_sizes[:pool_index])
    return base + ref


# --------------------------------------------------------------------- steps


class StepKind(str, enum.Enum):
    ASSIGN = "assign"
    LOAD = "load"          # first half of a racy read-modify-write
    STORE = "store"        # second half
    COND = "cond"          # a branch or loop test (guard only)
    AWAIT = "await"
    LOCK = "lock"
    UNLOCK = "unlock"
    SLEEP = "sleep"
    WAKE = "wake"          # second half of msleep: woken, re-acquire interlock
    WAKEUP = "wakeup"
    ALLOC = "alloc"
    FREE = "free"
    LIST = "list"
    CALL = "call"          # binds parameters
    RETURN = "return"      # assigns the caller's destination, resets callee locals
    ASSERT = "assert"
    ATOMIC = "atomic"
    SKIP = "skip"


@dataclass(frozen=True)
class Loc:
    """A static shared location: a global, or a field of a pool (any slot).
    Used for partial-order reduction (independence) and race reporting.

    Pseudo-locations, whose names start with `#`, are not program data and
    are never reported as races: `S.#alloc` (pool S's allocation state, read
    and written by alloc/free) and `#wchan` (the wait channels, touched by
    sleep, wake and wakeup). They exist so that POR never treats such steps
    as independent."""
    pool: str | None
    name: str

    def __str__(self) -> str:
        return self.name if self.pool is None else f"{self.pool}.{self.name}"


@dataclass(frozen=True)
class Step:
    id: int                         # unique over the System; index into System.steps
    code: str                       # owning Code
    src: int                        # pc before
    dst: int                        # pc after
    guard: Expr | None
    effects: tuple[Effect, ...]
    kind: StepKind
    label: str                      # one line, in the spec's own terms: "nprocs := nprocs + 1 [load]"
    ref: SrcRef | None              # the seed line, when the spec cites one
    frames: tuple[str, ...]         # inlined call stack, outermost first: ("cpu", "fork1")
    reads: frozenset[Loc]           # shared locations read (over-approximation)
    writes: frozenset[Loc]          # shared locations written (over-approximation)
    locks: frozenset[str]           # lock classes acquired/released/slept on by this step
    span: Span = field(default=NO_SPAN, compare=False)

    @property
    def is_local(self) -> bool:
        """Touches no shared state and no lock: independent of every other thread's step."""
        return not self.reads and not self.writes and not self.locks and not any(
            isinstance(e, (Sleep, Wakeup, Alloc, Free)) for e in self.effects) and not isinstance(
            self.guard, Woken)


@dataclass(frozen=True)
class LocalVar:
    name: str                       # unique within its Code ("fork1#2.trypid")
    type: Type
    init: object                    # value (see module docstring)
    display: str                    # the name the spec uses ("trypid")
    frame: str                      # procedure it belongs to


@dataclass(frozen=True)
class Code:
    """A thread body: procedures inlined, pcs 0..npcs-1, `exit` is terminal."""
    name: str
    locals: tuple[LocalVar, ...]
    npcs: int
    entry: int
    exit: int
    steps: tuple[Step, ...]          # steps of this code (also in System.steps)
    pc_labels: tuple[str, ...] = ()  # optional: human name of each pc (statement about to run)

    @cached_property
    def steps_from(self) -> tuple[tuple[Step, ...], ...]:
        out: list[list[Step]] = [[] for _ in range(self.npcs)]
        for s in self.steps:
            out[s.src].append(s)
        return tuple(tuple(x) for x in out)


@dataclass(frozen=True)
class Thread:
    name: str                        # "cpu[0]", "swapper"
    code: str
    family: str | None               # "cpu" for cpu[i]; None for a lone thread
    index: int                       # index within the family (0 for lone)
    environment: bool = False        # an environment thread (exit/wait, swapper...)
    fair: bool = True                # weak fairness applies to it
    context: str | None = None       # `context p`: the LocalVar (a ref) naming the object it runs for
    context_new: Expr | None = None  # `context p new E`: E with p a BoundRead (the object has not run yet)
    context_dead: Expr | None = None  # `context p dead D`: D likewise (the object will not run again)


# ------------------------------------------------------------ declarations


@dataclass(frozen=True)
class Constant:
    name: str
    value: int | bool
    is_fix: bool = False             # a fix toggle (boolean constant a model sets)
    doc: str = ""
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class GlobalVar:
    name: str
    type: Type
    init: object
    guarded_by: tuple[str, ...] = ()  # names of global locks; empty = unguarded
    doc: str = ""
    span: Span = field(default=NO_SPAN, compare=False)
    ghost: bool = False               # model bookkeeping (`ghost var`): the race checks ignore it


@dataclass(frozen=True)
class Field:
    name: str
    type: Type
    init: object                     # value on alloc
    guarded_by: tuple[str, ...] = () # lock field names of the same record, or global lock names
    doc: str = ""
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Pool:
    name: str                        # the record type and its pool ("proc")
    size: int
    fields: tuple[Field, ...]
    refcount_field: str | None = None  # a refcounted object's count field
    symmetric: bool = True           # slots are interchangeable (symmetry reduction may permute them)
    span: Span = field(default=NO_SPAN, compare=False)

    def get_field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


@dataclass(frozen=True)
class Invariant:
    name: str
    expr: Expr
    span: Span = field(default=NO_SPAN, compare=False)
    lemma: bool = False              # an auxiliary invariant the prover may use to strengthen others


@dataclass(frozen=True)
class LeadsTo:
    """forall binders: p ~> q, under weak fairness of every fair thread.
    `eventually q` has p = true and `eventually` set: it is an obligation of
    the initial state only, while `true ~> q` is one of every reachable state."""
    name: str
    binders: tuple[tuple[str, str], ...]   # (var, pool); bound over slots 1..size
    p: Expr
    q: Expr
    span: Span = field(default=NO_SPAN, compare=False)
    eventually: bool = False


@dataclass(frozen=True)
class LockOrder:
    """Declared order between lock classes: `first` may be held while taking `second`."""
    first: str
    second: str
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Abstracted:
    """Seed lines deliberately not modelled as steps, and why."""
    lo: int
    hi: int
    reason: str
    span: Span = field(default=NO_SPAN, compare=False)


BUILTIN_PROPERTIES = {
    "deadlock": "deadlock",       # some thread blocked, none can move
    "witness": "witness",         # lock rules: unlock not held, recursion, sleep with spin, mtx_assert
    "lock_order": "lock_order",   # cycles in the lock-order graph
    "races": "race",              # lockset (Eraser) and guarded_by
    "runtime": "runtime",         # null deref, div by zero, range, full pool
}


@dataclass(frozen=True)
class System:
    name: str
    spec_file: str
    source_file: str                 # the seed file `@270` refers to ("kern_fork.c")
    constants: tuple[Constant, ...]
    enums: tuple[EnumT, ...]
    globals: tuple[GlobalVar, ...]
    pools: tuple[Pool, ...]
    codes: tuple[Code, ...]
    threads: tuple[Thread, ...]
    init: tuple[Effect, ...]         # run once, in order, by thread -1 before any step
    invariants: tuple[Invariant, ...]
    leadsto: tuple[LeadsTo, ...]
    asserts: tuple[str, ...]         # names of code assertions
    lock_orders: tuple[LockOrder, ...]
    abstracted: tuple[Abstracted, ...]
    chans: tuple[str, ...] = ()      # global wait channels (`chan` declarations)

    @cached_property
    def steps(self) -> tuple[Step, ...]:
        out = sorted((s for c in self.codes for s in c.steps), key=lambda s: s.id)
        assert [s.id for s in out] == list(range(len(out))), "step ids must be 0..n-1"
        return tuple(out)

    @cached_property
    def constant(self) -> dict[str, int | bool]:
        return {c.name: c.value for c in self.constants}

    @cached_property
    def global_var(self) -> dict[str, GlobalVar]:
        return {g.name: g for g in self.globals}

    @cached_property
    def pool(self) -> dict[str, Pool]:
        return {p.name: p for p in self.pools}

    @cached_property
    def code(self) -> dict[str, Code]:
        return {c.name: c for c in self.codes}

    @cached_property
    def property_names(self) -> dict[str, str]:
        """Every property a model file may name, with its kind."""
        out = dict(BUILTIN_PROPERTIES)
        out.update({i.name: "invariant" for i in self.invariants})
        out.update({l.name: "leadsto" for l in self.leadsto})
        out.update({a: "assert" for a in self.asserts})
        return out

    def families(self) -> dict[str, tuple[Thread, ...]]:
        fam: dict[str, list[Thread]] = {}
        for t in self.threads:
            if t.family is not None:
                fam.setdefault(t.family, []).append(t)
        return {k: tuple(v) for k, v in fam.items()}
