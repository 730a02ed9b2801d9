"""struct proc with the fields fork1 touches, and the objects it refers to.

Each object gets a serial id (`oid`) per type, used in snapshots to name
shared objects ("ucred#2"). Fields use the C names.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .config import PFlag, PSFlag, PStat
from .locks import Lock, LockKind


class _Uninit:
    """Zone garbage: a field of a zalloc'd proc not yet written (bzero/bcopy at 387-391)."""

    def __repr__(self) -> str:
        return "UNINIT"


UNINIT: Any = _Uninit()


class _Counter:
    def __init__(self) -> None:
        self.next: dict[str, itertools.count] = {}

    def take(self, kind: str) -> int:
        return next(self.next.setdefault(kind, itertools.count(1)))


@dataclass(eq=False)
class KObj:
    kind: ClassVar[str] = "obj"
    oid: int = 0

    @property
    def ref(self) -> str:
        return f"{self.kind}#{self.oid}"


@dataclass(eq=False)
class Uidinfo(KObj):
    kind: ClassVar[str] = "uidinfo"
    ui_uid: int = 0
    ui_proccnt: int = 0


@dataclass(eq=False)
class Ucred(KObj):
    kind: ClassVar[str] = "ucred"
    cr_ref: int = 1
    cr_uid: int = 0
    cr_ruid: int = 0
    cr_ruidinfo: Uidinfo | None = None


@dataclass(eq=False)
class Plimit(KObj):
    kind: ClassVar[str] = "plimit"
    p_refcnt: int = 1
    sharemod: bool = False          # PL_SHAREMOD in p_lflags
    rlim_nproc: int = 0             # p_rlimit[RLIMIT_NPROC].rlim_cur


@dataclass(eq=False)
class Procsig(KObj):
    kind: ClassVar[str] = "procsig"
    ps_refcnt: int = 1
    # p_sigacts == &p_addr->u_sigacts is false once a shared sigacts was
    # MALLOCed for RFSIGSHARE (421-441); procsig is what carries that.
    shared_sigacts: bool = False


@dataclass(eq=False)
class Pargs(KObj):
    kind: ClassVar[str] = "pargs"
    ar_ref: int = 1


@dataclass(eq=False)
class Filedesc(KObj):
    kind: ClassVar[str] = "filedesc"
    fd_refcnt: int = 1


@dataclass(eq=False)
class Vmspace(KObj):
    kind: ClassVar[str] = "vmspace"
    vm_refcnt: int = 1


@dataclass(eq=False)
class Vnode(KObj):
    kind: ClassVar[str] = "vnode"
    v_usecount: int = 1
    path: str = ""


@dataclass(eq=False)
class Session(KObj):
    kind: ClassVar[str] = "session"
    s_sid: int = 0
    s_leader: "Proc | None" = None
    s_count: int = 1                # pgrps in the session
    s_ttyvp: Vnode | None = None


@dataclass(eq=False)
class Pgrp(KObj):
    kind: ClassVar[str] = "pgrp"
    pg_id: int = 0
    pg_session: Session | None = None
    pg_members: list["Proc"] = field(default_factory=list)   # LIST, head first


@dataclass(eq=False)
class Proc(KObj):
    kind: ClassVar[str] = "proc"
    p_pid: Any = UNINIT
    p_stat: Any = UNINIT
    p_flag: Any = UNINIT            # set[PFlag]
    p_sflag: Any = UNINIT           # set[PSFlag]
    p_lock: Any = UNINIT            # _PHOLD count (in the zeroed section)
    p_pptr: Any = UNINIT
    p_pgrp: Any = UNINIT            # copied at 390 (p_startcopy..p_endcopy)
    p_args: Any = UNINIT            # copied at 390
    p_ucred: Any = UNINIT
    p_limit: Any = UNINIT
    p_procsig: Any = UNINIT
    p_fd: Any = UNINIT
    p_textvp: Any = UNINIT
    p_vmspace: Any = UNINIT
    p_peers: Any = UNINIT
    p_leader: Any = UNINIT
    p_estcpu: Any = UNINIT
    p_sigparent: Any = UNINIT
    p_xstat: int = 0
    p_children: list["Proc"] = field(default_factory=list)   # LIST, head first
    p_mtx: Lock | None = None       # mtx_init at 394
    freed: bool = False

    @property
    def p_session(self) -> Any:
        """`#define p_session p_pgrp->pg_session` in proc.h."""
        if self.p_pgrp is UNINIT or self.p_pgrp is None:
            return self.p_pgrp
        return self.p_pgrp.pg_session

    def label(self) -> str:
        return f"pid {self.p_pid}" if isinstance(self.p_pid, int) else self.ref


def new_p_mtx(p: Proc) -> Lock:
    return Lock(f"{p.ref}.p_mtx", LockKind.MUTEX, "process lock")


def pid_of(p: Any) -> Any:
    if p is None or p is UNINIT:
        return None if p is None else "UNINIT"
    return p.p_pid


def oref(o: Any) -> Any:
    if o is None:
        return None
    if o is UNINIT:
        return "UNINIT"
    return o.ref


def flags_json(fl: Any) -> Any:
    if fl is UNINIT:
        return "UNINIT"
    return sorted(f.value for f in fl)


__all__ = ["UNINIT", "Proc", "Pgrp", "Session", "Ucred", "Plimit", "Procsig", "Pargs", "Filedesc",
           "Vmspace", "Vnode", "Uidinfo", "KObj", "PFlag", "PSFlag", "PStat", "new_p_mtx", "pid_of",
           "oref", "flags_json", "_Counter"]
