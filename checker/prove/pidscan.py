"""Unbounded proofs about fork1's pid scan (seed kern_fork.c lines 303-380).

The scan is modelled exactly as the seed, as a small control-flow graph whose
locations are the program points of the C code:

    ENTRY   trypid = lastpid + 1; RFHIGHPID floor / randompid addend   (311-319)
    RETRY   `retry:` wrap: trypid %= PID_MAX, +floor, pidchecked = 0   (320-330)
    TEST    `if (trypid >= pidchecked)`                                 (331)
    SCAN    pidchecked = PID_MAX; p2 = LIST_FIRST(&allproc)            (332-340)
    LOOP    `for (; p2 != NULL; ...)` test                               (342)
    WHILE   inner while over p_pid / pg_id / s_sid; trypid++; goto retry (343-349)
    MIN     the three pidchecked minimisations, then p2 = LIST_NEXT    (350-358)
    PASSEND `if (!doingzomb) { doingzomb = 1; p2 = zombproc; goto again }` (359-363)
    DONE    the scan's result is trypid                                  (365)

`doingzomb` is declared inside the `if` block, so a `goto retry` that
re-enters the block re-initialises it to 0 and restarts from allproc.

allproc and zombproc are z3 arrays (index -> pid, pgid, sid) with symbolic
lengths, PID_MAX, the wrap floor (100 in the seed) and the RFHIGHPID floor
(10) are symbolic: every proof here holds for lists of any length and any
PID_MAX and floors satisfying `2*floor <= PID_MAX` (see `well_formed`).

What is proved (each a set of z3 validity checks, one per CFG edge):

- the loop invariant is preserved by every edge, including `goto retry` and
  the wrap, and implies the postcondition: the result is no pid, pgid or sid
  of any process on allproc or zombproc, and is below PID_MAX;
- the cache invariant on (lastpid, pidchecked) -- every id strictly between
  them is free -- holds initially and is preserved by fork, exit, reap,
  setsid and setpgid;
- termination, by a lexicographic ranking function, when some id in
  [floor, PID_MAX) is free; and a concrete table on which the scan never
  terminates when none is.

Mutations of the scan (`Mutation`) break some obligation; for each one a
bounded search finds a concrete table on which the mutated scan returns a
used id (or an out-of-range one), checked again by the concrete interpreter.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import z3

from .encode import solve

# ------------------------------------------------------------------ mutations


class Mutation(str, enum.Enum):
    NO_PGID_CHECK = "no_pgid_check"          # inner while drops `p2->p_pgrp->pg_id == trypid`
    NO_SID_CHECK = "no_sid_check"            # inner while drops `p2->p_session->s_sid == trypid`
    NO_WRAP_RESET = "no_wrap_reset"          # the wrap forgets `pidchecked = 0`
    NO_ZOMBPROC_PASS = "no_zombproc_pass"    # only allproc is scanned
    NO_PGID_MIN = "no_pgid_min"              # pidchecked is not lowered to a larger pg_id
    RETRY_GT = "retry_gt"                    # `if (trypid > pidchecked) goto retry` (off by one)
    CACHE_TEST_GT = "cache_test_gt"          # `if (trypid > pidchecked)` before the scan
    NO_HIGHPID_RESET = "no_highpid_reset"    # RFHIGHPID keeps the scan's pidchecked
    SETPGID_UNCHECKED = "setpgid_unchecked"  # setpgid accepts an id that is no group of the session

    @property
    def doc(self) -> str:
        return _MUTATION_DOC[self]


_MUTATION_DOC = {
    Mutation.NO_PGID_CHECK: "line 344 dropped: the inner while no longer compares pg_id",
    Mutation.NO_SID_CHECK: "line 345 dropped: the inner while no longer compares s_sid",
    Mutation.NO_WRAP_RESET: "line 329 dropped: the wrap keeps the stale pidchecked",
    Mutation.NO_ZOMBPROC_PASS: "lines 359-363 dropped: zombproc is not scanned",
    Mutation.NO_PGID_MIN: "lines 353-355 dropped: pidchecked ignores a larger pg_id",
    Mutation.RETRY_GT: "line 347 as `trypid > pidchecked`",
    Mutation.CACHE_TEST_GT: "line 331 as `trypid > pidchecked`",
    Mutation.NO_HIGHPID_RESET: "line 370 dropped: RFHIGHPID leaves pidchecked from the scan",
    Mutation.SETPGID_UNCHECKED: "setpgid(2) may name an id that is no group of the caller's session",
}

# Mutations of the scan itself; the others change what happens around it.
SCAN_MUTATIONS = frozenset(Mutation) - {Mutation.NO_HIGHPID_RESET, Mutation.SETPGID_UNCHECKED}


class Loc(enum.IntEnum):
    ENTRY = 0
    RETRY = 1
    TEST = 2
    SCAN = 3
    LOOP = 4
    WHILE = 5
    MIN = 6
    PASSEND = 7
    DONE = 8


SEED_LINE = {Loc.ENTRY: 311, Loc.RETRY: 320, Loc.TEST: 331, Loc.SCAN: 334, Loc.LOOP: 342,
             Loc.WHILE: 343, Loc.MIN: 350, Loc.PASSEND: 359, Loc.DONE: 365}

# ------------------------------------------------------------ concrete model


@dataclass(frozen=True)
class Entry:
    """One process on a list, reduced to the three ids the scan compares."""
    pid: int
    pgid: int
    sid: int

    def ids(self) -> tuple[int, int, int]:
        return (self.pid, self.pgid, self.sid)

    def __str__(self) -> str:
        return f"(pid {self.pid}, pgid {self.pgid}, sid {self.sid})"


@dataclass(frozen=True)
class Table:
    """The scan's input: the lists, the cache and the fork's parameters."""
    allproc: tuple[Entry, ...]
    zombproc: tuple[Entry, ...]
    lastpid: int
    pidchecked: int
    pid_max: int
    floor: int = 100          # seed line 327
    high_floor: int = 10      # seed line 314
    highpid: bool = False     # RFHIGHPID in flags
    randompid: int = 0
    addend: int = 0           # arc4random() % randompid

    def used(self) -> set[int]:
        return {x for e in self.allproc + self.zombproc for x in e.ids()}

    def holder(self, x: int) -> str:
        for name, lst in (("allproc", self.allproc), ("zombproc", self.zombproc)):
            for k, e in enumerate(lst):
                for what, v in zip(("pid", "pgid", "sid"), e.ids()):
                    if v == x:
                        return f"{name}[{k}] {e} has {what} {x}"
        return f"{x} is free"

    def describe(self) -> str:
        lines = [f"PID_MAX={self.pid_max} floor={self.floor} RFHIGHPID floor={self.high_floor} "
                 f"lastpid={self.lastpid} pidchecked={self.pidchecked} "
                 f"flags={'RFHIGHPID' if self.highpid else '0'} randompid={self.randompid}"
                 + (f" (arc4random() % randompid = {self.addend})" if self.randompid else "")]
        for name, lst in (("allproc", self.allproc), ("zombproc", self.zombproc)):
            lines.append(f"{name}: " + (", ".join(str(e) for e in lst) if lst else "empty"))
        return "\n".join(lines)


@dataclass(frozen=True)
class ScanState:
    loc: Loc
    trypid: int
    pidchecked: int
    doingzomb: int
    index: int

    def __str__(self) -> str:
        head = f"{self.loc.name:<7} @kern_fork.c:{SEED_LINE[self.loc]:<4} "
        if self.loc is Loc.ENTRY:
            return head + f"pidchecked={self.pidchecked}"
        out = head + f"trypid={self.trypid} pidchecked={self.pidchecked}"
        if self.loc in (Loc.LOOP, Loc.WHILE, Loc.MIN, Loc.PASSEND):
            out += f" p2={'zombproc' if self.doingzomb else 'allproc'}[{self.index}]"
        return out


class Outcome(str, enum.Enum):
    RETURNED = "returned"
    NONTERMINATING = "nonterminating"   # a state repeated: the scan loops forever
    STEP_LIMIT = "step limit"


@dataclass(frozen=True)
class ScanRun:
    outcome: Outcome
    trypid: int | None
    states: tuple[ScanState, ...]
    loop_start: int | None = None        # index of the repeated state, for a lasso


def _step(t: Table, s: ScanState, m: frozenset[Mutation]) -> ScanState | None:
    """One CFG edge of the scan, as the seed does it (None at DONE)."""
    P = t.pid_max
    lst = t.zombproc if s.doingzomb else t.allproc
    if s.loc is Loc.ENTRY:
        tp = t.lastpid + 1
        if t.highpid:
            tp = max(tp, t.high_floor)
        elif t.randompid:
            tp += t.addend
        return ScanState(Loc.RETRY, tp, s.pidchecked, 0, 0)
    if s.loc is Loc.RETRY:
        tp, pc = s.trypid, s.pidchecked
        if tp >= P:
            tp %= P
            if tp < t.floor:
                tp += t.floor
            if Mutation.NO_WRAP_RESET not in m:
                pc = 0
        return ScanState(Loc.TEST, tp, pc, 0, 0)
    if s.loc is Loc.TEST:
        scan = s.trypid > s.pidchecked if Mutation.CACHE_TEST_GT in m else s.trypid >= s.pidchecked
        return ScanState(Loc.SCAN if scan else Loc.DONE, s.trypid, s.pidchecked, 0, 0)
    if s.loc is Loc.SCAN:
        return ScanState(Loc.LOOP, s.trypid, P, 0, 0)
    if s.loc is Loc.LOOP:
        return ScanState(Loc.WHILE if s.index < len(lst) else Loc.PASSEND, s.trypid, s.pidchecked,
                         s.doingzomb, s.index)
    if s.loc is Loc.WHILE:
        e = lst[s.index]
        if _matches(e, s.trypid, m):
            tp = s.trypid + 1
            retry = tp > s.pidchecked if Mutation.RETRY_GT in m else tp >= s.pidchecked
            return ScanState(Loc.RETRY if retry else Loc.WHILE, tp, s.pidchecked, s.doingzomb, s.index)
        return ScanState(Loc.MIN, s.trypid, s.pidchecked, s.doingzomb, s.index)
    if s.loc is Loc.MIN:
        e = lst[s.index]
        pc = s.pidchecked
        for k, x in enumerate(e.ids()):
            if k == 1 and Mutation.NO_PGID_MIN in m:
                continue
            if x > s.trypid and pc > x:
                pc = x
        return ScanState(Loc.LOOP, s.trypid, pc, s.doingzomb, s.index + 1)
    if s.loc is Loc.PASSEND:
        if not s.doingzomb and Mutation.NO_ZOMBPROC_PASS not in m:
            return ScanState(Loc.LOOP, s.trypid, s.pidchecked, 1, 0)
        return ScanState(Loc.DONE, s.trypid, s.pidchecked, s.doingzomb, s.index)
    return None


def _matches(e: Entry, tp: int, m: frozenset[Mutation]) -> bool:
    return (e.pid == tp or (e.pgid == tp and Mutation.NO_PGID_CHECK not in m)
            or (e.sid == tp and Mutation.NO_SID_CHECK not in m))


def run_scan(t: Table, mutations: Iterable[Mutation] = (), max_steps: int = 100_000) -> ScanRun:
    """Run the scan concretely. The scan is deterministic, so a repeated
    state proves it never terminates."""
    m = frozenset(mutations)
    s = ScanState(Loc.ENTRY, 0, t.pidchecked, 0, 0)
    seen: dict[ScanState, int] = {}
    states: list[ScanState] = []
    while len(states) < max_steps:
        if s in seen:
            return ScanRun(Outcome.NONTERMINATING, None, tuple(states), seen[s])
        seen[s] = len(states)
        states.append(s)
        nxt = _step(t, s, m)
        if nxt is None:
            return ScanRun(Outcome.RETURNED, s.trypid, tuple(states))
        s = nxt
    return ScanRun(Outcome.STEP_LIMIT, None, tuple(states))


def fork_tail(t: Table, pid: int, pidchecked: int, m: frozenset[Mutation]) -> tuple[int, int]:
    """Seed lines 368-372: the new (lastpid, pidchecked)."""
    if t.highpid:
        return t.lastpid, (pidchecked if Mutation.NO_HIGHPID_RESET in m else 0)
    return pid, pidchecked


# ------------------------------------------------------------- z3 vocabulary

_I = z3.IntSort()


@dataclass
class Lists:
    """allproc and zombproc as arrays with symbolic lengths."""
    pid: tuple[z3.ArrayRef, z3.ArrayRef]
    pg: tuple[z3.ArrayRef, z3.ArrayRef]
    sid: tuple[z3.ArrayRef, z3.ArrayRef]
    n: tuple[z3.ArithRef, z3.ArithRef]

    @staticmethod
    def fresh(tag: str = "") -> "Lists":
        def arr(name: str) -> z3.ArrayRef:
            return z3.Array(name + tag, _I, _I)
        return Lists((arr("allproc.pid"), arr("zombproc.pid")), (arr("allproc.pgid"), arr("zombproc.pgid")),
                     (arr("allproc.sid"), arr("zombproc.sid")),
                     (z3.Int("len(allproc)" + tag), z3.Int("len(zombproc)" + tag)))

    def ids(self, which: int, j: z3.ArithRef) -> tuple[z3.ArithRef, z3.ArithRef, z3.ArithRef]:
        return (self.pid[which][j], self.pg[which][j], self.sid[which][j])

    def cur(self, d: z3.ArithRef, j: z3.ArithRef) -> tuple[z3.ArithRef, ...]:
        return tuple(z3.If(d == 0, a, b) for a, b in zip(self.ids(0, j), self.ids(1, j)))

    def forall_entries(self, pred: Callable[[z3.ArithRef], z3.BoolRef],
                       upto: tuple[z3.ArithRef, z3.ArithRef] | None = None) -> z3.BoolRef:
        """pred holds of every id of every entry (of the first upto[k] entries of list k)."""
        upto = upto or self.n
        out = []
        for k in (0, 1):
            j = z3.Int(f"j{k}")
            out.append(z3.ForAll([j], z3.Implies(z3.And(0 <= j, j < upto[k]),
                                                 z3.And([pred(x) for x in self.ids(k, j)]))))
        return z3.And(out)

    def used(self, x: z3.ArithRef) -> z3.BoolRef:
        return z3.Not(self.forall_entries(lambda y: y != x))


@dataclass
class Params:
    P: z3.ArithRef
    floor: z3.ArithRef
    hfloor: z3.ArithRef
    lastpid: z3.ArithRef
    highpid: z3.BoolRef
    randompid: z3.ArithRef
    addend: z3.ArithRef

    @staticmethod
    def fresh() -> "Params":
        return Params(z3.Int("PID_MAX"), z3.Int("floor"), z3.Int("high_floor"), z3.Int("lastpid"),
                      z3.Bool("RFHIGHPID"), z3.Int("randompid"), z3.Int("addend"))

    def well_formed(self) -> z3.BoolRef:
        """The assumptions every theorem here makes. 2*floor <= PID_MAX keeps
        a wrapped trypid below PID_MAX (t % PID_MAX < floor => t + floor <
        2*floor); the seed has 100 and 99999."""
        return z3.And(self.P > 0, self.floor >= 0, 2 * self.floor <= self.P,
                      self.hfloor >= 0, self.hfloor < self.P,
                      self.lastpid >= 0, self.lastpid < self.P,
                      self.randompid >= 0, self.addend >= 0,
                      z3.Implies(self.randompid == 0, self.addend == 0),
                      z3.Implies(self.randompid > 0, self.addend < self.randompid))


@dataclass
class SymState:
    loc: Loc
    trypid: z3.ArithRef
    pidchecked: z3.ArithRef
    d: z3.ArithRef
    i: z3.ArithRef
    w: z3.ArithRef          # ghost: number of wraps so far (termination proof)


@dataclass(frozen=True)
class Edge:
    name: str
    src: Loc
    dst: Loc
    # (params, lists, state) -> (guard, new trypid, pidchecked, d, i, w)
    fn: Callable[["Params", Lists, SymState], tuple[z3.BoolRef, SymState]]


def _edges(m: frozenset[Mutation]) -> list[Edge]:
    def entry_high(p: Params, L: Lists, s: SymState) -> tuple[z3.BoolRef, SymState]:
        tp = p.lastpid + 1
        return p.highpid, SymState(Loc.RETRY, z3.If(tp < p.hfloor, p.hfloor, tp), s.pidchecked, 0, 0, 0)

    def entry_norm(p: Params, L: Lists, s: SymState) -> tuple[z3.BoolRef, SymState]:
        return z3.Not(p.highpid), SymState(Loc.RETRY, p.lastpid + 1 + p.addend, s.pidchecked, 0, 0, 0)

    def wrap(p: Params, L: Lists, s: SymState) -> tuple[z3.BoolRef, SymState]:
        t = s.trypid % p.P
        t = z3.If(t < p.floor, t + p.floor, t)
        pc = s.pidchecked if Mutation.NO_WRAP_RESET in m else z3.IntVal(0)
        return s.trypid >= p.P, SymState(Loc.TEST, t, pc, s.d, s.i, s.w + 1)

    def nowrap(p: Params, L: Lists, s: SymState) -> tuple[z3.BoolRef, SymState]:
        return s.trypid < p.P, SymState(Loc.TEST, s.trypid, s.pidchecked, s.d, s.i, s.w)

    def test(c: bool) -> Callable[..., tuple[z3.BoolRef, SymState]]:
        def f(p: Params, L: Lists, s: SymState) -> tuple[z3.BoolRef, SymState]:
            g = s.trypid > s.pidchecked if Mutation.CACHE_TEST_GT in m else s.trypid >= s.pidchecked
            return (g if c else z3.Not(g)), SymState(Loc.SCAN if c else Loc.DONE, s.trypid,
                                                     s.pidchecked, s.d, s.i, s.w)
        return f

    def scan(p: Params, L: Lists, s: SymState) -> tuple[z3.BoolRef, SymState]:
        return z3.BoolVal(True), SymState(Loc.LOOP, s.trypid, p.P, 0, 0, s.w)

    def loop(c: bool) -> Callable[..., tuple[z3.BoolRef, SymState]]:
        def f(p: Params, L: Lists, s: SymState) -> tuple[z3.BoolRef, SymState]:
            g = s.i < z3.If(s.d == 0, L.n[0], L.n[1])
            return (g if c else z3.Not(g)), SymState(Loc.WHILE if c else Loc.PASSEND, s.trypid,
                                                     s.pidchecked, s.d, s.i, s.w)
        return f

    def match(L: Lists, s: SymState) -> z3.BoolRef:
        pid, pg, sid = L.cur(s.d, s.i)
        cs = [pid == s.trypid]
        if Mutation.NO_PGID_CHECK not in m:
            cs.append(pg == s.trypid)
        if Mutation.NO_SID_CHECK not in m:
            cs.append(sid == s.trypid)
        return z3.Or(cs)

    def bump(c: bool) -> Callable[..., tuple[z3.BoolRef, SymState]]:
        def f(p: Params, L: Lists, s: SymState) -> tuple[z3.BoolRef, SymState]:
            tp = s.trypid + 1
            r = tp > s.pidchecked if Mutation.RETRY_GT in m else tp >= s.pidchecked
            return (z3.And(match(L, s), r if c else z3.Not(r)),
                    SymState(Loc.RETRY if c else Loc.WHILE, tp, s.pidchecked, s.d, s.i, s.w))
        return f

    def nomatch(p: Params, L: Lists, s: SymState) -> tuple[z3.BoolRef, SymState]:
        return z3.Not(match(L, s)), SymState(Loc.MIN, s.trypid, s.pidchecked, s.d, s.i, s.w)

    def minimise(p: Params, L: Lists, s: SymState) -> tuple[z3.BoolRef, SymState]:
        pc = s.pidchecked
        for k, x in enumerate(L.cur(s.d, s.i)):
            if k == 1 and Mutation.NO_PGID_MIN in m:
                continue
            pc = z3.If(z3.And(x > s.trypid, pc > x), x, pc)
        return z3.BoolVal(True), SymState(Loc.LOOP, s.trypid, pc, s.d, s.i + 1, s.w)

    def zomb(p: Params, L: Lists, s: SymState) -> tuple[z3.BoolRef, SymState]:
        g = z3.BoolVal(False) if Mutation.NO_ZOMBPROC_PASS in m else s.d == 0
        return g, SymState(Loc.LOOP, s.trypid, s.pidchecked, z3.IntVal(1), z3.IntVal(0), s.w)

    def done(p: Params, L: Lists, s: SymState) -> tuple[z3.BoolRef, SymState]:
        g = z3.BoolVal(True) if Mutation.NO_ZOMBPROC_PASS in m else s.d == 1
        return g, SymState(Loc.DONE, s.trypid, s.pidchecked, s.d, s.i, s.w)

    return [
        Edge("entry with RFHIGHPID (314-316)", Loc.ENTRY, Loc.RETRY, entry_high),
        Edge("entry with randompid addend (317-319)", Loc.ENTRY, Loc.RETRY, entry_norm),
        Edge("retry: wrap (326-330)", Loc.RETRY, Loc.TEST, wrap),
        Edge("retry: no wrap (326)", Loc.RETRY, Loc.TEST, nowrap),
        Edge("cache miss: scan (331)", Loc.TEST, Loc.SCAN, test(True)),
        Edge("cache hit: done (331)", Loc.TEST, Loc.DONE, test(False)),
        Edge("pidchecked = PID_MAX; p2 = allproc (334-340)", Loc.SCAN, Loc.LOOP, scan),
        Edge("for: p2 != NULL (342)", Loc.LOOP, Loc.WHILE, loop(True)),
        Edge("for: p2 == NULL (342)", Loc.LOOP, Loc.PASSEND, loop(False)),
        Edge("while: in use, trypid++ (346)", Loc.WHILE, Loc.WHILE, bump(False)),
        Edge("while: in use, trypid++, goto retry (346-348)", Loc.WHILE, Loc.RETRY, bump(True)),
        Edge("while: free (343-345)", Loc.WHILE, Loc.MIN, nomatch),
        Edge("pidchecked minimised, p2 = next (350-358)", Loc.MIN, Loc.LOOP, minimise),
        Edge("goto again with zombproc (359-363)", Loc.PASSEND, Loc.LOOP, zomb),
        Edge("scan done (364)", Loc.PASSEND, Loc.DONE, done),
    ]


def _fresh_state(loc: Loc, tag: str = "") -> SymState:
    return SymState(loc, z3.Int("trypid" + tag), z3.Int("pidchecked" + tag), z3.Int("doingzomb" + tag),
                    z3.Int("index" + tag), z3.Int("wraps" + tag))


def cache_inv(L: Lists, lastpid: z3.ArithRef, pidchecked: z3.ArithRef, P: z3.ArithRef) -> z3.BoolRef:
    """Every id strictly between lastpid and pidchecked is free."""
    return z3.And(0 <= lastpid, lastpid < P, pidchecked <= P,
                  L.forall_entries(lambda x: z3.Or(x <= lastpid, x >= pidchecked)))


def _ok(s: SymState) -> Callable[[z3.ArithRef], z3.BoolRef]:
    return lambda x: z3.Or(x < s.trypid, x >= s.pidchecked)


def loop_invariant(p: Params, L: Lists, s: SymState, pc0: z3.ArithRef) -> z3.BoolRef:
    """The scan's invariant at s.loc. pc0 is pidchecked on entry."""
    base = [p.well_formed(), L.n[0] >= 0, L.n[1] >= 0, cache_inv(L, p.lastpid, pc0, p.P),
            pc0 >= 0, s.trypid >= 0]
    cached = z3.And(s.trypid > p.lastpid, s.pidchecked == pc0)
    if s.loc is Loc.ENTRY:
        return z3.And(base + [s.pidchecked == pc0])
    if s.loc is Loc.RETRY:
        return z3.And(base + [z3.Or(s.trypid >= s.pidchecked, cached)])
    if s.loc is Loc.TEST:
        return z3.And(base + [s.trypid < p.P, z3.Or(s.trypid >= s.pidchecked, cached)])
    if s.loc is Loc.SCAN:
        return z3.And(base + [s.trypid < p.P])
    if s.loc is Loc.DONE:
        return z3.And(base + [s.trypid < s.pidchecked, s.pidchecked <= p.P, L.forall_entries(_ok(s))])
    # inside a pass: trypid < pidchecked <= PID_MAX, and every id visited so
    # far is below trypid or at least pidchecked (so trypid++ runs into a
    # visited id only by reaching pidchecked, which is `goto retry`).
    n_d = z3.If(s.d == 0, L.n[0], L.n[1])
    inv = base + [z3.Or(s.d == 0, s.d == 1), s.trypid < s.pidchecked, s.pidchecked <= p.P,
                  0 <= s.i, s.i <= n_d,
                  L.forall_entries(_ok(s), upto=(z3.If(s.d == 0, s.i, L.n[0]), z3.If(s.d == 0, 0, s.i)))]
    if s.loc in (Loc.WHILE, Loc.MIN):
        inv.append(s.i < n_d)
    if s.loc is Loc.MIN:
        inv.append(z3.And([x != s.trypid for x in L.cur(s.d, s.i)]))
    if s.loc is Loc.PASSEND:
        inv.append(s.i == n_d)
    return z3.And(inv)


