"""execve (kern_exec.c of the era), reduced to what fork1's objects need:
a private vmspace, procsig and text vnode, new arguments, and the vfork
handshake (clear P_PPWAIT, wake the parent). Not in the seed."""

from __future__ import annotations

from functools import partial

from .config import PFlag
from .kern_exit import ppwait_wakeup
from .kern_fork import SysResult
from .kernel import At, Gen, Kernel
from .objects import Pargs, Proc, Procsig, Vmspace, Vnode

F = "kern_exec.c"


def execve(k: Kernel, cpu: int, p: Proc, path: str = "/bin/sh") -> Gen[SysResult]:
    S = partial(At, None, file=F, func="execve")
    shared_atomic = k.fix("FIX_SHARED_REFCNT_ATOMIC")
    yield S("exec_new_vmspace: if (vmspace->vm_refcnt > 1) vmspace_exec(p)")   # under vm_mtx
    vm = p.p_vmspace
    if vm.vm_refcnt > 1:
        vm.vm_refcnt -= 1
        p.p_vmspace = k.new(Vmspace)
    if k.fix("FIX_LOCKED_ACCESSES"):
        yield from _unshare_procsig_locked(k, cpu, p, shared_atomic)
    else:
        yield S("if (p->p_procsig->ps_refcnt > 1)")
        ps = p.p_procsig
        if ps.ps_refcnt > 1:
            new = k.new(Procsig, shared_sigacts=False)
            n = yield from k.racy_add(ps, "ps_refcnt", -1, None, "execve", "p->p_procsig->ps_refcnt--",
                                      shared_atomic, F)
            if n == 0:
                k.free(ps)
            yield S("p->p_procsig = newprocsig; p->p_sigacts = &p->p_addr->u_sigacts")
            p.p_procsig = new
    yield S("vrele(p->p_textvp); p->p_textvp = ndp->ni_vp")
    # namei: a file already in use has its vnode referenced again, not a second vnode.
    vp = next((v for v in k.live.get("vnode", {}).values() if isinstance(v, Vnode) and v.path == path), None)
    if vp is None:
        vp = k.new(Vnode, path=path)
    else:
        vp.v_usecount += 1
    if p.p_textvp is not None:
        p.p_textvp.v_usecount -= 1
        if p.p_textvp.v_usecount == 0:
            k.free(p.p_textvp)
    p.p_textvp = vp
    yield S("if (p->p_args)")
    if p.p_args is not None:
        args = p.p_args
        n = yield from k.racy_add(args, "ar_ref", -1, None, "execve", "--p->p_args->ar_ref", shared_atomic, F)
        if n == 0:
            k.free(args)
    yield S("p->p_args = newargs")
    p.p_args = k.new(Pargs)
    yield from k.proc_lock(cpu, p, "p", None, "execve", F)
    yield S("p->p_flag |= P_EXEC")
    p.p_flag.add(PFlag.P_EXEC)
    yield S("if (p->p_flag & P_PPWAIT)")
    if PFlag.P_PPWAIT in p.p_flag:
        yield from ppwait_wakeup(k, cpu, p, "execve", F)
    yield from k.proc_unlock(cpu, p, "p", None, "execve", F)
    return SysResult(ret=0)


def _unshare_procsig_locked(k: Kernel, cpu: int, p: Proc, shared_atomic: bool) -> Gen[None]:
    """FIX_LOCKED_ACCESSES: p_procsig read under the proc lock (its count with refcount_load), the new
    one MALLOCed with the lock dropped (M_WAITOK), then the old one dropped and replaced under it."""
    S = partial(At, None, file=F, func="execve")
    yield from k.proc_lock(cpu, p, "p", None, "execve", F)
    yield S("shared = refcount_load(&p->p_procsig->ps_refcnt) > 1")
    shared = p.p_procsig.ps_refcnt > 1
    yield from k.proc_unlock(cpu, p, "p", None, "execve", F)
    if not shared:
        return
    yield S("MALLOC(newprocsig, M_WAITOK)")
    new = k.new(Procsig, shared_sigacts=False)
    yield from k.proc_lock(cpu, p, "p", None, "execve", F)
    ps = p.p_procsig
    n = yield from k.racy_add(ps, "ps_refcnt", -1, None, "execve", "p->p_procsig->ps_refcnt--", shared_atomic, F)
    if n == 0:
        k.free(ps)
    yield S("p->p_procsig = newprocsig; p->p_sigacts = &p->p_addr->u_sigacts")
    p.p_procsig = new
    yield from k.proc_unlock(cpu, p, "p", None, "execve", F)
