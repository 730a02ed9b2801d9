"""Checks on procedure and thread bodies that need the statement order.

- unlocking a lock that is evidently not held (straight-line code),
- locking a non-recursive lock that is evidently held,
- a value-returning procedure that can reach its end without `return`,
- `break`/`continue` outside a loop.
"""

from __future__ import annotations

import enum

from .. import ir
from ..diagnostics import Note, Span
from . import ast as A
from .elab import Symbols, err
from .fmt import expr_str


class _H(enum.Enum):
    HELD = "held"
    FREE = "free"


def _names(e: A.Expr) -> set[str]:
    if isinstance(e, A.Name):
        return {e.id}
    if isinstance(e, A.FieldAcc):
        return _names(e.obj)
    return set()


class _LockFlow:
    """Known lock states along straight-line code; anything else forgets."""

    def __init__(self, syms: Symbols, start_free: bool) -> None:
        self.s = syms
        self.state: dict[str, tuple[_H, Span]] = {}
        self.start_free = start_free
        self.any_taken = False      # no lock taken yet: a thread then holds none at all
        self.depth: dict[str, int] = {}   # known recursion depth of recursive locks

    def _recursive(self, key: str) -> bool:
        g = self.s.globals.get(key)
        return g is not None and isinstance(g.type, ir.LockT) and g.type.recursive

    def _is_global_lock(self, key: str) -> bool:
        g = self.s.globals.get(key)
        return g is not None and isinstance(g.type, ir.LockT)

    def get(self, key: str) -> tuple[_H, Span] | None:
        if key in self.state:
            return self.state[key]
        if self.start_free and (self._is_global_lock(key) or not self.any_taken):
            return (_H.FREE, Span("<start>", 0, 0))
        return None

    def forget_all(self) -> None:
        self.state.clear()
        self.depth.clear()
        self.start_free = False

    def forget_var(self, name: str) -> None:
        for k in list(self.state):
            if k == name or k.startswith(name + "."):
                del self.state[k]
                self.depth.pop(k, None)

    def body(self, stmts: tuple) -> None:
        for s in stmts:
            self.stmt(s)

    def stmt(self, s: A.Stmt) -> None:
        if isinstance(s, A.CallS) and s.name in ("lock", "unlock", "slock", "sunlock", "msleep") and s.args:
            arg = s.args[0] if s.name != "msleep" else (s.args[1] if len(s.args) == 2 else None)
            if arg is None:
                return
            key = expr_str(arg)
            known = self.get(key)
            if s.name in ("unlock", "sunlock", "msleep") and known and known[0] is _H.FREE:
                notes = [Note(known[1], "released here")] if known[1].line > 0 else []
                what = "sleeps with interlock" if s.name == "msleep" else "unlocks"
                raise err(f"this {what} `{key}`, which is not held here", s.span, notes)
            if s.name == "lock" and known and known[0] is _H.HELD and not self._recursive(key) \
                    and self._is_global_lock(key):
                raise err(f"`{key}` is already held here (not a recursive lock)", s.span,
                          [Note(known[1], "acquired here")])
            if self._recursive(key):
                # a recursive lock: count acquisitions while the depth is known
                self.any_taken = True
                if s.name == "lock":
                    if known and known[0] is _H.FREE:
                        self.depth[key] = 1
                    elif key in self.depth:
                        self.depth[key] += 1
                    else:
                        return
                    self.state[key] = (_H.HELD, s.span)
                elif key in self.depth:
                    self.depth[key] -= 1
                    if self.depth[key] == 0:
                        del self.depth[key]
                        self.state[key] = (_H.FREE, s.span)
                else:
                    self.state.pop(key, None)
                return
            if s.name in ("lock", "slock", "msleep"):
                self.state[key] = (_H.HELD, s.span)
                self.any_taken = True
            else:
                self.state[key] = (_H.FREE, s.span)
            return
        if isinstance(s, A.CallS):
            if s.name in self.s.procs:
                self.forget_all()
            return
        if isinstance(s, (A.Assign, A.Racy, A.AllocS, A.PickRange, A.PickPool)):
            for n in _names(s.target):
                self.forget_var(n)
            if isinstance(s, A.Assign) and isinstance(s.value, A.Call) and s.value.name in self.s.procs:
                self.forget_all()
            return
        if isinstance(s, (A.ReturnS, A.BreakS, A.ContinueS)):
            self.forget_all()  # what follows is reached from elsewhere
            return
        if isinstance(s, A.SIMPLE_STMTS):
            return
        # compound: check inside with the current knowledge, forget after
        import copy
        for body in _bodies(s):
            inner = copy.copy(self)
            inner.state = dict(self.state)
            inner.depth = dict(self.depth)
            if isinstance(s, (A.WhileS, A.LoopS, A.ForeachS)):
                inner.forget_all()  # the body also runs after itself
            inner.body(body)
        self.forget_all()