def postcondition(p: Params, L: Lists, s: SymState) -> z3.BoolRef:
    """The scan returns an id that no listed process uses, below PID_MAX."""
    return z3.And(0 <= s.trypid, s.trypid < p.P, z3.Not(L.used(s.trypid)))


# ------------------------------------------------------------ obligations


class Status(str, enum.Enum):
    PROVED = "proved"
    FAILED = "failed"       # a counterexample to the obligation (a CTI for inductive steps)
    UNKNOWN = "unknown"     # solver gave up or timed out


@dataclass
class Obligation:
    group: str
    name: str
    status: Status
    seconds: float
    model: dict[str, object] = field(default_factory=dict)   # the counterexample, in domain terms
    reason: str = ""
    vacuous: bool = False   # proved only because the hypothesis is unsatisfiable

    def to_json(self) -> dict[str, object]:
        return {"group": self.group, "name": self.name, "status": self.status.value,
                "seconds": round(self.seconds, 3), "counterexample": self.model or None,
                "reason": self.reason or None, "vacuous": self.vacuous}


def _valid(group: str, name: str, hyp: z3.BoolRef, goal: z3.BoolRef, timeout_ms: int,
           show: Callable[[z3.ModelRef], dict[str, object]] | None = None,
           vacuity: bool = True) -> Obligation:
    """hyp => goal, by unsatisfiability of hyp && !goal. With `vacuity`, a
    proof whose hypothesis is itself unsatisfiable is flagged: it would
    prove anything, so it proves nothing about the scan."""
    s = z3.Solver()
    s.set("timeout", timeout_ms)
    s.add(hyp, z3.Not(goal))
    t0 = time.monotonic()
    r = solve(s)
    dt = time.monotonic() - t0
    if r == z3.unsat:
        vac = False
        if vacuity:
            v = z3.Solver()
            v.set("timeout", timeout_ms)
            v.add(hyp)
            vac = solve(v) == z3.unsat
        return Obligation(group, name, Status.PROVED, time.monotonic() - t0, vacuous=vac)
    if r == z3.sat:
        return Obligation(group, name, Status.FAILED, dt, show(s.model()) if show else {})
    return Obligation(group, name, Status.UNKNOWN, dt, reason=s.reason_unknown())


