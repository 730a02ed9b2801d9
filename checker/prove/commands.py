"""CLI: `forkcheck prove MODEL | pidscan`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..diagnostics import UsageError
from ..results import EXIT_CTI, EXIT_INTERRUPTED, EXIT_LIMIT, EXIT_OK, EXIT_UNEXPECTED, Verdict
from ..cliargs import natural_int as _depth, positive_int as _positive, seconds as _seconds


def register(sub: Any) -> None:
    from .pidscan import Mutation
    p = sub.add_parser(
        "prove", help="z3 proofs: k-induction with CTIs, BMC, and the unbounded pid-scan proof",
        description="Prove a model's invariants by k-induction (a failed step is shown as a counterexample "
                    "to induction, CTI, which is not a bug), or search for violations with bounded model "
                    "checking (--bmc K). `forkcheck prove pidscan` runs the parameterised proofs of fork1's "
                    "pid scan for any number of processes.")
    p.add_argument("model", metavar="MODEL", help="a model (.toml), a spec (.fk), or the word `pidscan` or `refcounts`")
    p.add_argument("--property", action="append", metavar="NAME", dest="properties",
                   help="prove only this property (repeatable)")
    p.add_argument("--bmc", type=_depth, metavar="K", help="bounded model checking to depth K (no proof)")
    p.add_argument("--k", type=_positive, default=1, metavar="N", help="k-induction depth (default 1)")
    p.add_argument("--lemma", action="append", default=[], metavar="NAME",
                   help="use this invariant as a lemma (repeatable; every other invariant is tried too)")
    p.add_argument("--timeout", type=_seconds, metavar="S", help="give up after S seconds (verdict unknown)")
    p.add_argument("--trace-dir", metavar="DIR", help="write each counterexample as DIR/<property>.itf.json")
    p.add_argument("--from-trace", metavar="FILE", help="with --bmc: unroll from a state of this ITF trace (a run "
                   "of MODEL, e.g. a counterexample) instead of the initial state; needs --from-step")
    p.add_argument("--from-step", type=int, metavar="J", help="with --from-trace: the state after the trace's "
                   "first J steps (negative: J steps back from its end)")
    p.add_argument("--mutate", action="append", default=[], metavar="NAME",
                   choices=[m.value for m in Mutation],
                   help="pidscan only: prove a mutated scan (repeatable): " + ", ".join(m.value for m in Mutation))
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--config", choices=["fixed", "2001"], default=None,
                   help="refcounts only: atomic increments (fixed, default) or the 2001 racy ones")
    p.add_argument("--spec", metavar="FILE", help="refcounts only: derive the events from this spec "
                   "(default: the bundled spec/fork1.fk)")
    p.add_argument("--replay", metavar="MODEL", action="append", default=[],
                   help="refcounts --config 2001 only: find each lost update in the explorer over the first "
                   "MODEL that checks its kind's *_refs invariant (a guided search following the schedule) and "
                   "check that invariant or no_dangling breaks (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="pidscan, refcounts: list every proof obligation")
    p.set_defaults(func=cmd_prove)


def cmd_prove(args: argparse.Namespace) -> int:
    if args.model == "pidscan" and not Path("pidscan").exists():
        return _cmd_pidscan(args)
    if args.model == "refcounts" and not Path("refcounts").exists():
        return _cmd_refcounts(args)
    if args.config is not None or args.spec or args.replay:
        raise UsageError("--config, --spec and --replay apply to `forkcheck prove refcounts` only")
    if args.mutate:
        raise UsageError("--mutate applies to `forkcheck prove pidscan` only")
    from ..explore.commands import _print_trace, load_target
    from .run import ProveOptions, provable_subset, prove_system
    if (args.from_trace is None) != (args.from_step is None):
        raise UsageError("--from-trace FILE and --from-step J go together (the state after J steps of FILE)")
    if args.from_trace is not None and args.bmc is None:
        raise UsageError("--from-trace applies to BMC only: add --bmc K")
    tgt = load_target(args.model)
    prefix: tuple[tuple[int, int], ...] = ()
    if args.from_trace is not None:
        from ..trace.itf import Trace
        from .run import prefix_from_trace
        prefix = prefix_from_trace(tgt.system, Trace.read(args.from_trace), args.from_step, args.from_trace)
    opts = ProveOptions(bmc=args.bmc, k=args.k, timeout=args.timeout, lemmas=tuple(args.lemma),
                        progress=False if args.json else None, prefix=prefix)
    for name in args.lemma:
        if name not in {i.name for i in tgt.system.invariants}:
            raise UsageError(f"--lemma {name}: no invariant or lemma of that name")
    res = prove_system(tgt.system, opts, model_name=tgt.name, expect=tgt.expect,
                       properties=args.properties or provable_subset(tgt.system, tgt.properties))
    if args.trace_dir:
        for pr in res.properties:
            if pr.trace is not None:
                f = Path(args.trace_dir) / f"{pr.name}.itf.json"
                pr.trace.write(f)
                pr.trace_file = str(f)
    if args.json:
        print(json.dumps(res.to_json(), indent=1, default=str))
    else:
        lines = res.describe().splitlines()
        # the explorer's state counts mean nothing here: the prover's own summary line
        lines = [ln for ln in lines if not ln.startswith("  0 states")]
        print("\n".join(lines))
        print(f"  {res.stats.seconds:.2f}s" + (f", BMC depth {res.stats.depth}" if args.bmc is not None else
                                                f", k-induction k={args.k}")
              + (f" from step {len(prefix)} of {args.from_trace}" if prefix or args.from_trace else ""))
        for pr in res.properties:
            if pr.trace is not None:
                print(f"\ncounterexample for {pr.name} ({pr.kind}): {pr.message}")
                _print_trace(pr.trace)
            elif pr.verdict is Verdict.CTI:
                print()
                print(pr.details["cti_text"])
    return _exit_code(res)


def _exit_code(res: Any) -> int:
    """DESIGN.md's exit codes. A property the model has no expectation for
    is expected to hold, so a bare spec's CTI exits 4 and an undecided
    property 3 rather than 0."""
    import copy
    r = copy.copy(res)
    r.properties = [copy.copy(p) for p in res.properties]
    for p in r.properties:
        if p.expected is None and p.details.get("method") != "none":
            p.expected = "holds"
    return int(r.exit_code())


GROUP_DOC = {
    "loop invariant": "every CFG edge keeps it; at the end the pid is no pid/pgid/sid on allproc or zombproc",
    "cache invariant": "ids strictly between lastpid and pidchecked are free, across fork/exit/reap/setsid/setpgid",
    "termination": "a lexicographic ranking function decreases on every edge when an id in [floor, PID_MAX) is free",
    "non-termination": "with every id in [floor, PID_MAX) used, the scan can never return",
}


def _cmd_pidscan(args: argparse.Namespace) -> int:
    from .pidscan import Mutation, Status, prove_pidscan
    muts = [Mutation(m) for m in args.mutate]
    tty = sys.stderr.isatty() and not args.json

    def progress(what: str) -> None:
        if tty:
            sys.stderr.write(f"\r  pidscan: {what}\x1b[K")
            sys.stderr.flush()

    timeout_ms = int((args.timeout or 60) * 1000)
    rep = prove_pidscan(muts, timeout_ms, progress)
    if tty:
        sys.stderr.write("\r\x1b[K")
    if args.json:
        print(json.dumps(rep.to_json(), indent=1))
    else:
        title = "pid scan of fork1 (kern_fork.c:310-380), any list length, any PID_MAX and floor"
        if muts:
            title += " -- MUTATED: " + "; ".join(f"{m.value} ({m.doc})" for m in muts)
        print(title)
        groups: dict[str, list[Any]] = {}
        for o in rep.obligations:
            groups.setdefault(o.group, []).append(o)
        for group, obs in groups.items():
            ok = sum(o.status is Status.PROVED for o in obs)
            secs = sum(o.seconds for o in obs)
            print(f"  {group + ':':<18} {ok}/{len(obs)} obligations proved  [{secs:.2f}s]"
                  f"  ({GROUP_DOC.get(group, '')})")
            for o in obs:
                vac = " (VACUOUS: hypothesis unsatisfiable)" if o.vacuous and group != "non-termination" else ""
                if o.status is Status.PROVED and not (args.verbose or vac):
                    continue
                mark = {Status.PROVED: "proved", Status.FAILED: "FAILED", Status.UNKNOWN: "unknown"}[o.status]
                print(f"    {mark:<8} {o.name}  [{o.seconds:.2f}s]{vac}")
                if o.status is Status.FAILED and o.model:
                    print("             counterexample to this step (a CTI: a state that need not be reachable):")
                    for k, v in o.model.items():
                        print(f"               {k}: {v}")
                if o.status is Status.UNKNOWN:
                    print(f"             solver: {o.reason}")
        if rep.nonterminating is not None:
            t, r = rep.nonterminating
            print("  termination needs a free id in [floor, PID_MAX) (each process, group and session takes at "
                  "most one id); without one the scan never returns, e.g.:")
            for line in t.describe().splitlines():
                print(f"    {line}")
            print(f"    -> the scan repeats its state after {len(r.states)} steps "
                  f"(cycle of {len(r.states) - (r.loop_start or 0)}), holding allproc_lock forever")
        if rep.bug:
            print("  concrete counterexample (replayed by the concrete scan):")
            for line in rep.bug.splitlines():
                print(f"    {line}")
        print(f"  verdict: {rep.verdict} ({rep.seconds:.2f}s)" + ("; stopped: interrupted" if rep.interrupted else ""))
    if rep.interrupted:
        return EXIT_INTERRUPTED
    if rep.unknown:
        return EXIT_LIMIT
    if muts:
        # a mutant is expected to be caught: exit 0 when it is, with a counterexample
        return EXIT_OK if rep.failed and rep.bug else (EXIT_CTI if rep.failed else EXIT_UNEXPECTED)
    return EXIT_OK if rep.proved and not any(o.vacuous for o in rep.obligations
                                             if o.group != "non-termination") else EXIT_UNEXPECTED


def _cmd_refcounts(args: argparse.Namespace) -> int:
    from .pidscan import Status
    from .refcount import LEMMA, refcount_report
    from .refcount_ir import DeriveInterrupted
    racy = args.config == "2001"
    if args.replay and not racy:
        raise UsageError("--replay needs --config 2001 (the fixed configuration has no lost update to replay)")
    if args.spec and not Path(args.spec).is_file():
        raise UsageError(f"--spec {args.spec}: no such file")
    for m in args.replay:
        if not Path(m).is_file():
            raise UsageError(f"--replay {m}: no such model file")
    # loaded (and any error in them shown) before the derivation's 20 s
    from ..model import load_model
    replay_models = [load_model(m) for m in args.replay]
    timeout_ms = int((args.timeout or 60) * 1000)
    t0 = time.monotonic()
    try:
        rep = refcount_report(racy, args.spec, timeout_ms)
    except DeriveInterrupted as e:
        print(f"reference counts ({'2001' if racy else 'fixed'} configuration): deriving each event's effect "
              f"from the spec's IR")
        for name, secs in e.done:
            print(f"  derived  {name}  [{secs:.2f}s]")
        print(f"  interrupted while deriving {e.current or 'the first event'}; nothing proved yet")
        print(f"  verdict: unknown ({time.monotonic() - t0:.2f}s); stopped: interrupted")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print(f"reference counts: every event derived from the spec's IR; interrupted while proving the "
              f"invariants from them\n  verdict: unknown ({time.monotonic() - t0:.2f}s); stopped: interrupted")
        return EXIT_INTERRUPTED
    replays = []
    if args.replay:
        from .refcount_replay import replay_all
        try:
            replays = replay_all(rep.lost_updates, replay_models, args.trace_dir)
        except KeyboardInterrupt:
            verdict = "proved" if rep.proved else "violated"
            print(f"reference counts: {verdict}; interrupted while replaying the lost updates in the "
                  f"explorer\n  stopped: interrupted ({time.monotonic() - t0:.2f}s)")
            return EXIT_INTERRUPTED
    if args.json:
        print(json.dumps(rep.to_json(), indent=1, default=str))
    else:
        der = rep.derivation
        assert der is not None
        print(f"reference counts of {rep.spec}, any number of processes "
              f"({'2001: the racy increments as the spec writes them' if racy else 'increments atomic'})")
        print(f"  events derived from the IR ({der.seconds:.1f}s): "
              + ", ".join(f"{e.name}{' @' + ','.join(map(str, e.lines)) if args.verbose and e.lines else ''}"
                          for e in der.events))
        groups: dict[str, list[Any]] = {}
        for o in rep.obligations:
            groups.setdefault(o.group, []).append(o)
        for k in der.kinds:
            obs = groups[f"{k.name}.{k.counter}"]
            ok = sum(o.status is Status.PROVED for o in obs)
            what = "refcount == holders, freed only at 0" if k.freed_at_zero else "refcount == holders (never freed)"
            print(f"  {k.name + '.' + k.counter:<22} {what}: {ok}/{len(obs)} derived cases")
            for o in obs:
                if o.status is not Status.PROVED or args.verbose:
                    print(f"    {o.status.value:<8} {o.name} {o.model or ''}")
        lem = groups.get(LEMMA, [])
        print(f"  {'pointer lemma':<22} kept by {sum(o.status is Status.PROVED for o in lem)}/{len(lem)} events "
              f"(the pre-state's zombies and running processes, assumed by each event)")
        for o in lem:
            if o.status is not Status.PROVED or args.verbose:
                print(f"    {o.status.value:<8} {o.name} {o.model or ''}")
        for u in rep.lost_updates:
            print()
            print(u.describe())
            r = u.replay
            if r is not None:
                print(f"  {r['summary']}")
        print(f"  verdict: {'proved' if rep.proved else 'violated'} ({rep.seconds:.1f}s)")
    if any(o.status is Status.UNKNOWN for o in rep.obligations):
        return EXIT_LIMIT
    if racy:
        if not rep.lost_updates or any(o.status is not Status.PROVED for o in rep.obligations):
            return EXIT_UNEXPECTED
        asked = [r for r in replays if r.asked]
        if any(r.limit for r in asked):
            return EXIT_LIMIT
        return EXIT_OK if all(r.found for r in asked) else EXIT_UNEXPECTED
    return EXIT_OK if rep.proved else EXIT_UNEXPECTED
