"""Prover timings (not a pass/fail test): `python tests/bench/bench_prove.py`.

Every proof of the test suite must finish within 60 s; this prints how long
each one takes here, so a slowdown shows up before it becomes a timeout.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

BUDGET = 60.0   # seconds per proof (the bound)


def timed(label: str, fn: Callable[[], object], budget: float = BUDGET) -> float:
    t0 = time.monotonic()
    fn()
    dt = time.monotonic() - t0
    flag = "" if dt < budget else "   OVER BUDGET"
    print(f"  {label:<58} {dt:7.2f}s{flag}")
    return dt


def main() -> int:
    from checker.lang import load_text
    from checker.prove.bmc import bmc
    from checker.prove.pidscan import (Mutation, prove_cache_invariant, prove_loop_invariant,
                                       prove_nontermination, prove_pidscan, prove_termination)
    from checker.prove.refcount import refcount_report
    from checker.prove.run import ProveOptions, prove_system
    from prove import specs

    print("pid scan (unbounded)")
    timed("loop invariant", prove_loop_invariant)
    timed("cache invariant", prove_cache_invariant)
    timed("termination (ranking function)", prove_termination)
    timed("non-termination", prove_nontermination)
    for m in Mutation:
        timed(f"mutant {m.value}: proof + counterexample", lambda m=m: prove_pidscan([m]))
    print("refcounts (any number of processes)")
    timed("fixed: events derived from spec/fork1.fk, every kind", lambda: refcount_report(False))

    def racy_replayed() -> None:
        from checker.model import load_model
        from checker.prove.refcount_replay import replay_all
        rep = refcount_report(True)
        replay_all(rep.lost_updates, [load_model(REPO / "models" / "fork1_lostupdate.toml"),
                                      load_model(REPO / "models" / "fork1_lostupdate_exec.toml")])
    timed("2001: lost updates, replayed in the explorer", racy_replayed)
    print("IR: k-induction and BMC on small specs")
    for name, kw in (("LEMMA", {}), ("TWO_STEP", {"k": 2}), ("RACY", {}), ("REFS", {"bmc": 20}),
                     ("LISTS", {"bmc": 20}), ("SLEEP", {"bmc": 20})):
        system = load_text(getattr(specs, name), f"{name.lower()}.fk")
        timed(f"{name} {kw or 'k=1'}", lambda s=system, kw=kw: prove_system(
            s, ProveOptions(progress=False, **kw), model_name=name))
    try:
        from checker.model import load_model
    except ImportError:
        return 0
    print("example models: BMC to depth 12")
    for f in sorted((REPO / "models").glob("ex_*.toml")):
        system = load_model(f).system
        props = [p for p, k in system.property_names.items() if k in ("invariant", "assert", "deadlock")]
        timed(f.name, lambda s=system, props=props: bmc(s, props, 12))
    # not in the suite yet (docs/proofs.md, BMC): to be a slow-tier cross-check it needs a few minutes
    print("fork1_nprocs: BMC to the explorer's shortest nprocs_bounded violation")
    import checker.explore as ex
    system = load_model(REPO / "models" / "fork1_nprocs.toml").system
    (e,) = ex.check(system, ex.ExploreOptions(por=False), model_name="fork1_nprocs",
                    properties=["nprocs_bounded"]).properties
    depth = e.trace_length or 0
    timed(f"BMC to depth {depth}", lambda: bmc(system, ["nprocs_bounded"], depth), budget=300.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
