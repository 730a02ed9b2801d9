"""Refcount proofs derived from the spec's IR; mutated specs fail; the 2001
lost updates replay in the explorer."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from checker.lang import load_spec
from checker.model import load_model
from checker.prove.pidscan import Status
from checker.prove.refcount import LostUpdate, refcount_report
from checker.prove.refcount_ir import DEFAULT_SPEC, kinds_of
from checker.prove.refcount_replay import replay_all, replay_lost_update
from checker.semantics import Semantics
from checker.trace.itf import Trace

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "fork1_lostupdate.toml"
MODEL_EXEC = REPO / "models" / "fork1_lostupdate_exec.toml"


@pytest.fixture(scope="module")
def fixed():
    return refcount_report(racy_2001=False)


@pytest.fixture(scope="module")
def racy():
    return refcount_report(racy_2001=True, only=frozenset({"filedesc", "plimit", "ucred", "pargs"}))


def _deltas(rep, event: str, kind: str) -> set[tuple[bool, int, int, bool]]:
    ev = next(e for e in rep.derivation.events if e.name.startswith(event))
    return {(d.case.actor, d.dr, d.dh, d.freed_after) for d in ev.deltas[kind]}


def test_kinds_come_from_the_spec() -> None:
    ks = {k.name: k for k in kinds_of(load_spec(str(DEFAULT_SPEC), {"FIX_REFCOUNT_ATOMIC": False}))}
    assert set(ks) == {"ucred", "plimit", "procsig", "pargs", "filedesc", "vmspace", "vnode"}
    assert ("proc", "p_fd") in ks["filedesc"].holders and not ks["vnode"].freed_at_zero
    # 2001: the racy increments are 416, 420, 470, 485; crhold (412) is under cr_mtx
    lines = {r.line for k in ks.values() for r in k.racy if r.delta == 1 and r.line}
    assert lines == {416, 420, 470, 485}
    assert not ks["ucred"].racy


def test_fixed_configuration_is_proved_from_the_ir(fixed) -> None:
    assert fixed.proved, [o.name for o in fixed.obligations if o.status is not Status.PROVED]
    assert sum(o.group == "pointer lemma" for o in fixed.obligations) == len(fixed.derivation.events)
    assert not any(o.vacuous for o in fixed.obligations)
    assert fixed.spec.endswith("spec/fork1.fk")
    names = [e.name for e in fixed.derivation.events]
    assert names[0] == "fork1 (any rflags)" and {"exit1", "sys_wait", "execve"} <= set(names)
    fork = fixed.derivation.events[0]
    assert {412, 416, 420, 463, 470, 485, 563} <= set(fork.lines)
    # what the IR says each event does (the hand table used to say it)
    assert (True, 1, 1, False) in _deltas(fixed, "fork1", "filedesc")        # fdshare at 470
    assert (True, -1, -1, True) in _deltas(fixed, "fork1", "filedesc")       # rfork(RFCFDG) without RFPROC
    assert _deltas(fixed, "exit1", "filedesc") == {(True, -1, -1, False), (True, -1, -1, True)}
    assert _deltas(fixed, "exit1", "ucred") == set()                           # released by wait, not exit
    assert (False, -1, -1, True) in _deltas(fixed, "sys_wait", "ucred")        # the reaped zombie's last ref
    assert _deltas(fixed, "execve", "ucred") == set()                          # exec keeps the credential
    assert _deltas(fixed, "execve", "vnode") == set()
    assert (True, 1, 1, False) in _deltas(fixed, "fork1", "vnode")            # VREF at 463
    assert all(not d.freed_after for e in fixed.derivation.events for d in e.deltas["vnode"])
    assert fixed.to_json()["verdict"] == "proved" and not fixed.lost_updates


def _mutant(tmp: Path, file: str, old: str, new: str) -> Path:
    for f in (REPO / "spec").glob("*.fk"):
        shutil.copy(f, tmp / f.name)
    text = (tmp / file).read_text()
    assert text.count(old) == 1, old
    (tmp / file).write_text(text.replace(old, new))
    return tmp / "fork1.fk"


def test_dropping_the_increment_at_470_is_caught(tmp_path: Path) -> None:
    spec = _mutant(tmp_path, "fork1.fk", "      fd.fd_refcnt := fd.fd_refcnt + 1 @470\n    } else {",
                   "      fd.fd_refcnt := fd.fd_refcnt @470\n    } else {")
    rep = refcount_report(racy_2001=False, spec=spec, only=frozenset({"filedesc"}))
    assert not rep.proved and rep.spec == str(spec)
    bad = [o for o in rep.obligations if o.status is Status.FAILED]
    assert bad and all(o.name.startswith("fork1") for o in bad)
    assert "refcnt +0, holders +1" in bad[0].name
    after, before = bad[0].model["after"], bad[0].model["before"]
    assert after["refcnt"] == before["refcnt"] and int(after["holders"]) == int(before["holders"]) + 1


def test_an_exit_that_forgets_a_release_is_caught(tmp_path: Path) -> None:
    # the branch without FIX_LOCKED_ACCESSES (the configuration the proof reads)
    spec = _mutant(tmp_path, "kern_env.fk", "  } else {\n    limfree(p.p_limit)\n", "  } else {\n")
    rep = refcount_report(racy_2001=False, spec=spec, only=frozenset({"plimit"}))
    bad = [o for o in rep.obligations if o.status is Status.FAILED]
    assert bad and all(o.name.startswith("exit1") for o in bad)
    assert "refcnt +0, holders -1" in bad[0].name


def test_an_exit_that_leaves_a_pointer_in_the_zombie_breaks_the_lemma(tmp_path: Path) -> None:
    """The pre-state assumes zombies hold none of exit1's pointers; exit1 must give that back."""
    # the branch without FIX_LOCKED_ACCESSES (the configuration the proof reads)
    spec = _mutant(tmp_path, "kern_env.fk", "    fdfree(p.p_fd)\n    lock(p.p_mtx)\n    p.p_fd := null\n    unlock(p.p_mtx)\n",
                   "    fdfree(p.p_fd)\n")
    rep = refcount_report(racy_2001=False, spec=spec, only=frozenset({"filedesc"}))
    bad = [o for o in rep.obligations if o.status is Status.FAILED]
    lemma = [o for o in bad if o.group == "pointer lemma"]
    assert len(lemma) == 1 and lemma[0].name.startswith("exit1")
    # and the count: exit1 drops fd_refcnt while the zombie still points to it
    assert all(o.name.startswith("exit1") and "refcnt -1, holders +0" in o.name for o in bad if o not in lemma)