def _bodies(s: A.Stmt) -> list[tuple]:
    if isinstance(s, A.IfS):
        return [b.body for b in s.branches] + ([s.other] if s.other else [])
    if isinstance(s, (A.WhileS, A.LoopS, A.ForeachS, A.AtomicS)):
        return [s.body]
    if isinstance(s, A.ChooseS):
        return list(s.branches)
    return []


def completes(body: tuple) -> bool:
    """Whether control can fall off the end of `body` (Java-style reachability)."""
    for s in body:
        if not _completes(s):
            return False
    return True


def _completes(s: A.Stmt) -> bool:
    if isinstance(s, (A.ReturnS, A.BreakS, A.ContinueS)):
        return False
    if isinstance(s, A.IfS):
        if s.other is None:
            return True
        return any(completes(b.body) for b in s.branches) or completes(s.other)
    if isinstance(s, A.ChooseS):
        return any(completes(b) for b in s.branches)
    if isinstance(s, A.LoopS):
        return _has_break(s.body)
    if isinstance(s, A.WhileS):
        return not (isinstance(s.cond, A.BoolLit) and s.cond.value) or _has_break(s.body)
    return True


def _has_break(body: tuple) -> bool:
    for s in body:
        if isinstance(s, A.BreakS):
            return True
        if isinstance(s, A.IfS):
            if any(_has_break(b.body) for b in s.branches) or (s.other and _has_break(s.other)):
                return True
        elif isinstance(s, A.ChooseS):
            if any(_has_break(b) for b in s.branches):
                return True
        elif isinstance(s, A.AtomicS):
            if _has_break(s.body):
                return True
    return False


def check_module_statics(decls: list, syms: Symbols) -> None:
    for d in decls:
        if isinstance(d, A.ProcD):
            _LockFlow(syms, start_free=False).body(d.body)
            if d.ret is not None and completes(d.body):
                end = Span(d.span.file, d.span.end_line, max(1, d.span.end_col - 1))
                raise err(f"`{d.name}` returns a value but can reach its end without `return`", end,
                          [Note(d.span, "declared here")])
        elif isinstance(d, A.ThreadD):
            _LockFlow(syms, start_free=True).body(d.body)


# ---------------------------------------------------------------- ghosts
# A `ghost var` is model bookkeeping (a call budget, a count for invariants): the race
# checks ignore its accesses. That is sound only if no kernel value depends on a ghost, so
# a ghost may be read only where it cannot change kernel state: on the right of an
# assignment to a ghost, in an `await` condition, in a `pick ... where` filter, in an
# `assert` and in properties. A guard or filter only removes behaviours (every run of the
# spec is a run of the same spec with those ghost tests read as true), so what the race
# checks see is a subset of the runs, as with any other bound.

_GHOST_OK = ("may be read only on the right of an assignment to a ghost, in `await` conditions, "
             "`pick ... where` filters, asserts and properties")


def _ghost_read(e: A.Expr | None, ghosts: set[str], shadow: frozenset[str]) -> A.Name | None:
    """The first ghost that `e` reads (a Name not hidden by a local, parameter or bound variable)."""
    if e is None:
        return None
    if isinstance(e, A.Name):
        return e if e.id in ghosts and e.id not in shadow else None
    if isinstance(e, A.FieldAcc):
        return _ghost_read(e.obj, ghosts, shadow)
    if isinstance(e, A.Unary):
        return _ghost_read(e.arg, ghosts, shadow)
    if isinstance(e, A.Binary):
        return _ghost_read(e.left, ghosts, shadow) or _ghost_read(e.right, ghosts, shadow)
    if isinstance(e, A.CondE):
        return (_ghost_read(e.cond, ghosts, shadow) or _ghost_read(e.then, ghosts, shadow)
                or _ghost_read(e.other, ghosts, shadow))
    if isinstance(e, A.QuantE):
        return _ghost_read(e.body, ghosts, shadow | {e.var})
    if isinstance(e, A.Eventually):
        return _ghost_read(e.arg, ghosts, shadow)
    if isinstance(e, A.Call):
        for a in e.args:
            hit = _ghost_read(a, ghosts, shadow)
            if hit is not None:
                return hit
    return None


