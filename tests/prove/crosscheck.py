"""The explorer's side of the BMC-from-a-state cross-check (tests/prove/test_models.py).

`distances` is a breadth-first search of the reference interpreter
(checker/semantics.py, which the explorer's compiled successors are checked
against) from one state: for each property, the length of a shortest path from
that state to a violation, counted as BMC counts it (an invariant false in the
state reached, a step that raises the property, a deadlock in the state
reached). `walk` samples reachable states by seeded random runs.
"""

from __future__ import annotations

import random
from typing import Any

from checker import ir
from checker.semantics import EvalError, Semantics


def violates(sem: Semantics, state: Any, inv: ir.Invariant) -> bool:
    """An evaluation error counts as false, as in the explorer."""
    try:
        return not sem.eval_in(state, inv.expr)
    except EvalError:
        return True


def distances(sem: Semantics, start: Any, props: list[str], depth: int) -> dict[str, int]:
    """prop -> shortest distance from `start` to its violation, for those within `depth` steps."""
    kinds = sem.system.property_names
    invs = [i for i in sem.system.invariants if i.name in props]
    nthreads = len(sem.system.threads)
    out: dict[str, int] = {}
    seen = {start}
    level = [start]
    for d in range(depth + 1):
        nxt = []
        for s in level:
            for inv in invs:
                if inv.name not in out and violates(sem, s, inv):
                    out[inv.name] = d
            trans = list(sem.successors(s))
            if not trans and "deadlock" in props and "deadlock" not in out and not all(
                    sem.is_terminated(s, t) for t in range(nthreads)):
                out["deadlock"] = d
            if d == depth:
                continue
            for t in trans:
                if t.violations:        # a step into a violation goes nowhere (explorer and BMC)
                    for v in t.violations:
                        if v.prop in props and kinds[v.prop] != "invariant" and v.prop not in out:
                            out[v.prop] = d + 1
                elif t.state not in seen:
                    seen.add(t.state)
                    nxt.append(t.state)
        level = nxt
    return out


def random_run(sem: Semantics, rng: random.Random, cap: int) -> list[Any]:
    """The states of one random run of violation-free steps, from the initial state: it ends
    where no such step is left, or after `cap` steps."""
    s = sem.initial_state()
    path = [s]
    for _ in range(cap):
        trans = [t for t in sem.successors(s) if not t.violations]
        if not trans:
            break
        s = rng.choice(trans).state
        path.append(s)
    return path


def walk(sem: Semantics, rng: random.Random, fractions: list[float], cap: int = 5000) -> list[Any]:
    """States part-way along one random_run: at each of `fractions` of its length."""
    path = random_run(sem, rng, cap)
    return [path[min(len(path) - 1, int(f * (len(path) - 1)))] for f in fractions]


def replay_from(sem: Semantics, start: Any, moves: list[tuple[int, int]]) -> list[Any]:
    """Run BMC's moves (thread, step id) from `start` on the interpreter; the transitions."""
    out = []
    s = start
    for i, (tid, sid) in enumerate(moves):
        t = sem.run_step(s, tid, sem.system.steps[sid])
        assert t is not None, f"move {i} ({tid}, {sid}) is not enabled"
        out.append(t)
        s = t.state
    return out


def shows(sem: Semantics, start: Any, moves: list[tuple[int, int]], prop: str) -> bool:
    """Do the moves, from `start`, end in a violation of `prop` (and not before)?"""
    trans = replay_from(sem, start, moves)
    kind = sem.system.property_names[prop]
    clean = trans if kind in ("invariant", "deadlock") else trans[:-1]
    if any(t.violations for t in clean):
        return False
    end = trans[-1].state if trans else start
    if kind == "invariant":
        inv = next(i for i in sem.system.invariants if i.name == prop)
        return violates(sem, end, inv)
    if kind == "deadlock":
        n = len(sem.system.threads)
        return not list(sem.successors(end)) and not all(sem.is_terminated(end, t) for t in range(n))
    return bool(trans) and any(v.prop == prop for v in trans[-1].violations)
