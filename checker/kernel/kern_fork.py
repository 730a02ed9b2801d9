"""kern_fork.c, one generator per function, a yield per atomic step citing
the seed line. See docs/kernel.md for what one step is and which accesses are
racy in the 2001 code."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from .config import RF, RFKERNELONLY, Errno, PFlag, PSFlag, PStat
from .kernel import SEED_FILE, At, ForkCallout, Gen, Kernel, NeedLock, list_next
from .locks import KernelPanic, Mode
from .objects import UNINIT, Filedesc, Plimit, Proc, Procsig, Vmspace, new_p_mtx


@dataclass(frozen=True)
class SysResult:
    """What a system call returned to user mode (or that it never returns)."""
    ret: int | None = None
    errno: Errno | None = None
    exited: int | None = None        # exit status: the call does not return

    def to_json(self) -> dict[str, Any]:
        if self.errno is not None:
            return {"errno": self.errno.value}
        if self.exited is not None:
            return {"exited": self.exited}
        return {"ret": self.ret}

    def __str__(self) -> str:
        if self.errno is not None:
            return self.errno.value
        if self.exited is not None:
            return f"exited ({self.exited})"
        return str(self.ret)


def _scan_hit(p2: Proc, trypid: int, null_pgrp_fix: bool = False) -> bool:
    """The test at 344-346, in C's short-circuit order; reading the p_pgrp of a
    half-built SIDL proc (inserted at 378, copied at 390) is a use of zone garbage."""
    if p2.p_pid == trypid:
        return True
    if null_pgrp_fix and p2.p_pgrp is None:
        return False
    if p2.p_pgrp is UNINIT:
        raise KernelPanic(f"pid scan read p_pgrp of half-built SIDL proc (pid {p2.p_pid}): it is on allproc "
                          f"since line 378 but p_pgrp is only copied at line 390", 345)
    if p2.p_pgrp is None:
        raise KernelPanic(f"pid scan dereferences the NULL p_pgrp of half-built SIDL proc (pid {p2.p_pid})", 345)
    if p2.p_pgrp.pg_id == trypid:
        return True
    return bool(p2.p_session.s_sid == trypid)


def vm_fork(k: Kernel, cpu: int, p1: Proc, p2: Proc | None, flags: RF, line: int) -> Gen[None]:
    """vm_glue.c vm_fork, one step under vm_mtx: share (RFMEM) or copy the vmspace."""
    yield At(line, "vm_fork(p1, p2, flags)", SEED_FILE, "vm_fork", NeedLock(k.vm_mtx))
    k.witness.acquire(cpu, k.vm_mtx, Mode.EXCLUSIVE, SEED_FILE, line)
    if p2 is not None and PSFlag.PS_INMEM not in p1.p_sflag:   # only RFPROC copies p1's u-area
        raise KernelPanic(f"vm_fork: parent pid {p1.p_pid} is swapped out while its u-area is copied", line)
    if p2 is None:
        if not flags & RF.RFMEM and p1.p_vmspace.vm_refcnt > 1:   # vmspace_unshare
            p1.p_vmspace.vm_refcnt -= 1
            p1.p_vmspace = k.new(Vmspace)
    elif flags & RF.RFMEM:
        p2.p_vmspace = p1.p_vmspace
        p1.p_vmspace.vm_refcnt += 1
    else:
        p2.p_vmspace = k.new(Vmspace)                              # vmspace_fork
    k.witness.release(cpu, k.vm_mtx, Mode.EXCLUSIVE, SEED_FILE, line)


def fdfree(k: Kernel, cpu: int, p: Proc, line: int | None, func: str, file: str = SEED_FILE) -> Gen[None]:
    yield from fdrop(k, p.p_fd, line, func, file)
    p.p_fd = None


def fdrop(k: Kernel, fdp: Filedesc, line: int | None, func: str, file: str = SEED_FILE) -> Gen[None]:
    """fdfree's count drop on a table no proc names any more (FIX_LOCKED_ACCESSES: fdescfree)."""
    n = yield from k.racy_add(fdp, "fd_refcnt", -1, line, func, "fdfree: --fdp->fd_refcnt",
                              k.fix("FIX_SHARED_REFCNT_ATOMIC"), file)
    if n == 0:
        k.free(fdp)


def _swap_fd(k: Kernel, cpu: int, p1: Proc, newfd: Filedesc, lk: int, free_line: int, store_line: int,
             unlk: int, label: str, replace_first: bool) -> Gen[None]:
    """PROC_LOCK(p1); fdfree(p1); p1->p_fd = newfd; PROC_UNLOCK(p1) (231-234, 244-247). replace_first
    (FIX_LOCKED_ACCESSES): p_fd is replaced before the old table is dropped, so no proc names a freed one."""
    yield from k.proc_lock(cpu, p1, "p1", lk, "fork1")
    if replace_first:
        yield At(store_line, f"old = p1->p_fd; {label}", SEED_FILE, "fork1")
        old = p1.p_fd
        p1.p_fd = newfd
        yield from fdrop(k, old, free_line, "fork1")
    else:
        yield from fdfree(k, cpu, p1, free_line, "fork1")
        yield At(store_line, label, SEED_FILE, "fork1")
        p1.p_fd = newfd
    yield from k.proc_unlock(cpu, p1, "p1", unlk, "fork1")


