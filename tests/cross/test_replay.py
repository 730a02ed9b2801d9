"""Replay of fork1 counterexamples on the reference kernel (issue 5, point 4).

The traces are built here by scripted schedules on the IR (fast, independent of
the explorer's search order); the explorer's own counterexamples are replayed
in the slow tier and, when committed, from counterexamples/."""

from __future__ import annotations

import copy
import dataclasses
import functools
import textwrap
from pathlib import Path

import pytest

from checker.cli import main
from checker.lang import load_spec
from checker.model import load_model
from checker.trace.itf import Trace
from checker.trace.replay import ReplayError, ReplayStatus, replay_trace

from .schedule import ALL_OFF, REPO, SPEC, Run, system

FORK_ONLY = dict(GIANT_PUSHED_DOWN=True, SYS_FORK=True)


def is_store_270(t) -> bool:  # type: ignore[no-untyped-def]
    return t.step.ref is not None and t.step.ref.line == 270 and "[store]" in t.step.label


def nprocs_race() -> tuple[Run, Trace]:
    run, trace = _nprocs_race()
    return run, copy.deepcopy(trace)


@functools.lru_cache(maxsize=1)
def _nprocs_race() -> tuple[Run, Trace]:
    """Two CPUs pass the maxproc test (262) before either increments: nprocs = 5 > maxproc = 4."""
    run = Run.start(system(**FORK_ONLY))
    run.to_line("cpu[0]", 119, prefer=("[proc#1]",))          # init forks pid 3 to completion
    run.to_line("cpu[0]", 262, prefer=("[proc#1]",))          # init forks again: passes 262 at nprocs 3
    run.until("cpu[1]", is_store_270, prefer=("[proc#3]",))   # the child forks: passes 262, nprocs 4
    run.until("cpu[0]", is_store_270)                          # init's increment: nprocs 5
    return run, run.trace("nprocs_bounded", "invariant")


def test_nprocs_race_replays_and_is_violated_on_the_kernel() -> None:
    run, trace = nprocs_race()
    assert trace.states[-1]["nprocs"] == 5
    res = replay_trace(trace, run.sem.system)
    assert res.ok and res.status is ReplayStatus.REPLAYED, res.message
    assert res.confirmed is True
    assert "nprocs = 5 > maxproc = 4" in res.message
    assert res.compared > 50 and res.kernel_steps > 100


def test_division_by_zero_at_318_panics_the_kernel_too() -> None:
    sys_ = system(GIANT_PUSHED_DOWN=True, SYS_FORK=True, ENV_RANDOMPID=True)
    run = Run.start(sys_)
    run.to_line("randompid_sysctl", 190, prefer=("[5]",))       # kern.randompid = 5
    run.to_line("cpu[0]", 317, prefer=("[proc#1]",))            # fork reads randompid != 0 ...
    run.to_line("randompid_sysctl", 190, prefer=("[0]",))       # ... the sysctl sets it to 0 ...
    run.to_line("cpu[0]", 318, prefer=("[3]",))                 # ... and 318 divides by it
    run.to_line("cpu[0]", 318)
    assert run.violation == "runtime"
    res = replay_trace(run.trace("runtime", "runtime"), sys_)
    assert res.ok, res.message
    assert res.confirmed is True and "kern_fork.c:318" in res.message and "divide" in res.message


def test_fix_randompid_snapshot_has_no_division_by_zero() -> None:
    sys_ = system(GIANT_PUSHED_DOWN=True, SYS_FORK=True, ENV_RANDOMPID=True, FIX_RANDOMPID_SNAPSHOT=True)
    run = Run.start(sys_)
    run.to_line("randompid_sysctl", 190, prefer=("[5]",))
    run.to_line("cpu[0]", 317, prefer=("[proc#1]",))
    run.to_line("randompid_sysctl", 190, prefer=("[0]",))
    run.to_line("cpu[0]", 373, prefer=("[3]",))
    assert run.violation is None
    res = replay_trace(run.trace(), sys_)
    assert res.ok and res.status is ReplayStatus.REPLAYED, res.message


# ------------------------------------------------------------------ tampering


def test_a_tampered_value_diverges_at_that_state() -> None:
    run, trace = nprocs_race()
    bad = copy.deepcopy(trace)
    i = next(i for i, st in enumerate(bad.steps) if st is not None and st.ref == "kern_fork.c:373")
    bad.states[i]["lastpid"] += 1
    res = replay_trace(bad, run.sem.system)
    assert not res.ok and res.status is ReplayStatus.DIVERGED
    assert res.divergence is not None and res.divergence.index == i
    assert any(d.startswith("lastpid: trace 4, kernel 3") for d in res.divergence.diffs), res.message


