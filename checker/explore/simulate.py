"""Random walks (`forkcheck simulate`): quick bug hunting; never says "holds"."""

from __future__ import annotations

import random
import time

from .. import interrupt, ir
from ..results import PropertyResult, RunResult, Stats, StopReason, Verdict
from ..semantics import EvalError, Semantics, Transition
from .check import STEP_KINDS, select_properties
from .search import peak_memory
from .traces import build_trace


def simulate(system: ir.System, *, runs: int, depth: int, seed: int | None, model_name: str,
             expect: dict[str, str] | None = None, properties: list[str] | None = None) -> RunResult:
    if seed is None:
        seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    sem = Semantics(system)
    kinds = system.property_names
    selected = select_properties(system, properties)
    invs = [i for i in system.invariants if i.name in selected]
    found: dict[str, tuple[list[Transition], str]] = {}
    steps = 0
    t0 = time.monotonic()
    stop = StopReason.FINISHED
    try:
        for _ in range(runs):
            interrupt.check()       # a signal whose KeyboardInterrupt was lost
            state = sem.initial_state()
            path: list[Transition] = []
            for _ in range(depth + 1):
                for inv in invs:
                    if inv.name in found:
                        continue
                    try:
                        ok = sem.eval_in(state, inv.expr)
                    except EvalError:
                        ok = False
                    if not ok:
                        found[inv.name] = (list(path), f"invariant {inv.name} is false")
                if len(path) >= depth:
                    break
                trans = list(sem.successors(state))
                if not trans:
                    if "deadlock" in selected and "deadlock" not in found and not all(
                            sem.is_terminated(state, t) for t in range(len(system.threads))):
                        found["deadlock"] = (list(path), "deadlock: no thread can move and not all are done")
                    break
                t = rng.choice(trans)
                steps += 1
                path.append(t)
                if t.violations:
                    for v in t.violations:
                        if v.prop in selected and v.prop not in found:
                            found[v.prop] = (list(path), v.message)
                    break
                state = t.state
    except KeyboardInterrupt:
        stop = StopReason.INTERRUPTED
    results = []
    for name in selected:
        kind = kinds[name]
        if name in found:
            path, msg = found[name]
            tr = build_trace(sem, path, model=model_name, prop=name, kind=kind, message=msg,
                             extra={"strategy": "simulate", "seed": seed})
            tr.engine = "simulate"
            results.append(PropertyResult(name, kind, Verdict.VIOLATED, trace=tr, message=msg,
                                          expected=(expect or {}).get(name)))
        else:
            why = ("random walks do not check lock order, races or liveness" if kind not in
                   STEP_KINDS + ("invariant", "deadlock") else f"no violation in {runs} random runs")
            # Random walks never show that something holds; only a violation can contradict the model.
            results.append(PropertyResult(name, kind, Verdict.UNKNOWN, message=why))
    stats = Stats(states=steps, transitions=steps, depth=depth, seconds=time.monotonic() - t0,
                  peak_memory=peak_memory())
    return RunResult(model_name, "simulate", stop, results, stats,
                     notes=[f"seed {seed} (rerun with --seed {seed})"])
