"""Process groups and sessions (kern_proc.c) and the syscalls that change
them or the credentials (kern_prot.c, kern_resource.c). Not in the seed."""

from __future__ import annotations

from functools import partial
from typing import TypeVar

from .config import Errno, PFlag
from .kern_fork import SysResult
from .kernel import At, Gen, Kernel, list_remove
from .objects import Pgrp, Plimit, Proc, Session, Ucred

F = "kern_proc.c"
T = TypeVar("T")


def pglist_locked(k: Kernel, cpu: int, func: str, file: str, body: Gen[T]) -> Gen[T]:
    """`body` under proctree_lock (exclusive) with FIX_PGLIST_LOCK, as later FreeBSD guards the
    process-group lists; 2001 (the toggle off) runs it under Giant alone."""
    locked = k.fix("FIX_PGLIST_LOCK")
    if locked:
        yield from k.lock(cpu, k.proctree_lock, None, func, file, "sx_xlock(&proctree_lock) [pglist]")
    res = yield from body
    if locked:
        yield from k.unlock(cpu, k.proctree_lock, None, func, file, "sx_xunlock(&proctree_lock) [pglist]")
    return res


def pgdelete(k: Kernel, pgrp: Pgrp) -> None:
    k.pgrphash.pop(pgrp.pg_id, None)
    sess = pgrp.pg_session
    sess.s_count -= 1
    if sess.s_count == 0:
        k.free(sess)
    k.free(pgrp)


def leavepgrp(k: Kernel, p: Proc) -> None:
    pg = p.p_pgrp
    list_remove(pg.pg_members, p, "pg_members", None, F)
    if not pg.pg_members:
        pgdelete(k, pg)
    p.p_pgrp = None


def enterpgrp(k: Kernel, p: Proc, pgid: int, mksess: bool) -> None:
    pgrp = k.pgfind(pgid)
    if pgrp is None:
        if mksess:
            sess = k.new(Session, s_sid=p.p_pid, s_leader=p, s_count=1)
            p.p_flag.discard(PFlag.P_CONTROLT)
        else:
            sess = p.p_session
            sess.s_count += 1
        pgrp = k.new(Pgrp, pg_id=pgid, pg_session=sess, pg_members=[])
        k.pgrphash[pgid] = pgrp
    elif pgrp is p.p_pgrp:
        return
    old = p.p_pgrp
    list_remove(old.pg_members, p, "pg_members", None, F)
    pgrp.pg_members.insert(0, p)
    p.p_pgrp = pgrp
    if not old.pg_members:
        pgdelete(k, old)


def setsid(k: Kernel, cpu: int, p: Proc) -> Gen[SysResult]:
    return (yield from pglist_locked(k, cpu, "setsid", "kern_prot.c", _setsid_locked(k, p)))


def _setsid_locked(k: Kernel, p: Proc) -> Gen[SysResult]:
    S = partial(At, None, file="kern_prot.c", func="setsid")
    yield S("if (p->p_pgid == p->p_pid || pgfind(p->p_pid) != NULL)")
    if p.p_pgrp.pg_id == p.p_pid or k.pgfind(p.p_pid) is not None:
        return SysResult(errno=Errno.EPERM)
    yield S("enterpgrp(p, p->p_pid, 1)")
    enterpgrp(k, p, p.p_pid, True)
    return SysResult(ret=p.p_pid)


def setpgid(k: Kernel, cpu: int, curp: Proc, pid: int, pgid: int) -> Gen[SysResult]:
    S = partial(At, None, file="kern_prot.c", func="setpgid")
    yield S("targp = (uap->pid != 0 && uap->pid != curp->p_pid) ? pfind(uap->pid) : curp")
    if pid != 0 and pid != curp.p_pid:
        targp = k.pfind(pid)
        if targp is None or targp.p_pptr is not curp:
            return SysResult(errno=Errno.ESRCH)
        if PFlag.P_EXEC in targp.p_flag:
            return SysResult(errno=Errno.EACCES)
    else:
        targp = curp
    return (yield from pglist_locked(k, cpu, "setpgid", "kern_prot.c", _setpgid_locked(k, targp, curp, pgid)))