def _show_state(p: Params, L: Lists, ss: Iterable[tuple[str, SymState]], pc0: z3.ArithRef | None = None,
                bound: int = 6) -> Callable[[z3.ModelRef], dict[str, object]]:
    def show(mdl: z3.ModelRef) -> dict[str, object]:
        def v(e: z3.ExprRef) -> object:
            r = mdl.eval(e, model_completion=True)
            return r.as_long() if z3.is_int_value(r) else z3.is_true(r)
        out: dict[str, object] = {"PID_MAX": v(p.P), "floor": v(p.floor), "high_floor": v(p.hfloor),
                                  "lastpid": v(p.lastpid), "RFHIGHPID": v(p.highpid)}
        if pc0 is not None:
            out["pidchecked on entry"] = v(pc0)
        for k, name in enumerate(("allproc", "zombproc")):
            n = v(L.n[k])
            assert isinstance(n, int)
            out[name] = [str(Entry(*(int(str(v(x))) for x in L.ids(k, z3.IntVal(j)))))
                         for j in range(max(0, min(n, bound)))] + (["..."] if n > bound else [])
        for label, s in ss:
            out[label] = {"at": f"{s.loc.name} (kern_fork.c:{SEED_LINE[s.loc]})", "trypid": v(s.trypid),
                          "pidchecked": v(s.pidchecked),
                          "list": "zombproc" if v(s.d) == 1 else "allproc", "index": v(s.i)}
        return out
    return show


