"""verify and the trace renderers on real explorer output (the ABBA deadlock IR from tests/explore)."""

from __future__ import annotations

from pathlib import Path

import pytest

from checker.trace.itf import Trace
from checker.trace.report import Status
from checker.trace.view import build_view
from checker.verify import ModelRun, VerifyOptions, cex_path, verify

from .fakes import model_files

explore = pytest.importorskip("checker.explore")
irbuild = pytest.importorskip("tests.explore.irbuild")


def test_abba_through_verify(tmp_path: Path) -> None:
    expect = {"deadlock": "violated", "lock_order": "violated", "witness": "holds"}

    def run(path: Path, opts: VerifyOptions) -> ModelRun:
        system = irbuild.abba()
        res = explore.check(system, explore.ExploreOptions(), model_name="abba", expect=expect)
        return ModelRun("abba", path, None, expect, [res], system=system)

    o = VerifyOptions(root=tmp_path, cex_dir=tmp_path / "counterexamples")
    rep = verify(model_files(tmp_path, "abba"), o, run)
    by = {r.property: r for r in rep.rows}
    assert by["deadlock"].status is Status.OK and by["lock_order"].status is Status.OK
    assert rep.exit_code() == 0
    t = Trace.read(cex_path(o, "abba", "deadlock"))
    waits = dict(build_view(t).waiting[-1])
    assert waits["t1"] == "waits for b, held by t2 since step 2"
    assert waits["t2"] == "waits for a, held by t1 since step 1"
    # A second run finds the same counterexamples again.
    assert verify(model_files(tmp_path, "abba"), o, run).exit_code() == 0
