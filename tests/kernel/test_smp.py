"""Several CPUs under chosen interleavings: the 2001 races and their fixes."""

from __future__ import annotations

import pytest

from checker.kernel import RF, Call, Kernel, KernelConfig, StepStatus, WitnessViolation, start
from checker.kernel.invariants import all_violations
from checker.kernel.locks import Lock, LockKind, Mode, Witness

from .conftest import SMALL


def kernel(**fixes: bool) -> Kernel:
    return Kernel(KernelConfig(**SMALL, fixes=fixes))  # type: ignore[arg-type]


def run_until(k: Kernel, cpu: int, pred) -> None:
    """Step `cpu` until its *next* step satisfies pred(At)."""
    for _ in range(10_000):
        at = k.cpus[cpu].pending
        if at is not None and pred(at):
            return
        info = k.step(cpu)
        assert info.status is StepStatus.STEPPED, info
    raise AssertionError("never reached")


def finish(k: Kernel, *cpus: int) -> None:
    for c in cpus:
        info = k.run(c)
        assert info.status is StepStatus.DONE, info


def second_process(k: Kernel) -> object:
    k.spawn(9, start(k, 9, Call.FORK, k.initproc), k.initproc)
    info = k.run(9)
    return k.pfind(info.result.ret)


def lost_update_run(**fixes: bool) -> Kernel:
    """cpu 0 loads nprocs at 270; cpu 1 runs a whole fork; cpu 0 stores."""
    k = kernel(GIANT_PUSHED_DOWN=True, **fixes)
    other = second_process(k)
    k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
    k.spawn(1, start(k, 1, Call.FORK, other), other)
    run_until(k, 0, lambda at: at.line == 276)           # past 270 either way
    if not fixes.get("FIX_NPROCS_ATOMIC"):
        k2 = kernel(GIANT_PUSHED_DOWN=True, **fixes)    # redo, stopping between load and store
        other = second_process(k2)
        k2.spawn(0, start(k2, 0, Call.FORK, k2.initproc), k2.initproc)
        k2.spawn(1, start(k2, 1, Call.FORK, other), other)
        run_until(k2, 0, lambda at: at.label == "nprocs++ [store]")
        k = k2
    finish(k, 1, 0)
    return k


def test_nprocs_lost_update_without_fix():
    k = lost_update_run()
    assert len(k.allproc) + len(k.zombproc) == 5
    assert k.nprocs == 4                                  # one increment lost
    assert any("nprocs" in v for v in all_violations(k))


def test_nprocs_no_lost_update_with_fix():
    k = lost_update_run(FIX_NPROCS_ATOMIC=True)
    assert k.nprocs == 5 and all_violations(k) == []


def test_nprocs_lost_update_needs_giant_pushed_down():
    k = kernel()                                          # 2001: Giant around every syscall
    other = second_process(k)
    k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
    k.spawn(1, start(k, 1, Call.FORK, other), other)
    run_until(k, 0, lambda at: at.label == "nprocs++ [store]")
    info = k.step(1)
    assert info.status is StepStatus.BLOCKED and "Giant" in info.blocked_on
    finish(k, 0, 1)
    assert k.nprocs == 5 and all_violations(k) == []


def overcommit_run(**fixes: bool) -> Kernel:
    """Both CPUs pass the maxproc test at 262 before either increments."""
    k = Kernel(KernelConfig(**{**SMALL, "maxproc": 4}, fixes={"GIANT_PUSHED_DOWN": True, **fixes}))
    other = second_process(k)                             # nprocs 3 of 4
    k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
    k.spawn(1, start(k, 1, Call.FORK, other), other)
    run_until(k, 0, lambda at: at.line == 262)
    run_until(k, 1, lambda at: at.line == 262)
    k.step(0)
    k.step(1)
    finish(k, 0, 1)
    return k


def test_check_then_increment_exceeds_maxproc_even_with_atomic_increment():
    k = overcommit_run(FIX_NPROCS_ATOMIC=True)
    assert k.nprocs == 5 > k.maxproc


def test_locked_check_and_increment_respects_maxproc():
    k = overcommit_run(FIX_NPROCS_LOCKED=True)
    assert k.nprocs == 4 == k.maxproc
    assert [c.result.errno for c in k.cpus.values() if c.result is not None].count(None) == 2  # cpu 9 and one fork


def randompid_race(**fixes: bool):
    k = Kernel(KernelConfig(**{**SMALL, "randompid": 5}, fixes={"GIANT_PUSHED_DOWN": True, **fixes}))
    k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
    run_until(k, 0, lambda at: at.line == 318)
    k.spawn(1, start(k, 1, Call.SYSCTL_RANDOMPID, None, value=0))
    finish(k, 1)
    return k, k.step(0)


def test_randompid_zeroed_between_317_and_318_divides_by_zero():
    k, info = randompid_race()
    assert info.status is StepStatus.PANIC and info.panic.line == 318
    assert "divide" in info.panic.message


def test_randompid_snapshot_fix():
    k, info = randompid_race(FIX_RANDOMPID_SNAPSHOT=True)
    assert info.status is StepStatus.STEPPED
    finish(k, 0)
    assert all_violations(k) == []