def _local_names(body: tuple) -> set[str]:
    out: set[str] = set()
    for s in body:
        if isinstance(s, A.VarS):
            out.add(s.name)
        elif isinstance(s, A.ForeachS):
            out.add(s.var)
        for b in _bodies(s):
            out |= _local_names(b)
    return out


def _ghost_stmts(body: tuple, ghosts: set[str], shadow: frozenset[str], procs: set[str]) -> None:
    def bad(hit: A.Name | None, what: str) -> None:
        if hit is not None:
            raise err(f"ghost `{hit.id}` read {what}: a ghost is model bookkeeping and {_GHOST_OK}, "
                      "so that no kernel state depends on it (the race checks ignore ghosts)", hit.span)

    def target_is_ghost(t: A.Expr) -> bool:
        return isinstance(t, A.Name) and t.id in ghosts and t.id not in shadow

    for s in body:
        if isinstance(s, (A.Assign, A.Racy)):
            if not isinstance(s.target, A.Name):
                bad(_ghost_read(s.target, ghosts, shadow), "to reach an assigned object")
            if isinstance(s.value, A.Call) and s.value.name in procs:
                bad(_ghost_read(s.value, ghosts, shadow), f"as an argument of `{s.value.name}`")
            elif not target_is_ghost(s.target):
                bad(_ghost_read(s.value, ghosts, shadow), "in a value assigned to kernel state")
        elif isinstance(s, (A.AllocS, A.PickPool)):
            bad(_ghost_read(s.target, ghosts, shadow), "in an assigned place")
        elif isinstance(s, A.PickRange):
            if not target_is_ghost(s.target):
                bad(_ghost_read(s.target, ghosts, shadow) or _ghost_read(s.lo, ghosts, shadow)
                    or _ghost_read(s.hi, ghosts, shadow), "in a range picked for kernel state")
        elif isinstance(s, A.CallS):
            for a in s.args:
                bad(_ghost_read(a, ghosts, shadow), f"as an argument of `{s.name}`")
        elif isinstance(s, A.FreeS):
            bad(_ghost_read(s.obj, ghosts, shadow), "in `free`")
        elif isinstance(s, A.ReturnS):
            bad(_ghost_read(s.value, ghosts, shadow), "in a returned value")
        elif isinstance(s, A.IfS):
            for b in s.branches:
                bad(_ghost_read(b.cond, ghosts, shadow), "in an `if` condition")
        elif isinstance(s, A.WhileS):
            bad(_ghost_read(s.cond, ghosts, shadow), "in a `while` condition")
        elif isinstance(s, A.ForeachS):
            bad(_ghost_read(s.lst, ghosts, shadow), "in a `foreach` list")
        for b in _bodies(s):
            _ghost_stmts(b, ghosts, shadow, procs)


def check_ghost_reads(decls: list, syms: Symbols) -> None:
    """Reject a ghost read where it could change kernel state (see above)."""
    ghosts = {n for n, g in syms.globals.items() if g.ghost}
    if not ghosts:
        return
    procs = set(syms.procs)
    for d in decls:
        if isinstance(d, A.ProcD):
            shadow = frozenset({p.name for p in d.params} | _local_names(d.body))
            _ghost_stmts(d.body, ghosts, shadow, procs)
        elif isinstance(d, A.ThreadD):
            shadow = frozenset(({d.index} if d.index else set()) | _local_names(d.body))
            _ghost_stmts(d.body, ghosts, shadow, procs)
        elif isinstance(d, A.InitD):
            _ghost_stmts(d.body, ghosts, frozenset(_local_names(d.body)), procs)
