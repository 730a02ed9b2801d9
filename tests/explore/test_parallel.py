"""--workers N: the same reachable states and verdicts as one process."""

from __future__ import annotations

import pytest

from checker.explore import ExploreOptions, check
from checker.results import StopReason, Verdict
from irbuild import abba, fork_exit, racy_counter_assert
from test_core import _counter_loop

SAFE = ["deadlock", "runtime", "witness"]


@pytest.mark.parametrize("mk,props", [
    (lambda: racy_counter_assert(3), ["all_counted"] + SAFE),
    (abba, SAFE),
    (lambda: _counter_loop(3, 4), ["small"] + SAFE),
    (lambda: fork_exit(2, 2, 4), ["nprocs_exact", "pid_unique"] + SAFE),
])
@pytest.mark.parametrize("sym", [False, True])
def test_workers_same_counts_and_verdicts(mk, props, sym):
    m = mk()
    one = check(m, ExploreOptions(symmetry=sym, por=False, progress=False), model_name="m", properties=props)
    two = check(m, ExploreOptions(symmetry=sym, por=False, workers=2, progress=False), model_name="m",
                properties=props)
    assert [(p.name, p.verdict) for p in one.properties] == [(p.name, p.verdict) for p in two.properties]
    if one.stop is StopReason.FINISHED:
        assert one.stats.states == two.stats.states and one.stats.transitions == two.stats.transitions
    for a, b in zip(one.properties, two.properties):
        if a.verdict is Verdict.VIOLATED:
            assert a.trace_length == b.trace_length      # both shortest


def test_workers_with_sequential_analyses_merged():
    r = check(abba(), ExploreOptions(workers=2, progress=False), model_name="abba")
    v = {p.name: p.verdict for p in r.properties}
    assert v["deadlock"] is Verdict.VIOLATED and v["lock_order"] is Verdict.VIOLATED
    assert any("separate one process run" in n for n in r.notes)