def _vref_textvp(p2: Proc) -> Gen[None]:
    S = partial(At, file=SEED_FILE, func="fork1")
    yield S(462, "if (p2->p_textvp)")
    if p2.p_textvp is not None:
        yield S(463, "VREF(p2->p_textvp)")     # under v_interlock: atomic
        p2.p_textvp.v_usecount += 1


def _controlt(p1: Proc, p2: Proc) -> Gen[None]:
    """493-494: reads p1's group and session (FIX_PGLIST_LOCK: under proctree_lock)."""
    S = partial(At, file=SEED_FILE, func="fork1")
    yield S(493, "if (p1->p_session->s_ttyvp != NULL && p1->p_flag & P_CONTROLT)")
    if p1.p_session.s_ttyvp is not None and PFlag.P_CONTROLT in p1.p_flag:
        yield S(494, "p2->p_flag |= P_CONTROLT")
        p2.p_flag.add(PFlag.P_CONTROLT)


def _init_copy(k: Kernel, cpu: int, p1: Proc, p2: Proc) -> Gen[None]:
    S = partial(At, file=SEED_FILE, func="fork1")
    yield S(387, "bzero(&p2->p_startzero, ...)")
    p2.p_lock, p2.p_estcpu, p2.p_textvp, p2.p_xstat = 0, 0, None, 0
    yield from k.proc_lock(cpu, p1, "p1", 389, "fork1")
    yield S(390, "bcopy(&p1->p_startcopy, &p2->p_startcopy, ...)")
    # FIX_PGLIST_LOCK: p_pgrp is set with the p_pglist insert at 498, under proctree_lock.
    p2.p_pgrp, p2.p_args = None if k.fix("FIX_PGLIST_LOCK") else p1.p_pgrp, p1.p_args
    yield from k.proc_unlock(cpu, p1, "p1", 392, "fork1")


