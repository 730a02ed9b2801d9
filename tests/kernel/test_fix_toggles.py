"""exit1's peer walk and the later kernels' fixes (FIX_PEERS_LOCK, FIX_PGLIST_LOCK, FIX_MTX_INIT_EARLY,
FIX_HOLD_CHILD, FIX_SWAPOUT_RECHECK, FIX_P2_LOCKED_INIT, FIX_LOCKED_ACCESSES): each toggle changes the kernel the
way the spec's fix does."""

from __future__ import annotations

import pytest

from checker.kernel import RF, Call, Kernel, KernelConfig, StepStatus, start
from checker.kernel.config import PFlag, PSFlag, PStat
from checker.kernel.objects import UNINIT

from .conftest import SMALL
from .test_smp import finish, run_until

THREAD = RF.RFPROC | RF.RFTHREAD | RF.RFMEM


def kernel(**fixes: bool) -> Kernel:
    return Kernel(KernelConfig(**SMALL, fixes={"GIANT_PUSHED_DOWN": True, **fixes}))  # type: ignore[arg-type]


def run(k: Kernel, cpu: int, call: Call, p, **args):  # type: ignore[no-untyped-def]
    k.spawn(cpu, start(k, cpu, call, p, **args), p)
    return k.run(cpu)


def peer(k: Kernel, leader):  # type: ignore[no-untyped-def]
    info = run(k, 9, Call.RFORK, leader, flags=THREAD)
    assert info.status is StepStatus.DONE, info
    return k.pfind(info.result.ret)


def test_exit_of_a_peer_walks_the_chain_one_link_per_step() -> None:
    k = kernel()
    a = peer(k, k.initproc)
    b = peer(k, k.initproc)            # chain: init -> b -> a
    assert k.initproc.p_peers is b and b.p_peers is a
    k.spawn(0, start(k, 0, Call.EXIT, a), a)
    labels = []
    while k.cpus[0].pending.label != "q->p_peers = p->p_peers":
        labels.append(k.cpus[0].pending.label)
        assert k.step(0).status is StepStatus.STEPPED
    assert labels.count("q = q->p_peers") == 1 and labels.count("while (q->p_peers != p)") == 2
    assert k.owned(0, k.initproc.p_mtx)            # under the leader's proc lock
    finish(k, 0)
    assert k.initproc.p_peers is b and b.p_peers is None


def test_a_leader_sleeps_in_exit1_until_its_peers_are_gone() -> None:
    k = kernel()
    lead = k.pfind(run(k, 9, Call.FORK, k.initproc).result.ret)   # its own leader
    a = peer(k, lead)
    k.spawn(0, start(k, 0, Call.EXIT, lead), lead)
    info = k.run(0)
    assert info.status is StepStatus.BLOCKED and k.cpus[0].wchan is lead
    assert run(k, 1, Call.EXIT, a).status is StepStatus.DONE       # the peer unlinks and wakes it
    assert lead.p_peers is None
    finish(k, 0)


def test_a_peer_lost_from_the_chain_panics_exit1_in_the_walk() -> None:
    k = kernel()
    a = peer(k, k.initproc)
    k.initproc.p_peers = None           # what a lost update at 293/294 leaves
    b = peer(k, k.initproc)
    assert b.p_peers is None and a.p_leader is k.initproc
    info = run(k, 0, Call.EXIT, a)
    assert info.status is StepStatus.PANIC and k.panic is not None
    assert "not on its leader's peer list" in k.panic.message


@pytest.mark.parametrize("fixed", [False, True])
def test_peers_lock(fixed: bool) -> None:
    k = kernel(FIX_PEERS_LOCK=fixed)
    k.spawn(0, start(k, 0, Call.RFORK, k.initproc, flags=THREAD), k.initproc)
    run_until(k, 0, lambda at: at.line == 293)
    assert k.owned(0, k.ppeers_lock) is fixed
    finish(k, 0)
    a = k.initproc.p_peers
    k.spawn(1, start(k, 1, Call.EXIT, a), a)
    run_until(k, 1, lambda at: at.label == "q->p_peers = p->p_peers")
    assert k.owned(1, k.ppeers_lock) is fixed
    finish(k, 1)
    assert not k.locks_held(1)