def prove_loop_invariant(mutations: Iterable[Mutation] = (), timeout_ms: int = 30_000) -> list[Obligation]:
    """Every CFG edge preserves the loop invariant; DONE implies the postcondition."""
    m = frozenset(mutations)
    p, L, pc0 = Params.fresh(), Lists.fresh(), z3.Int("pidchecked0")
    out = []
    for e in _edges(m):
        s = _fresh_state(e.src)
        g, n = e.fn(p, L, s)
        out.append(_valid("loop invariant", e.name,
                          z3.And(loop_invariant(p, L, s, pc0), g), loop_invariant(p, L, n, pc0),
                          timeout_ms, _show_state(p, L, [("before", s), ("after", n)], pc0)))
    s = _fresh_state(Loc.DONE)
    out.append(_valid("loop invariant", "invariant at DONE implies the postcondition",
                      loop_invariant(p, L, s, pc0), postcondition(p, L, s), timeout_ms,
                      _show_state(p, L, [("at", s)], pc0)))
    return out


# ------------------------------------------------------------ cache invariant


def prove_cache_invariant(mutations: Iterable[Mutation] = (), timeout_ms: int = 30_000) -> list[Obligation]:
    """(lastpid, pidchecked) cache invariant: initially, and across fork, exit,
    reap, setsid and setpgid. Lists are multisets here: the operations use
    swap-remove and append, which the set-based invariant cannot tell from
    the kernel's LIST_REMOVE / LIST_INSERT_HEAD."""
    m = frozenset(mutations)
    out: list[Obligation] = []
    P, lp, pc = z3.Int("PID_MAX"), z3.Int("lastpid"), z3.Int("pidchecked")
    L = Lists.fresh()
    pre = z3.And(P > 0, L.n[0] >= 1, L.n[1] >= 0, cache_inv(L, lp, pc, P))
    k, k2 = z3.Int("k"), z3.Int("k2")

    def show(L2: Lists, extra: dict[str, z3.ExprRef]) -> Callable[[z3.ModelRef], dict[str, object]]:
        def f(mdl: z3.ModelRef) -> dict[str, object]:
            p = Params.fresh()
            d = _show_state(p, L, [])(mdl)
            for key in ("floor", "high_floor", "RFHIGHPID"):
                d.pop(key, None)
            d["PID_MAX"] = mdl.eval(P, model_completion=True).as_long()
            d["pidchecked"] = mdl.eval(pc, model_completion=True).as_long()
            after = _show_state(p, L2, [])(mdl)
            d["after: allproc"], d["after: zombproc"] = after["allproc"], after["zombproc"]
            for key, e in extra.items():
                r = mdl.eval(e, model_completion=True)
                d[key] = r.as_long() if z3.is_int_value(r) else str(r)
            return d
        return f

    # Initially: proc0 alone, lastpid = 0, pidchecked = 0 (seed globals).
    L0 = Lists.fresh("@init")
    init = z3.And(P > 0, L0.n[0] == 1, L0.n[1] == 0, L0.pid[0][0] == 0, L0.pg[0][0] == 0, L0.sid[0][0] == 0)
    out.append(_valid("cache invariant", "initial state (lastpid = pidchecked = 0)", init,
                      cache_inv(L0, z3.IntVal(0), z3.IntVal(0), P), timeout_ms))

    # fork: the scan's postcondition (proved above) and lines 368-376.
    p = Params.fresh()
    s = _fresh_state(Loc.DONE)
    post = z3.And(p.well_formed(), p.P == P, p.lastpid == lp, L.n[0] >= 1, L.n[1] >= 0,
                  0 <= s.trypid, s.trypid < s.pidchecked, s.pidchecked <= P, L.forall_entries(_ok(s)),
                  0 <= k, k < L.n[0])   # k: the parent, on allproc; the child joins its group and session
    new_lp = z3.If(p.highpid, lp, s.trypid)
    new_pc = z3.If(p.highpid, s.pidchecked if Mutation.NO_HIGHPID_RESET in m else z3.IntVal(0), s.pidchecked)
    L2 = Lists((z3.Store(L.pid[0], L.n[0], s.trypid), L.pid[1]),
               (z3.Store(L.pg[0], L.n[0], L.pg[0][k]), L.pg[1]),
               (z3.Store(L.sid[0], L.n[0], L.sid[0][k]), L.sid[1]), (L.n[0] + 1, L.n[1]))
    out.append(_valid("cache invariant", "fork (scan result, lines 368-376)", post,
                      cache_inv(L2, new_lp, new_pc, P), timeout_ms,
                      show(L2, {"scan result": s.trypid, "pidchecked after scan": s.pidchecked,
                                "RFHIGHPID": p.highpid, "lastpid": lp,
                                "new lastpid": new_lp, "new pidchecked": new_pc})))

    def swap_remove(L: Lists, w: int, idx: z3.ArithRef) -> tuple[z3.ArrayRef, z3.ArrayRef, z3.ArrayRef]:
        last = L.n[w] - 1
        return tuple(z3.Store(a[w], idx, a[w][last]) for a in (L.pid, L.pg, L.sid))  # type: ignore[return-value]

    # exit: allproc -> zombproc; the zombie keeps its group and session (the
    # scan dereferences p_pgrp and p_session of zombies).
    ra = swap_remove(L, 0, k)
    L3 = Lists((ra[0], z3.Store(L.pid[1], L.n[1], L.pid[0][k])), (ra[1], z3.Store(L.pg[1], L.n[1], L.pg[0][k])),
               (ra[2], z3.Store(L.sid[1], L.n[1], L.sid[0][k])), (L.n[0] - 1, L.n[1] + 1))
    out.append(_valid("cache invariant", "exit (allproc -> zombproc)", z3.And(pre, 0 <= k, k < L.n[0]),
                      cache_inv(L3, lp, pc, P), timeout_ms, show(L3, {"exiting index": k})))

    # reap (wait): a zombie leaves zombproc.
    rz = swap_remove(L, 1, k)
    L4 = Lists((L.pid[0], rz[0]), (L.pg[0], rz[1]), (L.sid[0], rz[2]), (L.n[0], L.n[1] - 1))
    out.append(_valid("cache invariant", "reap (wait removes a zombie)", z3.And(pre, 0 <= k, k < L.n[1]),
                      cache_inv(L4, lp, pc, P), timeout_ms, show(L4, {"reaped index": k})))

    # setsid: new session and group, both named by the caller's pid.
    L5 = Lists(L.pid, (z3.Store(L.pg[0], k, L.pid[0][k]), L.pg[1]), (z3.Store(L.sid[0], k, L.pid[0][k]), L.sid[1]),
               L.n)
    out.append(_valid("cache invariant", "setsid", z3.And(pre, 0 <= k, k < L.n[0]),
                      cache_inv(L5, lp, pc, P), timeout_ms, show(L5, {"caller index": k})))

    # setpgid(pid, pgid): pgid is the process's own pid or an existing group
    # of the same session (the kernel's EPERM checks).
    newpg = z3.Int("pgid")
    legal = z3.Or(newpg == L.pid[0][k], z3.And(0 <= k2, k2 < L.n[0], L.pg[0][k2] == newpg,
                                               L.sid[0][k2] == L.sid[0][k]))
    if Mutation.SETPGID_UNCHECKED in m:
        legal = z3.And(newpg >= 0, newpg < P)
    L6 = Lists(L.pid, (z3.Store(L.pg[0], k, newpg), L.pg[1]), L.sid, L.n)
    out.append(_valid("cache invariant", "setpgid", z3.And(pre, 0 <= k, k < L.n[0], legal),
                      cache_inv(L6, lp, pc, P), timeout_ms, show(L6, {"caller index": k, "new pgid": newpg})))
    return out


