"""The swapper: vm_glue.c swapout_procs() and swapout() of 2001. Not in the seed.

The shape is 2001's: walk allproc under allproc_lock (shared); test each
process under its proc lock and sched_lock; for the first candidate drop
allproc_lock, swapout() it (PS_SWAPPING set with PS_INMEM cleared in one
sched_lock section, cleared in a second) and `goto retry`; the call returns
when a walk finds nothing. 2001's swapout() does not test p_lock again, so a
_PHOLD (555) taken after the walk's look does not keep the process in memory
(FIX_SWAPOUT_RECHECK: 5.x's re-test under the proc lock).

Modelling choice (as the spec's swapper): 2001 swaps only SSLEEP/SSTOP
processes; here SRUN ones are candidates too. The kernel has no user mode, so
an SRUN process with no call running stands for one asleep in user mode, and
one in a call may be at a may-sleep point (zalloc, MALLOC M_WAITOK), which
the kernel's steps do not mark SSLEEP. The tests 2001 adds on top (p_slptime,
priority, realtime) are left out: `Kernel.swapout_pick` (set by the trace
replay) names the one process a walk may take, the others failing those
tests."""

from __future__ import annotations

from functools import partial
from typing import Any

from .config import PFlag, PSFlag, PStat
from .kern_fork import SysResult
from .kernel import At, Gen, Kernel, list_next
from .locks import KernelPanic, Mode
from .objects import UNINIT

F = "vm_glue.c"
# p_stat values a process may be swapped out in (see the module doc: SRUN is the modelling choice).
SWAPPABLE = (PStat.SSLEEP, PStat.SSTOP, PStat.SRUN)


def swapout_procs(k: Kernel, cpu: int) -> Gen[SysResult]:
    S = partial(At, None, file=F, func="swapout_procs")
    swapped = 0
    while True:                                           # retry:
        yield from k.lock(cpu, k.allproc_lock, None, "swapout_procs", F, "sx_slock(&allproc_lock)", Mode.SHARED)
        yield S("p = LIST_FIRST(&allproc)")
        p = k.allproc[0] if k.allproc else None
        only, k.swapout_pick = k.swapout_pick, None
        picked = None
        while p is not None:
            if only is not None and p is not only:
                # the tests the kernel leaves out (p_slptime, priority) fail for p: no lock taken
                yield S(f"p = LIST_NEXT(p, p_list)  [pid {p.p_pid}: not idle long enough]")
                p = list_next(k.allproc, p)
                continue
            if (yield from _candidate(k, cpu, p)):
                picked = p
                break
            yield S("p = LIST_NEXT(p, p_list)")
            p = list_next(k.allproc, p)
        yield from k.unlock(cpu, k.allproc_lock, None, "swapout_procs", F, "sx_sunlock(&allproc_lock)",
                            Mode.SHARED)
        if picked is None:
            return SysResult(ret=swapped)
        if not (yield from swapout(k, cpu, picked)):
            return SysResult(ret=swapped)     # FIX_SWAPOUT_RECHECK: held since the look; tried next pass
        swapped += 1
        yield S("didswap++; goto retry")


def _candidate(k: Kernel, cpu: int, p: Any) -> Gen[bool]:
    """The walk's look at p: p_lock and flags under the proc lock, then the swap state and p_stat
    under sched_lock as well."""
    S = partial(At, None, file=F, func="swapout_procs")
    if p.p_mtx is None:
        # a half-built proc (378-394): its mutex is zone garbage until mtx_init at 394, so there is
        # no owner to wait for; what the step finds is judged when it runs
        yield S("PROC_LOCK(p)")
        if p.p_mtx is None:
            raise KernelPanic(f"swapout_procs: PROC_LOCK of pid {p.p_pid}, whose p_mtx is not "
                              f"initialised (mtx_init at kern_fork.c:394 has not run)", None, F)
        if p.p_mtx.owner is None:
            k.witness.acquire(cpu, p.p_mtx, Mode.EXCLUSIVE, F, None)   # set up by 394 meanwhile
        else:
            yield from k.proc_lock(cpu, p, "p", None, "swapout_procs", F)
    else:
        yield from k.proc_lock(cpu, p, "p", None, "swapout_procs", F)
    yield S(f"if (p->p_lock != 0 || p->p_flag & (P_SYSTEM|P_WEXIT)) continue  [pid {p.p_pid}]")
    # zone garbage in a half-built proc reads as "held"
    if (p.p_lock is UNINIT or p.p_lock != 0 or p.p_flag is UNINIT
            or bool(p.p_flag & {PFlag.P_SYSTEM, PFlag.P_WEXIT})):
        yield from k.proc_unlock(cpu, p, "p", None, "swapout_procs", F)
        return False
    yield from k.lock(cpu, k.sched_lock, None, "swapout_procs", F, "mtx_lock_spin(&sched_lock)")
    yield S("if ((p->p_sflag & (PS_INMEM|PS_SWAPPING)) != PS_INMEM || p_stat not swappable) continue")
    ok = (PSFlag.PS_INMEM in p.p_sflag and PSFlag.PS_SWAPPING not in p.p_sflag
          and p.p_stat in SWAPPABLE)
    yield from k.unlock(cpu, k.sched_lock, None, "swapout_procs", F, "mtx_unlock_spin(&sched_lock)")
    yield from k.proc_unlock(cpu, p, "p", None, "swapout_procs", F)
    return ok


def swapout(k: Kernel, cpu: int, p: Any) -> Gen[bool]:
    """vm_glue.c swapout(): out of memory with PS_SWAPPING while the pages go, then PS_SWAPPING
    cleared. With FIX_SWAPOUT_RECHECK p_lock and P_WEXIT are tested again under the proc lock first,
    so a _PHOLD since the walk's look wins (False: not swapped)."""
    S = partial(At, None, file=F, func="swapout")
    recheck = k.fix("FIX_SWAPOUT_RECHECK")
    ok = True
    if recheck:
        yield from k.proc_lock(cpu, p, "p", None, "swapout", F)
        yield S("if (p->p_lock != 0 || p->p_flag & P_WEXIT) return  [recheck]")
        ok = p.p_lock == 0 and PFlag.P_WEXIT not in p.p_flag
    if ok:
        yield from k.lock(cpu, k.sched_lock, None, "swapout", F, "mtx_lock_spin(&sched_lock)")
        yield S("p->p_sflag &= ~PS_INMEM; p->p_sflag |= PS_SWAPPING")
        p.p_sflag.discard(PSFlag.PS_INMEM)
        p.p_sflag.add(PSFlag.PS_SWAPPING)
        yield from k.unlock(cpu, k.sched_lock, None, "swapout", F, "mtx_unlock_spin(&sched_lock)")
    if recheck:
        yield from k.proc_unlock(cpu, p, "p", None, "swapout", F)
    if ok:
        # pmap_swapout_proc(p): the u-area goes out; no state here
        yield from k.lock(cpu, k.sched_lock, None, "swapout", F, "mtx_lock_spin(&sched_lock)")
        yield S("p->p_sflag &= ~PS_SWAPPING")
        p.p_sflag.discard(PSFlag.PS_SWAPPING)
        yield from k.unlock(cpu, k.sched_lock, None, "swapout", F, "mtx_unlock_spin(&sched_lock)")
    return ok