def test_a_tampered_seed_line_diverges_with_both_lines_named() -> None:
    run, trace = nprocs_race()
    bad = copy.deepcopy(trace)
    i = next(i for i, st in enumerate(bad.steps) if st is not None and st.ref == "kern_fork.c:311")
    bad.steps[i] = dataclasses.replace(bad.steps[i], ref="kern_fork.c:373")
    res = replay_trace(bad, run.sem.system)
    assert not res.ok and res.divergence is not None and res.divergence.index == i
    assert "the trace takes kern_fork.c:373" in res.message
    assert "the kernel's next step on cpu[0] is kern_fork.c:311" in res.message


def test_a_trace_of_another_model_is_an_input_error() -> None:
    run, trace = nprocs_race()
    other = system(**FORK_ONLY, MAXPROC=3)
    with pytest.raises(ReplayError, match="initial state is not this model's"):
        replay_trace(trace, other)


def test_a_non_fork1_model_is_not_applicable() -> None:
    ex = load_spec(REPO / "spec" / "examples" / "racy_counter.fk")
    t = Trace(model="x", property="p", kind="invariant", states=[{}], steps=[None])
    res = replay_trace(t, ex)
    assert res.ok and res.status is ReplayStatus.NOT_APPLICABLE and "not a fork1 model" in res.message


def test_a_fix_the_kernel_lacks_is_not_applicable(monkeypatch: pytest.MonkeyPatch) -> None:
    from checker.trace import replay
    monkeypatch.delitem(replay.SPEC_TO_KERNEL_FIX, "FIX_HOLD_CHILD")
    run = Run.start(system(**FORK_ONLY, FIX_HOLD_CHILD=True))
    res = replay_trace(run.trace(), run.sem.system)
    assert res.status is ReplayStatus.NOT_APPLICABLE and "FIX_HOLD_CHILD" in res.message


def test_every_fix_of_the_spec_has_a_kernel_counterpart() -> None:
    from checker.kernel.config import FIXES
    from checker.trace.replay import SPEC_TO_KERNEL_FIX
    spec_fixes = {c for c in system(**FORK_ONLY).constant if c.startswith("FIX_") or c == "GIANT_PUSHED_DOWN"}
    assert spec_fixes == set(SPEC_TO_KERNEL_FIX)
    assert all(k in FIXES for ks in SPEC_TO_KERNEL_FIX.values() for k in ks)


# ------------------------------------------------------------------------ CLI


def model_file(tmp_path: Path, **constants: object) -> Path:
    consts = "\n".join(f"{k} = {str(v).lower() if isinstance(v, bool) else v}" for k, v in constants.items())
    p = tmp_path / "fork1_race.toml"
    p.write_text(textwrap.dedent(f"""\
        spec = "{SPEC}"
        [constants]
        """) + consts + "\n")
    return p


def cli_constants() -> dict[str, object]:
    from .schedule import ALL_OFF
    c: dict[str, object] = dict(ALL_OFF)
    c.update(FORK_ONLY)
    return c


def test_cli_replays_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = model_file(tmp_path, **cli_constants())
    assert load_model(m).system.constant["SYS_VFORK"] is False
    _, trace = nprocs_race()
    f = tmp_path / "t.itf.json"
    trace.write(f)
    assert main(["trace", "replay", str(f), "--model", str(m)]) == 0
    out = capsys.readouterr().out
    assert "no divergence" in out and "nprocs_bounded is violated on the kernel too" in out


