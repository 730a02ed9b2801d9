"""DFS and BFS+POR counterexamples are re-searched to a shortest one in the full graph."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from checker import cli, ir
from checker.explore import ExploreOptions, Strategy, check, commands
from checker.results import Verdict
from irbuild import SysBuilder, bin, c, fork_exit, g, gv

ROOT = Path(__file__).resolve().parents[2]


def lengths(r):
    return {p.name: p.trace_length for p in r.properties if p.verdict is Verdict.VIOLATED}


def prop(r, name):
    return next(p for p in r.properties if p.name == name)


def run(s, props=None, **kw):
    kw.setdefault("progress", False)
    return check(s, ExploreOptions(**kw), model_name=s.name, properties=props)


def por_detour() -> ir.System:
    """`a` runs three thread-local steps; `b` breaks the invariant in one step.
    POR takes a's local steps first, so its BFS finds the violation at depth 4."""
    V = ir.IntT(0, 1)
    b = SysBuilder("detour")
    b.glob("x", V, 0)
    a = b.code("a", exit=3)
    for i in range(3):
        a.step(i, i + 1, kind=ir.StepKind.SKIP, label=f"local {i}")
    w = b.code("b", exit=1)
    w.step(0, 1, ir.Assign(gv("x", V), c(1)), label="x := 1")
    b.thread("a", "a")
    b.thread("b", "b")
    b.invariant("x_zero", bin(ir.BinOp.EQ, g("x", V), c(0)))
    return b.build()


def test_dfs_traces_are_shortened_to_the_bfs_length():
    s = fork_exit(2, 3, 6)
    bfs = run(s, por=False)
    raw = run(s, strategy=Strategy.DFS, shorten=False)
    short = run(s, strategy=Strategy.DFS)
    assert lengths(bfs) and lengths(short) == lengths(bfs)
    assert raw.properties and any(lengths(raw)[p] > n for p, n in lengths(bfs).items())
    p = next(p for p in short.properties if p.name == "pid_unique")
    assert p.trace.extra["shortened_from"] == lengths(raw)["pid_unique"]
    assert p.trace.extra["shortest"] == "full graph"
    assert any(f"shortened from {lengths(raw)['pid_unique']} to {p.trace_length} steps" in n for n in short.notes)
    # the shortened trace is a real one: its last state breaks the invariant
    assert p.trace.states[-1] != p.trace.states[0]
    # same verdicts and state counts as without shortening (the re-search is a separate run)
    assert {q.name: q.verdict for q in short.properties} == {q.name: q.verdict for q in raw.properties}
    assert short.stats.states == raw.stats.states


def test_bfs_with_por_is_shortest_in_the_full_graph():
    s = por_detour()
    full = run(s, por=False)
    reduced = run(s, shorten=False)
    fixed = run(s)
    assert lengths(full) == {"x_zero": 1}
    assert lengths(reduced) == {"x_zero": 4}        # the reduced graph postpones b
    assert lengths(fixed) == lengths(full)
    assert prop(fixed, "x_zero").trace.extra["shortened_from"] == 4
    assert fixed.stats.states == reduced.stats.states < full.stats.states
    assert any("partial-order" in n and "from 4 to 1" in n for n in fixed.notes)


def test_fork_exit_por_lengths_equal_no_por_lengths():
    s = fork_exit(2, 3, 6)
    assert lengths(run(s)) == lengths(run(s, por=False))


def test_bfs_trace_not_rechecked_when_por_pruned_nothing_above_it():
    s = por_detour()
    r = run(s, por=False)
    assert prop(r, "x_zero").trace.extra["shortest"] == "full graph"
    assert not any("shortened" in n for n in r.notes)


def test_depth_limit_caps_the_re_search():
    s = fork_exit(2, 3, 6)
    # the re-search never looks deeper than the run's own bound
    r = run(s, strategy=Strategy.DFS, max_depth=90)
    bfs = run(s, por=False)
    assert lengths(r)["pid_unique"] == lengths(bfs)["pid_unique"]


def test_por_with_races_keeps_race_verdicts():
    """A local step that drops a ref can hide a published object from the race analysis."""
    from test_reductions import _pool_model
    s = _pool_model()
    a, b = run(s, por=False), run(s, por=True)
    assert {p.name: p.verdict for p in a.properties} == {p.name: p.verdict for p in b.properties}
    assert lengths(a) == lengths(b)


@pytest.fixture
def target(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("checker.explore.commands",))

    def load(path):
        s = fork_exit(2, 3, 6)
        return commands.Target(s.name, s, {}, None, None)
    monkeypatch.setattr(commands, "load_target", load)


def test_cli_no_shorten_keeps_the_dfs_trace(target, capsys):
    cli.main(["check", "m.toml", "--dfs", "--json", "--property", "pid_unique"])
    short = json.loads(capsys.readouterr().out)
    cli.main(["check", "m.toml", "--dfs", "--json", "--property", "pid_unique", "--no-shorten"])
    raw = json.loads(capsys.readouterr().out)
    n, m = raw["properties"][0]["trace_length"], short["properties"][0]["trace_length"]
    assert m < n
    assert any(f"shortened from {n} to {m} steps" in x for x in short["notes"])
    assert not any("shortened" in x for x in raw["notes"])


EX = ROOT / "spec" / "examples"


@pytest.mark.skipif(importlib.util.find_spec("checker.lang") is None, reason="checker.lang not built")
@pytest.mark.parametrize("name", ["racy_counter", "abba", "lost_wakeup", "peterson"])
def test_examples_dfs_and_por_lengths_equal_bfs_lengths(name):
    from checker.lang import load_spec
    s = load_spec(str(EX / f"{name}.fk"), {})
    safety = [p for p, k in s.property_names.items() if k != "leadsto"]
    want = lengths(run(s, safety, por=False))
    assert lengths(run(s, safety, strategy=Strategy.DFS)) == want
    assert lengths(run(s, safety, strategy=Strategy.DFS, symmetry=False)) == want
    assert lengths(run(s, safety)) == want