def fork1(k: Kernel, cpu: int, p1: Proc, flags: RF) -> Gen[tuple[Errno | None, Proc | None]]:
    S = partial(At, file=SEED_FILE, func="fork1")
    c = k.config
    shared_atomic = k.fix("FIX_SHARED_REFCNT_ATOMIC")

    yield S(213, "if ((flags & (RFFDG|RFCFDG)) == (RFFDG|RFCFDG))")
    if flags & (RF.RFFDG | RF.RFCFDG) == RF.RFFDG | RF.RFCFDG:
        yield S(214, "return (EINVAL)")
        return Errno.EINVAL, None

    yield S(220, "if ((flags & RFPROC) == 0)")
    if not flags & RF.RFPROC:
        locked = k.fix("FIX_LOCKED_ACCESSES")
        yield from vm_fork(k, cpu, p1, None, flags, 222)
        yield S(223, "mtx_assert(&vm_mtx, MA_NOTOWNED)")
        k.mtx_assert(cpu, k.vm_mtx, False, 223)
        yield S(228, "if (flags & RFCFDG)")
        if flags & RF.RFCFDG:
            yield S(230, "fdtmp = fdinit(p1)")
            fdtmp = k.new(Filedesc)
            yield from _swap_fd(k, cpu, p1, fdtmp, 231, 232, 233, 234, "p1->p_fd = fdtmp", locked)
        yield S(240, "if (flags & RFFDG)")
        if flags & RF.RFFDG:
            # the spec's fix goes with refcount(9) only: the count read with refcount_load, the
            # table replaced before the drop (a plain read otherwise, the 2001 order)
            unshare_fixed = locked and shared_atomic
            yield S(241, "if (refcount_load(&p1->p_fd->fd_refcnt) > 1)" if unshare_fixed
                    else "if (p1->p_fd->fd_refcnt > 1)")
            if p1.p_fd.fd_refcnt > 1:
                yield S(243, "newfd = fdcopy(p1)")
                newfd = k.new(Filedesc)
                yield from _swap_fd(k, cpu, p1, newfd, 244, 245, 246, 247, "p1->p_fd = newfd",
                                    unshare_fixed)
        yield S(250, "*procp = NULL")
        yield S(251, "return (0)")
        return None, None

    yield S(261, "uid = p1->p_ucred->cr_ruid")
    uid = p1.p_ucred.cr_ruid
    locked = k.fix("FIX_NPROCS_LOCKED")
    if locked:
        # The fix: test and increment are one step, as under one lock.
        yield S(262, "if (nprocs over the limit) ... else nprocs++ [FIX_NPROCS_LOCKED: 262+270 atomic]",
                covers=(270,))
        full = (k.nprocs >= k.maxproc - 1 and uid != 0) or k.nprocs >= k.maxproc
        if not full:
            k.nprocs += 1
    else:
        yield S(262, "if ((nprocs >= maxproc - 1 && uid != 0) || nprocs >= maxproc)")
        full = (k.nprocs >= k.maxproc - 1 and uid != 0) or k.nprocs >= k.maxproc
    if full:
        yield S(263, 'tablefull("proc")')
        yield S(264, "return (EAGAIN)")
        return Errno.EAGAIN, None
    if not locked:
        yield from k.racy_add(k, "nprocs", 1, 270, "fork1", "nprocs++", k.fix("FIX_NPROCS_ATOMIC"))

    yield S(276, "ok = chgproccnt(p1->p_ucred->cr_ruidinfo, 1, (uid != 0) ? rlim_cur : 0)")
    uip = p1.p_ucred.cr_ruidinfo
    limit = p1.p_limit.rlim_nproc if uid != 0 else 0
    ok = not (limit != 0 and uip.ui_proccnt + 1 > limit)
    if ok:
        uip.ui_proccnt += 1
    yield S(278, "if (!ok)")
    if not ok:
        yield from k.racy_add(k, "nprocs", -1, 282, "fork1", "nprocs--",
                              k.fix("FIX_NPROCS_ATOMIC") or locked)
        yield S(283, "return (EAGAIN)")
        return Errno.EAGAIN, None

    yield from k.maysleep(cpu, 287, "fork1", "zalloc(proc_zone)")
    yield S(287, "newproc = zalloc(proc_zone)")
    newproc = k.zalloc_proc()
    if k.fix("FIX_MTX_INIT_EARLY"):
        newproc.p_mtx = new_p_mtx(newproc)       # the zone's init (UMA proc_init), not 394
    p2_locked = k.fix("FIX_P2_LOCKED_INIT")
    if p2_locked:
        # marked new before RFTHREAD's 294 can make it reachable (do_fork's PRS_NEW)
        yield S(376, "p2->p_stat = SIDL")
        newproc.p_stat = PStat.SIDL
    peers_lock = k.fix("FIX_PEERS_LOCK")
    if peers_lock:
        yield from k.lock(cpu, k.ppeers_lock, None, "fork1", label="mtx_lock(&ppeers_lock)")
    yield S(292, "if ((flags & RFTHREAD) != 0)")
    if flags & RF.RFTHREAD:
        yield S(293, "newproc->p_peers = p1->p_peers")
        newproc.p_peers = p1.p_peers
        yield S(294, "p1->p_peers = newproc")
        p1.p_peers = newproc
        yield S(295, "newproc->p_leader = p1->p_leader")
        newproc.p_leader = p1.p_leader
    else:
        yield S(297, "newproc->p_peers = NULL")
        newproc.p_peers = None
        yield S(298, "newproc->p_leader = newproc")
        newproc.p_leader = newproc
    if peers_lock:
        yield from k.unlock(cpu, k.ppeers_lock, None, "fork1", label="mtx_unlock(&ppeers_lock)")
    yield S(301, "newproc->p_vmspace = NULL")
    newproc.p_vmspace = None
    if k.fix("FIX_INIT_BEFORE_PUBLISH"):
        yield from _init_copy(k, cpu, p1, newproc)

    # ---- the pid scan, 310-380
    null_pgrp = k.fix("FIX_SCAN_NULL_PGRP")
    yield from k.lock(cpu, k.allproc_lock, 310, "fork1", label="sx_xlock(&allproc_lock)")
    yield S(311, "trypid = lastpid + 1")
    trypid = k.lastpid + 1
    yield S(312, "if (flags & RFHIGHPID)")
    if flags & RF.RFHIGHPID:
        yield S(313, f"if (trypid < {c.PID_HIGH_FLOOR})")
        if trypid < c.PID_HIGH_FLOOR:
            yield S(314, f"trypid = {c.PID_HIGH_FLOOR}")
            trypid = c.PID_HIGH_FLOOR
    else:
        yield S(317, "if (randompid)")
        rp = k.randompid
        if rp:
            yield S(318, "trypid += arc4random() % randompid")
            m = rp if k.fix("FIX_RANDOMPID_SNAPSHOT") else k.randompid   # the second read
            if m == 0:
                raise KernelPanic("integer divide fault: randompid was non-zero at line 317 and is 0 at "
                                  "line 318 (kern.randompid set to 0 on another CPU)", 318)
            trypid += k.arc4random() % m
    while True:                                   # retry:
        yield S(326, "if (trypid >= PID_MAX)")
        if trypid >= c.PID_MAX:
            yield S(327, "trypid = trypid % PID_MAX")
            trypid = trypid % c.PID_MAX
            yield S(328, f"if (trypid < {c.PID_FLOOR})")
            if trypid < c.PID_FLOOR:
                yield S(329, f"trypid += {c.PID_FLOOR}")
                trypid += c.PID_FLOOR
            yield S(330, "pidchecked = 0")
            k.pidchecked = 0
        yield S(332, "if (trypid >= pidchecked)")
        if trypid < k.pidchecked:
            break
        doingzomb = False
        yield S(335, "pidchecked = PID_MAX")
        k.pidchecked = c.PID_MAX
        yield S(341, "p2 = LIST_FIRST(&allproc)")
        lst = k.allproc
        p2 = lst[0] if lst else None
        retry = False
        while True:                               # again:
            yield S(343, "for (; p2 != NULL; ...)")
            if p2 is None:
                yield S(360, "if (!doingzomb)")
                if doingzomb:
                    break
                doingzomb = True
                yield S(362, "p2 = LIST_FIRST(&zombproc)")
                lst = k.zombproc
                p2 = lst[0] if lst else None
                continue
            while True:
                yield S(344, "while (p2->p_pid == trypid || p2->p_pgrp->pg_id == trypid || "
                             "p2->p_session->s_sid == trypid)")
                if not _scan_hit(p2, trypid, null_pgrp):
                    break
                yield S(347, "trypid++")
                trypid += 1
                yield S(348, "if (trypid >= pidchecked)")
                if trypid >= k.pidchecked:
                    retry = True
                    break
            if retry:
                break
            yield S(351, "if (p2->p_pid > trypid && pidchecked > p2->p_pid)")
            if p2.p_pid > trypid and k.pidchecked > p2.p_pid:
                yield S(352, "pidchecked = p2->p_pid")
                k.pidchecked = p2.p_pid
            yield S(353, "if (p2->p_pgrp->pg_id > trypid && pidchecked > p2->p_pgrp->pg_id)")
            half_built = null_pgrp and p2.p_pgrp is None
            if p2.p_pgrp is None and not half_built:
                raise KernelPanic(f"pid scan dereferences the NULL p_pgrp of half-built SIDL proc "
                                  f"(pid {p2.p_pid})", 353)
            if not half_built and p2.p_pgrp.pg_id > trypid and k.pidchecked > p2.p_pgrp.pg_id:
                yield S(355, "pidchecked = p2->p_pgrp->pg_id")
                k.pidchecked = p2.p_pgrp.pg_id
            yield S(356, "if (p2->p_session->s_sid > trypid && pidchecked > p2->p_session->s_sid)")
            if not half_built and p2.p_session.s_sid > trypid and k.pidchecked > p2.p_session.s_sid:
                yield S(358, "pidchecked = p2->p_session->s_sid")
                k.pidchecked = p2.p_session.s_sid
            yield S(343, "p2 = LIST_NEXT(p2, p_list)")
            p2 = list_next(lst, p2)
        if retry:
            continue
        break

    yield S(370, "if (flags & RFHIGHPID)")
    if flags & RF.RFHIGHPID:
        yield S(371, "pidchecked = 0")
        k.pidchecked = 0
    else:
        yield S(373, "lastpid = trypid")
        k.lastpid = trypid
    yield S(375, "p2 = newproc")
    p2 = newproc
    if not p2_locked:
        yield S(376, "p2->p_stat = SIDL")
        p2.p_stat = PStat.SIDL
    yield S(377, "p2->p_pid = trypid")
    p2.p_pid = trypid
    yield S(378, "LIST_INSERT_HEAD(&allproc, p2, p_list)")
    k.allproc.insert(0, p2)
    yield S(379, "LIST_INSERT_HEAD(PIDHASH(p2->p_pid), p2, p_hash)")
    k.pidhash[trypid % c.PIDHASH_SIZE].insert(0, p2)
    yield from k.unlock(cpu, k.allproc_lock, 380, "fork1", label="sx_xunlock(&allproc_lock)")

    if p2_locked:
        # PROC_LOCK(p2) before the bcopy, so p_args is written under p2's lock (do_fork)
        if not k.fix("FIX_MTX_INIT_EARLY"):
            yield S(394, 'mtx_init(&p2->p_mtx, "process lock", MTX_DEF)')
            p2.p_mtx = new_p_mtx(p2)
        yield from k.proc_lock(cpu, p2, "p2", 395, "fork1")
    if not k.fix("FIX_INIT_BEFORE_PUBLISH"):
        yield from _init_copy(k, cpu, p1, p2)
    if not p2_locked:
        if not k.fix("FIX_MTX_INIT_EARLY"):
            yield S(394, 'mtx_init(&p2->p_mtx, "process lock", MTX_DEF)')
            p2.p_mtx = new_p_mtx(p2)
        yield from k.proc_lock(cpu, p2, "p2", 395, "fork1")
    yield S(402, "p2->p_flag = 0")
    p2.p_flag = set()
    yield from k.lock(cpu, k.sched_lock, 403, "fork1", label="mtx_lock_spin(&sched_lock)")
    yield S(404, "p2->p_sflag = PS_INMEM")
    p2.p_sflag = {PSFlag.PS_INMEM}
    yield S(405, "if (p1->p_sflag & PS_PROFIL)")
    if PSFlag.PS_PROFIL in p1.p_sflag:
        yield S(406, "startprofclock(p2)")
        p2.p_sflag.add(PSFlag.PS_PROFIL)
    yield from k.unlock(cpu, k.sched_lock, 407, "fork1", label="mtx_unlock_spin(&sched_lock)")
    yield from k.proc_lock(cpu, p1, "p1", 411, "fork1")
    yield S(412, "crhold(p1->p_ucred)")      # cr_ref++ under the ucred's own mutex: atomic
    p1.p_ucred.cr_ref += 1
    yield S(413, "p2->p_ucred = p1->p_ucred")
    p2.p_ucred = p1.p_ucred
    yield S(415, "if (p2->p_args)")
    if p2.p_args is not None:
        yield from k.racy_add(p2.p_args, "ar_ref", 1, 416, "fork1", "p2->p_args->ar_ref++", shared_atomic)
    yield S(418, "if (flags & RFSIGSHARE)")
    if flags & RF.RFSIGSHARE:
        yield S(419, "p2->p_procsig = p1->p_procsig")
        p2.p_procsig = p1.p_procsig
        yield from k.racy_add(p2.p_procsig, "ps_refcnt", 1, 420, "fork1", "p2->p_procsig->ps_refcnt++",
                              shared_atomic)
        yield S(421, "if (p1->p_sigacts == &p1->p_addr->u_sigacts)")
        if not p1.p_procsig.shared_sigacts:
            yield from k.proc_unlock(cpu, p1, "p1", 424, "fork1")
            yield from k.proc_unlock(cpu, p2, "p2", 425, "fork1")
            yield from k.maysleep(cpu, 427, "fork1", "MALLOC(newsigacts, M_WAITOK)")
            yield S(427, "MALLOC(newsigacts, struct sigacts *, ..., M_WAITOK)")
            yield from k.proc_lock(cpu, p2, "p2", 429, "fork1")
            yield from k.proc_lock(cpu, p1, "p1", 430, "fork1")
            yield S(437, "p2->p_sigacts = newsigacts")
            p2.p_procsig.shared_sigacts = True
            yield S(438, "bcopy(&p1->p_addr->u_sigacts, p2->p_sigacts, sizeof(*p2->p_sigacts))")
            yield S(440, "*p2->p_sigacts = p1->p_addr->u_sigacts")
    else:
        yield from k.proc_unlock(cpu, p1, "p1", 443, "fork1")
        yield from k.proc_unlock(cpu, p2, "p2", 444, "fork1")
        yield from k.maysleep(cpu, 445, "fork1", "MALLOC(p2->p_procsig, M_WAITOK)")
        yield S(445, "MALLOC(p2->p_procsig, struct procsig *, ..., M_WAITOK)")
        newps = k.new(Procsig, ps_refcnt=0)
        if not p2_locked:
            p2.p_procsig = newps
        yield from k.proc_lock(cpu, p2, "p2", 447, "fork1")
        yield from k.proc_lock(cpu, p1, "p1", 448, "fork1")
        yield S(449, "bcopy(p1->p_procsig, p2->p_procsig, sizeof(*p2->p_procsig))")
        newps.ps_refcnt = p1.p_procsig.ps_refcnt
        newps.shared_sigacts = p1.p_procsig.shared_sigacts
        p2.p_procsig = newps          # FIX_P2_LOCKED_INIT: stored only now, under p2's lock
        yield S(450, "p2->p_procsig->ps_refcnt = 1")
        p2.p_procsig.ps_refcnt = 1
        yield S(451, "p2->p_sigacts = NULL")
        p2.p_procsig.shared_sigacts = False
    yield S(453, "if (flags & RFLINUXTHPN)")
    if flags & RF.RFLINUXTHPN:
        yield S(454, "p2->p_sigparent = SIGUSR1")
        p2.p_sigparent = "SIGUSR1"
    else:
        yield S(456, "p2->p_sigparent = SIGCHLD")
        p2.p_sigparent = "SIGCHLD"
    yield S(459, "p2->p_textvp = p1->p_textvp")
    p2.p_textvp = p1.p_textvp
    if p2_locked:                            # p_textvp read for the VREF under p2's lock
        yield from _vref_textvp(p2)
    yield from k.proc_unlock(cpu, p1, "p1", 460, "fork1")
    yield from k.proc_unlock(cpu, p2, "p2", 461, "fork1")
    if not p2_locked:
        yield from _vref_textvp(p2)

    yield S(465, "if (flags & RFCFDG)")
    if flags & RF.RFCFDG:
        yield from k.maysleep(cpu, 466, "fork1", "fdinit(p1)")
        yield S(466, "fd = fdinit(p1)")
        fd = k.new(Filedesc)
    else:
        yield S(467, "else if (flags & RFFDG)")
        if flags & RF.RFFDG:
            yield from k.maysleep(cpu, 468, "fork1", "fdcopy(p1)")
            yield S(468, "fd = fdcopy(p1)")
            fd = k.new(Filedesc)
        else:
            yield from k.racy_add(p1.p_fd, "fd_refcnt", 1, 470, "fork1", "fd = fdshare(p1): fd_refcnt++",
                                  shared_atomic)
            fd = p1.p_fd
    yield from k.proc_lock(cpu, p2, "p2", 471, "fork1")
    yield S(472, "p2->p_fd = fd")
    p2.p_fd = fd
    yield from k.proc_lock(cpu, p1, "p1", 480, "fork1")
    yield S(481, "if (p1->p_limit->p_lflags & PL_SHAREMOD)")
    if p1.p_limit.sharemod:
        yield S(482, "p2->p_limit = limcopy(p1->p_limit)")
        p2.p_limit = k.new(Plimit, rlim_nproc=p1.p_limit.rlim_nproc)
    else:
        yield S(484, "p2->p_limit = p1->p_limit")
        p2.p_limit = p1.p_limit
        yield from k.racy_add(p2.p_limit, "p_refcnt", 1, 485, "fork1", "p2->p_limit->p_refcnt++", shared_atomic)
    pglist_lock = k.fix("FIX_PGLIST_LOCK")
    yield S(492, "p2->p_flag |= p1->p_flag & (P_SUGID | P_ALTSTACK)")
    p2.p_flag |= p1.p_flag & {PFlag.P_SUGID, PFlag.P_ALTSTACK}
    if not pglist_lock:
        yield from _controlt(p1, p2)
    yield S(495, "if (flags & RFPPWAIT)")
    if flags & RF.RFPPWAIT:
        yield S(496, "p2->p_flag |= P_PPWAIT")
        p2.p_flag.add(PFlag.P_PPWAIT)
    if pglist_lock:
        # p_pgrp, the p_pglist insert and 493's read of p1's group and session in one section under
        # proctree_lock, as setpgid/exit (FreeBSD 5); it comes before the proc locks (p2, then p1)
        yield from k.proc_unlock(cpu, p1, "p1", 499, "fork1")
        yield from k.proc_unlock(cpu, p2, "p2", 500, "fork1")
        yield from k.lock(cpu, k.proctree_lock, None, "fork1", label="sx_xlock(&proctree_lock) [pglist]")
        yield from k.proc_lock(cpu, p2, "p2", 471, "fork1")     # the seed's PROC_LOCKs, taken again
        yield from k.proc_lock(cpu, p1, "p1", 480, "fork1")
        yield from _controlt(p1, p2)
        yield S(498, "p2->p_pgrp = p1->p_pgrp; LIST_INSERT_AFTER(p1, p2, p_pglist)")
        p2.p_pgrp = p1.p_pgrp
    else:
        yield S(498, "LIST_INSERT_AFTER(p1, p2, p_pglist)")
    members = p1.p_pgrp.pg_members
    at = next((i for i, q in enumerate(members) if q is p1), None)
    if at is None:
        raise KernelPanic(f"LIST_INSERT_AFTER: pid {p1.p_pid} is not on its p_pgrp's pg_members", 498)
    members.insert(at + 1, p2)
    yield from k.proc_unlock(cpu, p1, "p1", 499, "fork1")
    yield from k.proc_unlock(cpu, p2, "p2", 500, "fork1")
    if pglist_lock:
        yield from k.unlock(cpu, k.proctree_lock, None, "fork1", label="sx_xunlock(&proctree_lock) [pglist]")

    yield S(509, "if (flags & RFNOWAIT)")
    if flags & RF.RFNOWAIT:
        yield S(510, "pptr = initproc")
        pptr = k.initproc
    else:
        yield S(512, "pptr = p1")
        pptr = p1
    yield from k.lock(cpu, k.proctree_lock, 513, "fork1", label="sx_xlock(&proctree_lock)")
    yield from k.proc_lock(cpu, p2, "p2", 514, "fork1")
    yield S(515, "p2->p_pptr = pptr")
    p2.p_pptr = pptr
    if p2_locked:                            # LIST_INIT under proctree_lock, as do_fork
        yield S(520, "LIST_INIT(&p2->p_children)")
        p2.p_children = []
    yield from k.proc_unlock(cpu, p2, "p2", 516, "fork1")
    yield S(517, "LIST_INSERT_HEAD(&pptr->p_children, p2, p_sibling)")
    pptr.p_children.insert(0, p2)
    yield from k.unlock(cpu, k.proctree_lock, 518, "fork1", label="sx_xunlock(&proctree_lock)")
    yield from k.proc_lock(cpu, p2, "p2", 519, "fork1")
    if not p2_locked:
        yield S(520, "LIST_INIT(&p2->p_children)")
        p2.p_children = []
    yield S(521, "LIST_INIT(&p2->p_contested)")
    yield S(523, "callout_init(&p2->p_itcallout, 0)")
    yield S(524, "callout_init(&p2->p_slpcallout, 1)")
    yield from k.proc_lock(cpu, p1, "p1", 526, "fork1")
    # 527-542 (KTRACE inheritance) not modelled: no ktrace(2) in this kernel.
    yield from k.lock(cpu, k.sched_lock, 547, "fork1", label="mtx_lock_spin(&sched_lock)")
    yield S(548, "p2->p_estcpu = p1->p_estcpu")
    p2.p_estcpu = p1.p_estcpu
    yield from k.unlock(cpu, k.sched_lock, 549, "fork1", label="mtx_unlock_spin(&sched_lock)")
    yield S(555, "_PHOLD(p1)")
    k.mtx_assert(cpu, p1.p_mtx, True, 555)
    if p1.p_lock == 0 and PSFlag.PS_INMEM not in p1.p_sflag:
        p1.p_sflag.add(PSFlag.PS_INMEM)          # faultin
    p1.p_lock += 1
    hold_child = k.fix("FIX_HOLD_CHILD")
    if hold_child:
        yield S(None, "_PHOLD(p2)")             # FreeBSD 8: p2 cannot be reaped under us
        p2.p_lock += 1
    yield from k.proc_unlock(cpu, p1, "p1", 556, "fork1")
    yield from k.proc_unlock(cpu, p2, "p2", 557, "fork1")

    yield from k.maysleep(cpu, 563, "fork1", "vm_fork(p1, p2, flags)")
    yield from vm_fork(k, cpu, p1, p2, flags, 563)
    yield S(564, "mtx_assert(&vm_mtx, MA_NOTOWNED)")
    k.mtx_assert(cpu, k.vm_mtx, False, 564)
    yield S(566, "if (flags == (RFFDG | RFPROC))")
    if flags == RF.RFFDG | RF.RFPROC:
        yield S(567, "cnt.v_forks++")
        k.cnt["v_forks"] += 1
    else:
        yield S(569, "else if (flags == (RFFDG | RFPROC | RFPPWAIT | RFMEM))")
        if flags == RF.RFFDG | RF.RFPROC | RF.RFPPWAIT | RF.RFMEM:
            yield S(570, "cnt.v_vforks++")
            k.cnt["v_vforks"] += 1
        else:
            yield S(572, "else if (p1 == &proc0)")
            key, line = ("v_kthreads", 573) if p1 is k.proc0 else ("v_rforks", 576)
            yield S(line, f"cnt.{key}++")
            k.cnt[key] += 1

    yield from k.lock(cpu, k.fork_list_lock, 585, "fork1", label="sx_slock(&fork_list_lock)", mode=Mode.SHARED)
    yield S(586, "ep = TAILQ_FIRST(&fork_list); ep != NULL")
    ep = k.fork_list[0] if k.fork_list else None
    while ep is not None:
        yield S(587, f"(*ep->function)(p1, p2, flags) [{ep.name}]")
        k.callout_log.append((ep.name, p1.p_pid, p2.p_pid, int(flags)))
        yield S(586, "ep = TAILQ_NEXT(ep, next); ep != NULL")
        ep = list_next(k.fork_list, ep)
    yield from k.unlock(cpu, k.fork_list_lock, 589, "fork1", label="sx_sunlock(&fork_list_lock)", mode=Mode.SHARED)

    yield S(595, "microtime(&(p2->p_stats->p_start))")
    yield S(596, "p2->p_acflag = AFORK")
    yield S(597, "if ((flags & RFSTOPPED) == 0)")
    if not flags & RF.RFSTOPPED:
        yield from k.lock(cpu, k.sched_lock, 598, "fork1", label="mtx_lock_spin(&sched_lock)")
        yield S(599, "p2->p_stat = SRUN")
        p2.p_stat = PStat.SRUN
        yield S(600, "setrunqueue(p2)")
        yield from k.unlock(cpu, k.sched_lock, 601, "fork1", label="mtx_unlock_spin(&sched_lock)")
    yield from k.proc_lock(cpu, p1, "p1", 607, "fork1")
    yield S(608, "_PRELE(p1)")
    k.mtx_assert(cpu, p1.p_mtx, True, 608)
    if p1.p_lock <= 0:
        raise KernelPanic(f"_PRELE: pid {p1.p_pid} p_lock underflow", 608)
    p1.p_lock -= 1
    yield S(613, "KNOTE(&p1->p_klist, NOTE_FORK | p2->p_pid)")
    k.touch(p2, 613, "KNOTE reads p2->p_pid")
    yield from k.proc_unlock(cpu, p1, "p1", 614, "fork1")

    yield from k.proc_lock(cpu, p2, "p2", 621, "fork1")
    k.touch(p2, 621, "PROC_LOCK(p2)")
    while True:
        yield S(622, "while (p2->p_flag & P_PPWAIT)")
        k.touch(p2, 622, "p2->p_flag")
        if PFlag.P_PPWAIT not in p2.p_flag:
            break
        yield from k.msleep(cpu, p1, p2.p_mtx, "ppwait", 623, "fork1")
    if hold_child:
        yield S(None, "_PRELE(p2); wakeup(p2)")   # exit1 of p2 may wait for p_lock == 0
        p2.p_lock -= 1
        k.wakeup(p2)
    yield from k.proc_unlock(cpu, p2, "p2", 624, "fork1")
    k.touch(p2, 624, "PROC_UNLOCK(p2)")
    yield S(629, "*procp = p2")
    yield S(630, "return (0)")
    return None, p2