@pytest.mark.parametrize("fixed", [False, True])
def test_pglist_lock(fixed: bool) -> None:
    k = kernel(FIX_PGLIST_LOCK=fixed)
    k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
    run_until(k, 0, lambda at: at.line == 392)       # just after the bcopy at 390
    p2 = k.allproc[0]
    assert (p2.p_pgrp is None) is fixed
    lines = []
    while k.cpus[0].pending.line != 498:
        at = k.cpus[0].pending
        if at.line == 493:
            # 493 reads p1's group and session: with the fix, where setpgid cannot free them
            assert k.owned(0, k.proctree_lock) is fixed
            assert k.owned(0, k.initproc.p_mtx) and k.owned(0, p2.p_mtx)
        lines.append(at.line)
        k.step(0)
    assert k.owned(0, k.proctree_lock) is fixed
    assert k.owned(0, k.initproc.p_mtx) and k.owned(0, p2.p_mtx)
    seq = [x for x in lines if x in (492, 493, 495, 499, 500)]
    assert seq == ([492, 495, 499, 500, 493] if fixed else [492, 493, 495])
    finish(k, 0)
    assert p2.p_pgrp is k.initproc.p_pgrp and p2 in p2.p_pgrp.pg_members
    assert not k.locks_held(0)


def test_pglist_lock_without_the_scan_fix_panics_a_scan_of_the_half_built_proc() -> None:
    # p2 is on allproc from 378 with p_pgrp NULL until 498: another cpu's scan dereferences it.
    k = kernel(FIX_PGLIST_LOCK=True)
    k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
    run_until(k, 0, lambda at: at.line == 392)
    k.lastpid = k.allproc[0].p_pid - 1      # the other fork's first try collides: the scan reads p2
    k.pidchecked = 0
    info = run(k, 1, Call.FORK, k.initproc)
    assert info.status is StepStatus.PANIC and "NULL p_pgrp" in k.panic.message  # type: ignore[union-attr]


@pytest.mark.parametrize("fixed", [False, True])
def test_mtx_init_early(fixed: bool) -> None:
    k = kernel(FIX_MTX_INIT_EARLY=fixed)
    k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
    run_until(k, 0, lambda at: at.line == 292)
    newest = k.procs[-1]
    assert (newest.p_mtx is not None) is fixed
    lines = []
    while not k.cpus[0].done:
        at = k.cpus[0].pending
        lines.append(at.line)
        k.step(0)
    assert (394 in lines) is not fixed


@pytest.mark.parametrize("fixed", [False, True])
def test_hold_child(fixed: bool) -> None:
    k = kernel(FIX_HOLD_CHILD=fixed)
    k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
    run_until(k, 0, lambda at: at.line == 556)
    p2 = k.allproc[0]
    assert p2.p_lock == (1 if fixed else 0)
    # the child exits before fork1 returns: with the fix its exit1 waits for the hold
    run_until(k, 0, lambda at: at.line == 621)
    k.spawn(1, start(k, 1, Call.EXIT, p2), p2)
    info = k.run(1)
    if fixed:
        assert info.status is StepStatus.BLOCKED and k.cpus[1].wchan is p2
    else:
        assert info.status is StepStatus.DONE
    lines = []
    while not k.cpus[0].done:
        lines.append(k.cpus[0].pending.line)
        k.step(0)
    assert (119 in lines) is not fixed            # the pid is read while p2 is held, not at 119
    assert p2.p_lock == 0
    if fixed:
        finish(k, 1)
    assert k.cpus[0].result.ret == p2.p_pid


@pytest.mark.parametrize("fixed", [False, True])
def test_swapout_recheck(fixed: bool) -> None:
    """The swapper picks a sleeping process; a _PHOLD after its first look keeps it in memory with the fix."""
    k = kernel(FIX_SWAPOUT_RECHECK=fixed)
    p = peer(k, k.initproc)
    p.p_stat = PStat.SSLEEP
    k.spawn(0, start(k, 0, Call.SWAPPER, None), None)
    run_until(k, 0, lambda at: at.label.startswith("if (p->p_lock != 0") and at.label.endswith(f"[pid {p.p_pid}]"))
    k.step(0)                         # the first look: p_lock is 0
    p.p_lock += 1                     # another cpu's _PHOLD(p) before the swap
    finish(k, 0)
    assert (PSFlag.PS_INMEM in p.p_sflag) is fixed


