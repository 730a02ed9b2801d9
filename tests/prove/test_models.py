"""Cross-checks on the bundled example models: BMC's shortest violation has
the explorer's shortest length, and nothing the explorer proves is violated."""

from __future__ import annotations

from pathlib import Path

import pytest

import checker.explore as ex
from checker.prove.bmc import bmc
from checker.prove.run import provable_subset
from checker.results import Verdict

model_mod = pytest.importorskip("checker.model")

REPO = Path(__file__).resolve().parents[2]
# The example models; of the fork1 models only fork1_nprocs's short race is within the
# prover's unrolling (about 3600 transitions per step: see docs/proofs.md, "Limits").
EXAMPLES = sorted(p.name for p in (REPO / "models").glob("ex_*.toml"))
DEPTH = 12


@pytest.mark.parametrize("name", EXAMPLES)
def test_bmc_matches_explorer_on_example_model(name):
    model = model_mod.load_model(REPO / "models" / name)
    system = model.system
    props = provable_subset(system, list(system.property_names)) or []
    res = ex.check(system, ex.ExploreOptions(por=False), model_name=name)
    exp = {p.name: p for p in res.properties}
    r = bmc(system, props, DEPTH)
    for p in props:
        e = exp[p]
        if e.verdict is Verdict.VIOLATED and e.trace_length is not None and e.trace_length <= DEPTH:
            assert p in r.found and r.found[p].depth == e.trace_length, (p, e.trace_length, r.found.get(p))
        if e.verdict is Verdict.HOLDS:
            assert p not in r.found, (p, r.found[p].moves)


@pytest.mark.slow
def test_bmc_matches_explorer_on_a_fork1_model():
    # fork1's nprocs race (F1): BMC's first violation is at the explorer's shortest depth, and its
    # moves replay on the explorer's interpreter into a state that breaks the invariant. About 2 min
    # on a quiet 2-core machine (docs/proofs.md).
    from checker.explore.traces import replay
    from checker.semantics import Semantics
    model = model_mod.load_model(REPO / "models" / "fork1_nprocs.toml")
    system = model.system
    res = ex.check(system, ex.ExploreOptions(progress=False, stop_first=True), model_name=model.name,
                   properties=["nprocs_bounded"])
    (e,) = res.properties
    assert e.verdict is Verdict.VIOLATED and e.trace_length == 24
    r = bmc(system, ["nprocs_bounded"], e.trace_length)
    found = r.found["nprocs_bounded"]
    assert found.depth == e.trace_length
    sem = Semantics(system)
    last = replay(sem, found.moves)[-1].state
    inv = next(i for i in system.invariants if i.name == "nprocs_bounded")
    assert not sem.eval_in(last, inv.expr)
