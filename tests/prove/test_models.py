"""Cross-checks of BMC against the explorer on the bundled models: from the
initial state on the example models (BMC's shortest violation has the
explorer's shortest length, and nothing the explorer proves is violated), and
on every model from reachable states deep inside the runs (docs/proofs.md,
"BMC against the explorer")."""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import pytest

import checker.explore as ex
from checker.prove.bmc import bmc
from checker.prove.run import provable_subset, select
from checker.results import Verdict

from .crosscheck import distances, shows, walk

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


# BMC from a reachable state, on every bundled model. For a violation the explorer's BFS finds
# at shortest length L, BMC from the trace's state s_{L-m} must find it at exactly m steps (a
# shorter path from there would make a path from Init shorter than L). From states sampled
# along random runs, BMC must report for every property exactly the shortest distance the
# interpreter's BFS from that state finds (none within m for a property the model expects to
# hold). Times: docs/proofs.md.
ALL = sorted(p.stem for p in (REPO / "models").glob("*.toml"))
M_TRACE = 10                    # m for the explorer's traces
M_SAMPLE = 8                    # depth from the sampled states
FRACTIONS = (0.25, 0.5, 0.75)   # where along a random run the sampled states are


def _agree(system, sem, start, props, m, where):
    """BMC from `start` finds, within m steps, exactly the violations the interpreter's BFS finds
    at the same distances; each finding's moves replay from `start` into its violation."""
    ref = distances(sem, start, props, m)
    r = bmc(system, props, m, start=start)
    assert not r.unknown, (where, r.unknown)
    got = {p: f.depth for p, f in r.found.items()}
    assert got == ref, f"{where}: BMC {got}, interpreter BFS {ref}"
    for p, f in r.found.items():
        assert len(f.moves) == f.depth and shows(sem, start, f.moves, p), (where, p, f.moves)
    return got


@pytest.mark.parametrize("name", [n if n.startswith("ex_") else pytest.param(n, marks=pytest.mark.slow)
                                  for n in ALL])
def test_bmc_from_reachable_states_matches_explorer(name):
    from checker.explore.traces import replay
    from checker.semantics import Semantics
    model = model_mod.load_model(REPO / "models" / f"{name}.toml")
    system = model.system
    sem = Semantics(system)
    props = provable_subset(system, model.properties) or select(system, None)
    expect = dict(model.expect or {})
    violated = [p for p in props if expect.get(p) == "violated"]
    if violated:
        # BFS without POR or symmetry: its traces are shortest and un-permuted as they stand
        res = ex.check(system, ex.ExploreOptions(por=False, symmetry=False, progress=False),
                       model_name=name, properties=violated)
        for e in res.properties:
            assert e.verdict is Verdict.VIOLATED, (e.name, e.verdict)
            moves = [(sem.thread_names.index(st.thread), st.step_id) for st in e.trace.steps[1:]]
            states = [sem.initial_state()] + [t.state for t in replay(sem, moves)]
            n = e.trace_length
            m = min(n, M_TRACE)
            got = _agree(system, sem, states[n - m], props, m, f"{e.name}: s_{n - m} of {n}")
            assert got[e.name] == m
    rng = random.Random(zlib.crc32(name.encode()))
    for i, s in enumerate(walk(sem, rng, list(FRACTIONS))):
        got = _agree(system, sem, s, props, M_SAMPLE, f"sampled state {i}")
        assert not [p for p in got if expect.get(p) == "holds"], got
