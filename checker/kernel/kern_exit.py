"""exit1 and wait (kern_exit.c of the same era), written from its structure.
Not in the seed, so steps cite no line: file "kern_exit.c", line None."""

from __future__ import annotations

from functools import partial

from .config import Errno, PFlag, PStat
from .kern_fork import SysResult, fdfree, fdrop
from .kern_proc import leavepgrp, pglist_locked
from .kernel import At, Gen, Kernel, list_remove
from .locks import KernelPanic, Mode
from .objects import Proc

F = "kern_exit.c"


def exit1(k: Kernel, cpu: int, p: Proc, rv: int) -> Gen[SysResult]:
    S = partial(At, None, file=F, func="exit1")
    shared_atomic = k.fix("FIX_SHARED_REFCNT_ATOMIC")
    yield S("if (p == initproc) panic")
    if p is k.initproc:
        raise KernelPanic(f"init died (signal 0, exit {rv})", None, F)
    yield from k.proc_lock(cpu, p, "p", None, "exit1", F)
    yield S("p->p_flag |= P_WEXIT")
    p.p_flag.add(PFlag.P_WEXIT)
    yield S("if (p->p_flag & P_PPWAIT)")
    if PFlag.P_PPWAIT in p.p_flag:
        yield from ppwait_wakeup(k, cpu, p, "exit1", F)
    # A task leader waits for its peers to go (the SIGKILL sent to them is left out: a peer
    # exits when its own caller makes it exit). One step per test of the loop condition.
    yield S("if (p == p->p_leader)")
    if p.p_leader is p:
        while True:
            yield S("while (p->p_peers)")
            if p.p_peers is None:
                break
            yield from k.msleep(cpu, p, p.p_mtx, "exit1", None, "exit1", F)
    yield from k.proc_unlock(cpu, p, "p", None, "exit1", F)

    yield from _unlink_peer(k, cpu, p)
    if k.fix("FIX_HOLD_CHILD"):
        # FreeBSD 8 exit1: wait until nobody holds the proc (fork1's _PHOLD(p2)).
        yield from k.proc_lock(cpu, p, "p", None, "exit1", F)
        while True:
            yield S("while (p->p_lock > 0)")
            if p.p_lock <= 0:
                break
            yield from k.msleep(cpu, p, p.p_mtx, "exithold", None, "exit1", F)
        yield from k.proc_unlock(cpu, p, "p", None, "exit1", F)

    locked = k.fix("FIX_LOCKED_ACCESSES")
    if locked:
        # "Release our limits structure": PROC_LOCK(p); plim = p->p_limit; p->p_limit = NULL;
        # PROC_UNLOCK(p); the count is dropped below, where 2001 drops it (lim_free(plim))
        yield from k.proc_lock(cpu, p, "p", None, "exit1", F)
        yield S("plim = p->p_limit; p->p_limit = NULL")
        lim = p.p_limit
        p.p_limit = None
        yield from k.proc_unlock(cpu, p, "p", None, "exit1", F)
        # fdescfree: p_fd read and cleared under the proc lock, the table dropped after
        yield from k.proc_lock(cpu, p, "p", None, "exit1", F)
        yield S("fdp = p->p_fd; p->p_fd = NULL")
        fdp = p.p_fd
        p.p_fd = None
        yield from k.proc_unlock(cpu, p, "p", None, "exit1", F)
        yield from fdrop(k, fdp, None, "exit1", F)
    else:
        yield from fdfree(k, cpu, p, None, "exit1", F)
    yield S("if (--vm->vm_refcnt == 0) vmspace_free")   # under vm_mtx
    vm = p.p_vmspace
    vm.vm_refcnt -= 1
    if vm.vm_refcnt == 0:
        k.free(vm)
    p.p_vmspace = None
    if locked:
        yield from k.proc_lock(cpu, p, "p", None, "exit1", F)
    yield S("if (p->p_textvp) vrele(p->p_textvp)")     # vrele: under v_interlock, one step
    if p.p_textvp is not None:
        p.p_textvp.v_usecount -= 1
        if p.p_textvp.v_usecount == 0:
            k.free(p.p_textvp)
        p.p_textvp = None
    if locked:
        yield from k.proc_unlock(cpu, p, "p", None, "exit1", F)
    else:
        lim = p.p_limit
    n = yield from k.racy_add(lim, "p_refcnt", -1, None, "exit1", "--p->p_limit->p_refcnt", shared_atomic, F)
    if n == 0:
        k.free(lim)
    p.p_limit = None
    yield S("if (SESS_LEADER(p)) sp->s_leader = NULL")
    if p.p_session.s_leader is p:
        p.p_session.s_leader = None

    yield from k.lock(cpu, k.allproc_lock, None, "exit1", F, "sx_xlock(&allproc_lock)")
    yield S("LIST_REMOVE(p, p_list)")
    list_remove(k.allproc, p, "allproc", None, F)
    yield S("LIST_INSERT_HEAD(&zombproc, p, p_list)")
    k.zombproc.insert(0, p)
    yield S("LIST_REMOVE(p, p_hash)")
    list_remove(k.pidhash[p.p_pid % k.config.PIDHASH_SIZE], p, "pidhash", None, F)
    yield from k.unlock(cpu, k.allproc_lock, None, "exit1", F, "sx_xunlock(&allproc_lock)")

    yield from k.lock(cpu, k.proctree_lock, None, "exit1", F, "sx_xlock(&proctree_lock)")
    yield S("q = LIST_FIRST(&p->p_children); if (q != NULL) wakeup(initproc)")
    if p.p_children:
        k.wakeup(k.initproc)
    while p.p_children:
        yield S("proc_reparent(q, initproc)")
        q = p.p_children.pop(0)
        k.initproc.p_children.insert(0, q)
        q.p_pptr = k.initproc
    yield from k.proc_lock(cpu, p, "p", None, "exit1", F)
    yield S("p->p_xstat = rv")
    p.p_xstat = rv
    yield from k.lock(cpu, k.sched_lock, None, "exit1", F, "mtx_lock_spin(&sched_lock)")
    yield S("p->p_stat = SZOMB")
    p.p_stat = PStat.SZOMB
    yield from k.unlock(cpu, k.sched_lock, None, "exit1", F, "mtx_unlock_spin(&sched_lock)")
    yield S("wakeup(p->p_pptr)")
    k.wakeup(p.p_pptr)
    yield from k.proc_unlock(cpu, p, "p", None, "exit1", F)
    yield from k.unlock(cpu, k.proctree_lock, None, "exit1", F, "sx_xunlock(&proctree_lock)")
    return SysResult(exited=rv)