# ------------------------------------------------------------ termination


def _rank(p: Params, L: Lists, s: SymState, f: z3.ArithRef) -> list[z3.ArithRef]:
    """Lexicographic ranking function; f is a free id in [floor, PID_MAX).

    Phase (wraps left) first: once trypid <= f it stays there (f is free, so
    the inner while never steps past it); before that at most two wraps
    happen (the second from exactly PID_MAX, landing on floor <= f). Then the
    distance of trypid to its target (f, or PID_MAX before the last wrap),
    then where the scan is: not yet started, which pass, entries left, and
    the program point within an entry.
    """
    in_scan = s.loc in (Loc.LOOP, Loc.WHILE, Loc.MIN, Loc.PASSEND)
    phase = z3.If(s.trypid <= f, 0, 2 - s.w)
    dist = z3.If(s.trypid <= f, f - s.trypid, z3.If(s.trypid <= p.P, p.P - s.trypid, 0))
    before_scan = {Loc.ENTRY: 4, Loc.RETRY: 3, Loc.TEST: 2, Loc.SCAN: 1}.get(s.loc, 0)
    n_d = z3.If(s.d == 0, L.n[0], L.n[1])
    pass_left = (1 - s.d) if in_scan else z3.IntVal(0)
    entries_left = (n_d - s.i) if in_scan else z3.IntVal(0)
    point = {Loc.LOOP: 3, Loc.WHILE: 2, Loc.MIN: 1, Loc.PASSEND: 1}.get(s.loc, 0)
    entry_first = 1 if s.loc is Loc.ENTRY else 0
    return [z3.IntVal(entry_first), phase, dist, z3.IntVal(before_scan), pass_left, entries_left,
            z3.IntVal(point)]


