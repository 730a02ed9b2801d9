"""The generated expand (Search._bind_fused) does exactly what Search._expand does: same states
in the same order, same parents, depths, preemption counts, shortest-path counts, verdicts and
counterexamples, in every configuration it takes (BFS/DFS, symmetry, invariant cache or not)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from checker.explore import ExploreOptions, Strategy
from checker.explore import search as search_mod
from checker.explore.check import Explorer
from checker.lang import load_spec
from irbuild import abba, fork_exit, racy_counter_assert
from randsys import systems
from test_core import _counter_loop
from test_liveness import lost_wakeup
from test_reductions import _pool_model

EXAMPLES = Path(__file__).resolve().parents[2] / "spec" / "examples"


def _run(system, opts, props, fuse, monkeypatch):
    monkeypatch.setattr(search_mod, "FUSE", fuse)
    ex = Explorer(system, opts, props, "m")
    r = ex.run()
    s = ex.search
    fused = s._exp is not search_mod.Search._expand
    arrays = tuple(list(a) for a in (s.parent, s.via_tid, s.via_step, s.depth, s.pre, s.last)) + (list(s.count),)
    states = [s.store.get(i) for i in range(len(s.store))]
    verdicts = [(p.name, p.verdict, p.trace_length, p.message) for p in r.properties]
    return fused, (r.stats.states, r.stats.transitions, s.max_depth, r.stop, arrays, states, verdicts)


def _same(system, monkeypatch, props=None, **kw):
    """Both paths agree; returns whether the fused one ran (it does unless the run needs transitions)."""
    props = props or [p for p, k in system.property_names.items() if k not in ("leadsto", "race", "lock_order")]
    opts = ExploreOptions(progress=False, shorten=False, **{"por": False, **kw})
    fused, a = _run(system, opts, props, True, monkeypatch)
    plain, b = _run(system, opts, props, False, monkeypatch)
    assert not plain
    assert a == b
    return fused


@pytest.mark.parametrize("strategy", [Strategy.BFS, Strategy.DFS])
@pytest.mark.parametrize("symmetry", [False, True])
def test_fused_expand_matches_expand(strategy, symmetry, monkeypatch):
    systems_ = [fork_exit(2, 3, 6), racy_counter_assert(2), abba(), lost_wakeup(), _counter_loop(2, 4),
                _pool_model()] + [load_spec(str(f), {}) for f in sorted(EXAMPLES.glob("*.fk"))]
    for m in systems_:
        assert _same(m, monkeypatch, strategy=strategy, symmetry=symmetry)


def test_fused_expand_with_stop_first_and_limits(monkeypatch):
    m = fork_exit(2, 3, 6)
    assert _same(m, monkeypatch, stop_first=True)
    assert _same(m, monkeypatch, max_states=5000)
    assert _same(m, monkeypatch, max_depth=9)


def test_fused_expand_only_where_nothing_needs_transitions(monkeypatch):
    m = fork_exit(2, 3, 6)
    assert not _same(m, monkeypatch, props=["races", "pid_unique"])       # an observer
    assert not _same(m, monkeypatch, por=True)                            # POR's ample sets
    assert not _same(m, monkeypatch, compact=False)                       # the dict store
    assert not _same(m, monkeypatch, compiled=False)                      # the interpreter
    # an invariant that reads a thread: checked on every new state, no cache
    assert _same(_counter_loop(2, 4), monkeypatch)


# each example sets FUSE itself, so the shared monkeypatch is fine
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(systems())
def test_fused_expand_matches_expand_random(monkeypatch, sysm):
    _same(sysm, monkeypatch)
    _same(sysm, monkeypatch, strategy=Strategy.DFS, symmetry=False)