def _fork_syscall(k: Kernel, cpu: int, p: Proc, flags: RF, line: int, call: str) -> Gen[SysResult]:
    yield At(line, f"error = fork1(p, {call}, &p2)", SEED_FILE, "fork")
    err, p2 = yield from fork1(k, cpu, p, flags)
    yield At(line + 1, "if (error == 0)", SEED_FILE, "fork")
    if err is not None:
        return SysResult(errno=err)
    if k.fix("FIX_HOLD_CHILD"):
        # the pid was read inside fork1 while p2 was held (613; FreeBSD 10 fr_pidp), not here
        return SysResult(ret=0 if p2 is None else p2.p_pid)
    yield At(line + 2, "p->p_retval[0] = p2 ? p2->p_pid : 0", SEED_FILE, "fork")
    k.touch(p2, line + 2, "p->p_retval[0] = p2->p_pid")
    return SysResult(ret=0 if p2 is None else p2.p_pid)


def fork(k: Kernel, cpu: int, p: Proc) -> Gen[SysResult]:
    return (yield from _fork_syscall(k, cpu, p, RF.RFFDG | RF.RFPROC, 117, "RFFDG | RFPROC"))


def vfork(k: Kernel, cpu: int, p: Proc) -> Gen[SysResult]:
    return (yield from _fork_syscall(k, cpu, p, RF.RFFDG | RF.RFPROC | RF.RFPPWAIT | RF.RFMEM, 134,
                                     "RFFDG | RFPROC | RFPPWAIT | RFMEM"))