def _lex_lt(a: list[z3.ArithRef], b: list[z3.ArithRef]) -> z3.BoolRef:
    out = []
    for k in range(len(a)):
        out.append(z3.And([a[j] == b[j] for j in range(k)] + [a[k] < b[k]]))
    return z3.Or(out)


def termination_condition(p: Params, L: Lists, f: z3.ArithRef) -> z3.BoolRef:
    """Some id f in [floor, PID_MAX) is no pid, pgid or sid of a listed
    process. Sufficient in counts: (#processes + #groups + #sessions on both
    lists) < PID_MAX - floor, since each contributes at most one id."""
    return z3.And(p.floor <= f, f < p.P, L.forall_entries(lambda x: x != f))


def _term_invariant(p: Params, L: Lists, s: SymState, f: z3.ArithRef, pc0: z3.ArithRef) -> z3.BoolRef:
    inv = [loop_invariant(p, L, s, pc0), termination_condition(p, L, f), 0 <= s.w, s.w <= 2,
           z3.Implies(s.w == 2, s.trypid <= f)]
    if s.loc is not Loc.ENTRY:
        inv.append(z3.Implies(s.w >= 1, s.trypid <= p.P))
    if s.loc is Loc.ENTRY:
        inv.append(s.w == 0)
    return z3.And(inv)


