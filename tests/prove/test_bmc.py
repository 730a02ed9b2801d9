"""BMC against the explorer: same shortest lengths, never a violation the explorer rules out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

import checker.explore as ex
from checker.lang import load_text
from checker.prove.bmc import bmc
from checker.prove.run import ProveOptions, prove_system
from checker.results import Verdict
from randsys import systems
from irbuild import abba, racy_counter_assert

from . import specs

DECIDED = ("invariant", "assert", "deadlock", "runtime", "witness")


def _explore(system):
    # no partial-order reduction: with it the explorer's traces need not be shortest
    res = ex.check(system, ex.ExploreOptions(por=False), model_name=system.name)
    return {p.name: p for p in res.properties}


def _agree(system, depth: int) -> None:
    props = [p for p, k in system.property_names.items() if k in DECIDED]
    exp = _explore(system)
    r = bmc(system, props, depth)
    for p in props:
        e = exp[p]
        if e.verdict is Verdict.VIOLATED:
            assert e.trace_length is not None
            if e.trace_length <= depth:
                assert p in r.found, (p, e.trace_length)
                assert r.found[p].depth == e.trace_length, (p, r.found[p].depth, e.trace_length)
        elif e.verdict is Verdict.HOLDS:
            assert p not in r.found, (p, r.found[p].moves)


@given(systems())
def test_bmc_agrees_with_explorer_on_random_systems(system):
    _agree(system, 12)


@pytest.mark.parametrize("name", ["RACY", "SLEEP", "RUNTIME", "WITNESS", "REFS", "LISTS"])
def test_bmc_agrees_with_explorer_on_feature_specs(name):
    _agree(load_text(getattr(specs, name), f"{name.lower()}.fk"), 20)


def test_bmc_shortest_lost_update_and_trace_replays(tmp_path):
    system = load_text(specs.RACY, "racy.fk")
    res = prove_system(system, ProveOptions(bmc=10, progress=False), model_name="racy")
    pr = {p.name: p for p in res.properties}["counted"]
    assert pr.verdict is Verdict.VIOLATED
    tr = pr.trace
    assert tr.engine == "prove" and len(tr.states) - 1 == 6
    labels = [s.label for s in tr.steps[1:]]
    assert sum("[load]" in x for x in labels) == 2 and sum("[store]" in x for x in labels) == 2
    assert tr.states[-1]["n"] == 1 and tr.states[-1]["done"] == 2
    f = tmp_path / "counted.itf.json"
    tr.write(f)
    from checker.trace.itf import Trace
    assert Trace.read(f).states == tr.states


def test_bmc_exhausts_terminating_systems():
    system = load_text(specs.LISTS, "lists.fk")
    res = prove_system(system, ProveOptions(bmc=30, progress=False), model_name="lists")
    by = {p.name: p for p in res.properties}
    assert by["sum_ok"].verdict is Verdict.HOLDS and by["head_ok"].verdict is Verdict.HOLDS


def test_bmc_without_violation_is_not_a_proof():
    system = load_text(specs.TWO_STEP, "two.fk")
    res = prove_system(system, ProveOptions(bmc=4, progress=False), model_name="two")
    pr = {p.name: p for p in res.properties}["bounded"]
    assert pr.verdict is Verdict.UNKNOWN and "not a proof" in pr.message


@pytest.mark.parametrize("make,prop,length", [(abba, "deadlock", 2), (racy_counter_assert, "all_counted", 7)])
def test_bmc_on_hand_built_ir(make, prop, length):
    system = make()
    r = bmc(system, [prop], 10)
    assert r.found[prop].depth == length


@pytest.mark.parametrize("name", ["RACY", "SLEEP"])
def test_bmc_traces_keep_commuting_local_steps_in_thread_order(name):
    # bmc._Order: of two adjacent moves of different threads, one thread-local, the lower
    # thread's comes first (the violating last move is free); the lengths still match
    # the explorer's (the tests above)
    system = load_text(getattr(specs, name), f"{name.lower()}.fk")
    props = [p for p, k in system.property_names.items() if k in DECIDED]
    r = bmc(system, props, 20)
    local = {st.id: st.is_local for st in system.steps}
    checked = 0
    for f in r.found.values():
        moves = f.moves if f.kind not in ("assert", "runtime", "witness") else f.moves[:-1]
        for (a, sa), (b, sb) in zip(moves, moves[1:]):
            checked += 1
            assert not (a > b and (local[sa] or local[sb])), (f.prop, f.moves)
    assert r.found and checked > 0