def ppwait_wakeup(k: Kernel, cpu: int, p: Proc, func: str, file: str) -> Gen[None]:
    """Clear P_PPWAIT and wake the vfork parent, the proc lock held. FIX_LOCKED_ACCESSES: p_pptr is read
    under proctree_lock, which orders before the proc lock (dropped and re-taken around it)."""
    S = partial(At, None, file=file, func=func)
    if not k.fix("FIX_LOCKED_ACCESSES"):
        yield S("p->p_flag &= ~P_PPWAIT; wakeup(p->p_pptr)")
        p.p_flag.discard(PFlag.P_PPWAIT)
        k.wakeup(p.p_pptr)
        return
    yield S("p->p_flag &= ~P_PPWAIT")
    p.p_flag.discard(PFlag.P_PPWAIT)
    yield from k.proc_unlock(cpu, p, "p", None, func, file)
    yield from k.lock(cpu, k.proctree_lock, None, func, file, "sx_slock(&proctree_lock)", Mode.SHARED)
    yield S("wakeup(p->p_pptr)")
    k.wakeup(p.p_pptr)
    yield from k.unlock(cpu, k.proctree_lock, None, func, file, "sx_sunlock(&proctree_lock)", Mode.SHARED)
    yield from k.proc_lock(cpu, p, "p", None, func, file)


def _unlink_peer(k: Kernel, cpu: int, p: Proc) -> Gen[None]:
    """Remove ourself from our leader's peer list and wake our leader: under the
    leader's proc lock, one step per link walked (each `q = q->p_peers` loads a
    pointer fork1 writes at 293-294 with no lock), then one store."""
    S = partial(At, None, file=F, func="exit1")
    peers_lock = k.fix("FIX_PEERS_LOCK")
    if peers_lock:
        yield from k.lock(cpu, k.ppeers_lock, None, "exit1", F, "mtx_lock(&ppeers_lock)")
    yield S("l = p->p_leader")
    lead = p.p_leader
    yield from k.proc_lock(cpu, lead, "p->p_leader", None, "exit1", F)
    yield S("if (p->p_leader->p_peers)")
    if lead.p_peers is not None:
        yield S("q = p->p_leader")
        q = lead
        while True:
            yield S("while (q->p_peers != p)")
            if q is None:
                # p is not on its leader's chain (a lost update at 293/294): C follows NULL
                raise KernelPanic(f"exit1: pid {p.p_pid} is not on its leader's peer list "
                                  f"(NULL pointer dereference in the peer walk)", None, F)
            if q.p_peers is p:
                break
            yield S("q = q->p_peers")
            q = q.p_peers
        yield S("q->p_peers = p->p_peers")
        q.p_peers = p.p_peers
        yield S("wakeup(p->p_leader)")
        k.wakeup(lead)
    yield from k.proc_unlock(cpu, lead, "p->p_leader", None, "exit1", F)
    if peers_lock:
        yield from k.unlock(cpu, k.ppeers_lock, None, "exit1", F, "mtx_unlock(&ppeers_lock)")


