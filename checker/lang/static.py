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
