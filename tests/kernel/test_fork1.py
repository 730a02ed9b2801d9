"""fork1 and its neighbours against the seed, one CPU."""

from __future__ import annotations

import json

import pytest

from checker.kernel import RF, Call, Errno, PFlag, PSFlag, PStat
from checker.kernel.invariants import all_violations, fresh_pid_ok

from .conftest import make


def state(k):
    s = k.snapshot()
    s.pop("cpus")
    s.pop("locks")
    return json.dumps(s, sort_keys=True)


def test_boot_table(kr):
    k, _ = kr
    assert [p.p_pid for p in k.allproc] == [1, 0]
    assert (k.nprocs, k.lastpid, k.pidchecked) == (2, 1, 0)
    init = k.initproc
    assert init.p_pptr is k.proc0 and init.p_pgrp.pg_id == 1 and init.p_session.s_sid == 1
    assert init.p_session.s_leader is init
    assert all_violations(k) == []


def test_einval_before_any_side_effect(kr):
    k, r = kr
    before = state(k)
    out = r.call(Call.FORK1, k.initproc, flags=RF.RFPROC | RF.RFFDG | RF.RFCFDG)
    assert out.result.errno is Errno.EINVAL
    assert state(k) == before


def test_fork_returns_child_and_links_it(kr):
    k, r = kr
    out = r.call(Call.FORK, k.initproc)
    assert out.result.ret == 2
    c = k.pfind(2)
    assert c.p_pptr is k.initproc and k.initproc.p_children[0] is c
    assert k.allproc[0] is c and c.p_stat is PStat.SRUN
    assert c.p_pgrp is k.initproc.p_pgrp and c.p_ucred is k.initproc.p_ucred
    assert c.p_fd is not k.initproc.p_fd            # RFFDG: a copy
    assert c.p_vmspace is not k.initproc.p_vmspace  # no RFMEM
    members = k.initproc.p_pgrp.pg_members
    assert members.index(c) == members.index(k.initproc) + 1   # LIST_INSERT_AFTER(p1, p2) at 498
    assert k.initproc.p_lock == 0                   # PHOLD (555) released at 608
    assert all_violations(k) == []


def test_eagain_at_maxproc_for_root(kr):
    k, r = make(maxproc=4)
    for _ in range(2):
        assert r.call(Call.FORK, k.initproc).result.ret is not None
    assert k.nprocs == 4
    before = state(k)
    assert r.call(Call.FORK, k.initproc).result.errno is Errno.EAGAIN
    assert state(k) == before


def test_eagain_for_non_root_at_maxproc_minus_one():
    k, r = make(maxproc=5)
    pid = r.call(Call.FORK, k.initproc).result.ret
    user = k.pfind(pid)
    assert r.call(Call.SETUID, user, uid=1000).result.ret == 0
    assert r.call(Call.FORK, user).result.ret is not None          # nprocs 3 -> 4
    assert k.nprocs == 4
    assert r.call(Call.FORK, user).result.errno is Errno.EAGAIN     # 4 >= maxproc - 1, uid != 0
    assert r.call(Call.FORK, k.initproc).result.ret is not None     # root may take the last slot
    assert r.call(Call.FORK, k.initproc).result.errno is Errno.EAGAIN
    assert all_violations(k) == []


def test_per_uid_limit_backs_out_nprocs():
    k, r = make(maxprocperuid=20)
    pid = r.call(Call.FORK, k.initproc).result.ret
    user = k.pfind(pid)
    r.call(Call.SETUID, user, uid=7)
    r.call(Call.SETRLIMIT, user, nproc=2)
    assert r.call(Call.FORK, user).result.ret is not None
    n = k.nprocs
    assert r.call(Call.FORK, user).result.errno is Errno.EAGAIN     # chgproccnt fails at 276, 282 undoes 270
    assert k.nprocs == n
    assert all_violations(k) == []


def test_pids_skip_ids_used_as_pgid_or_sid(kr):
    k, r = kr
    a = k.pfind(r.call(Call.FORK, k.initproc).result.ret)   # pid 2
    assert r.call(Call.SETSID, a).result.ret == 2           # session 2, pgrp 2
    b = k.pfind(r.call(Call.FORK, a).result.ret)             # pid 3 in pgrp 2
    r.call(Call.EXIT, a)
    assert r.call(Call.WAIT, k.initproc, child=2).result.ret == 2
    assert k.pfind(2) is None and k.pgfind(2) is not None   # pgrp 2 and session 2 outlive pid 2
    k.lastpid, k.pidchecked = 1, 0                           # as after a wrap
    out = r.call(Call.FORK, k.initproc)
    assert out.result.ret == 4                               # 2 is a pgid/sid, 3 is a pid
    assert fresh_pid_ok(k, k.pfind(4))
    assert b.p_pgrp.pg_id == 2


