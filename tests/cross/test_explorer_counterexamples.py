"""Every counterexample the explorer finds on a fork1 model replays on the kernel; so does every
committed file in counterexamples/ whose model is a fork1 model."""

from __future__ import annotations

from pathlib import Path

import pytest

from checker.explore.check import check
from checker.explore.options import ExploreOptions
from checker.model import load_model
from checker.results import Verdict
from checker.trace.itf import Trace
from checker.trace.replay import ReplayStatus, find_model, replay_trace

from .schedule import REPO, system

COMMITTED = sorted((REPO / "counterexamples").glob("*/*.itf.json"))


@pytest.mark.slow
def test_explorer_nprocs_counterexample_replays() -> None:
    # Two CPUs, fork only, Giant pushed down: ~70k states to the 262/270 race (about 30 s).
    sys_ = system(GIANT_PUSHED_DOWN=True, SYS_FORK=True)
    res = check(sys_, ExploreOptions(max_states=300_000, stop_first=True), model_name="cross",
                properties=["nprocs_bounded"])
    (prop,) = res.properties
    assert prop.verdict is Verdict.VIOLATED and prop.trace is not None
    rep = replay_trace(prop.trace, sys_)
    assert rep.ok and rep.status is ReplayStatus.REPLAYED and rep.confirmed, rep.message


@pytest.mark.parametrize("path", COMMITTED, ids=[str(p.relative_to(REPO)) for p in COMMITTED])
def test_committed_counterexample_replays(path: Path) -> None:
    trace = Trace.read(path)
    model = find_model(path, trace)
    if model is None:
        pytest.skip(f"no model file for {trace.model!r}")
    rep = replay_trace(trace, load_model(model).system)
    if rep.status is ReplayStatus.NOT_APPLICABLE:
        pytest.skip(rep.message)
    assert rep.ok, rep.message


FORK1_MODELS = sorted((REPO / "models").glob("fork1_*.toml"))


@pytest.mark.slow
@pytest.mark.parametrize("path", FORK1_MODELS, ids=[p.stem for p in FORK1_MODELS])
def test_bundled_model_counterexamples_replay(path: Path) -> None:
    # Each model gets 20 s (CI runs 2 cores, 90 minutes for everything): what is found within it must
    # replay. Counterexamples that need longer are covered by the committed files (test above).
    model = load_model(path)
    opts = ExploreOptions(max_states=60_000, time_limit=20, stop_first=True)
    res = check(model.system, opts, model_name=model.name, expect=model.expect)
    traces = [p for p in res.properties if p.trace is not None]
    if not traces:
        pytest.skip(f"no counterexample within the budget ({res.stop.value})")
    for p in traces:
        assert p.trace is not None
        rep = replay_trace(p.trace, model.system)
        if rep.status is ReplayStatus.NOT_APPLICABLE:
            pytest.skip(rep.message)
        assert rep.ok, f"{p.name}: {rep.message}"