def test_cli_tampered_trace_exits_1_with_the_first_divergence(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    m = model_file(tmp_path, **cli_constants())
    _, trace = nprocs_race()
    i = next(i for i, st in enumerate(trace.steps) if st is not None and st.ref == "kern_fork.c:373")
    trace.states[i]["lastpid"] = 9
    f = tmp_path / "t.itf.json"
    trace.write(f)
    assert main(["trace", "replay", str(f), "--model", str(m)]) == 1
    out = capsys.readouterr().out
    assert f"diverges at state {i}: cpu[0] kern_fork.c:373 `lastpid := trypid`" in out
    assert "lastpid: trace 9, kernel 3" in out


def test_cli_example_model_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = REPO / "models" / "ex_racy_counter.toml"
    t = Trace(model="ex_racy_counter", property="both_counted", kind="invariant", states=[{}], steps=[None])
    f = tmp_path / "t.itf.json"
    t.write(f)
    assert main(["trace", "replay", str(f), "--model", str(m)]) == 2
    assert "not a fork1 model" in capsys.readouterr().err


def test_cli_missing_model_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, trace = nprocs_race()
    trace.model = "no_such_model"
    f = tmp_path / "t.itf.json"
    trace.write(f)
    assert main(["trace", "replay", str(f)]) == 2
    assert "cannot find the model 'no_such_model'" in capsys.readouterr().err


def test_cli_json_and_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    m = model_file(tmp_path, **cli_constants())
    _, trace = nprocs_race()
    f = tmp_path / "t.itf.json"
    trace.write(f)
    assert main(["trace", "replay", str(f), "--model", str(m), "--json", "--steps"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and out["status"] == "replayed" and out["confirmed"] is True
    assert out["property"] == "nprocs_bounded" and out["divergence"] is None
    assert any("kern_fork.c:270" in line for line in out["log"])


def test_peer_exit_replays_link_by_link_and_the_kernel_panics_in_the_walk() -> None:
    # q_peers: the racy 293/294 loses a peer; its exit1 walks off the chain. The kernel's exit1 walks
    # the chain one link per step with the model and dereferences NULL at the same test.
    path = REPO / "counterexamples" / "q_peers" / "runtime.itf.json"
    trace = Trace.read(path)
    res = replay_trace(trace, load_model(REPO / "models" / "q_peers.toml").system)
    assert res.ok and res.status is ReplayStatus.REPLAYED, res.message
    assert res.confirmed is True and "peer list" in res.message
    paired = [x for x in res.log if "`q = q->p_peers`" in x and "with the model" in x]
    assert len(paired) >= 2


@pytest.mark.parametrize("fix", ["FIX_PEERS_LOCK", "FIX_PGLIST_LOCK", "FIX_MTX_INIT_EARLY", "FIX_HOLD_CHILD",
                                 "FIX_SWAPOUT_RECHECK", "FIX_P2_LOCKED_INIT"])
def test_fixed_models_replay_with_the_kernels_toggle(fix: str) -> None:
    """A run of a model with the fix replays (not "not replayed") on the kernel with its counterpart."""
    from .schedule import random_run
    calls = dict(GIANT_PUSHED_DOWN=True, SYS_FORK=True, SYS_RFORK=True, SYS_EXIT=True, SYS_WAIT=True,
                 SYS_SETPGID=True, ENV_SWAPPER=fix == "FIX_SWAPOUT_RECHECK")
    sys_ = system(**calls, **{fix: True})
    for seed in range(3):
        run = random_run(sys_, seed, 400)
        res = replay_trace(run.trace(run.violation or "", run.violation or ""), sys_)
        assert res.status is ReplayStatus.REPLAYED and res.ok, f"seed {seed}: {res.message}"
        assert res.compared > 0


def test_wait_reaps_in_wait1s_order() -> None:
    # wait_reap's nprocs-- comes after the zombproc removal and zfree, as in wait1: this schedule (a
    # fork1 reads nprocs, then scans zombproc while a wait is between the two) once diverged when
    # the spec decremented first; it replays step by step now.
    from .schedule import random_run
    from .test_differential import MULTI_CPU
    sys_ = system(**MULTI_CPU["every fix the kernel has"])
    run = random_run(sys_, 1414090484, 1200)
    res = replay_trace(run.trace(), sys_)
    assert res.status is ReplayStatus.REPLAYED and res.ok, res.message
    assert res.compared > 0


# ------------------------------------------------------------------ the swapper

def test_the_swapper_is_replayed_step_by_step_not_mirrored() -> None:
    path = REPO / "counterexamples" / "fork1_swapout" / "parent_resident.itf.json"
    res = replay_trace(Trace.read(path), load_model(REPO / "models" / "fork1_swapout.toml").system)
    assert res.ok and res.confirmed is True and "vm_fork" in res.message, res.message
    swapper = [x for x in res.log if x.startswith("    kernel swapper: vm_glue.c")]
    paired = [x for x in swapper if "with the model" in x]
    # the walk's look (proc lock, p_lock test, sched_lock, swap-state test) and the swap itself
    for label in ("PROC_LOCK(p)", "if (p->p_lock != 0", "mtx_lock_spin(&sched_lock)", "sx_sunlock(&allproc_lock)",
                  "p->p_sflag &= ~PS_INMEM; p->p_sflag |= PS_SWAPPING"):
        assert any(f"`{label}" in x for x in paired), (label, swapper)
    assert not any("mirrored from the model's swapper" in x for x in res.log)


def _swapper_spec(tmp_path: Path, old: str, new: str) -> str:
    """spec/fork1.fk with a swapper changed in a copy of kern_env.fk."""
    for f in ("fork1.fk", "kern_env.fk", "kern_proc.fk"):
        src = (REPO / "spec" / f).read_text()
        if f == "kern_env.fk":
            assert old in src
            src = src.replace(old, new)
        (tmp_path / f).write_text(src)
    return str(tmp_path / "fork1.fk")


def test_a_swapper_that_swaps_a_held_process_diverges(tmp_path: Path) -> None:
    """A swapper that ignores p_lock swaps the forking parent after _PHOLD (555); the kernel's walk looks
    at the same process, finds it held and swaps nothing: the replay names the swap step."""
    spec = _swapper_spec(tmp_path, "ok := p.p_lock == 0 && !(P_WEXIT", "ok := p.p_lock >= 0 && !(P_WEXIT")
    ov = dict(ALL_OFF, GIANT_PUSHED_DOWN=True, SYS_FORK=True, ENV_SWAPPER=True, NCPU=1, USER_RUNS=False)
    sys_ = load_spec(spec, ov)
    run = Run.start(sys_)
    run.to_line("cpu[0]", 556, prefer=("[proc#1]",))            # p_lock 1 from 555
    run.to_label("swapper", "p.p_sflag := p.p_sflag &~ {PS_INMEM}", prefer=("[proc#1]",))
    res = replay_trace(run.trace(), sys_)
    assert not res.ok and res.status is ReplayStatus.DIVERGED, res.message
    assert "the model's swapper takes `p->p_sflag &= ~PS_INMEM" in res.message, res.message
    assert any("`if (p->p_lock != 0 || p->p_flag & (P_SYSTEM|P_WEXIT)) continue  [pid 1]`" in x for x in res.log)
    # the same schedule on the real swapper: it does not swap, and the kernel agrees
    sys_ok = system(GIANT_PUSHED_DOWN=True, SYS_FORK=True, ENV_SWAPPER=True, NCPU=1, USER_RUNS=False)
    ok = Run.start(sys_ok)
    ok.to_line("cpu[0]", 556, prefer=("[proc#1]",))
    ok.to_label("swapper", "if ok [else]", prefer=("[proc#1]",))
    res = replay_trace(ok.trace(), sys_ok)
    assert res.ok and res.status is ReplayStatus.REPLAYED, res.message


# ------------------------------------------- setsid, setpgid, execve step by step

def test_setpgid_setsid_execve_pair_their_steps_with_the_model() -> None:
    """The kernel's setpgid starts with the model's (its pid and pgid read ahead), and each call's
    tests, pglist lock and enterpgrp / refcount and P_EXEC steps go with the model's."""
    for fix in (False, True):
        s = system(GIANT_PUSHED_DOWN=True, SYS_FORK=True, SYS_SETSID=True, SYS_SETPGID=True, SYS_EXEC=True,
                   FIX_PGLIST_LOCK=fix, NCPU=1)
        run = Run.start(s)
        run.to_line("cpu[0]", 119, prefer=("[proc#1]",))                 # pid 3
        run.to_line("cpu[0]", 119, prefer=("[proc#1]",))                 # pid 4
        done = lambda t: t.step.label == "giant_exit()"                  # noqa: E731
        run.until("cpu[0]", done, prefer=("[proc#3]", "SYS_SETSID"))     # pid 3: a session of its own
        run.until("cpu[0]", lambda t: "SYS_SETPGID" in t.step.label, prefer=("[proc#1]", "SYS_SETPGID"))
        run.until("cpu[0]", done, prefer=("[proc#4]", "pgid := t.p_pid"))  # init: setpgid(4, 4)
        run.until("cpu[0]", done, prefer=("[proc#3]", "SYS_EXEC"))
        res = replay_trace(run.trace(), s)
        assert res.ok and res.status is ReplayStatus.REPLAYED, res.message
        paired = {x.split("`")[1] for x in res.log if "(env cpu" in x and "with the model" in x}
        want = {"if (p->p_pgid == p->p_pid || pgfind(p->p_pid) != NULL)", "enterpgrp(p, p->p_pid, 1)",
                "targp = (uap->pid != 0 && uap->pid != curp->p_pid) ? pfind(uap->pid) : curp",
                "if (SESS_LEADER(targp) || targp->p_session != curp->p_session)", "enterpgrp(targp, uap->pgid, 0)",
                "exec_new_vmspace: if (vmspace->vm_refcnt > 1) vmspace_exec(p)", "--p->p_args->ar_ref [load]",
                "--p->p_args->ar_ref [store]", "p->p_flag |= P_EXEC", "if (p->p_flag & P_PPWAIT)"}
        if fix:
            want |= {"sx_xlock(&proctree_lock) [pglist]", "sx_xunlock(&proctree_lock) [pglist]"}
        assert want <= paired, (fix, want - paired)


def test_execve_drops_p_args_in_step_with_a_concurrent_fork() -> None:
    """execve's unlocked --ar_ref (load, store) with fork1's 416 ++ between them: the update is lost on
    both sides, because the kernel's load and store go with the model's (not at the call's return)."""
    s = system(GIANT_PUSHED_DOWN=True, SYS_FORK=True, SYS_EXEC=True)
    run = Run.start(s)
    run.to_line("cpu[0]", 119, prefer=("[proc#1]",))                     # pid 3 shares init's p_args
    run.until("cpu[0]", lambda t: t.step.label == "n := a.ar_ref - 1", prefer=("[proc#3]", "SYS_EXEC"))
    run.until("cpu[1]", lambda t: t.step.ref is not None and t.step.ref.line == 416 and "[store]" in t.step.label,
              prefer=("[proc#1]",))
    run.until("cpu[0]", lambda t: t.step.label == "a.ar_ref := n")
    run.until("cpu[0]", lambda t: t.step.label == "giant_exit()")
    run.to_line("cpu[1]", 119)
    trace = run.trace()
    last = trace.states[-1]
    init = next(f for f in last["proc"].values() if f["p_pid"] == 1)
    assert last["pargs"][init["p_args"]]["ar_ref"] == 1                  # held by init and pid 4: lost
    res = replay_trace(trace, s)
    assert res.ok and res.status is ReplayStatus.REPLAYED, res.message
    order = [x for x in res.log if "ar_ref" in x and x.startswith("    kernel")]
    assert [x.split("`")[1] for x in order[-4:]] == [
        "--p->p_args->ar_ref [load]", "p2->p_args->ar_ref++ [load]", "p2->p_args->ar_ref++ [store]",
        "--p->p_args->ar_ref [store]"], order


def _rfsigshare_then_execve(fixed: bool) -> tuple[Any, Any]:
    s = system(GIANT_PUSHED_DOWN=True, SYS_RFORK=True, SYS_EXEC=True, RFORK_SET=4, FIX_REFCOUNT_ATOMIC=True,
               FIX_LOCKED_ACCESSES=fixed)
    run = Run.start(s)
    run.until("cpu[0]", lambda t: t.step.label == "return e" and t.step.frames[-1] == "sys_rfork",
              prefer=("[proc#1]",))                                      # init's RFSIGSHARE peer
    run.until("cpu[1]", lambda t: t.step.label == "end of execve", prefer=("[proc#3]", "SYS_EXEC"))   # the peer
    # back from the call (states are compared only when no environment call is in flight)
    run.until("cpu[1]", lambda t: t.step.label.startswith("atomic { lock(sched_lock); p.p_oncpu := false"))
    return run.trace(), s


@pytest.mark.parametrize("fixed", [False, True])
def test_execve_unshares_an_rfsigshare_procsig_on_both_sides(fixed: bool) -> None:
    """The spec's execve unshares a shared procsig as kern_exec.c does, so procsig sharing is compared
    after an exec too (it once was a known difference, skipped)."""
    trace, s = _rfsigshare_then_execve(fixed)
    last = trace.states[-1]
    execed = next(f for f in last["proc"].values() if "P_EXEC" in f["p_flag"])
    shared = next(f for f in last["proc"].values() if f["p_pid"] == 1)["p_procsig"]     # init's
    assert execed["p_pid"] == 3 and execed["p_procsig"] != shared                     # its peer unshared
    assert last["procsig"][execed["p_procsig"]]["ps_refcnt"] == 1 and last["procsig"][shared]["ps_refcnt"] == 1
    res = replay_trace(trace, s)
    assert res.ok and res.status is ReplayStatus.REPLAYED, res.message


def test_an_execve_that_keeps_a_shared_procsig_diverges(monkeypatch: pytest.MonkeyPatch) -> None:
    from checker.kernel import kern_exec

    def keep(*_: Any) -> Any:                 # a kernel whose execve leaves the procsig shared
        yield from ()
    monkeypatch.setattr(kern_exec, "_unshare_procsig_locked", keep)
    trace, s = _rfsigshare_then_execve(True)
    res = replay_trace(trace, s)
    assert res.status is ReplayStatus.DIVERGED and "p_procsig" in res.message, res.message