def rfork(k: Kernel, cpu: int, p: Proc, flags: RF) -> Gen[SysResult]:
    """rfork(2): the user's flags with RFKERNELONLY masked out (line 151)."""
    return (yield from _fork_syscall(k, cpu, p, RF(int(flags) & ~int(RFKERNELONLY)), 151,
                                     "uap->flags & ~RFKERNELONLY"))


def kthread_fork(k: Kernel, cpu: int, p: Proc, flags: RF) -> Gen[SysResult]:
    """fork1 called from inside the kernel (kthread_create, boot): no masking."""
    return (yield from _fork_syscall(k, cpu, p, flags, 151, "flags"))


def sysctl_kern_randompid(k: Kernel, cpu: int, value: int) -> Gen[SysResult]:
    S = partial(At, file=SEED_FILE, func="sysctl_kern_randompid")
    c = k.config
    lo = c.randompid_min
    yield S(180, "pid = randompid")
    old = k.randompid
    yield S(181, "error = sysctl_handle_int(oidp, &pid, 0, req)")
    pid = value
    yield S(184, f"if (pid < 0 || pid > PID_MAX - {lo})")
    if pid < 0 or pid > c.PID_MAX - lo:
        yield S(185, f"pid = PID_MAX - {lo}")
        pid = c.PID_MAX - lo
    else:
        yield S(186, "else if (pid < 2)")
        if pid < 2:
            yield S(187, "pid = 0")
            pid = 0
        else:
            yield S(188, f"else if (pid < {lo})")
            if pid < lo:
                yield S(189, f"pid = {lo}")
                pid = lo
    yield S(190, "randompid = pid")
    k.randompid = pid
    return SysResult(ret=old)