def _setpgid_locked(k: Kernel, targp: Proc, curp: Proc, pgid: int) -> Gen[SysResult]:
    S = partial(At, None, file="kern_prot.c", func="setpgid")
    yield S("if (SESS_LEADER(targp) || targp->p_session != curp->p_session)")
    if targp.p_session.s_leader is targp or targp.p_session is not curp.p_session:
        return SysResult(errno=Errno.EPERM)
    yield S("if (uap->pgid == 0) uap->pgid = targp->p_pid; else check pgfind(uap->pgid)")
    if pgid == 0:
        pgid = targp.p_pid
    elif pgid != targp.p_pid:
        pg = k.pgfind(pgid)
        if pg is None or pg.pg_session is not curp.p_session:
            return SysResult(errno=Errno.EPERM)
    yield S("enterpgrp(targp, uap->pgid, 0)")
    enterpgrp(k, targp, pgid, False)
    return SysResult(ret=0)


def setuid(k: Kernel, cpu: int, p: Proc, uid: int) -> Gen[SysResult]:
    """setuid(2) reduced to what the process limits need: a copied ucred
    (crcopy when shared), change_ruid moving the per-uid process count."""
    S = partial(At, None, file="kern_prot.c", func="setuid")
    yield S("if (uid != cr_ruid && uid != cr_uid && suser(p)) return (EPERM)")
    cr = p.p_ucred
    if uid not in (cr.cr_ruid, cr.cr_uid) and cr.cr_uid != 0:
        return SysResult(errno=Errno.EPERM)
    yield from k.proc_lock(cpu, p, "p", None, "setuid", "kern_prot.c")
    yield S("newcred = crdup(oldcred); change_ruid(newcred, uid); p->p_ucred = newcred; crfree(oldcred)")
    old_ui = cr.cr_ruidinfo
    new_ui = k.uidinfo(uid)
    new = k.new(Ucred, cr_ref=1, cr_uid=uid, cr_ruid=uid, cr_ruidinfo=new_ui)
    if p is not k.proc0:
        old_ui.ui_proccnt -= 1
        new_ui.ui_proccnt += 1
    p.p_ucred = new
    cr.cr_ref -= 1
    if cr.cr_ref == 0:
        k.free(cr)
    p.p_flag.add(PFlag.P_SUGID)
    yield from k.proc_unlock(cpu, p, "p", None, "setuid", "kern_prot.c")
    return SysResult(ret=0)


def setrlimit(k: Kernel, cpu: int, p: Proc, nproc: int | None, sharemod: bool | None) -> Gen[SysResult]:
    """setrlimit(RLIMIT_NPROC): copy-on-write of a shared plimit unless PL_SHAREMOD."""
    S = partial(At, None, file="kern_resource.c", func="setrlimit")
    yield S("if (p->p_limit->p_refcnt > 1 && (p->p_limit->p_lflags & PL_SHAREMOD) == 0) limcopy")
    lim = p.p_limit
    if lim.p_refcnt > 1 and not lim.sharemod:
        new = k.new(Plimit, rlim_nproc=lim.rlim_nproc)
        n = yield from k.racy_add(lim, "p_refcnt", -1, None, "setrlimit", "p->p_limit->p_refcnt--",
                                  k.fix("FIX_SHARED_REFCNT_ATOMIC"), "kern_resource.c")
        if n == 0:
            k.free(lim)
        p.p_limit = lim = new
    yield S("alimp->rlim_cur = limp->rlim_cur")
    if nproc is not None:
        lim.rlim_nproc = nproc
    if sharemod is not None:
        lim.sharemod = sharemod
    return SysResult(ret=0)