def test_wrap_restarts_at_floor(kr):
    k, r = kr
    k.lastpid = 29                                           # PID_MAX - 1
    out = r.call(Call.FORK, k.initproc)
    assert out.result.ret == 5                               # 30 % 30 = 0 < 5: += PID_FLOOR (328-329)
    assert k.lastpid == 5 and k.pidchecked == 30


def test_wrap_skips_used_pids_after_floor(kr):
    k, r = kr
    k.lastpid = 4
    assert r.call(Call.FORK, k.initproc).result.ret == 5
    k.lastpid = 29
    assert r.call(Call.FORK, k.initproc).result.ret == 6     # 5 is taken
    assert all_violations(k) == []


def test_rfhighpid_keeps_lastpid_and_clears_pidchecked(kr):
    k, r = kr
    r.call(Call.FORK, k.initproc)
    assert (k.lastpid, k.pidchecked) == (2, 30)
    out = r.call(Call.FORK1, k.proc0, flags=RF.RFFDG | RF.RFPROC | RF.RFHIGHPID)
    assert out.result.ret == 3                               # lastpid + 1 = 3 = PID_HIGH_FLOOR
    assert k.lastpid == 2 and k.pidchecked == 0              # 371, and 373 not taken
    k2, r2 = make()
    assert r2.call(Call.FORK1, k2.proc0, flags=RF.RFFDG | RF.RFPROC | RF.RFHIGHPID).result.ret == 3
    assert k2.lastpid == 1


def test_rfork_masks_kernel_only_flags(kr):
    k, r = kr
    out = r.call(Call.RFORK, k.initproc, flags=RF.RFPROC | RF.RFFDG | RF.RFPPWAIT | RF.RFHIGHPID | RF.RFSTOPPED)
    assert out.status == "done" and out.result.ret == 2      # no ppwait sleep, no high pid
    assert k.lastpid == 2 and k.pfind(2).p_stat is PStat.SRUN


def test_rfork_without_rfproc_unshares_fd(kr):
    k, r = kr
    c = k.pfind(r.call(Call.RFORK, k.initproc, flags=RF.RFPROC).result.ret)   # fdshare (470)
    assert c.p_fd is k.initproc.p_fd and c.p_fd.fd_refcnt == 2
    out = r.call(Call.RFORK, c, flags=RF.RFFDG)
    assert out.result.ret == 0 and c.p_fd is not k.initproc.p_fd
    assert k.initproc.p_fd.fd_refcnt == 1 and k.nprocs == 3
    assert all_violations(k) == []


def test_rfork_sharing_flags(kr):
    k, r = kr
    flags = RF.RFPROC | RF.RFMEM | RF.RFSIGSHARE | RF.RFTHREAD | RF.RFLINUXTHPN | RF.RFNOWAIT
    c = k.pfind(r.call(Call.RFORK, k.initproc, flags=flags).result.ret)
    p = k.initproc
    assert c.p_vmspace is p.p_vmspace and p.p_vmspace.vm_refcnt == 2
    assert c.p_procsig is p.p_procsig and p.p_procsig.ps_refcnt == 2 and p.p_procsig.shared_sigacts
    assert p.p_peers is c and c.p_leader is p and c.p_sigparent == "SIGUSR1"
    assert c.p_pptr is k.initproc                            # RFNOWAIT: init (here also the parent)
    assert all_violations(k) == []
    r.call(Call.EXIT, c)
    assert p.p_peers is None
    r.call(Call.WAIT, p)
    assert all_violations(k) == []


def test_vfork_parent_sleeps_until_child_execs(kr):
    k, r = kr
    out = r.call(Call.VFORK, k.initproc)
    assert out.status == "blocked" and out.wmesg == "ppwait"
    child = k.pfind(2)
    assert k.initproc.p_stat is PStat.SSLEEP and PFlag.P_PPWAIT in child.p_flag
    assert child.p_vmspace is k.initproc.p_vmspace
    assert r.call(Call.EXEC, child).result.ret == 0
    assert out.status == "done" and out.result.ret == 2
    assert k.initproc.p_stat is PStat.SRUN and child.p_vmspace is not k.initproc.p_vmspace
    assert all_violations(k) == []


