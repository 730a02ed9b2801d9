"""Constants, flag names, errnos and fix toggles of the reference kernel.

Names are the C names of the seed (kern_fork.c at the 2001 SMPng revision) so
that states of this kernel and of spec/fork1.fk compare directly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping


class RF(enum.IntFlag):
    """rfork(2) flags, values of sys/unistd.h."""
    RFNAMEG = 1 << 0
    RFENVG = 1 << 1
    RFFDG = 1 << 2
    RFNOTEG = 1 << 3
    RFPROC = 1 << 4
    RFMEM = 1 << 5
    RFNOWAIT = 1 << 6
    RFCNAMEG = 1 << 10
    RFCENVG = 1 << 11
    RFCFDG = 1 << 12
    RFTHREAD = 1 << 13
    RFSIGSHARE = 1 << 14
    RFLINUXTHPN = 1 << 16
    RFSTOPPED = 1 << 17
    RFHIGHPID = 1 << 18
    RFPPWAIT = 1 << 31


# unistd.h is not part of the seed; this is the value FreeBSD shipped once
# RFSTOPPED and RFHIGHPID existed (both are used by the seed's fork1).
RFKERNELONLY = RF.RFSTOPPED | RF.RFHIGHPID | RF.RFPPWAIT

FORK_FLAGS = RF.RFFDG | RF.RFPROC                                 # fork(), line 117
VFORK_FLAGS = RF.RFFDG | RF.RFPROC | RF.RFPPWAIT | RF.RFMEM       # vfork(), line 134


def rf_names(flags: int) -> list[str]:
    return [f.name for f in RF if f.name and flags & f]


class PStat(str, enum.Enum):
    SIDL = "SIDL"
    SRUN = "SRUN"
    SSLEEP = "SSLEEP"
    SSTOP = "SSTOP"
    SZOMB = "SZOMB"


class PFlag(str, enum.Enum):
    """p_flag bits fork1 and its neighbours touch (guarded by p_mtx)."""
    P_CONTROLT = "P_CONTROLT"
    P_PPWAIT = "P_PPWAIT"
    P_SUGID = "P_SUGID"
    P_ALTSTACK = "P_ALTSTACK"
    P_KTHREAD = "P_KTHREAD"
    P_SYSTEM = "P_SYSTEM"
    P_EXEC = "P_EXEC"
    P_WEXIT = "P_WEXIT"


class PSFlag(str, enum.Enum):
    """p_sflag bits (guarded by sched_lock)."""
    PS_INMEM = "PS_INMEM"
    PS_PROFIL = "PS_PROFIL"
    PS_SWAPPING = "PS_SWAPPING"


class Errno(str, enum.Enum):
    EPERM = "EPERM"
    ESRCH = "ESRCH"
    ECHILD = "ECHILD"
    EAGAIN = "EAGAIN"
    ENOMEM = "ENOMEM"
    EACCES = "EACCES"
    EINVAL = "EINVAL"


# The registry of fix toggles: name -> what turning it on changes. All default
# False, i.e. the 2001 code. Keep in step with docs/kernel.md.
FIXES: dict[str, str] = {
    "FIX_NPROCS_ATOMIC":
        "nprocs++ (270) and nprocs-- (282, wait) are one atomic step instead of a load and a store.",
    "FIX_NPROCS_LOCKED":
        "the maxproc check (262) and nprocs++ (270) are one step, as when both are done under one lock; "
        "closes the check-then-increment window that FIX_NPROCS_ATOMIC alone leaves open.",
    "FIX_RANDOMPID_SNAPSHOT":
        "randompid is read once at 317 and that value is used at 318 (no division by zero).",
    "GIANT_PUSHED_DOWN":
        "Giant is NOT taken around each system call (False is the 2001 kernel: every syscall holds Giant).",
    "FIX_SHARED_REFCNT_ATOMIC":
        "ar_ref (416), ps_refcnt (420), plimit p_refcnt (485), fd_refcnt (fdshare, 470) and their "
        "decrements in exit/wait/exec are atomic instead of a load and a store under the wrong lock.",
    "FIX_SCAN_NULL_PGRP":
        "the proc zone hands out zeroed memory (p_pgrp NULL until the bcopy at 390) and the pid scan "
        "(344-358) skips the pgrp/session tests of a proc whose p_pgrp is NULL (FreeBSD 5.x fork1).",
    "FIX_PEERS_LOCK":
        "the peer chain is linked (292-298) and unlinked (exit1) under ppeers_lock (FreeBSD 5.x).",
    "FIX_PGLIST_LOCK":
        "p2->p_pgrp is not copied at 390 but set with the p_pglist insert (498) in one section under "
        "proctree_lock, after 499-500, that also reads p1's session at 493 (p2's and p1's locks taken again "
        "inside); setsid, setpgid and wait's leavepgrp hold proctree_lock too.",
    "FIX_MTX_INIT_EARLY":
        "p_mtx is initialised by the proc zone (287, UMA proc_init) instead of at 394, before p2 is on "
        "allproc (FreeBSD 5.x).",
    "FIX_HOLD_CHILD":
        "_PHOLD(p2) with _PHOLD(p1) (555) and _PRELE(p2) after the ppwait loop (622), exit1 waits for "
        "p_lock == 0 (FreeBSD 8 do_fork); the pid is read while p2 is held (613), not at 119/136/153.",
    "FIX_SWAPOUT_RECHECK":
        "the swapper re-checks p_lock and P_WEXIT under the proc lock right before swapping out "
        "(FreeBSD 5.x swapout_procs).",
    "FIX_P2_LOCKED_INIT":
        "p2's locked fields are written under their locks (do_fork, FreeBSD 8+): p_stat = SIDL (376) before "
        "RFTHREAD can link p2 (292), PROC_LOCK(p2) (394-395) before the bcopy (389-392), the MALLOCed "
        "procsig stored into p2 at the copy (449) under p2's lock, the p_textvp test and VREF (462-463) "
        "before PROC_UNLOCK(p2) (461), LIST_INIT(p_children) (520) under proctree_lock before 516; _PHOLD "
        "(555) leaves the PS_INMEM test to faultin, under sched_lock.",
    "FIX_LOCKED_ACCESSES":
        "exit1, execve and wait1 read a proc's locked fields under its locks (FreeBSD 5.x-8 exit1, kern_execve, "
        "proc_reap): p_limit, p_fd, p_textvp and p_procsig under PROC_LOCK, p_pptr (the P_PPWAIT wakeup) under "
        "proctree_lock; fdinit/fdcopy's table is stored into p1 (233, 246) before the old one is dropped (232, "
        "245) (fdescfree: p_fd cleared before the drop). With FIX_SHARED_REFCNT_ATOMIC, 241 and execve read the "
        "counts with refcount_load.",
    "FIX_INIT_BEFORE_PUBLISH":
        "the bzero/bcopy of the new proc (387-391) happens before it is put on allproc (378), so no "
        "other CPU's pid scan (344-346) reads the uninitialised p_pgrp of a SIDL proc.",
}


@dataclass(frozen=True)
class KernelConfig:
    """Scaled constants. Seed values: PID_MAX 99999, PID_FLOOR 100 (328-329),
    PID_HIGH_FLOOR 10 (313-314), RANDOMPID_MIN 100 (184-189). Scaling keeps
    PID_HIGH_FLOOR < PID_FLOOR < PID_MAX and 2 <= RANDOMPID_MIN < PID_MAX."""

    PID_MAX: int = 99999
    PID_FLOOR: int = 100
    PID_HIGH_FLOOR: int = 10
    RANDOMPID_MIN: int | None = None   # None: same as PID_FLOOR
    maxproc: int = 532
    maxprocperuid: int = 479           # initial RLIMIT_NPROC rlim_cur
    randompid: int = 0
    PIDHASH_SIZE: int = 8              # buckets of the pid hash; any power of two keeps PIDHASH semantics
    seed: int = 0                      # arc4random stream
    fixes: Mapping[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.fixes) - set(FIXES))
        if unknown:
            raise ValueError(f"unknown fix toggle {unknown[0]!r}; known: {', '.join(FIXES)}")
        if not 0 < self.PID_HIGH_FLOOR < self.PID_FLOOR < self.PID_MAX:
            raise ValueError("need 0 < PID_HIGH_FLOOR < PID_FLOOR < PID_MAX")
        # The seed has RANDOMPID_MIN == PID_FLOOR (both 100); a scaled model may pick them apart.
        if not 2 <= self.randompid_min < self.PID_MAX:
            raise ValueError("need 2 <= RANDOMPID_MIN < PID_MAX")
        if self.maxproc < 2 or self.maxprocperuid < 1:
            raise ValueError("need maxproc >= 2 (proc0 and init) and maxprocperuid >= 1")
        if self.randompid < 0 or self.PIDHASH_SIZE < 1:
            raise ValueError("need randompid >= 0 and PIDHASH_SIZE >= 1")

    @property
    def randompid_min(self) -> int:
        return self.PID_FLOOR if self.RANDOMPID_MIN is None else self.RANDOMPID_MIN

    def fix(self, name: str) -> bool:
        if name not in FIXES:
            raise KeyError(name)
        return bool(self.fixes.get(name, False))
