"""The prover as an engine: a System in, a RunResult out (same shape as `check`)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from .. import interrupt, ir
from ..results import PropertyResult, RunResult, Stats, StopReason, Verdict
from .bmc import BmcFinding, bmc
from .encode import Z3_STOPPED
from .induction import k_induction

# What the prover decides. Leads-to, lock order and races need the whole
# state graph: the explorer's job; they are reported unknown with why.
PROVABLE = ("invariant", "assert", "runtime", "witness", "deadlock")

# Depth of the BMC run that looks for a real violation behind a CTI.
CTI_BMC_DEPTH = 12


@dataclass(frozen=True)
class ProveOptions:
    bmc: int | None = None             # BMC only, to this depth
    k: int = 1                         # k-induction depth
    timeout: float | None = None       # seconds for the whole run
    lemmas: tuple[str, ...] = ()       # invariants to use as lemmas (also proved)
    progress: bool | None = None       # a line per property on stderr; None = when a terminal


def select(system: ir.System, properties: list[str] | None) -> list[str]:
    from ..diagnostics import UsageError
    names = system.property_names
    if properties:
        bad = [p for p in properties if p not in names]
        if bad:
            raise UsageError(f"unknown property {bad[0]!r}; the model has: {', '.join(sorted(names))}")
        return list(properties)
    # by default what the prover decides; leads-to, lock order and races are `check`'s
    return [n for n, k in names.items() if k in PROVABLE and not getattr(_inv(system, n), "lemma", False)]


def _inv(system: ir.System, name: str) -> ir.Invariant | None:
    return next((i for i in system.invariants if i.name == name), None)


def _lemmas(system: ir.System, opts: ProveOptions, targets: list[str]) -> list[str]:
    """Lemmas: the ones named, those the IR marks `lemma`, and every other
    invariant of the spec (Houdini drops the ones that do not hold up)."""
    out = list(opts.lemmas)
    out += [i.name for i in system.invariants if i.name not in targets]
    return list(dict.fromkeys(out))


def _trace(system: ir.System, model: str, f: BmcFinding) -> Any:
    """Replay BMC's moves on the reference interpreter and build the same
    ITF trace the explorer writes."""
    from ..explore.traces import build_trace, replay
    from ..semantics import Semantics
    sem = Semantics(system)
    try:
        transitions = replay(sem, f.moves)
    except RuntimeError as e:   # an encoding bug: never show a trace the interpreter rejects
        raise AssertionError(f"BMC trace for {f.prop} does not replay: {e}") from None
    if f.kind in ("assert", "runtime", "witness"):
        last = transitions[-1]
        assert any(v.prop == f.prop for v in last.violations), "BMC's last step raises no violation"
        f.message = next(v.message for v in last.violations if v.prop == f.prop)
    tr = build_trace(sem, transitions, model=model, prop=f.prop, kind=f.kind, message=f.message)
    tr.engine = "prove"
    tr.extra["bmc_depth"] = f.depth
    return tr


def prove_system(system: ir.System, opts: ProveOptions, *, model_name: str,
                 expect: dict[str, str] | None = None, properties: list[str] | None = None) -> RunResult:
    t0 = time.monotonic()
    expect = expect or {}
    selected = select(system, properties)
    kinds = system.property_names
    show = opts.progress if opts.progress is not None else sys.stderr.isatty()

    def say(msg: str) -> None:
        if show:
            sys.stderr.write(f"\r  prove: {msg}\x1b[K")
            sys.stderr.flush()

    provable = [p for p in selected if kinds[p] in PROVABLE]
    results: dict[str, PropertyResult] = {}
    stop = StopReason.FINISHED
    notes: list[str] = []
    depth = 0
    try:
        if opts.bmc is not None:
            r = bmc(system, provable, opts.bmc, opts.timeout,
                    progress=(lambda k, open_: say(f"BMC depth {k}, open: {', '.join(open_)}")) if show else None)
            depth = max(r.depth, 0)
            if r.interrupted:
                stop = StopReason.INTERRUPTED
            for p in provable:
                if p in r.found:
                    tr = _trace(system, model_name, r.found[p])
                    results[p] = PropertyResult(p, kinds[p], Verdict.VIOLATED, trace=tr, message=tr.message,
                                                details={"method": "bmc", "depth": r.found[p].depth})
                elif p in r.unknown:
                    results[p] = PropertyResult(p, kinds[p], Verdict.UNKNOWN, message=_why_unknown(r.unknown[p], opts.timeout),
                                                details={"method": "bmc"})
                    stop = StopReason.TIME_LIMIT
                elif r.interrupted:
                    results[p] = PropertyResult(
                        p, kinds[p], Verdict.UNKNOWN, details={"method": "bmc", "depth": r.depth},
                        message=_interrupted_bmc(r.depth))
                elif r.exhausted:
                    results[p] = PropertyResult(
                        p, kinds[p], Verdict.HOLDS, details={"method": "bmc", "depth": r.depth},
                        message=f"every execution ends within {r.depth} steps; none violates it")
                else:
                    results[p] = PropertyResult(
                        p, kinds[p], Verdict.UNKNOWN, details={"method": "bmc", "depth": r.depth},
                        message=f"no violation within {r.depth} steps (bounded: not a proof)")
                    stop = StopReason.DEPTH_LIMIT if stop is StopReason.FINISHED else stop
        else:
            lem = _lemmas(system, opts, provable)
            ind = k_induction(system, provable, lem, opts.k, opts.timeout, progress=say if show else None)
            if ind.interrupted:
                stop = StopReason.INTERRUPTED
            for p in provable:
                if p in ind.violated:
                    tr = _trace(system, model_name, ind.violated[p])
                    results[p] = PropertyResult(p, kinds[p], Verdict.VIOLATED, trace=tr, message=tr.message,
                                                details={"method": "k-induction base case", "k": opts.k})
                elif p in ind.proved:
                    used = [x for x in ind.proved if x != p and kinds[x] == "invariant"]
                    results[p] = PropertyResult(
                        p, kinds[p], Verdict.PROVED, details={"method": "k-induction", "k": opts.k, "with": used},
                        message=f"inductive (k={opts.k})" + (f" together with {', '.join(used)}" if used else ""))
                elif p in ind.ctis:
                    cti = ind.ctis[p]
                    results[p] = PropertyResult(
                        p, kinds[p], Verdict.CTI, details={"method": "k-induction", "k": opts.k,
                                                           "cti": cti.to_json(), "cti_text": cti.describe()},
                        message=f"counterexample to induction at `{cti.steps[-1].label}` by {cti.steps[-1].thread} "
                                f"(not a bug: strengthen with a lemma or raise --k)")
                elif ind.interrupted and p not in ind.unknown:
                    results[p] = PropertyResult(p, kinds[p], Verdict.UNKNOWN, details={"method": "k-induction",
                                                                                      "k": opts.k},
                                                message="interrupted before it was decided")
                else:
                    results[p] = PropertyResult(p, kinds[p], Verdict.UNKNOWN,
                                                message=_why_unknown(ind.unknown.get(p, "unknown"), opts.timeout),
                                                details={"method": "k-induction", "k": opts.k})
                    if stop is not StopReason.INTERRUPTED:
                        stop = StopReason.TIME_LIMIT
            # a CTI may hide a real bug: look for one, shortest first
            ctis = [p for p in provable if results[p].verdict is Verdict.CTI]
            left = None if opts.timeout is None else opts.timeout - (time.monotonic() - t0)
            if ctis and (left is None or left > 0) and stop is not StopReason.INTERRUPTED:
                say("BMC behind the CTIs")
                r = bmc(system, ctis, CTI_BMC_DEPTH, left)
                if r.interrupted:
                    stop = StopReason.INTERRUPTED
                for p in ctis:
                    if p in r.found:
                        tr = _trace(system, model_name, r.found[p])
                        results[p] = PropertyResult(p, kinds[p], Verdict.VIOLATED, trace=tr, message=tr.message,
                                                    details={"method": "bmc after a CTI", "depth": r.found[p].depth,
                                                             "cti": results[p].details["cti"]})
                    elif not r.interrupted:
                        results[p].details["bmc_depth_clean"] = r.depth
        interrupt.check()       # a signal whose KeyboardInterrupt was lost on the way
    except KeyboardInterrupt:
        stop = StopReason.INTERRUPTED
    except Z3_STOPPED:
        # z3 stopped by the watcher in a call other than check() (simplify, eval) raises its own error
        if not interrupt.requested():
            raise
        stop = StopReason.INTERRUPTED
    finally:
        if show:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
    out: list[PropertyResult] = []
    for p in selected:
        pr = results.get(p)
        if pr is None:
            why = ("leads-to needs the state graph: use `forkcheck check`" if kinds[p] == "leadsto" else
                   f"{kinds[p]} is decided by `forkcheck check`, not by the prover")
            if stop is StopReason.INTERRUPTED and kinds[p] in PROVABLE:
                why = "interrupted before it was decided"
            pr = PropertyResult(p, kinds[p], Verdict.UNKNOWN, message=why, details={"method": "none"})
        pr.expected = expect.get(p)
        out.append(pr)
    if any(p.verdict is Verdict.VIOLATED for p in out) and stop is StopReason.FINISHED:
        stop = StopReason.VIOLATION
    secs = time.monotonic() - t0
    for p in out:
        p.seconds = p.seconds or secs
    res = RunResult(model_name, "prove", stop, out, Stats(depth=depth, seconds=secs), notes)
    if any(kinds[p.name] not in PROVABLE for p in out):
        res.notes.append("leads-to, lock order and races are decided by `forkcheck check`")
    return res


def _interrupted_bmc(depth: int) -> str:
    if depth < 0:
        return "interrupted before it was checked"
    return f"interrupted: no violation within {depth} steps (bounded: not a proof)"


def _why_unknown(reason: str, timeout: float | None) -> str:
    if reason in ("canceled", "timeout") and timeout is not None:
        return f"the solver hit the time limit ({timeout:g}s)"
    return f"the solver gave up: {reason}"


def prove_model(model: Any, time_limit: float | None = None, **kw: Any) -> RunResult:
    """Entry point for `forkcheck verify`: a loaded model (checker.model)."""
    opts = ProveOptions(timeout=time_limit, progress=False, **kw)
    return prove_system(model.system, opts, model_name=getattr(model, "name", "") or model.system.name,
                        expect=dict(getattr(model, "expect", {}) or {}),
                        properties=provable_subset(model.system, getattr(model, "properties", None)))


def provable_subset(system: ir.System, props: list[str] | None) -> list[str] | None:
    """A model's property list, less what only the explorer decides."""
    if props is None:
        return None
    kinds = system.property_names
    return [p for p in props if kinds.get(p) in PROVABLE]


ProgressFn = Callable[[str], None]