def rm_at_fork(k: Kernel, cpu: int, name: str) -> Gen[int]:
    S = partial(At, file=SEED_FILE, func="rm_at_fork")
    yield from k.lock(cpu, k.fork_list_lock, 676, "rm_at_fork", label="sx_xlock(&fork_list_lock)")
    yield S(677, "ep = TAILQ_FIRST(&fork_list); ep != NULL")
    ep = k.fork_list[0] if k.fork_list else None
    while ep is not None:
        yield S(678, "if (ep->function == function)")
        if ep.name == name:
            yield S(679, "TAILQ_REMOVE(&fork_list, ep, next)")
            k.fork_list = [e for e in k.fork_list if e is not ep]
            yield from k.unlock(cpu, k.fork_list_lock, 680, "rm_at_fork", label="sx_xunlock(&fork_list_lock)")
            yield S(681, "free(ep, M_ATFORK)")
            return 1
        yield S(677, "ep = TAILQ_NEXT(ep, next); ep != NULL")
        ep = list_next(k.fork_list, ep)
    yield from k.unlock(cpu, k.fork_list_lock, 685, "rm_at_fork", label="sx_xunlock(&fork_list_lock)")
    return 0


def at_fork(k: Kernel, cpu: int, name: str) -> Gen[SysResult]:
    """at_fork with INVARIANTS: an existing entry is removed first (651)."""
    S = partial(At, file=SEED_FILE, func="at_fork")
    yield S(651, "if (rm_at_fork(function))")
    if (yield from rm_at_fork(k, cpu, name)):
        yield S(652, 'printf("WARNING: fork callout entry (%p) already present")')
    yield S(655, "ep = malloc(sizeof(*ep), M_ATFORK, M_NOWAIT)")   # M_NOWAIT never fails here
    ep = ForkCallout(name)
    yield S(658, "ep->function = function")
    yield from k.lock(cpu, k.fork_list_lock, 659, "at_fork", label="sx_xlock(&fork_list_lock)")
    yield S(660, "TAILQ_INSERT_TAIL(&fork_list, ep, next)")
    k.fork_list.append(ep)
    yield from k.unlock(cpu, k.fork_list_lock, 661, "at_fork", label="sx_xunlock(&fork_list_lock)")
    return SysResult(ret=0)


def rm_at_fork_call(k: Kernel, cpu: int, name: str) -> Gen[SysResult]:
    n = yield from rm_at_fork(k, cpu, name)
    return SysResult(ret=n)