# every name the derivation used to know, renamed consistently: the proof must not change
RENAME = {"fork1": "spawn", "exit1": "quit", "sys_fork": "sys_spawn", "sys_vfork": "sys_vspawn",
          "sys_rfork": "sys_rspawn", "kthread_create": "kspawn", "sys_wait": "sys_reap", "execve": "exec_image",
          "giant_enter": "big_lock", "giant_exit": "big_unlock", "fdfree": "fd_drop", "limfree": "lim_drop",
          "p_stat": "t_state", "p_oncpu": "t_oncpu", "p_fd": "t_files", "p_limit": "t_lim", "p_ucred": "t_cred",
          "p_procsig": "t_sigs", "p_args": "t_argv", "p_textvp": "t_text", "p_vmspace": "t_vm", "p_pgrp": "t_group",
          "fd_refcnt": "fd_count", "cr_ref": "cr_count", "SRUN": "TS_RUN", "SZOMB": "TS_DEAD", "SIDL": "TS_NEW",
          "allproc": "alltasks", "zombproc": "deadtasks", "rfflag": "spawnflag", "rflags": "how",
          "filedesc": "fdtab", "ucred": "cred", "cpu": "core"}


def _renamed(tmp: Path) -> Path:
    for f in (REPO / "spec").glob("*.fk"):
        t = re.sub(r"\b(" + "|".join(RENAME) + r")\b", lambda m: RENAME[m.group(1)], f.read_text())
        t = re.sub(r"\b(ref|list|struct|alloc|pick|in) proc\b", r"\1 task", t)      # the pool, not the keyword
        (tmp / ("spawn.fk" if f.name == "fork1.fk" else f.name)).write_text(t)
    return tmp / "spawn.fk"