def test_vfork_parent_woken_by_child_exit(kr):
    k, r = kr
    out = r.call(Call.VFORK, k.initproc)
    r.call(Call.EXIT, k.pfind(2), status=3)
    assert out.result.ret == 2
    assert r.call(Call.WAIT, k.initproc).result.ret == 2
    assert all_violations(k) == []


def test_exit_moves_to_zombproc_head_and_reparents_to_init(kr):
    k, r = kr
    a = k.pfind(r.call(Call.FORK, k.initproc).result.ret)
    b = k.pfind(r.call(Call.FORK, a).result.ret)
    c = k.pfind(r.call(Call.FORK, k.initproc).result.ret)
    r.call(Call.EXIT, c)
    r.call(Call.EXIT, a)
    assert k.zombproc == [a, c]                              # LIST_INSERT_HEAD
    assert b.p_pptr is k.initproc and k.initproc.p_children[0] is b
    assert k.pfind(a.p_pid) is None                          # off the pid hash
    assert k.initproc.p_children == [b, c, a]                # both LIST_INSERT_HEAD
    assert r.call(Call.WAIT, k.initproc).result.ret == c.p_pid   # first zombie in p_children order
    assert r.call(Call.WAIT, k.initproc).result.ret == a.p_pid
    assert all_violations(k) == []


def test_wait_echild_and_named_child(kr):
    k, r = kr
    a = k.pfind(r.call(Call.FORK, k.initproc).result.ret)
    assert r.call(Call.WAIT, a).result.errno is Errno.ECHILD
    assert r.call(Call.WAIT, k.initproc, child=99).result.errno is Errno.ECHILD
    out = r.call(Call.WAIT, k.initproc, child=a.p_pid)
    assert out.status == "blocked" and k.initproc.p_stat is PStat.SSLEEP
    r.call(Call.EXIT, a)
    assert out.result.ret == a.p_pid and k.nprocs == 2


def test_setsid_and_setpgid(kr):
    k, r = kr
    assert r.call(Call.SETSID, k.initproc).result.errno is Errno.EPERM   # already a leader
    a = k.pfind(r.call(Call.FORK, k.initproc).result.ret)
    b = k.pfind(r.call(Call.FORK, k.initproc).result.ret)
    assert r.call(Call.SETPGID, a, pgid=0).result.ret == 0              # own group 2
    assert a.p_pgrp.pg_id == a.p_pid and a.p_session is k.initproc.p_session
    assert r.call(Call.SETPGID, b, pgid=a.p_pid).result.ret == 0
    assert b.p_pgrp is a.p_pgrp
    assert r.call(Call.SETPGID, b, pgid=17).result.errno is Errno.EPERM
    assert r.call(Call.SETSID, a).result.errno is Errno.EPERM           # pgrp 2 exists
    assert r.call(Call.SETSID, b).result.ret == b.p_pid
    assert all_violations(k) == []


@pytest.mark.parametrize("value,expected", [(-1, 25), (26, 25), (25, 25), (1, 0), (0, 0), (3, 5), (7, 7)])
def test_sysctl_randompid_clamps(value, expected):
    k, r = make()                                            # RANDOMPID_MIN = PID_FLOOR = 5
    assert r.call(Call.SYSCTL_RANDOMPID, None, value=value).result.ret == 0
    assert k.randompid == expected


def test_randompid_pids_stay_unique():
    k, r = make(randompid=7, maxproc=22, seed=3)
    pids = []
    for _ in range(12):
        pid = r.call(Call.FORK, k.initproc).result.ret
        assert fresh_pid_ok(k, k.pfind(pid))
        pids.append(pid)
    assert len(set(pids)) == 12 and pids != sorted(pids)
    assert all_violations(k) == []


def test_at_fork_callouts(kr):
    k, r = kr
    r.call(Call.AT_FORK, None, fn="a")
    r.call(Call.AT_FORK, None, fn="b")
    r.call(Call.AT_FORK, None, fn="a")                       # INVARIANTS: removed, re-added at the tail
    assert [e.name for e in k.fork_list] == ["b", "a"]
    r.call(Call.FORK, k.initproc)
    assert [(n, p1, p2) for n, p1, p2, _ in k.callout_log] == [("b", 1, 2), ("a", 1, 2)]
    assert r.call(Call.RM_AT_FORK, None, fn="b").result.ret == 1
    assert r.call(Call.RM_AT_FORK, None, fn="b").result.ret == 0


