"""ITF files: written deterministically, valid against the schema, read back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from checker.trace.itf import Trace, TraceError, TraceStep

from .samples import lock_wait, nprocs_race, ppwait_lasso

SAMPLES = [nprocs_race, lock_wait, ppwait_lasso]


@pytest.mark.parametrize("make", SAMPLES, ids=lambda f: f.__name__)
def test_roundtrip_and_schema(make, tmp_path: Path, repo: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    t = make()
    f = tmp_path / "t.itf.json"
    t.write(f)
    jsonschema.validate(json.loads(f.read_text()), json.loads(
        (repo / "tests/data/schemas/itf.schema.json").read_text()))
    back = Trace.read(f)
    assert back.states == t.states and back.steps == t.steps and back.loop == t.loop
    assert [s.locks_held if s else None for s in back.steps] == [s.locks_held if s else None for s in t.steps]
    assert back.dumps() == t.dumps()


def test_bad_files_are_trace_errors(tmp_path: Path) -> None:
    f = tmp_path / "bad.itf.json"
    f.write_text('{"states": []}')
    with pytest.raises(TraceError, match="non-empty 'states'"):
        Trace.read(f)
    f.write_text('{"states": [{}], "loop": 3}')
    with pytest.raises(TraceError, match="'loop' must be a state index"):
        Trace.read(f)


values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**60, 2**60) | st.text(max_size=5),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.from_regex(r"[a-z]{1,4}", fullmatch=True),
                                                               kids, max_size=3),
    max_leaves=8)


@given(st.lists(st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), values, max_size=4),
                min_size=1, max_size=4))
def test_any_valuation_roundtrips(states) -> None:
    keys = set().union(*states)
    states = [{k: s.get(k) for k in sorted(keys)} for s in states]
    steps = [None] + [TraceStep(f"cpu[{i % 2}]", i, f"step {i}", f"kern_fork.c:{260 + i}")
                      for i in range(1, len(states))]
    t = Trace("m", "p", "invariant", states, steps)
    back = Trace.from_itf(json.loads(t.dumps()))
    assert back.states == states and back.steps == steps
