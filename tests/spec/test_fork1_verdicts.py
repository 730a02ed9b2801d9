"""The narrow fork1 models reach the verdicts their [expect] tables claim.

Exhaustive explorations of the real spec: minutes, so `slow`. (Once
`forkcheck verify` runs model files, it does this for every model; this test
pins the ones that finish quickly and the spec engineer's reading of them.)"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from checker.explore.check import check
from checker.explore.options import ExploreOptions
from checker.lang import load_spec

REPO = Path(__file__).resolve().parents[2]

# Models whose exploration ends (violation found, or the state space done)
# within minutes on one core; the others are bounded runs.
QUICK = ["fork1_randompid", "fork1_swapout", "fork1_swapout_fixed", "fork1_vfork"]


def _run(name: str):  # type: ignore[no-untyped-def]
    path = REPO / "models" / f"{name}.toml"
    m = tomllib.loads(path.read_text())
    system = load_spec(str((path.parent / m["spec"]).resolve()), m.get("constants", {}))
    c = m.get("check", {})
    props = list(c.get("invariants", [])) + list(c.get("properties", []))
    props += [b for b in ("deadlock", "lock_order", "races") if c.get(b)]
    return m["expect"], check(system, ExploreOptions(progress=False), model_name=name,
                              expect=m["expect"], properties=props)


@pytest.mark.slow
@pytest.mark.parametrize("name", QUICK)
def test_narrow_model_verdicts(name: str) -> None:
    expect, result = _run(name)
    got = {p.name: p.verdict.value for p in result.properties if p.name in expect}
    assert got == expect


def _race_items(name: str) -> tuple[str, list[dict]]:  # type: ignore[type-arg]
    _, result = _run(name)
    (races,) = [p for p in result.properties if p.name == "races"]
    return races.verdict.value, races.details.get("races", [])


def test_p2_locked_init_leaves_the_atfork_model_race_free() -> None:
    # q_atfork and q_atfork_fixed differ in FIX_P2_LOCKED_INIT only: F10's 390 is the one breach.
    verdict, items = _race_items("q_atfork")
    assert verdict == "violated" and "proc#3.p_args without proc#3.p_mtx" in items[0]["message"]
    assert _race_items("q_atfork_fixed") == ("holds", [])


F10_BREACHES = {"p_stat", "p_args", "p_procsig", "p_textvp", "p_children", "p_sflag"}


@pytest.mark.slow
@pytest.mark.parametrize("fixed", [False, True])
def test_p2_locked_init_removes_every_guarded_by_breach_of_fork1(fixed: bool) -> None:
    # Every fix on, fork/vfork/rfork only (no other syscall), two CPUs, exhaustive: each guarded_by
    # breach is fork1's. Without FIX_P2_LOCKED_INIT they are F10's; with it (and FIX_LOCKED_ACCESSES,
    # whose refcount(9) reads remove the fd_refcnt lockset pair) the race check holds: the CPU
    # contexts and the SIDL hand-over order what Eraser's plain lockset would pair.
    fixes = {f: True for f in ("FIX_NPROCS_ATOMIC", "FIX_RANDOMPID_SNAPSHOT", "FIX_REFCOUNT_ATOMIC",
                               "FIX_PEERS_LOCK", "FIX_PGLIST_LOCK", "FIX_MTX_INIT_EARLY", "FIX_SCAN_NULL_PGRP",
                               "FIX_HOLD_CHILD", "FIX_SWAPOUT_RECHECK")}
    off = {k: False for k in ("SYS_KTHREAD", "SYS_EXIT", "SYS_WAIT", "SYS_EXEC", "SYS_SETSID", "SYS_SETPGID",
                              "ENV_SWAPPER", "ENV_RANDOMPID", "ENV_ATFORK")}
    system = load_spec(str(REPO / "spec" / "fork1.fk"),
                       dict(GIANT_PUSHED_DOWN=True, NCPU=2, MAXPROC=3, NPROC=3, PID_MAX=6, MAX_CALLS=2,
                            FIX_P2_LOCKED_INIT=fixed, FIX_LOCKED_ACCESSES=fixed, **fixes, **off))
    result = check(system, ExploreOptions(progress=False), model_name="fork_only",
                   properties=["races", "pid_unique"])      # pid_unique holds: the search exhausts
    assert result.stop.value == "finished"
    (races,) = [p for p in result.properties if p.name == "races"]
    kinds: dict[str, set[str]] = {}
    for it in races.details.get("races", []):
        kinds.setdefault(it["kind"], set()).add(it["location"].split(".")[-1])
    if fixed:
        assert races.verdict.value == "holds" and kinds == {}
    else:
        assert kinds.get("guarded_by", set()) == F10_BREACHES
        assert "race" not in kinds
        # the unfixed SIDL mark and PS_INMEM test, and the count read as a plain load
        assert kinds["lockset"] == {"p_stat", "p_sflag", "fd_refcnt"}
