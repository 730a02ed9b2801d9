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
    prefix: tuple[tuple[int, int], ...] = ()   # BMC only: start after these moves (thread, step id) from Init


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


def prefix_from_trace(system: ir.System, trace: Any, step: int, source: str) -> tuple[tuple[int, int], ...]:
    """The moves (thread, step id) of a trace's first `step` steps (negative: counted back from
    its end), checked to be a run of `system` from its initial state: BMC starts at that state."""
    from ..diagnostics import UsageError
    from ..semantics import Semantics
    n = len(trace.steps) - 1
    if not -n <= step <= n:
        raise UsageError(f"--from-step {step}: {source} has {n} steps; give 0..{n}, or -{n}..-1 to count "
                         f"back from its end")
    j = step if step >= 0 else n + step
    sem = Semantics(system)
    state = sem.initial_state()
    moves = []
    for i, st in enumerate(trace.steps[1:j + 1], 1):
        if st is None:
            raise UsageError(f"{source}: state {i} does not say which step led to it (no thread and step "
                             f"in its #meta): not a trace forkcheck wrote")
        if st.thread not in sem.thread_names:
            raise UsageError(f"{source}: step {i} is by {st.thread!r}, not a thread of this "
                             f"model ({', '.join(sem.thread_names)}): the trace is not a run of it")
        tid = sem.thread_names.index(st.thread)
        pc = state[2][tid][0]
        step_ir = next((x for x in sem.thread_code[tid].steps_from[pc] if x.id == st.step_id), None)
        t = sem.run_step(state, tid, step_ir) if step_ir is not None else None
        if t is None:
            raise UsageError(f"{source}: step {i} ({st.thread}: {st.label}) cannot be taken there in this "
                             f"model: the trace is not a run of it")
        if t.violations:
            raise UsageError(f"--from-step {step}: step {i} of {source} raises a violation "
                             f"({t.violations[0].message}), so no run goes on from it; start before it")
        moves.append((tid, st.step_id))
        state = t.state
    return tuple(moves)


def _trace(system: ir.System, model: str, f: BmcFinding, prefix: tuple[tuple[int, int], ...] = ()) -> Any:
    """Replay BMC's moves (after `prefix`, the moves to its start state) on
    the reference interpreter and build the same ITF trace the explorer
    writes: a whole run from the initial state."""
    from ..explore.traces import build_trace, replay
    from ..semantics import Semantics
    sem = Semantics(system)
    try:
        transitions = replay(sem, list(prefix) + f.moves)
    except RuntimeError as e:   # an encoding bug: never show a trace the interpreter rejects
        raise AssertionError(f"BMC trace for {f.prop} does not replay: {e}") from None
    if f.kind in ("assert", "runtime", "witness"):
        last = transitions[-1]
        assert any(v.prop == f.prop for v in last.violations), "BMC's last step raises no violation"
        f.message = next(v.message for v in last.violations if v.prop == f.prop)
    tr = build_trace(sem, transitions, model=model, prop=f.prop, kind=f.kind, message=f.message)
    tr.engine = "prove"
    tr.extra["bmc_depth"] = f.depth
    if prefix:
        tr.extra["bmc_from_step"] = len(prefix)
    return tr


def prove_system(system: ir.System, opts: ProveOptions, *, model_name: str,
                 expect: dict[str, str] | None = None, properties: list[str] | None = None) -> RunResult:
    t0 = time.monotonic()
    if opts.prefix and opts.bmc is None:
        from ..diagnostics import UsageError
        raise UsageError("a start state (ProveOptions.prefix) applies to BMC only: set bmc")
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
            start = None
            if opts.prefix:
                from ..explore.traces import replay
                from ..semantics import Semantics
                start = replay(Semantics(system), list(opts.prefix))[-1].state
            # from a trace's state BMC covers only the runs through it: never `holds`
            where = {"from_step": len(opts.prefix)} if opts.prefix else {}
            after = f" after step {len(opts.prefix)} of the given trace" if opts.prefix else ""
            r = bmc(system, provable, opts.bmc, opts.timeout, start=start,
                    progress=(lambda k, open_: say(f"BMC depth {k}, open: {', '.join(open_)}")) if show else None)
            depth = max(r.depth, 0)
            if r.interrupted:
                stop = StopReason.INTERRUPTED
            for p in provable:
                if p in r.found:
                    tr = _trace(system, model_name, r.found[p], opts.prefix)
                    results[p] = PropertyResult(p, kinds[p], Verdict.VIOLATED, trace=tr, message=tr.message,
                                                details={"method": "bmc", "depth": r.found[p].depth, **where})
                elif p in r.unknown:
                    results[p] = PropertyResult(p, kinds[p], Verdict.UNKNOWN, message=_why_unknown(r.unknown[p], opts.timeout),
                                                details={"method": "bmc", **where})
                    stop = StopReason.TIME_LIMIT
                elif r.interrupted:
                    results[p] = PropertyResult(
                        p, kinds[p], Verdict.UNKNOWN, details={"method": "bmc", "depth": r.depth, **where},
                        message=_interrupted_bmc(r.depth) + after)
                elif r.exhausted and opts.prefix:
                    results[p] = PropertyResult(
                        p, kinds[p], Verdict.UNKNOWN, details={"method": "bmc", "depth": r.depth, **where},
                        message=f"every execution{after} ends within {r.depth} more steps; none violates it "
                                f"(only the runs through that state: not a proof)")
                    stop = StopReason.DEPTH_LIMIT if stop is StopReason.FINISHED else stop
                elif r.exhausted:
                    results[p] = PropertyResult(
                        p, kinds[p], Verdict.HOLDS, details={"method": "bmc", "depth": r.depth},
                        message=f"every execution ends within {r.depth} steps; none violates it")
                else:
                    results[p] = PropertyResult(
                        p, kinds[p], Verdict.UNKNOWN, details={"method": "bmc", "depth": r.depth, **where},
                        message=f"no violation within {r.depth} steps{after} (bounded: not a proof)")
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