def test_a_renamed_spec_gets_the_same_proof(fixed, tmp_path: Path) -> None:
    back = {v: k for k, v in RENAME.items()} | {"task": "proc"}
    unname = lambda s: re.sub(r"\b(" + "|".join(back) + r")\b", lambda m: back[m.group(1)], s)   # noqa: E731
    spec = _renamed(tmp_path)
    old = r"\b(fork1|exit1|p_stat|SZOMB|zombproc|p_oncpu|giant_enter|struct proc|thread cpu)\b|\(allproc\b"
    assert not re.search(old, "".join(f.read_text() for f in tmp_path.glob("*.fk")))
    rep = refcount_report(racy_2001=False, spec=spec, only=frozenset({"fdtab", "cred"}))
    assert rep.proved
    f0, f1 = fixed.derivation.facts, rep.derivation.facts
    assert (f1.pool, f1.stat, f1.run_list, f1.zombie_list, f1.exit_event) == ("task", "t_state", "alltasks",
                                                                            "deadtasks", "quit")
    assert [unname(n) for n in f1.released + f1.live + f1.kept] == list(f0.released + f0.live + f0.kept)
    assert [unname(e.name) for e in rep.derivation.events] == [e.name for e in fixed.derivation.events]

    def obs(r, groups):  # noqa: ANN001, ANN202 -- flag examples are any satisfying value: left out
        return sorted((unname(o.group), re.sub(r" \(e.g. \w+ [^)]*\)", "", unname(o.name)), o.status)
                      for o in r.obligations if unname(o.group).split(".")[0] in groups)
    assert obs(rep, {"filedesc", "ucred", "pointer lemma"}) == obs(fixed, {"filedesc", "ucred", "pointer lemma"})


def test_a_spec_without_the_needed_facts_is_an_error(tmp_path: Path) -> None:
    """What the derivation cannot find is an error at the spec's file:line:col, never a proof."""
    from checker.prove.refcount_ir import DeriveError
    cases = [("kern_env.fk", "  p.p_stat := SZOMB\n", "", "cannot tell zombies"),
             ("fork1.fk", "&& p.p_stat == SRUN && !p.p_oncpu", "&& !p.p_oncpu", "must compare one state field"),
             ("kern_env.fk", "  insert_head(zombproc, p)\n", "", "must take its process off one global list")]
    for i, (file, old, new, msg) in enumerate(cases):
        d = tmp_path / str(i)
        d.mkdir()
        spec = _mutant(d, file, old, new)
        with pytest.raises(DeriveError, match=msg) as e:
            refcount_report(racy_2001=False, spec=spec)
        assert e.value.span is not None and e.value.span.file.endswith(".fk") and e.value.span.line > 0
        r = subprocess.run([sys.executable, "-m", "checker.cli", "prove", "refcounts", "--spec", str(spec)],
                           capture_output=True, text=True, cwd=REPO, timeout=300)
        assert r.returncode == 2 and re.search(r"\.fk:\d+:\d+: error: .*" + msg, r.stderr), r.stdout + r.stderr
        assert "Traceback" not in r.stderr and "proved" not in r.stdout


def test_racy_increments_without_the_fix_toggle_are_not_proved_fixed(tmp_path: Path) -> None:
    """Without FIX_REFCOUNT_ATOMIC the fixed configuration would prove racy increments as atomic."""
    from checker.prove.refcount_ir import DeriveError
    for f in (REPO / "spec").glob("*.fk"):
        (tmp_path / f.name).write_text(f.read_text().replace("FIX_REFCOUNT_ATOMIC", "FIX_COUNTS_ATOMIC"))
    with pytest.raises(DeriveError, match=r"`racy` and the spec has no `fix FIX_REFCOUNT_ATOMIC`") as e:
        refcount_report(racy_2001=False, spec=tmp_path / "fork1.fk")
    assert e.value.span.file.endswith("fork1.fk") and e.value.span.line > 0