def test_swapper_skips_held_and_swaps_sleepers(kr):
    k, r = kr
    r.call(Call.FORK, k.initproc)                            # pid 2: SRUN, no call running
    out = r.call(Call.VFORK, k.initproc)                      # init sleeps on ppwait, p_lock 0
    child = k.pfind(3)
    child.p_lock += 1                                         # held (_PHOLD): never a candidate
    # init asleep and pid 2 idle in user mode (the modelling choice) go, one walk each; proc0 is P_SYSTEM
    assert r.call(Call.SWAPPER, None).result.ret == 2
    assert "PS_INMEM" not in {f.value for f in k.initproc.p_sflag}
    assert "PS_INMEM" not in {f.value for f in k.pfind(2).p_sflag}
    assert {f.value for f in child.p_sflag} == {"PS_INMEM"}
    assert all(PSFlag.PS_SWAPPING not in p.p_sflag for p in k.allproc)
    child.p_lock -= 1
    r.call(Call.EXEC, child)                                  # woken: faulted back in
    assert out.result.ret == 3 and "PS_INMEM" in {f.value for f in k.initproc.p_sflag}


def test_every_step_cites_a_seed_line_inside_fork1(kr):
    k, _ = kr
    from checker.kernel import start
    k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
    lines = []
    while True:
        info = k.step(0)
        if info.func == "fork1":
            assert info.seed_line is not None and info.file == "kern_fork.c"
            lines.append(info.seed_line)
        if info.status.value != "stepped":
            break
    assert {213, 262, 270, 310, 311, 326, 332, 344, 378, 380, 555, 608, 622}.issubset(lines)
    assert lines.count(270) == 2                               # load and store


def test_swapper_walk_takes_only_the_pick_and_swaps_in_two_sections(kr):
    """swapout_pick (the replay's model pick): the walk skips the others without locking them; the
    swap sets PS_SWAPPING with PS_INMEM cleared, then clears it under sched_lock again, then retries."""
    from checker.kernel import start
    k, r = kr
    r.call(Call.FORK, k.initproc)
    p2 = k.pfind(2)
    k.swapout_pick = p2
    k.spawn(0, start(k, 0, Call.SWAPPER, None), None)
    seen = []
    while not k.cpus[0].done:
        at = k.cpus[0].pending
        seen.append(at.label)
        k.step(0)
        if at.label == "p->p_sflag &= ~PS_INMEM; p->p_sflag |= PS_SWAPPING" and "didswap++; goto retry" not in seen:
            assert {f.value for f in p2.p_sflag} == {"PS_SWAPPING"}
    assert k.cpus[0].result.ret == 2                   # the retry walk has no pick: init goes too
    assert {f.value for f in p2.p_sflag} == set() and k.swapout_pick is None
    first = seen[:seen.index("didswap++; goto retry")]
    assert first.count("PROC_LOCK(p)") == 1            # p2 is first in allproc, then the walk stops
    assert "p->p_sflag &= ~PS_SWAPPING" in first


def test_swapper_locking_a_half_built_proc_panics(kr):
    """2001: the swapper's PROC_LOCK of a proc on allproc before mtx_init at 394 (mtx_inited_swapper)."""
    from checker.kernel import StepStatus, start
    k, r = kr
    k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
    while not (k.cpus[0].pending.line == 380):         # p2 on allproc (378), allproc_lock dropped
        k.step(0)
    k.step(0)
    k.swapout_pick = k.allproc[0]
    assert k.swapout_pick.p_mtx is None
    k.config.fixes["GIANT_PUSHED_DOWN"] = True        # the fork holds Giant on one cpu
    k.spawn(1, start(k, 1, Call.SWAPPER, None), None)
    info = k.run(1)
    assert info.status is StepStatus.PANIC and "mtx_init" in info.panic.message


def test_swapper_proc_lock_judged_when_it_runs(kr):
    """The swapper reached a half-built proc, then 394 set its mutex up before the PROC_LOCK step ran:
    the lock is taken, no panic (a replay defers that step to the model's assert)."""
    from checker.kernel import StepStatus, start
    k, r = kr
    k.config.fixes["GIANT_PUSHED_DOWN"] = True
    k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
    while k.cpus[0].pending.line != 380:
        k.step(0)
    k.step(0)
    p2 = k.allproc[0]
    k.swapout_pick = p2
    k.spawn(1, start(k, 1, Call.SWAPPER, None), None)
    while k.cpus[1].pending.label != "PROC_LOCK(p)":
        k.step(1)
    while k.cpus[0].pending.line != 395:            # mtx_init at 394
        k.step(0)
    assert k.step(1).status is StepStatus.STEPPED and p2.p_mtx.owner == 1
    assert k.step(0).status is StepStatus.BLOCKED   # fork1's PROC_LOCK(p2) at 395 waits for the swapper
