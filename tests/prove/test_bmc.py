"""BMC against the explorer: same shortest lengths, never a violation the explorer rules out."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import checker.explore as ex
from checker.diagnostics import UsageError
from checker.lang import load_text
from checker.prove.bmc import bmc
from checker.prove.encode import EncodeError
from checker.prove.run import ProveOptions, prove_system
from checker.results import EXIT_UNEXPECTED, Verdict
from checker.semantics import Semantics
from randsys import systems
from irbuild import abba, racy_counter_assert

from . import specs
from .crosscheck import distances, shows, walk

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


# ------------------------------------------------ BMC from a reachable state

def _reachable(sem):
    """Every reachable state, breadth first (the specs here are small)."""
    seen = [sem.initial_state()]
    known = set(seen)
    for s in seen:
        for t in sem.successors(s):
            if not t.violations and t.state not in known:
                known.add(t.state)
                seen.append(t.state)
    return seen


def _agree_from(system, sem, start, props, depth):
    ref = distances(sem, start, props, depth)
    r = bmc(system, props, depth, start=start)
    got = {p: f.depth for p, f in r.found.items()}
    assert got == ref, (got, ref)
    for p, f in r.found.items():
        assert shows(sem, start, f.moves, p), (p, f.moves)
    return got


@pytest.mark.parametrize("name", ["RACY", "SLEEP", "RUNTIME", "WITNESS", "REFS", "LISTS"])
def test_bmc_from_every_reachable_state_agrees_with_the_interpreter(name):
    # from each reachable state, BMC's first violation of each property is at the shortest
    # distance the interpreter's BFS from that state finds (none within the depth: none found)
    system = load_text(getattr(specs, name), f"{name.lower()}.fk")
    sem = Semantics(system)
    props = [p for p, k in system.property_names.items() if k in DECIDED]
    states = _reachable(sem)
    found = sum(bool(_agree_from(system, sem, s, props, 6)) for s in states)
    assert len(states) > 1 and (found or name == "LISTS")


@given(systems(), st.randoms(use_true_random=False))
def test_bmc_from_a_random_reachable_state_agrees_with_the_interpreter(system, rnd):
    sem = Semantics(system)
    props = [p for p, k in system.property_names.items() if k in DECIDED]
    for s in walk(sem, rnd, [0.3, 0.7]):
        _agree_from(system, sem, s, props, 8)


def test_bmc_from_a_state_of_another_shape_is_an_error():
    system = load_text(specs.RACY, "racy.fk")
    with pytest.raises(EncodeError, match="shape"):
        bmc(system, ["counted"], 3, start=((), (), ()))


def test_cli_bmc_from_a_trace_state(tmp_path, capsys):
    from checker.cli import main
    from checker.trace.itf import Trace
    g = tmp_path / "racy.fk"
    g.write_text(specs.RACY)
    assert main(["prove", str(g), "--bmc", "8", "--trace-dir", str(tmp_path / "cx")]) == EXIT_UNEXPECTED
    cx = tmp_path / "cx" / "counted.itf.json"
    whole = Trace.read(cx)
    assert len(whole.steps) - 1 == 6
    capsys.readouterr()
    for j, left in (("2", 4), ("-2", 2)):
        out = tmp_path / f"from{j}"
        rc = main(["prove", str(g), "--bmc", "8", "--from-trace", str(cx), "--from-step", j, "--json",
                   "--trace-dir", str(out)])
        assert rc == EXIT_UNEXPECTED
        pr = {p["name"]: p for p in json.loads(capsys.readouterr().out)["properties"]}["counted"]
        # the shortest lost update is 6 steps from Init, so `left` from a state on a shortest trace;
        # the trace written is the whole run: the given steps, then BMC's
        assert pr["verdict"] == "violated" and pr["depth"] == left and pr["from_step"] == 6 - left
        tr = Trace.read(out / "counted.itf.json")
        assert len(tr.steps) - 1 == 6 and tr.steps[1:7 - left] == whole.steps[1:7 - left]
        assert tr.extra["bmc_from_step"] == 6 - left


def test_bmc_from_a_state_never_says_holds():
    # every run from the state ends without a violation: that covers only the runs through it
    system = load_text(specs.LISTS, "lists.fk")
    sem = Semantics(system)
    t = next(sem.successors(sem.initial_state()))
    res = prove_system(system, ProveOptions(bmc=30, progress=False, prefix=((t.thread, t.step.id),)),
                       model_name="lists")
    by = {p.name: p for p in res.properties}
    assert by["sum_ok"].verdict is Verdict.UNKNOWN and "only the runs through that state" in by["sum_ok"].message
    assert by["sum_ok"].details["from_step"] == 1
    with pytest.raises(UsageError, match="BMC only"):
        prove_system(system, ProveOptions(progress=False, prefix=((t.thread, t.step.id),)), model_name="lists")


def test_cli_from_trace_input_errors(tmp_path, capsys):
    from checker.cli import main
    g = tmp_path / "racy.fk"
    g.write_text(specs.RACY)
    main(["prove", str(g), "--bmc", "8", "--trace-dir", str(tmp_path / "cx")])
    cx = str(tmp_path / "cx" / "counted.itf.json")
    r = tmp_path / "rt.fk"
    r.write_text(specs.RUNTIME)
    main(["prove", str(r), "--bmc", "8", "--trace-dir", str(tmp_path / "rt")])
    rt = tmp_path / "rt" / "runtime.itf.json"
    n_rt = len(json.loads(rt.read_text())["states"]) - 1
    s = tmp_path / "sleep.fk"
    s.write_text(specs.SLEEP)
    capsys.readouterr()
    cases = [
        (["--bmc", "8", "--from-trace", cx], "go together"),
        (["--bmc", "8", "--from-step", "2"], "go together"),
        (["--from-trace", cx, "--from-step", "2"], "add --bmc K"),
        (["--bmc", "8", "--from-trace", cx, "--from-step", "7"], "has 6 steps; give 0..6, or -6..-1"),
        (["--bmc", "8", "--from-trace", cx, "--from-step", "-7"], "has 6 steps"),
        (["--bmc", "8", "--from-trace", str(tmp_path / "none.json"), "--from-step", "1"], "no such trace file"),
    ]
    for extra, msg in cases:
        assert main(["prove", str(g), *extra]) == 2, extra
        assert msg in capsys.readouterr().err, extra
    # a trace of another spec: its threads are not this model's
    assert main(["prove", str(s), "--bmc", "4", "--from-trace", cx, "--from-step", "3"]) == 2
    assert "not a run of it" in capsys.readouterr().err
    # a state without the step that led to it (#meta) gives no move
    bare = json.loads((tmp_path / "cx" / "counted.itf.json").read_text())
    del bare["states"][2]["#meta"]
    (tmp_path / "bare.itf.json").write_text(json.dumps(bare))
    assert main(["prove", str(g), "--bmc", "4", "--from-trace", str(tmp_path / "bare.itf.json"),
                 "--from-step", "3"]) == 2
    assert "state 2 does not say which step led to it" in capsys.readouterr().err
    # the last step of a runtime-error trace goes nowhere
    assert main(["prove", str(r), "--bmc", "4", "--from-trace", str(rt), "--from-step", str(n_rt)]) == 2
    assert "raises a violation" in capsys.readouterr().err