def test_2001_lost_updates_come_from_the_racy_steps(racy) -> None:
    assert not racy.proved and all(o.status is Status.PROVED for o in racy.obligations)
    got = {(u.kind, u.racy.line, u.other) for u in racy.lost_updates}
    assert got == {("filedesc", 470, "release"), ("filedesc", 470, "fork"),
                   ("plimit", 485, "release"), ("plimit", 485, "fork"),
                   ("pargs", 416, "release"), ("pargs", 416, "fork")}
    assert next(u for u in racy.lost_updates if u.kind == "pargs" and u.other == "release").other_event \
        == "sys_wait or execve"
    leak = next(u for u in racy.lost_updates if u.other == "release" and u.kind == "filedesc")
    assert leak.final["refcnt"] > leak.final["holders"] and "leak" in leak.consequence
    assert leak.other_event == "exit1" and "kern_fork.c:470" in leak.describe()
    uaf = next(u for u in racy.lost_updates if u.other == "fork" and u.kind == "plimit")
    assert uaf.final["refcnt"] < uaf.final["holders"] and "use after free" in uaf.consequence


def test_lost_updates_replay_in_the_explorer(racy, tmp_path: Path) -> None:
    reps = replay_all(racy.lost_updates, [load_model(MODEL), load_model(MODEL_EXEC)], str(tmp_path))
    assert len(reps) == 6 and all(r.found and r.asked for r in reps), [r.summary for r in reps]
    for u, r in zip(racy.lost_updates, reps):
        model = load_model(MODEL_EXEC if u.kind == "pargs" else MODEL)
        assert r.prop == f"{u.kind}_refs" and r.steps > 0 and "replayed in the explorer" in r.summary
        assert u.replay is not None and u.replay["model"] == model.name
        tr = json.loads(Path(r.trace_file).read_text())
        assert len(tr["states"]) == r.steps + 1
        assert Trace.read(r.trace_file).property == r.prop       # the explorer's ITF, readable by `trace`
        # the schedule's milestones, in order: the load at the line (A), the other event (B), A's store
        _, path = replay_lost_update(u, model)
        assert path is not None and len(r.milestones) == 3
        load, other, store = (path[i] for i in r.milestones)
        assert load.step.kind.value == "load" and str(load.step.ref) == f"kern_fork.c:{u.racy.line}"
        assert store.step.kind.value == "store" and store.thread == load.thread and store.step.ref == load.step.ref
        assert other.thread != load.thread and u.counter in other.step.label
        if u.other == "release":
            assert other.step.frames[-2:] == {"filedesc": ("exit1", "fdfree"), "plimit": ("exit1", "limfree"),
                                              "pargs": ("execve", "pargs_drop")}[u.kind]
        else:
            assert "fork1" in other.step.frames


def test_with_giant_held_the_schedule_does_not_replay(racy, tmp_path: Path) -> None:
    """Giant masks the lost updates (findings F8): the guided search ends without a violation."""
    text = MODEL.read_text().replace("GIANT_PUSHED_DOWN = true", "GIANT_PUSHED_DOWN = false")
    text = text.replace('spec = "../spec/fork1.fk"', f'spec = "{REPO / "spec" / "fork1.fk"}"')
    m = tmp_path / "giant.toml"
    m.write_text(text)
    u = next(u for u in racy.lost_updates if u.kind == "filedesc" and u.other == "release")
    rep, path = replay_lost_update(u, load_model(m))
    assert path is None and not rep.found and not rep.limit and rep.states > 100
    assert "no interleaving follows the schedule" in rep.summary