def _walk(k: Kernel, cpu: int) -> list[tuple[int | None, set[str]]]:
    """Run cpu's call to the end: each step's line with what it holds then (p2 = the newest proc)."""
    out = []
    while not k.cpus[cpu].done:
        at = k.cpus[cpu].pending
        p2 = k.procs[-1]
        held = set()
        if p2.p_mtx is not None and p2.p_mtx is not UNINIT and k.owned(cpu, p2.p_mtx):
            held.add("p2")
        if k.owned(cpu, k.proctree_lock):
            held.add("proctree")
        if at.line in (445, 449):
            held.add("p_procsig set" if p2.p_procsig not in (None, UNINIT) else "p_procsig unset")
        out.append((at.line, held))
        assert k.step(cpu).status in (StepStatus.STEPPED, StepStatus.DONE)
    return out


@pytest.mark.parametrize("fixed", [False, True])
def test_p2_locked_init(fixed: bool) -> None:
    """F10: with the fix p2's guarded fields are written under their locks (do_fork)."""
    k = kernel(FIX_P2_LOCKED_INIT=fixed)
    k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
    steps = _walk(k, 0)
    lines = [n for n, _ in steps]
    held = {n: h for n, h in steps}
    assert ("p2" in held[390]) is fixed                      # the bcopy writes p_args
    assert lines.index(395) < lines.index(390) if fixed else lines.index(395) > lines.index(390)
    assert "p_procsig unset" in held[449] if fixed else "p_procsig set" in held[449]
    assert ("p2" in held[462]) is fixed and ("p2" in held[463]) is fixed   # p_textvp read for VREF
    assert ("proctree" in held[520]) is fixed                # LIST_INIT(&p2->p_children)
    assert lines.index(520) < lines.index(518) if fixed else lines.index(520) > lines.index(519)
    p2 = k.allproc[0]
    assert p2.p_procsig is not None and p2.p_procsig.ps_refcnt == 1 and p2.p_children == []
    assert p2.p_textvp is None or p2.p_textvp.v_usecount >= 2
    assert not k.locks_held(0) and k.cpus[0].result.ret == p2.p_pid


@pytest.mark.parametrize("fixed", [False, True])
def test_p2_locked_init_marks_sidl_before_rfthread_links_it(fixed: bool) -> None:
    k = kernel(FIX_P2_LOCKED_INIT=fixed)
    k.spawn(0, start(k, 0, Call.RFORK, k.initproc, flags=THREAD), k.initproc)
    lines = [n for n, _ in _walk(k, 0)]
    assert lines.count(376) == 1
    assert (lines.index(376) < lines.index(294)) is fixed      # 294: p1->p_peers = newproc
    assert k.initproc.p_peers is k.allproc[0]