def prove_termination(mutations: Iterable[Mutation] = (), timeout_ms: int = 30_000) -> list[Obligation]:
    m = frozenset(mutations)
    p, L, pc0, f = Params.fresh(), Lists.fresh(), z3.Int("pidchecked0"), z3.Int("free_id")
    out = []
    for e in _edges(m):
        s = _fresh_state(e.src)
        g, n = e.fn(p, L, s)
        hyp = z3.And(_term_invariant(p, L, s, f, pc0), g)
        r0, r1 = _rank(p, L, s, f), _rank(p, L, n, f)
        goal = z3.And(_term_invariant(p, L, n, f, pc0), z3.And([x >= 0 for x in r0]), _lex_lt(r1, r0))
        out.append(_valid("termination", e.name, hyp, goal, timeout_ms,
                          _show_state(p, L, [("before", s), ("after", n)], pc0)))
    return out


def prove_nontermination(timeout_ms: int = 30_000) -> list[Obligation]:
    """When every id in [floor, PID_MAX) is used and the scan starts at or
    above floor (lastpid + 1 >= floor, the steady state after boot), DONE is
    unreachable: trypid >= floor is invariant, and DONE would return an
    unused id below PID_MAX. Every other location has an enabled edge, so the
    scan runs forever (a livelock holding allproc_lock exclusively)."""
    p, L, pc0 = Params.fresh(), Lists.fresh(), z3.Int("pidchecked0")
    start = p.lastpid + 1 >= p.floor
    out = []
    for e in _edges(frozenset()):
        s = _fresh_state(e.src)
        g, n = e.fn(p, L, s)
        # "every id in [floor, PID_MAX) is used", needed only at trypid:
        # assuming just this instance is weaker, so the theorem is stronger,
        # and z3 need not find the instantiation itself.
        full_at_t = z3.Implies(z3.And(p.floor <= s.trypid, s.trypid < p.P), L.used(s.trypid))
        hyp = z3.And(loop_invariant(p, L, s, pc0), full_at_t, start, s.trypid >= p.floor, g)
        # reaching DONE is impossible: the edge's precondition is unsatisfiable
        goal = z3.BoolVal(False) if n.loc is Loc.DONE else n.trypid >= p.floor
        out.append(_valid("non-termination", e.name, hyp, goal, timeout_ms,
                          vacuity=n.loc is not Loc.DONE))
    # every location but DONE has an enabled edge: the scan never blocks
    s = _fresh_state(Loc.ENTRY)
    for loc in Loc:
        if loc is Loc.DONE:
            continue
        s = _fresh_state(loc)
        gs = [e.fn(p, L, s)[0] for e in _edges(frozenset()) if e.src is loc]
        out.append(_valid("non-termination", f"{loc.name} always has an enabled edge",
                          loop_invariant(p, L, s, pc0), z3.Or(gs), timeout_ms))
    return out


def nonterminating_table(pid_max: int = 8, floor: int = 2) -> tuple[Table, ScanRun]:
    """A concrete table on which the scan never returns: each id in
    [floor, PID_MAX) is some process's pid, group or session id."""
    ids = list(range(floor, pid_max))
    procs: list[Entry] = []
    while ids:   # one process per three ids, each its own session and group: (a, b, c)
        a = ids.pop(0)
        b = ids.pop(0) if ids else a
        c = ids.pop(0) if ids else b
        procs.append(Entry(a, b, c))
    t = Table(allproc=(Entry(0, 0, 0), *procs), zombproc=(), lastpid=pid_max - 1,
              pidchecked=pid_max, pid_max=pid_max, floor=floor, high_floor=1)
    return t, run_scan(t)


# ------------------------------------------------------------ bounded search


@dataclass(frozen=True)
class ScanBug:
    table: Table
    run: ScanRun
    returned: int
    why: str

    def describe(self) -> str:
        lines = [self.table.describe(), "scan:"]
        lines += [f"  {k:>3}  {s}" for k, s in enumerate(self.run.states)]
        lines.append(f"returns trypid = {self.returned}: {self.why}")
        return "\n".join(lines)


def find_scan_bug(mutations: Iterable[Mutation], max_len: int = 3, max_pid: int = 12, min_pid: int = 6,
                  max_steps: int = 80, timeout_ms: int = 30_000) -> ScanBug | None:
    """Bounded model checking of the (mutated) scan: the shortest run, from a
    table satisfying the cache invariant with distinct pids, that returns an
    id in use or out of range. Incremental: depth grows one edge at a time."""
    m = frozenset(mutations)
    p, L, pc0 = Params.fresh(), Lists.fresh(), z3.Int("pidchecked0")
    slv = z3.Solver()
    slv.set("timeout", timeout_ms)
    j1, j2 = z3.Int("a"), z3.Int("b")
    # min_pid and floor >= 1 only keep the tables readable (PID_MAX = 1 is legal)
    slv.add(p.well_formed(), p.P <= max_pid, p.P >= min_pid, p.floor >= 1, p.hfloor >= 1, 0 <= L.n[0], L.n[0] <= max_len, 0 <= L.n[1], L.n[1] <= max_len,
            p.randompid == 0, cache_inv(L, p.lastpid, pc0, p.P), 0 <= pc0,
            L.forall_entries(lambda x: z3.And(0 <= x, x < p.P)))
    # pids are unique across both lists (the property being preserved)
    allpids = [z3.If(z3.IntVal(q) < L.n[w], L.pid[w][q], -1 - q - 10 * w)
               for w in (0, 1) for q in range(max_len)]
    slv.add(z3.Distinct(allpids))
    del j1, j2
    # a free id above the floor, so the seed's scan terminates on the same
    # table and the two scans can be compared
    f = z3.Int("free_id")
    slv.add(p.floor <= f, f < p.P, *[z3.Implies(q < L.n[w], z3.And([x != f for x in L.ids(w, z3.IntVal(q))]))
                                     for w in (0, 1) for q in range(max_len)])
    locs = [z3.Int(f"loc@{k}") for k in range(max_steps + 1)]
    st = [SymState(Loc.ENTRY, z3.Int(f"trypid@{k}"), z3.Int(f"pidchecked@{k}"), z3.Int(f"doingzomb@{k}"),
                   z3.Int(f"index@{k}"), z3.Int(f"wraps@{k}")) for k in range(max_steps + 1)]
    slv.add(locs[0] == int(Loc.ENTRY), st[0].pidchecked == pc0, st[0].trypid == 0, st[0].d == 0,
            st[0].i == 0, st[0].w == 0)
    edges = _edges(m)
    for k in range(max_steps):
        cur = st[k]
        slv.push()
        bad = z3.Or(cur.trypid >= p.P, cur.trypid < 0, L.used(cur.trypid))
        slv.add(locs[k] == int(Loc.DONE), bad)
        r = solve(slv)
        if r == z3.sat:
            return _replay_bug(slv.model(), p, L, pc0, m)
        slv.pop()
        alts = []
        for e in edges:
            g, n = e.fn(p, L, SymState(e.src, cur.trypid, cur.pidchecked, cur.d, cur.i, cur.w))
            nxt = st[k + 1]
            alts.append(z3.And(locs[k] == int(e.src), g, locs[k + 1] == int(e.dst), nxt.trypid == n.trypid,
                               nxt.pidchecked == n.pidchecked, nxt.d == n.d, nxt.i == n.i, nxt.w == n.w))
        slv.add(z3.Or(alts))
    return None