def test_a_kind_no_replay_model_checks_is_not_asked(racy) -> None:
    pargs = [u for u in racy.lost_updates if u.kind == "pargs"]
    # fork1_lostupdate does not check pargs_refs; ex_abba has no such invariant at all
    reps = replay_all(pargs, [load_model(MODEL), load_model(REPO / "models" / "ex_abba.toml")])
    assert [r.asked for r in reps] == [False, False] and not any(r.found for r in reps)
    assert "no --replay model checks pargs_refs" in reps[0].summary


def test_replay_says_when_the_model_has_no_such_schedule(racy, tmp_path: Path) -> None:
    text = MODEL.read_text().replace("FIX_REFCOUNT_ATOMIC = false", "FIX_REFCOUNT_ATOMIC = true")
    text = text.replace('spec = "../spec/fork1.fk"', f'spec = "{REPO / "spec" / "fork1.fk"}"')
    m = tmp_path / "atomic.toml"
    m.write_text(text)
    u: LostUpdate = racy.lost_updates[0]
    rep, path = replay_lost_update(u, load_model(m))
    assert path is None and not rep.found and "no racy load/store" in rep.summary


@pytest.mark.slow
def test_cli_2001_replays_and_exits_0(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "checker.cli", "prove", "refcounts", "--config", "2001",
                        "--replay", str(MODEL), "--replay", str(MODEL_EXEC), "--trace-dir", str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("replayed in the explorer:") == 8
    assert len(list(tmp_path.glob("*.itf.json"))) == 8


@pytest.mark.slow
def test_cli_on_a_mutated_spec_exits_1(tmp_path: Path) -> None:
    spec = _mutant(tmp_path, "fork1.fk", "      p2.p_limit.p_refcnt := p2.p_limit.p_refcnt + 1 @485\n    } else {",
                   "      p2.p_limit.p_refcnt := p2.p_limit.p_refcnt @485\n    } else {")
    r = subprocess.run([sys.executable, "-m", "checker.cli", "prove", "refcounts", "--spec", str(spec)],
                       capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAILED" in r.stdout.upper() and str(spec) in r.stdout


def test_cli_argument_errors() -> None:
    for args, msg in ((["refcounts", "--replay", str(MODEL)], "--config 2001"),
                      (["refcounts", "--spec", "/nonexistent.fk"], "no such file"),
                      ([str(MODEL), "--spec", "x.fk"], "apply to `forkcheck prove refcounts` only")):
        r = subprocess.run([sys.executable, "-m", "checker.cli", "prove", *args], capture_output=True, text=True,
                           cwd=REPO, timeout=120)
        assert r.returncode == 2 and msg in r.stderr, r.stderr


def test_a_solver_timeout_is_a_limit_not_an_error() -> None:
    from checker.prove.refcount_ir import DeriveTimeout
    with pytest.raises(DeriveTimeout, match="solver gave up") as e:
        refcount_report(racy_2001=False, timeout_ms=1, only=frozenset({"vnode"}))
    assert e.value.exit_code == 3


def test_merging_paths_keeps_every_nondeterministic_outcome() -> None:
    """Two paths both possible from one pre-state (a choose, a pick) stay two
    outcomes after the merge, not the first one only."""
    import z3

    from checker.prove.encode import SymState
    from checker.prove.refcount_ir import _merge

    def st(v: int) -> SymState:
        return SymState({"x": z3.IntVal(v)}, {}, {}, [], [], [])

    g, m = _merge([(z3.BoolVal(True), st(1)), (z3.BoolVal(True), st(2))], z3.Int("c"))
    for want in (1, 2):
        s = z3.Solver()
        s.add(g, m.g["x"] == want)
        assert s.check() == z3.sat
    s = z3.Solver()
    s.add(g, m.g["x"] != 1, m.g["x"] != 2)
    assert s.check() == z3.unsat


def test_an_interrupt_stops_the_guided_search(racy) -> None:
    from checker import interrupt
    interrupt.request()
    try:
        with pytest.raises(KeyboardInterrupt):
            replay_lost_update(racy.lost_updates[0], load_model(MODEL))
    finally:
        interrupt.reset()