def test_p2_locked_init_runs_replay_on_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The spec's FIX_P2_LOCKED_INIT and the kernel's take the same steps: random runs of the fixed
    model replay step by step (the model-to-kernel toggle map gets the entry if it lacks it)."""
    from checker.trace import replay
    from tests.cross.schedule import random_run, system
    monkeypatch.setitem(replay.SPEC_TO_KERNEL_FIX, "FIX_P2_LOCKED_INIT", ("FIX_P2_LOCKED_INIT",))
    sys_ = system(GIANT_PUSHED_DOWN=True, SYS_FORK=True, SYS_VFORK=True, SYS_RFORK=True, SYS_EXIT=True,
                  SYS_WAIT=True, SYS_SETPGID=True, FIX_P2_LOCKED_INIT=True)
    fixed_steps = 0
    for seed in range(4):
        run = random_run(sys_, seed, 400)
        fixed_steps += sum(1 for t in run.steps if "newps" in t.step.label)
        res = replay.replay_trace(run.trace(run.violation or "", run.violation or ""), sys_)
        assert res.status is replay.ReplayStatus.REPLAYED and res.ok, f"seed {seed}: {res.message}"
        assert res.compared > 0
    assert fixed_steps > 0          # the runs went through the fix's 445/449


def _held(k: Kernel, cpu: int, p) -> list[tuple[str, int | None, bool, bool]]:  # type: ignore[no-untyped-def]
    """Run cpu's call to the end: each step's (label, line, p's lock held, proctree_lock held)."""
    out = []
    while not k.cpus[cpu].done:
        at = k.cpus[cpu].pending
        out.append((at.label, at.line, k.owned(cpu, p.p_mtx), k.owned(cpu, k.proctree_lock)))
        assert k.step(cpu).status in (StepStatus.STEPPED, StepStatus.DONE), at
    return out


def _first(steps, text: str):  # type: ignore[no-untyped-def]
    return next(s for s in steps if text in s[0])


@pytest.mark.parametrize("fixed", [False, True])
def test_locked_accesses_exit1(fixed: bool) -> None:
    """exit1 reads p_fd, p_textvp, p_limit under the proc lock and p_pptr under proctree_lock."""
    k = kernel(FIX_LOCKED_ACCESSES=fixed)
    c = k.pfind(run(k, 9, Call.FORK, k.initproc).result.ret)
    c.p_flag.add(PFlag.P_PPWAIT)                 # a vfork child: exit1 wakes its parent early
    fd, lim, vp = c.p_fd, c.p_limit, c.p_textvp
    k.spawn(0, start(k, 0, Call.EXIT, c), c)
    steps = _held(k, 0, c)
    labels = [s[0] for s in steps]
    wake = next(s for s in steps if s[0].endswith("wakeup(p->p_pptr)") and "P_PPWAIT" not in s[0]) if fixed \
        else _first(steps, "P_PPWAIT; wakeup(p->p_pptr)")
    assert wake[2] is not fixed and wake[3] is fixed          # proctree_lock, not the proc lock
    drop = _first(steps, "fdfree: --fdp->fd_refcnt")
    assert not drop[2]
    assert (labels.index("fdp = p->p_fd; p->p_fd = NULL") < labels.index(drop[0])) if fixed \
        else "fdp = p->p_fd; p->p_fd = NULL" not in labels
    assert _first(steps, "if (p->p_textvp) vrele")[2] is fixed
    assert ("plim = p->p_limit; p->p_limit = NULL" in labels) is fixed
    if fixed:
        assert _first(steps, "plim = p->p_limit")[2] and not _first(steps, "--p->p_limit->p_refcnt")[2]
    assert c.p_fd is None and c.p_limit is None and c.p_textvp is None and c.p_stat is PStat.SZOMB
    assert fd.fd_refcnt == 0 and lim.p_refcnt >= 1 and (vp is None or vp.v_usecount >= 1)   # its own table
    assert not k.locks_held(0)


@pytest.mark.parametrize("fixed", [False, True])
def test_locked_accesses_execve_unshares_procsig_under_the_proc_lock(fixed: bool) -> None:
    k = kernel(FIX_LOCKED_ACCESSES=fixed, FIX_SHARED_REFCNT_ATOMIC=True)
    c = k.pfind(run(k, 9, Call.RFORK, k.initproc, flags=RF.RFPROC | RF.RFFDG | RF.RFSIGSHARE).result.ret)
    shared = c.p_procsig
    assert shared is k.initproc.p_procsig and shared.ps_refcnt == 2
    c.p_flag.add(PFlag.P_PPWAIT)
    k.spawn(0, start(k, 0, Call.EXEC, c), c)
    steps = _held(k, 0, c)
    labels = [s[0] for s in steps]
    if fixed:
        assert _first(steps, "refcount_load(&p->p_procsig->ps_refcnt)")[2]
        assert not _first(steps, "MALLOC(newprocsig")[2]            # M_WAITOK: not under a mutex
    else:
        assert not _first(steps, "if (p->p_procsig->ps_refcnt > 1)")[2]
    assert _first(steps, "p->p_procsig->ps_refcnt--")[2] is fixed
    assert _first(steps, "p->p_procsig = newprocsig")[2] is fixed
    wake = _first(steps, "wakeup(p->p_pptr)")
    assert wake[2] is not fixed and wake[3] is fixed
    assert ("sx_sunlock(&proctree_lock)" in labels) is fixed
    assert c.p_procsig is not shared and shared.ps_refcnt == 1 and PFlag.P_PPWAIT not in c.p_flag
    assert not k.locks_held(0)


@pytest.mark.parametrize("fixed", [False, True])
def test_locked_accesses_wait_drops_procsig_under_the_zombies_lock(fixed: bool) -> None:
    k = kernel(FIX_LOCKED_ACCESSES=fixed)
    c = k.pfind(run(k, 9, Call.FORK, k.initproc).result.ret)
    assert run(k, 8, Call.EXIT, c).status is StepStatus.DONE
    k.spawn(0, start(k, 0, Call.WAIT, k.initproc), k.initproc)
    steps = _held(k, 0, c)
    assert _first(steps, "--p->p_procsig->ps_refcnt")[2] is fixed
    assert k.cpus[0].result.ret == c.p_pid and not k.locks_held(0)


@pytest.mark.parametrize("atomic", [False, True])
@pytest.mark.parametrize("fixed", [False, True])
def test_locked_accesses_fork1_replaces_p_fd_before_the_drop(fixed: bool, atomic: bool) -> None:
    """rfork without RFPROC: fdinit's (RFCFDG) table is stored (233) before the old one is dropped (232);
    fdcopy's (RFFDG, a shared table) too (246 before 245), as the spec, only with refcount(9)."""
    k = kernel(FIX_LOCKED_ACCESSES=fixed, FIX_SHARED_REFCNT_ATOMIC=atomic)
    lines = [n for _, n, _, _ in _walk_call(k, Call.RFORK, k.initproc, flags=RF.RFCFDG)]
    assert (lines.index(233) < lines.index(232)) is fixed
    old = k.initproc.p_fd
    run(k, 9, Call.RFORK, k.initproc, flags=RF.RFPROC)        # fdshare: the table is shared
    assert old.fd_refcnt == 2
    steps = _walk_call(k, Call.RFORK, k.initproc, flags=RF.RFFDG)
    lines = [n for _, n, _, _ in steps]
    assert (lines.index(246) < lines.index(245)) is (fixed and atomic)
    assert all(held for _, n, held, _ in steps if n in (245, 246))
    assert k.initproc.p_fd is not old and old.fd_refcnt == 1


def _walk_call(k: Kernel, call: Call, p, **args):  # type: ignore[no-untyped-def]
    k.spawn(0, start(k, 0, call, p, **args), p)
    return _held(k, 0, p)


def test_locked_accesses_runs_replay_on_the_kernel() -> None:
    """The fixed spec's FIX_LOCKED_ACCESSES and the kernel's take the same steps: random runs of
    models/fork1_fixed.toml's configuration replay step by step, through exit1, execve and wait."""
    import tomllib

    from checker.trace import replay
    from tests.cross.schedule import REPO, random_run, system
    consts = tomllib.loads((REPO / "models" / "fork1_fixed.toml").read_text())["constants"]
    assert consts["FIX_LOCKED_ACCESSES"] is True
    sys_ = system(**consts)
    seen: set[str] = set()
    for seed in range(12):
        run = random_run(sys_, seed, 600)
        seen |= {t.step.label for t in run.steps}
        res = replay.replay_trace(run.trace(run.violation or "", run.violation or ""), sys_)
        assert res.status is replay.ReplayStatus.REPLAYED and res.ok, f"seed {seed}: {res.message}"
        assert res.compared > 0
    # the runs went through the fix's own steps in fork1 and the environment
    for label in ("atomic { oldfd := p1.p_fd; p1.p_fd := fd; fd := null }", "atomic { fdp := p.p_fd; p.p_fd := null }",
                  "atomic { sh := p.p_procsig.ps_refcnt > 1 }", "procsig_drop(q.p_procsig)"):
        assert label in seen, label
