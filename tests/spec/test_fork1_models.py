"""models/fork1_*.toml: each binds the fork1 spec to constants it declares and
expects verdicts only for properties the spec has. (Running them is the
explorer's and `forkcheck verify`'s job; this keeps the files honest.)"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from checker.lang import load_spec

REPO = Path(__file__).resolve().parents[2]
MODELS = sorted((REPO / "models").glob("fork1_*.toml"))
VERDICTS = {"holds", "violated", "unknown", "proved"}


def test_there_are_whole_and_narrow_models() -> None:
    names = {m.stem for m in MODELS}
    assert {"fork1_2001", "fork1_fixed", "fork1_nprocs", "fork1_pidscan", "fork1_pidscan_null", "fork1_vfork"} <= names


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_model_loads_and_names_real_things(path: Path) -> None:
    m = tomllib.loads(path.read_text())
    spec = (path.parent / m["spec"]).resolve()
    assert spec == (REPO / "spec" / "fork1.fk").resolve()
    system = load_spec(str(spec), m.get("constants", {}))
    declared = system.constant
    for k, v in m.get("constants", {}).items():
        assert k in declared, f"{path.name}: unknown constant {k}"
        assert declared[k] == v
    names = system.property_names
    check = m.get("check", {})
    for p in list(check.get("invariants", [])) + list(check.get("properties", [])):
        assert p in names, f"{path.name}: unknown property {p}"
    for p, verdict in m.get("expect", {}).items():
        assert p in names, f"{path.name}: [expect] names unknown property {p}"
        assert verdict in VERDICTS


def test_fixed_model_turns_every_fix_on() -> None:
    m = tomllib.loads((REPO / "models" / "fork1_fixed.toml").read_text())
    system = load_spec(str(REPO / "spec" / "fork1.fk"), m["constants"])
    fixes = {c.name: c.value for c in system.constants if c.is_fix}
    assert fixes and all(fixes.values()), [k for k, v in fixes.items() if not v]


def test_2001_model_is_the_2001_code() -> None:
    m = tomllib.loads((REPO / "models" / "fork1_2001.toml").read_text())
    system = load_spec(str(REPO / "spec" / "fork1.fk"), m["constants"])
    assert not any(c.value for c in system.constants if c.is_fix)


def test_init_lastpid_sets_the_boot_pid_counter() -> None:
    """INIT_LASTPID (default 2) is lastpid after init; out of pid_t's range is a located error."""
    from checker.diagnostics import SpecError
    from checker.semantics import Semantics

    spec = str(REPO / "spec" / "fork1.fk")
    for consts, want in (({}, 2), ({"PID_MAX": 5, "INIT_LASTPID": 3}, 3)):
        system = load_spec(spec, consts)
        sem = Semantics(system)
        assert sem.initial_state()[0][sem.gindex["lastpid"]] == want
    with pytest.raises(SpecError, match=r"fork1\.fk:\d+:\d+: .*out of range"):
        load_spec(spec, {"PID_MAX": 5, "INIT_LASTPID": 6})


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_expected_unknown_comes_from_a_state_or_depth_bound(path: Path) -> None:
    """A bounded model's 'unknown' must not depend on the machine: it needs max_states or
    max_depth (a time_limit alone would give a verdict on a faster machine; verify reports
    LIMIT when the time limit stops such a run first)."""
    m = tomllib.loads(path.read_text())
    if "unknown" in m.get("expect", {}).values():
        check = m.get("check", {})
        assert "max_states" in check or "max_depth" in check, (
            f"{path.name} expects 'unknown' but bounds the run only by time")
