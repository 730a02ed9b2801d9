"""The swapper (vm_glue.c swapout_procs), one pass. Not in the seed.

It reads p_lock without the proc lock, as the 2001 code did; the PHOLD in
fork1 (555-608) is what keeps a forking parent in memory."""

from __future__ import annotations

from functools import partial
from typing import Any

from .config import PFlag, PSFlag, PStat
from .kern_fork import SysResult
from .kernel import At, Gen, Kernel, list_next
from .locks import Mode
from .objects import UNINIT

F = "vm_glue.c"


def swapout_procs(k: Kernel, cpu: int) -> Gen[SysResult]:
    S = partial(At, None, file=F, func="swapout_procs")
    swapped = 0
    yield from k.lock(cpu, k.allproc_lock, None, "swapout_procs", F, "sx_slock(&allproc_lock)", Mode.SHARED)
    yield S("p = LIST_FIRST(&allproc)")
    p = k.allproc[0] if k.allproc else None
    while p is not None:
        yield S(f"if (p->p_lock != 0 || p->p_flag & (P_SYSTEM|P_WEXIT)) continue  [pid {p.p_pid}]")
        # Zone garbage in a half-built proc reads as "held": skip it.
        skip = (p.p_lock is UNINIT or p.p_lock != 0 or p.p_flag is UNINIT
                or bool(p.p_flag & {PFlag.P_SYSTEM, PFlag.P_WEXIT}))
        if not skip:
            yield from k.lock(cpu, k.sched_lock, None, "swapout_procs", F, "mtx_lock_spin(&sched_lock)")
            yield S("if ((p->p_sflag & (PS_INMEM|PS_SWAPPING)) == PS_INMEM && p_stat is SSLEEP or SSTOP)")
            cand = (PSFlag.PS_INMEM in p.p_sflag and PSFlag.PS_SWAPPING not in p.p_sflag
                    and p.p_stat in (PStat.SSLEEP, PStat.SSTOP))
            if cand and not k.fix("FIX_SWAPOUT_RECHECK"):
                yield S("swapout(p): p->p_sflag &= ~PS_INMEM")
                p.p_sflag.discard(PSFlag.PS_INMEM)
                swapped += 1
            yield from k.unlock(cpu, k.sched_lock, None, "swapout_procs", F, "mtx_unlock_spin(&sched_lock)")
            if cand and k.fix("FIX_SWAPOUT_RECHECK"):
                swapped += yield from _swapout_rechecked(k, cpu, p)
        yield S("p = LIST_NEXT(p, p_list)")
        p = list_next(k.allproc, p)
    yield from k.unlock(cpu, k.allproc_lock, None, "swapout_procs", F, "sx_sunlock(&allproc_lock)", Mode.SHARED)
    return SysResult(ret=swapped)


def _swapout_rechecked(k: Kernel, cpu: int, p: Any) -> Gen[int]:
    """FIX_SWAPOUT_RECHECK (FreeBSD 5.x): p_lock and P_WEXIT are tested again under
    the proc lock right before swapping, so a _PHOLD since the first look wins."""
    S = partial(At, None, file=F, func="swapout_procs")
    yield from k.proc_lock(cpu, p, "p", None, "swapout_procs", F)
    yield S("if (p->p_lock != 0 || p->p_flag & P_WEXIT) skip")
    ok = p.p_lock == 0 and PFlag.P_WEXIT not in p.p_flag
    if ok:
        yield from k.lock(cpu, k.sched_lock, None, "swapout_procs", F, "mtx_lock_spin(&sched_lock)")
        yield S("swapout(p): p->p_sflag &= ~PS_INMEM")
        p.p_sflag.discard(PSFlag.PS_INMEM)
        yield from k.unlock(cpu, k.sched_lock, None, "swapout_procs", F, "mtx_unlock_spin(&sched_lock)")
    yield from k.proc_unlock(cpu, p, "p", None, "swapout_procs", F)
    return 1 if ok else 0