def _leavepgrp_step(k: Kernel, p: Proc) -> Gen[None]:
    yield At(None, "leavepgrp(p)", F, "wait1")
    leavepgrp(k, p)


def reap(k: Kernel, cpu: int, p: Proc) -> Gen[None]:
    """The zombie half of wait1: release what exit1 kept, then zfree."""
    S = partial(At, None, file=F, func="wait1")
    shared_atomic = k.fix("FIX_SHARED_REFCNT_ATOMIC")
    yield S("chgproccnt(p->p_ucred->cr_ruidinfo, -1, 0)")
    p.p_ucred.cr_ruidinfo.ui_proccnt -= 1
    yield S("crfree(p->p_ucred)")
    cred = p.p_ucred
    cred.cr_ref -= 1
    if cred.cr_ref == 0:
        k.free(cred)
    p.p_ucred = None
    yield S("if (p->p_args)")
    if p.p_args is not None:
        args = p.p_args
        n = yield from k.racy_add(args, "ar_ref", -1, None, "wait1", "--p->p_args->ar_ref", shared_atomic, F)
        if n == 0:
            k.free(args)
        p.p_args = None
    yield from pglist_locked(k, cpu, "wait1", F, _leavepgrp_step(k, p))
    yield from k.lock(cpu, k.allproc_lock, None, "wait1", F, "sx_xlock(&allproc_lock)")
    yield S("LIST_REMOVE(p, p_list)")
    list_remove(k.zombproc, p, "zombproc", None, F)
    yield from k.unlock(cpu, k.allproc_lock, None, "wait1", F, "sx_xunlock(&allproc_lock)")
    yield from k.lock(cpu, k.proctree_lock, None, "wait1", F, "sx_xlock(&proctree_lock)")
    yield S("LIST_REMOVE(p, p_sibling)")
    list_remove(p.p_pptr.p_children, p, "p_children", None, F)
    yield from k.unlock(cpu, k.proctree_lock, None, "wait1", F, "sx_xunlock(&proctree_lock)")
    locked = k.fix("FIX_LOCKED_ACCESSES")
    if locked:                          # p_procsig read and cleared under the zombie's lock
        yield from k.proc_lock(cpu, p, "p", None, "wait1", F)
    ps = p.p_procsig
    n = yield from k.racy_add(ps, "ps_refcnt", -1, None, "wait1", "--p->p_procsig->ps_refcnt", shared_atomic, F)
    if n == 0:
        k.free(ps)
    p.p_procsig = None
    if locked:
        yield from k.proc_unlock(cpu, p, "p", None, "wait1", F)
    yield from k.racy_add(k, "nprocs", -1, None, "wait1", "nprocs--",
                          k.fix("FIX_NPROCS_ATOMIC") or k.fix("FIX_NPROCS_LOCKED"), F)
    yield S("zfree(proc_zone, p)")
    k.free(p)


def wait1(k: Kernel, cpu: int, q: Proc, pid: int | None) -> Gen[SysResult]:
    """waitpid(pid or WAIT_ANY) without WNOHANG: reap a zombie child, sleep
    while only live ones match, ECHILD when none match."""
    S = partial(At, None, file=F, func="wait1")
    while True:
        yield S("loop: nfound = 0")
        yield from k.lock(cpu, k.proctree_lock, None, "wait1", F, "sx_slock(&proctree_lock)", Mode.SHARED)
        nfound = 0
        found: Proc | None = None
        for p in list(q.p_children):
            yield S(f"LIST_FOREACH(p, &q->p_children): pid {p.p_pid}")
            if pid is not None and p.p_pid != pid:
                continue
            nfound += 1
            if p.p_stat is PStat.SZOMB:
                found = p
                break
        yield from k.unlock(cpu, k.proctree_lock, None, "wait1", F, "sx_sunlock(&proctree_lock)", Mode.SHARED)
        if found is not None:
            child = found.p_pid
            yield from reap(k, cpu, found)
            return SysResult(ret=child)
        yield S("if (nfound == 0) return (ECHILD)")
        if nfound == 0:
            return SysResult(errno=Errno.ECHILD)
        yield from k.msleep(cpu, q, None, "wait", None, "wait1", F)
