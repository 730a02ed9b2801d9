"""Bounded model checking on the IR, incremental in the depth.

One z3 solver holds the unrolling s0 -> s1 -> ... -> sk. At each depth every
still-open property is checked at the frontier (an invariant false in sk, a
step from sk raising the property's violation, a deadlock in sk) before the
next transition is added, so the first violation found for a property is a
shortest one. Its moves (thread, step) are replayed on the reference
interpreter (checker/semantics.py) to build the trace: a z3 model that does
not replay is a bug in the encoding and is reported as one, never shown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import z3

from .. import interrupt, ir
from ..semantics import Semantics
from .encode import Z3_STOPPED, Encoder, StepEnc, SymState, solve

# Properties BMC decides; the others (leads-to, lock order, races) need the
# explorer's whole state graph.
STEP_KINDS = ("assert", "runtime", "witness")


class BmcOutcome(str):
    pass


@dataclass
class BmcFinding:
    prop: str
    kind: str
    depth: int                                   # trace length in steps
    moves: list[tuple[int, int]]                 # (thread, step id)
    message: str


@dataclass
class BmcResult:
    found: dict[str, BmcFinding] = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)   # prop -> why (solver timeout)
    depth: int = 0                               # every open property holds up to this many steps
    exhausted: bool = False                      # no path is longer than `depth`: the search is complete
    interrupted: bool = False                    # Ctrl-C/SIGTERM: found so far; open ones checked to `depth`
    seconds: float = 0.0


def property_kinds(system: ir.System, names: list[str]) -> dict[str, str]:
    kinds = system.property_names
    return {n: kinds[n] for n in names}


def bmc(system: ir.System, props: list[str], max_depth: int, timeout_s: float | None = None,
        progress: Callable[[int, list[str]], None] | None = None, enc: Encoder | None = None,
        start: tuple | None = None) -> BmcResult:
    """Search for violations of `props` within max_depth steps.

    `start` is a concrete state in semantics.py's representation (a
    reachable one, e.g. from a replayed trace) to unroll from instead of the
    initial state; the findings' moves and depths then count from it."""
    enc = enc or Encoder(system)
    t0 = time.monotonic()
    kinds = property_kinds(system, props)
    invs = {i.name: i for i in system.invariants if i.name in kinds}
    open_props = [p for p in props if kinds[p] in ("invariant", "assert", "runtime", "witness", "deadlock")]
    res = BmcResult()
    # each check is bounded by the whole budget; the depth loop checks the clock
    slv = bmc_solver(None if timeout_s is None else int(timeout_s * 1000))
    runs = _ConcreteRun(system, start)
    states: list[SymState] = [enc.initial() if start is None else enc.concrete(start)]
    sels: list[z3.ArithRef] = []
    orders: list[_Order] = []

    # the pcs each thread can be at after k steps: steps from other pcs are
    # left out of the unrolling (a large spec has thousands of steps, few
    # of them reachable in the first steps)
    pcs = enc.entry_pcs() if start is None else enc.pcs_of(start)
    trans_at: list[list[tuple[int, ir.Step]]] = []
    done = -1           # every open property is checked up to this depth (-1: not even the initial state)
    try:
        for k in range(max_depth + 1):
            s = states[k]
            encs = enc.steps(s, pcs)
            trans_at.append([(e.thread, e.step) for e in encs])
            if progress:
                progress(k, open_props)
            for p in list(open_props):
                kind = kinds[p]
                if kind == "invariant":
                    bad = z3.Not(enc.invariant(s, invs[p]))
                elif kind == "deadlock":
                    bad = enc.deadlock(s, encs)
                else:
                    bad = _step_violation(encs, p)
                if z3.is_false(z3.simplify(bad)):
                    continue
                slv.push()
                last = z3.Int(f"sel@{k}")
                if kind in STEP_KINDS:
                    bad = _step_violation(encs, p, last)
                slv.add(bad)
                r = solve(slv)
                if r == z3.sat:
                    m = slv.model()
                    moves = [trans_at[j][_val(m, x)] for j, x in enumerate(sels)]
                    mv = [(t, st.id) for t, st in moves]
                    msg = f"invariant {p} is false" if kind == "invariant" else (
                        "deadlock: no thread can move and not all are done" if kind == "deadlock" else "")
                    if kind in STEP_KINDS:
                        i = _val(m, last)
                        t, st = trans_at[k][i]
                        mv.append((t, st.id))
                        msg = next((mm for pp, c, mm in encs[i].violations
                                    if pp == p and z3.is_true(m.eval(c, model_completion=True))), p)
                    res.found[p] = BmcFinding(p, kind, len(mv), mv, msg)
                    open_props.remove(p)
                elif r == z3.unknown:
                    res.unknown[p] = slv.reason_unknown()
                    open_props.remove(p)
                slv.pop()
            done = k
            if not open_props or k == max_depth:
                res.depth = k
                break
            if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                for p in open_props:
                    res.unknown[p] = f"time limit after depth {k}"
                open_props = []
                res.depth = k
                break
            sel = z3.Int(f"sel@{k}")
            ok, nxt = enc.successor(s, sel, encs)
            slv.add(ok)
            order = _Order(sel, encs)
            if orders:
                slv.add(orders[-1].before(order))
            orders.append(order)
            pcs = enc.pcs_after(pcs)
            states.append(nxt)
            sels.append(sel)
            # every execution has ended (or is stuck) within k steps: all
            # reachable states have been checked, so the open properties hold.
            # A concrete run of k+1 steps answers no without the solver.
            if not runs.reach(k + 1) and solve(slv) == z3.unsat:
                res.depth = k
                res.exhausted = True
                break
            res.depth = k + 1
    except KeyboardInterrupt:
        res.interrupted = True
    except Z3_STOPPED:
        if not interrupt.requested():
            raise
        res.interrupted = True      # a z3 call other than check() (simplify, eval) stopped by the watcher
    if res.interrupted:
        res.depth = done
    res.seconds = time.monotonic() - t0
    return res