def _replay_bug(mdl: z3.ModelRef, p: Params, L: Lists, pc0: z3.ArithRef, m: frozenset[Mutation]) -> ScanBug:
    def v(e: z3.ExprRef) -> int:
        return mdl.eval(e, model_completion=True).as_long()

    lists = []
    for w in (0, 1):
        lists.append(tuple(Entry(*(v(x) for x in L.ids(w, z3.IntVal(j)))) for j in range(v(L.n[w]))))
    t = Table(lists[0], lists[1], v(p.lastpid), v(pc0), v(p.P), v(p.floor), v(p.hfloor),
              z3.is_true(mdl.eval(p.highpid, model_completion=True)), 0, 0)
    run = run_scan(t, m)
    # the concrete interpreter is the judge: z3's run must replay
    assert run.outcome is Outcome.RETURNED and run.trypid is not None, run
    x = run.trypid
    why = f"PID_MAX is {t.pid_max}" if x >= t.pid_max else t.holder(x)
    return ScanBug(t, run, x, why)


def find_fork_bug(mutations: Iterable[Mutation], pid_max: int = 16, max_forks: int = 20) -> str | None:
    """For the mutations around the scan: a concrete boot sequence (RFHIGHPID
    forks, setpgid) after which ordinary forks hand out an id in use."""
    m = frozenset(mutations)
    if Mutation.NO_HIGHPID_RESET in m:
        events = ["fork(RFHIGHPID)"]
        highpid_first = True
    elif Mutation.SETPGID_UNCHECKED in m:
        events = ["setpgid"]
        highpid_first = False
    else:
        return None
    allproc = [Entry(0, 0, 0), Entry(1, 1, 1)]
    lastpid, pidchecked, log = 1, 0, []
    floor, hfloor = 2, pid_max // 2
    for n in range(max_forks):
        high = highpid_first and n == 0
        if not highpid_first and n == 1:
            # init (pid 1) moves itself to "group" lastpid + 2: an id inside the cache
            k = next(k for k, e in enumerate(allproc) if e.pid == 1)
            e = allproc[k]
            allproc[k] = Entry(e.pid, lastpid + 2, e.sid)
            log.append(f"setpgid(1, {lastpid + 2}) accepted, no such group: init is now {allproc[k]}")
        t = Table(tuple(allproc), (), lastpid, pidchecked, pid_max, floor, hfloor, high)
        run = run_scan(t, m)
        assert run.trypid is not None
        pid = run.trypid
        if pid in t.used():
            log.append(f"fork() with lastpid={lastpid} pidchecked={pidchecked} returns {pid}: {t.holder(pid)}")
            return "\n".join(log)
        lastpid, pidchecked = fork_tail(t, pid, run.states[-1].pidchecked, m)
        log.append(f"fork({'RFHIGHPID' if high else ''}) -> pid {pid}; lastpid={lastpid} pidchecked={pidchecked}")
        allproc.insert(0, Entry(pid, 1, 1))
    return None


# ------------------------------------------------------------ the whole report


@dataclass
class PidscanReport:
    mutations: frozenset[Mutation]
    obligations: list[Obligation]
    bug: str | None
    nonterminating: tuple[Table, ScanRun] | None
    seconds: float
    interrupted: bool = False          # Ctrl-C/SIGTERM: the groups proved so far

    @property
    def proved(self) -> bool:
        return not self.interrupted and all(o.status is Status.PROVED for o in self.obligations)

    @property
    def failed(self) -> list[Obligation]:
        return [o for o in self.obligations if o.status is Status.FAILED]

    @property
    def verdict(self) -> str:
        if self.interrupted and not self.failed:
            return "unknown"
        return "proved" if self.proved else ("violated" if self.bug else ("unknown" if self.unknown else "cti"))

    @property
    def unknown(self) -> list[Obligation]:
        return [o for o in self.obligations if o.status is Status.UNKNOWN]

    def to_json(self) -> dict[str, object]:
        nt = None
        if self.nonterminating is not None:
            t, r = self.nonterminating
            nt = {"table": t.describe().splitlines(), "outcome": r.outcome.value,
                  "lasso_start": r.loop_start, "lasso_length": len(r.states) - (r.loop_start or 0)}
        return {"proof": "pidscan", "mutations": sorted(x.value for x in self.mutations),
                "verdict": self.verdict, "stop_reason": "interrupted" if self.interrupted else "finished",
                "obligations": [o.to_json() for o in self.obligations], "counterexample": self.bug,
                "nonterminating_table": nt, "seconds": round(self.seconds, 3)}


def prove_pidscan(mutations: Iterable[Mutation] = (), timeout_ms: int = 30_000,
                  progress: Callable[[str], None] | None = None, search: bool = True) -> PidscanReport:
    """Every obligation; for a mutant (search=True) also a concrete counterexample."""
    m = frozenset(mutations)
    t0 = time.monotonic()
    obs: list[Obligation] = []
    try:
        return _prove_pidscan(m, obs, t0, timeout_ms, progress, search)
    except KeyboardInterrupt:
        return PidscanReport(m, obs, None, None, time.monotonic() - t0, interrupted=True)


def _prove_pidscan(m: frozenset[Mutation], obs: list[Obligation], t0: float, timeout_ms: int,
                   progress: Callable[[str], None] | None, search: bool) -> PidscanReport:
    for label, fn in (("loop invariant", prove_loop_invariant), ("cache invariant", prove_cache_invariant),
                      ("termination", prove_termination)):
        if progress:
            progress(label)
        obs += fn(m, timeout_ms)
    if not m:
        if progress:
            progress("non-termination")
        obs += prove_nontermination(timeout_ms)
    bug: str | None = None
    if search and any(o.status is not Status.PROVED for o in obs) and m:
        if progress:
            progress("counterexample search")
        if m & SCAN_MUTATIONS:
            b = find_scan_bug(m)
            bug = b.describe() if b else None
        if bug is None:
            bug = find_fork_bug(m)
    nt = nonterminating_table() if not m else None
    return PidscanReport(m, obs, bug, nt, time.monotonic() - t0)