def sidl_race(**fixes: bool):
    """cpu 0's child is on allproc (378) but not yet copied (390) when cpu 1 scans."""
    k = kernel(GIANT_PUSHED_DOWN=True, **fixes)
    k.spawn(9, start(k, 9, Call.FORK1, k.proc0, flags=RF.RFFDG | RF.RFPROC | RF.RFHIGHPID), k.proc0)
    finish(k, 9)                                          # pid 3; pidchecked = 0 forces the next scan
    other = k.pfind(3)
    k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
    run_until(k, 0, lambda at: at.line == 380)            # sx_xunlock(&allproc_lock)
    k.step(0)
    k.spawn(1, start(k, 1, Call.FORK, other), other)
    return k, k.run(1)


def test_pid_scan_reads_half_built_proc():
    k, info = sidl_race()
    assert info.status is StepStatus.PANIC and info.panic.line == 345
    assert "SIDL" in info.panic.message


def test_init_before_publish_fix():
    k, info = sidl_race(FIX_INIT_BEFORE_PUBLISH=True)
    assert info.status is StepStatus.DONE and info.result.ret == 4
    finish(k, 0)
    assert all_violations(k) == []


def test_shared_refcount_lost_update():
    """Two children sharing one plimit: fork's p_refcnt++ (485) races with an exit's --."""
    def go(**fixes: bool) -> Kernel:
        k = kernel(GIANT_PUSHED_DOWN=True, **fixes)
        second_process(k)                                 # pid 2 shares init's plimit
        a = k.pfind(2)
        k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
        k.spawn(1, start(k, 1, Call.EXIT, a), a)
        run_until(k, 0, lambda at: at.line == 485 and "[store]" in at.label or at.line == 492)
        run_until(k, 1, lambda at: "p_limit" in at.label and "[store]" in at.label or "SESS_LEADER" in at.label)
        finish(k, 1, 0)
        return k

    broken = go()
    assert any("plimit" in v for v in all_violations(broken))
    assert all_violations(go(FIX_SHARED_REFCNT_ATOMIC=True)) == []


def test_step_info_reports_lines_and_locks():
    k = kernel()
    k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
    run_until(k, 0, lambda at: at.line == 311)
    info = k.step(0)
    assert (info.seed_line, info.file, info.func) == (311, "kern_fork.c", "fork1")
    assert info.locks_held == ("Giant", "allproc_lock")
    snap = k.snapshot()
    assert snap["locks"]["allproc_lock"]["xowner"] == 0 and snap["cpus"][0]["next"]["line"] == 312


def test_witness_hard_errors():
    w = Witness()
    m = Lock("m", LockKind.MUTEX, "m")
    s = Lock("s", LockKind.SPIN, "s")
    w.acquire(0, m, Mode.EXCLUSIVE, "f", 1)
    with pytest.raises(WitnessViolation, match="recursed"):
        w.acquire(0, m, Mode.EXCLUSIVE, "f", 2)
    with pytest.raises(WitnessViolation, match="not owned"):
        w.release(1, m, Mode.EXCLUSIVE, "f", 3)
    w.acquire(0, s, Mode.EXCLUSIVE, "f", 4)
    with pytest.raises(WitnessViolation, match="spin lock"):
        w.acquire(0, Lock("m2", LockKind.MUTEX, "m2"), Mode.EXCLUSIVE, "f", 5)


def test_witness_lock_order_reversal_is_a_warning():
    w = Witness()
    a, b = Lock("a", LockKind.MUTEX, "A"), Lock("b", LockKind.MUTEX, "B")
    w.acquire(0, a, Mode.EXCLUSIVE, "f", 1)
    w.acquire(0, b, Mode.EXCLUSIVE, "f", 2)
    w.release(0, b, Mode.EXCLUSIVE, "f", 3)
    w.release(0, a, Mode.EXCLUSIVE, "f", 4)
    w.acquire(1, b, Mode.EXCLUSIVE, "f", 5)
    w.acquire(1, a, Mode.EXCLUSIVE, "f", 6)
    assert [x.kind for x in w.warnings] == ["lock order reversal"]


@pytest.mark.parametrize("fixes", [{}, {"GIANT_PUSHED_DOWN": True, "FIX_NPROCS_LOCKED": True,
                                         "FIX_RANDOMPID_SNAPSHOT": True, "FIX_SHARED_REFCNT_ATOMIC": True,
                                         "FIX_INIT_BEFORE_PUBLISH": True}])
def test_random_interleavings_keep_invariants(fixes):
    """Three CPUs (fork, rfork sharing everything, a vfork whose child execs), 200 seeded schedules."""
    import random
    for seed in range(200):
        k = Kernel(KernelConfig(**{**SMALL, "randompid": 6}, fixes=fixes))  # type: ignore[arg-type]
        a = second_process(k)
        rng = random.Random(seed)
        k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
        k.spawn(1, start(k, 1, Call.RFORK, a, flags=RF.RFPROC | RF.RFMEM | RF.RFSIGSHARE | RF.RFTHREAD), a)
        k.spawn(2, start(k, 2, Call.SYSCTL_RANDOMPID, None, value=0))
        while k.runnable():
            k.step(rng.choice(k.runnable()))
        assert k.panic is None, (seed, k.panic)
        assert all(c.done for c in k.cpus.values())
        assert all_violations(k) == [], seed