class _Order:
    """Which thread moves at one depth, and whether its step is local.

    A local step (ir.Step.is_local: only its thread's pc and locals, no lock,
    pool or channel) commutes with any step of another thread, and neither
    enables, disables nor changes the other's violations. So two adjacent
    steps of threads a > b, one of them local, can be swapped without changing
    the length or the final state, and swapping such pairs (each swap removes
    one inversion) turns any run into one where no such pair is left. BMC
    only looks for those runs: every state is still reached at the same
    depth, with fewer interleavings for the solver (about 2x at depth 20 on
    fork1_nprocs). The violating last step at the frontier is not constrained."""

    def __init__(self, sel: z3.ArithRef, encs: list[StepEnc]):
        self.sel = sel
        self.ranges: dict[int, tuple[int, int]] = {}    # thread -> its transitions' numbers (steps() sorts by thread)
        for i, e in enumerate(encs):
            lo, _ = self.ranges.get(e.thread, (i, i))
            self.ranges[e.thread] = (lo, i)
        local = [sel == i for i, e in enumerate(encs) if e.step.is_local]
        self.local = z3.Or(local) if local else z3.BoolVal(False)

    def moves(self, t: int) -> z3.BoolRef:
        lo, hi = self.ranges[t]
        return z3.And(lo <= self.sel, self.sel <= hi)

    def before(self, nxt: "_Order") -> z3.BoolRef:
        """This depth's step and the next one are not a swappable pair out of thread order."""
        either_local = z3.Or(self.local, nxt.local)
        out = [z3.Not(z3.And(self.moves(a), nxt.moves(b), either_local))
               for a in self.ranges for b in nxt.ranges if a > b]
        return z3.And(out) if out else z3.BoolVal(True)


def bmc_solver(timeout_ms: int | None = None) -> z3.Solver:
    """The incremental solver for the unrolling. The states are terms over the
    selectors (Encoder.successor), so there is nothing for solve-eqs to do,
    and the solver keeps what it learnt from one depth to the next; a tactic
    solver (make_solver) would redo its preprocessing of the whole unrolling
    at every check (on fork1_nprocs: depth 23 in about 6.5 min instead of 22 in 20).

    A z3 interrupt that came when no call was running (an earlier, handled
    Ctrl-C in this process) stays pending in the context and would cancel the
    first push; an empty check consumes it. A real pending interrupt is the
    flag's, raised first."""
    interrupt.check()
    slv = z3.SimpleSolver()
    slv.check()
    if timeout_ms is not None:
        slv.set("timeout", max(1, timeout_ms))
    return slv


class _ConcreteRun:
    """A run of the reference interpreter, extended depth-first: a path of n
    violation-free steps shows the unrolling is satisfiable to depth n without
    asking the solver (the check that sat answers slowly on large specs)."""

    BUDGET = 2000       # interpreter steps per call; past it the solver decides

    def __init__(self, system: ir.System, start: object | None = None):
        self.sem = Semantics(system)
        self.start = start
        self.stack: list[Iterator[object]] = []     # per depth on the current run: the untried successors
        self.dead = False                           # every run is shorter than asked

    def _succ(self, state: object) -> Iterator[object]:
        return (t.state for t in self.sem.successors(state) if not t.violations)

    def reach(self, n: int) -> bool:
        """Is there a run of n steps? False when not found within the budget."""
        budget = self.BUDGET
        if not self.stack and not self.dead:
            self.stack.append(self._succ(self.sem.initial_state() if self.start is None else self.start))
        while not self.dead and len(self.stack) <= n and budget > 0:
            budget -= 1
            nxt = next(self.stack[-1], None)
            if nxt is None:
                self.stack.pop()
                self.dead = not self.stack
            else:
                self.stack.append(self._succ(nxt))
        return len(self.stack) > n


def _step_violation(encs: list[StepEnc], prop: str, sel: z3.ArithRef | None = None) -> z3.BoolRef:
    alts = []
    for i, e in enumerate(encs):
        cs = [c for p, c, _ in e.violations if p == prop]
        if cs:
            c = z3.And(e.enabled, z3.Or(cs))
            alts.append(z3.And(sel == i, c) if sel is not None else c)
    return z3.Or(alts) if alts else z3.BoolVal(False)


def _val(m: z3.ModelRef, x: z3.ExprRef) -> int:
    return m.eval(x, model_completion=True).as_long()
