"""`forkcheck trace replay TRACE`: drive the reference kernel through a counterexample.

The trace is a run of a fork1 model (spec/fork1.fk). Replay re-executes it on
the IR (to read the values the trace chose: which process a CPU picked, the
arc4random() residue at 318, the randompid a sysctl wrote) and, step by step,
on the reference kernel (checker/kernel), an independent description of the
same C. After every step where both sides are at the same point of the C, the
kernel's state is compared with the trace's state on the variables both have;
the first difference is reported (exit 1). At the end the violated property is
checked on the kernel too.

Lockstep rule, for a trace step of thread T citing seed line R:
  1. R is a line the kernel has no step for (the model's own split, e.g. 361
     `doingzomb = 1`): nothing runs on the kernel.
  2. The kernel CPU's next step is at R: it takes it (an msleep half only for
     the model's sleep / wake step; the model's Giant shuffle around msleep
     at the same line is absorbed).
  3. The kernel's last step was at R (or covered R: FIX_NPROCS_LOCKED's one
     step at 262 also does 270): the model splits that C statement into more
     steps than the kernel (412 crhold load/store, 555, 563 vm_fork): absorbed.
  4. The kernel's next step is one the model does not cite (263 tablefull,
     379 PIDHASH, 387 bzero, Giant at syscall entry): the kernel takes it and
     the rule is tried again.
  5. Otherwise the two disagree on the C's control flow: a divergence.
Trace steps with no seed line are model bookkeeping (the CPU's pick of a
process, g_insyscall, maysleep's Giant shuffle): nothing runs on the kernel,
except the model's own `lock(Giant)`/`unlock(Giant)` around a system call,
which the kernel takes at the same point.

System calls without seed lines (exit1, wait, execve, setsid, setpgid) run on
their own kernel cpu, each step both have taken with the model's (ATOMIC_SYNC:
exit1's peer walk, leader sleep, unlocked decrements; execve's refcount drops and
P_EXEC; setsid/setpgid's tests, pglist lock and enterpgrp), exit1 and wait also at
SYNC_LOCKS, and finished when the model's call returns; no comparison is made
while one is in flight. Steps a fix adds to fork1 without a seed line are
paired by label (PAIRED_UNCITED). The swapper runs vm_glue.c's swapout_procs
on its own kernel cpu, each of its steps paired with the model's by label
(SWAPPER_PAIRS); the model's pick is the process the kernel's walk may take.
Only the model's swap-in (the CPU's pick, faultin) is mirrored: p_sflag copied.
"""

from __future__ import annotations

import argparse
import enum
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import ir
from ..diagnostics import ForkcheckError, UsageError
from ..kernel import Call, Kernel, KernelConfig, StepStatus, start
from ..kernel.config import FIXES, RF, PFlag, PSFlag, PStat
from ..kernel.invariants import refcount_violations
from ..kernel.kernel import SEED_FILE, Cpu, ForkCallout, NeedLock
from ..kernel.lines import kernel_seed_lines
from ..kernel.locks import LockKind
from ..kernel.objects import (UNINIT, Filedesc, KObj, Pargs, Pgrp, Plimit, Proc, Procsig, Session, Ucred,
                              Uidinfo, Vmspace, Vnode, new_p_mtx)
from ..results import EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE
from ..semantics import Semantics, State
from .itf import Trace

# The model's fix toggles and the kernel toggles that make the same change.
# FIX_NPROCS_ATOMIC in the model puts 262 and 270 under allproc_lock: the
# kernel's FIX_NPROCS_LOCKED (one step) plus FIX_NPROCS_ATOMIC (the decrements).
SPEC_TO_KERNEL_FIX: dict[str, tuple[str, ...]] = {
    "GIANT_PUSHED_DOWN": ("GIANT_PUSHED_DOWN",),
    "FIX_NPROCS_ATOMIC": ("FIX_NPROCS_ATOMIC", "FIX_NPROCS_LOCKED"),
    "FIX_RANDOMPID_SNAPSHOT": ("FIX_RANDOMPID_SNAPSHOT",),
    "FIX_REFCOUNT_ATOMIC": ("FIX_SHARED_REFCNT_ATOMIC",),
    "FIX_SCAN_NULL_PGRP": ("FIX_SCAN_NULL_PGRP",),
    "FIX_PEERS_LOCK": ("FIX_PEERS_LOCK",),
    "FIX_PGLIST_LOCK": ("FIX_PGLIST_LOCK",),
    "FIX_MTX_INIT_EARLY": ("FIX_MTX_INIT_EARLY",),
    "FIX_HOLD_CHILD": ("FIX_HOLD_CHILD",),
    "FIX_SWAPOUT_RECHECK": ("FIX_SWAPOUT_RECHECK",),
    "FIX_P2_LOCKED_INIT": ("FIX_P2_LOCKED_INIT",),
    "FIX_LOCKED_ACCESSES": ("FIX_LOCKED_ACCESSES",),
}
# Steps of fork1 that cite no seed line (a fix's addition) and that the kernel takes too, paired by
# (frame, model label) -> the kernel step's label.
PAIRED_UNCITED: dict[tuple[str, str], str] = {
    ("fork1", "lock(ppeers_lock)"): "mtx_lock(&ppeers_lock)",
    ("fork1", "unlock(ppeers_lock)"): "mtx_unlock(&ppeers_lock)",
    ("fork1", "lock(proctree_lock)"): "sx_xlock(&proctree_lock) [pglist]",
    ("fork1", "unlock(proctree_lock)"): "sx_xunlock(&proctree_lock) [pglist]",
    ("fork1", "p2.p_lock := p2.p_lock + 1"): "_PHOLD(p2)",
    ("fork1", "p2.p_lock := p2.p_lock - 1"): "_PRELE(p2); wakeup(p2)",
    # fdfree called at 232/245: its racy store (the kernel's load went with the call's line)
    ("fdfree", "f.fd_refcnt := n"): "fdfree: --fdp->fd_refcnt [store]",
}
# Model calls replayed step by step (their body cites seed lines).
LOCKSTEP_CALLS = {"sys_fork": Call.FORK, "sys_vfork": Call.VFORK, "sys_rfork": Call.RFORK,
                  "at_fork": Call.AT_FORK, "rm_at_fork": Call.RM_AT_FORK}
# Model calls with no seed lines: run on their own kernel cpu, in step at ATOMIC_SYNC/SYNC_LOCKS, finished at
# the model's return.
ATOMIC_CALLS = {"exit1": Call.EXIT, "sys_wait": Call.WAIT, "execve": Call.EXEC, "setsid": Call.SETSID,
                "setpgid": Call.SETPGID}
# Kernel locks compared with the model's (Giant is taken at different points; see the module doc).
COMPARED_LOCKS = ("allproc_lock", "proctree_lock", "sched_lock", "vm_mtx", "fork_list_lock")
# Known differences that last one step (docs/kernel.md, known differences): (line just
# taken, model pool, field) not compared.
# 449: bcopy(p1->p_procsig, p2->p_procsig) copies ps_refcnt too; the model copies only
# ps_sigacts_uarea, and both agree again after 450.
TRANSIENT: frozenset[tuple[int, str, str]] = frozenset({(449, "procsig", "ps_refcnt")})
# Locks at which an environment call's kernel run is kept in step with the model's.
SYNC_LOCKS = ("allproc_lock", "proctree_lock")
# The swapper's steps (frame, model label) -> the kernel's step (label prefix) in vm_glue.py's
# swapout_procs/swapout, run on the swapper's env cpu. Kernel steps that match none of these (the walk's
# LIST_FIRST/LIST_NEXT, `goto retry`) are taken on the way to the next paired one. The model picks one
# process per pass; the kernel walks allproc and takes the first candidate. The pick is given to the
# kernel (Kernel.swapout_pick) and its walk passes the processes before it without a look: that is a
# run of 2001's walk in which those failed the tests the model leaves out (p_slptime, priority), so
# pairing the pick with the walk reaching that process is faithful; one that fails the model's test
# fails the kernel's too (or the two diverge), and the walk then ends as the model's pass does.
SWAPPER_PAIRS: dict[tuple[str, str], str] = {      # (frame, model label prefix) -> kernel label prefix
    ("giant_enter", "lock(Giant)"): "mtx_lock(&Giant) [swapper]",
    ("swapper", "slock(allproc_lock)"): "sx_slock(&allproc_lock)",
    ("swapper", "lock(p.p_mtx)"): "PROC_LOCK(p)",
    # the walk's look (p_lock and flags) and FIX_SWAPOUT_RECHECK's second look
    ("swapper", "ok := p.p_lock"): "if (p->p_lock != 0 || p->p_flag & ",
    ("swapper", "lock(sched_lock)"): "mtx_lock_spin(&sched_lock)",
    ("swapper", "ok := ok && p.p_sflag"): "if ((p->p_sflag & (PS_INMEM|PS_SWAPPING)) != PS_INMEM",
    ("swapper", "unlock(sched_lock)"): "mtx_unlock_spin(&sched_lock)",
    ("swapper", "unlock(p.p_mtx)"): "PROC_UNLOCK(p)",
    ("swapper", "sunlock(allproc_lock)"): "sx_sunlock(&allproc_lock)",
    ("swapper", "p.p_sflag := p.p_sflag &~ {PS_INMEM}"): "p->p_sflag &= ~PS_INMEM; p->p_sflag |= PS_SWAPPING",
    ("swapper", "p.p_sflag := p.p_sflag &~ {PS_SWAPPING}"): "p->p_sflag &= ~PS_SWAPPING",
    ("giant_exit", "unlock(Giant)"): "mtx_unlock(&Giant) [swapper]",
}
# Paired swapper steps the kernel may not have: Giant (not taken with GIANT_PUSHED_DOWN; kept across a
# `goto retry`), and the sched_lock section of a look at a held process (2001 `continue`s before it).
SWAPPER_OPTIONAL = frozenset({
    "mtx_lock(&Giant) [swapper]", "mtx_unlock(&Giant) [swapper]", "mtx_lock_spin(&sched_lock)",
    "if ((p->p_sflag & (PS_INMEM|PS_SWAPPING)) != PS_INMEM", "mtx_unlock_spin(&sched_lock)"})
# Steps of an environment call (no seed lines) that other CPUs observe, besides SYNC_LOCKS, per call:
# (frame, model label) -> the kernel step (label prefix, suffix). When the model takes such a step for
# the n-th time in the call, the kernel's run of the call is advanced until it has taken the matching
# step n times (already done: nothing more), so a pair the two sides order differently cannot run the
# kernel ahead. exit1: the peer walk (each `q = q->p_peers` loads a pointer fork1 writes at 293-294
# with no lock), the leader's sleep until its peers are gone (FIX_HOLD_CHILD: until p_lock is 0),
# ppeers_lock, and the unlocked decrements both do in the same order (fd_refcnt load and store,
# vm_refcnt, v_usecount; the plimit drop comes first in the model and last in the kernel: not paired).
_WAKE = ("msleep(", "[wake]")
_FD = "fdfree: --fdp->fd_refcnt"
_PS = "p->p_procsig->ps_refcnt--"
_PGLIST_LOCK = ("sx_xlock(&proctree_lock) [pglist]", "")
_PGLIST_UNLOCK = ("sx_xunlock(&proctree_lock) [pglist]", "")
ATOMIC_SYNC: dict[str, dict[tuple[str, str], tuple[str, str]]] = {"exit1": {
    # the vfork child's P_PPWAIT cleared (FIX_LOCKED_ACCESSES then drops the proc lock for proctree_lock:
    # the kernel's call must have taken the proc lock with the model's, not after)
    ("exit1", "p.p_flag := p.p_flag &~ {P_PPWAIT}"): ("p->p_flag &= ~P_PPWAIT", ""),
    ("exit1", "if p == p.p_leader"): ("if (p == p->p_leader)", ""),
    ("exit1", "while p.p_peers != null"): ("while (p->p_peers)", ""),
    ("exit1", "lock(ppeers_lock)"): ("mtx_lock(&ppeers_lock)", ""),
    ("exit1", "l := p.p_leader"): ("l = p->p_leader", ""),
    ("exit1", "lock(l.p_mtx)"): ("PROC_LOCK(p->p_leader)", ""),
    ("exit1", "if l.p_peers != null"): ("if (p->p_leader->p_peers)", ""),
    ("exit1", "q := l"): ("q = p->p_leader", ""),
    ("exit1", "while q.p_peers != p"): ("while (q->p_peers != p)", ""),
    ("exit1", "q := q.p_peers"): ("q = q->p_peers", ""),
    ("exit1", "q.p_peers := p.p_peers"): ("q->p_peers = p->p_peers", ""),
    ("exit1", "wakeup(l)"): ("wakeup(p->p_leader)", ""),
    ("exit1", "unlock(l.p_mtx)"): ("PROC_UNLOCK(p->p_leader)", ""),
    ("exit1", "unlock(ppeers_lock)"): ("mtx_unlock(&ppeers_lock)", ""),
    ("exit1", "while p.p_lock > 0"): ("while (p->p_lock > 0)", ""),
    ("msleep_giant", "msleep(wchan, m.p_mtx) [sleep]"): ("msleep(", "[sleep]"),
    # the model re-takes Giant, then the interlock; the kernel's wake step takes both
    ("msleep_giant", "lock(m.p_mtx)"): _WAKE,
    ("fdfree", "n := f.fd_refcnt - 1"): (_FD, "[load]"),
    ("fdfree", "f.fd_refcnt := n"): (_FD, "[store]"),
    ("fdfree", "atomic { n := f.fd_refcnt - 1; f.fd_refcnt := n }"): (_FD, "fd_refcnt"),
    ("vmspace_free", "atomic { n := v.vm_refcnt - 1; v.vm_refcnt := n }"): ("if (--vm->vm_refcnt == 0)", ""),
    ("vrele", "atomic { v.v_usecount := v.v_usecount - 1 }"): ("if (p->p_textvp) vrele", ""),
}, "execve": {
    # the old vmspace's count (the kernel drops it only when shared, the model always: same count)
    ("vmspace_free", "atomic { n := v.vm_refcnt - 1; v.vm_refcnt := n }"): ("exec_new_vmspace", ""),
    # the old p_args' count: a load and a store fork1's 416 can come between. The model stores the new
    # p_args (under p_mtx) before the drop, the kernel (as kern_exec.c) after: not paired.
    ("pargs_drop", "n := a.ar_ref - 1"): ("--p->p_args->ar_ref", "[load]"),
    ("pargs_drop", "a.ar_ref := n"): ("--p->p_args->ar_ref", "[store]"),
    ("pargs_drop", "atomic { n := a.ar_ref - 1; a.ar_ref := n }"): ("--p->p_args->ar_ref", "ar_ref"),
    # an RFSIGSHARE procsig given up (the kernel does it before the args, the model after: by count)
    ("procsig_drop", "n := s.ps_refcnt - 1"): (_PS, "[load]"),
    ("procsig_drop", "s.ps_refcnt := n"): (_PS, "[store]"),
    ("procsig_drop", "atomic { n := s.ps_refcnt - 1; s.ps_refcnt := n }"): (_PS, "--"),
    ("execve", "p.p_procsig := ps"): ("p->p_procsig = newprocsig", ""),
    ("execve", "p.p_flag := p.p_flag | {P_EXEC}"): ("p->p_flag |= P_EXEC", ""),
    ("execve", "if P_PPWAIT in p.p_flag"): ("if (p->p_flag & P_PPWAIT)", ""),
    # the parent's wakeup (by suffix: FIX_LOCKED_ACCESSES makes it a step of its own, under a shared
    # proctree_lock taken with the proc lock dropped)
    ("execve", "wakeup(p.p_pptr)"): ("", "wakeup(p->p_pptr)"),
    ("execve", "slock(proctree_lock)"): ("sx_slock(&proctree_lock)", ""),
    ("execve", "sunlock(proctree_lock)"): ("sx_sunlock(&proctree_lock)", ""),
}, "setsid": {
    ("setsid", "lock(proctree_lock)"): _PGLIST_LOCK,
    ("setsid", "if exists g in pgrp: g.pg_id == p.p_pid"): ("if (p->p_pgid == p->p_pid || pgfind(", ""),
    # the kernel's enterpgrp is one step: it goes with the model's store of p_pgrp
    ("enterpgrp", "p.p_pgrp := g"): ("enterpgrp(", ""),
    ("setsid", "unlock(proctree_lock)"): _PGLIST_UNLOCK,
}, "setpgid": {
    ("setpgid", "t := pick proc where t == p || t in p.p_children"): ("targp = ", ""),
    ("setpgid", "lock(proctree_lock)"): _PGLIST_LOCK,
    # the model picks pgid before its SESS_LEADER test, the kernel tests first: the pgid test goes
    # with enterpgrp
    ("setpgid", "if r == OK && t.p_pgrp.pg_session.s_sid == t.p_pid"): ("if (SESS_LEADER(targp)", ""),
    ("enterpgrp", "p.p_pgrp := g"): ("enterpgrp(", ""),
    ("setpgid", "unlock(proctree_lock)"): _PGLIST_UNLOCK,
}, "sys_wait": {
    # nprocs-- comes last in the model's wait_reap and in kern_exit.c's wait1 (after zfree): owed, the
    # kernel runs its reap on to it when a fork1 is about to read nprocs (NPROCS_LINES), so the 262 test
    # sees the same nprocs on both sides
    ("wait_reap", "nprocs := nprocs - 1 [load]"): ("nprocs--", "[load]"),
    ("wait_reap", "nprocs := nprocs - 1 [store]"): ("nprocs--", "[store]"),
    ("wait_reap", "nprocs := nprocs - 1"): ("nprocs--", "nprocs--"),
}}
# ATOMIC_SYNC pairs that hold only with a kernel toggle on (the model's label is the same without it,
# where the kernel has no such step: pairing it would run the kernel's call to its end).
# FIX_LOCKED_ACCESSES: exit1's three proc-lock sections (p_limit, p_fd, p_textvp), one by one. None drops
# a base pair: the kernel's one textvp step (test and vrele) goes with the model's test, so the model's
# vrele must not ask for it a second time (that ran the kernel's exit1 to its end: seed 954).
ATOMIC_SYNC_FIX: dict[str, dict[str, dict[tuple[str, str], tuple[str, str] | None]]] = {"FIX_LOCKED_ACCESSES": {
    "exit1": {
        ("exit1", "p.p_limit := null"): ("plim = p->p_limit; p->p_limit = NULL", ""),
        ("exit1", "atomic { fdp := p.p_fd; p.p_fd := null }"): ("fdp = p->p_fd; p->p_fd = NULL", ""),
        ("exit1", "if p.p_textvp != null"): ("if (p->p_textvp) vrele", ""),
        ("vrele", "atomic { v.v_usecount := v.v_usecount - 1 }"): None,
    }}}
# Calls whose ATOMIC_SYNC steps are owed until a lockstep cpu is about to read what they write.
LAZY_SYNC = {"sys_wait"}
NPROCS_LINES = frozenset({262, 270, 282})
# The same, but taken only when the kernel's next step is that one (exit1 locks and unlocks p_mtx
# at more places than the kernel; these pair the leader test's section and FIX_HOLD_CHILD's).
ATOMIC_SYNC_IF_NEXT: dict[str, dict[tuple[str, str], str]] = {"exit1": {
    ("exit1", "lock(p.p_mtx)"): "PROC_LOCK(p)",
    ("exit1", "unlock(p.p_mtx)"): "PROC_UNLOCK(p)",
}, "execve": {
    ("execve", "lock(p.p_mtx)"): "PROC_LOCK(p)",
    ("execve", "unlock(p.p_mtx)"): "PROC_UNLOCK(p)",
}}
# Calls kept in step with the model only at their ATOMIC_SYNC steps (their locks are entries there):
# not at every SYNC_LOCKS step (setpgid's pfind holds proctree_lock shared in the model, not on the kernel).
STEP_PAIRED_CALLS = frozenset({"execve", "setsid", "setpgid"})
# Environment calls run on kernel cpu ENV_CPU + thread number, apart from the thread's lockstep cpu.
ENV_CPU = 1000
# Kernel steps run on after a model assert to see the kernel fail at the statement it guards.
ASSERT_RUN_ON = 60
# Stepping the kernel on its own (rule 4, end-of-trace checks) never needs more than this many steps.
MAX_KERNEL_ONLY_STEPS = 10_000

_CALLEE = re.compile(r"^(?:[\w.]+\s*:=\s*)?(\w+)\(")


class ReplayStatus(str, enum.Enum):
    REPLAYED = "replayed"            # every step agreed (and the property is violated on the kernel too)
    DIVERGED = "diverged"            # the kernel and the trace disagree
    NOT_APPLICABLE = "not_applicable"  # not a fork1 model, or a toggle/call the kernel does not have


class ReplayError(ForkcheckError):
    """The trace does not belong to the given model (exit 2)."""


@dataclass(frozen=True)
class Divergence:
    index: int                        # trace state index after which the two differ
    thread: str | None
    step: str                         # "cpu[0] kern_fork.c:270 `nprocs := nprocs + 1 [store]`"
    what: str                         # one line: what differs
    diffs: tuple[str, ...] = ()       # variable-level differences, "nprocs: trace 3, kernel 2"

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "thread": self.thread, "step": self.step, "what": self.what,
                "diffs": list(self.diffs)}


@dataclass(frozen=True)
class ReplayResult:
    ok: bool
    message: str
    divergence: Divergence | None = None
    status: ReplayStatus = ReplayStatus.REPLAYED
    steps: int = 0                    # trace steps processed
    kernel_steps: int = 0             # kernel steps taken
    compared: int = 0                 # states compared
    confirmed: bool | None = None     # the property is violated on the kernel (None: not checkable there)
    log: tuple[str, ...] = ()         # what each trace step did on the kernel

    @property
    def applicable(self) -> bool:
        return self.status is not ReplayStatus.NOT_APPLICABLE

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "status": self.status.value, "message": self.message,
                "divergence": None if self.divergence is None else self.divergence.to_json(),
                "steps": self.steps, "kernel_steps": self.kernel_steps, "compared": self.compared,
                "confirmed": self.confirmed}


class _Diverged(Exception):
    def __init__(self, what: str, diffs: tuple[str, ...] = ()):
        super().__init__(what)
        self.what = what
        self.diffs = diffs


class _NotApplicable(Exception):
    pass


# ------------------------------------------------------------------ helpers


def is_fork1_system(system: ir.System) -> bool:
    """A fork1 model: the proc pool, nprocs, a cpu family and steps citing kern_fork.c."""
    try:
        return ("proc" in system.pool and "nprocs" in system.global_var and "cpu" in system.families()
                and system.source_file == SEED_FILE)
    except AttributeError:      # not an ir.System (a test double of another stage)
        return False


def kernel_config_for(system: ir.System, state0: dict[str, Any]) -> KernelConfig:
    """The kernel configuration of a model: scaled constants and the fix toggles it maps."""
    c = system.constant
    missing = [f for f, v in c.items() if f.startswith("FIX_") or f == "GIANT_PUSHED_DOWN"
               if v is True and f not in SPEC_TO_KERNEL_FIX]
    if missing:
        raise _NotApplicable(f"the reference kernel has no counterpart of {', '.join(sorted(missing))} "
                             f"(kernel toggles: {', '.join(FIXES)})")
    fixes = {kf: True for sf, kfs in SPEC_TO_KERNEL_FIX.items() if c.get(sf) is True for kf in kfs}
    try:
        return KernelConfig(PID_MAX=int(c["PID_MAX"]), PID_FLOOR=int(c["PID_FLOOR"]),
                            PID_HIGH_FLOOR=int(c["PID_HIGH_FLOOR"]),
                            RANDOMPID_MIN=int(c["RANDOMPID_MIN"]) if "RANDOMPID_MIN" in c else None,
                            maxproc=int(state0.get("maxproc", c.get("MAXPROC", 2))),
                            maxprocperuid=int(c.get("MAXPROCPERUID", 1)),
                            randompid=int(state0.get("randompid", 0)), fixes=fixes)
    except (KeyError, ValueError) as e:
        raise _NotApplicable(f"the model's constants do not fit the kernel: {e}") from None


def _slot(ref: Any) -> tuple[str, int] | None:
    if not isinstance(ref, str) or "#" not in ref:
        return None
    pool, n = ref.rsplit("#", 1)
    return pool, int(n)


def build_kernel(system: ir.System, state0: dict[str, Any]) -> tuple[Kernel, dict[str, KObj]]:
    """A kernel whose process table is the model's initial state (not FreeBSD's boot: no proc0).

    Returns the kernel and the object map: model ref ("proc#1") -> kernel object."""
    cfg = kernel_config_for(system, state0)
    k = Kernel(cfg, boot=False)
    objs: dict[str, KObj] = {}

    def o(ref: Any) -> Any:
        return None if ref is None else objs[ref]

    for ref, f in state0.get("uidinfo", {}).items():
        objs[ref] = k.new(Uidinfo, ui_uid=f.get("ui_uid", 0), ui_proccnt=f.get("ui_proccnt", 0))
    for ref, f in state0.get("ucred", {}).items():
        objs[ref] = k.new(Ucred, cr_ref=f["cr_ref"], cr_uid=f.get("cr_ruid", 0), cr_ruid=f.get("cr_ruid", 0),
                          cr_ruidinfo=o(f.get("cr_ruidinfo")))
    for ref, f in state0.get("plimit", {}).items():
        objs[ref] = k.new(Plimit, p_refcnt=f["p_refcnt"], sharemod=bool(f.get("pl_sharemod", False)),
                          rlim_nproc=cfg.maxprocperuid)
    for ref, f in state0.get("procsig", {}).items():
        objs[ref] = k.new(Procsig, ps_refcnt=f["ps_refcnt"],
                          shared_sigacts=not f.get("ps_sigacts_uarea", True))
    for kind, cls, fld in (("pargs", Pargs, "ar_ref"), ("filedesc", Filedesc, "fd_refcnt"),
                           ("vmspace", Vmspace, "vm_refcnt"), ("vnode", Vnode, "v_usecount")):
        for ref, f in state0.get(kind, {}).items():
            objs[ref] = k.new(cls, **{fld: f[fld]})
    for ref, f in state0.get("session", {}).items():
        # s_ttyvp is a bool in the model; the kernel only tests it for NULL (493).
        objs[ref] = k.new(Session, s_sid=f["s_sid"], s_count=f.get("s_count", 1),
                          s_ttyvp=Vnode(path="/dev/tty") if f.get("s_ttyvp") else None)
    for ref, f in state0.get("pgrp", {}).items():
        g = k.new(Pgrp, pg_id=f["pg_id"], pg_session=o(f.get("pg_session")))
        objs[ref] = g
        k.pgrphash[g.pg_id] = g
    for ref, f in state0.get("proc", {}).items():
        p = k.zalloc_proc()
        objs[ref] = p
    for ref, f in state0.get("proc", {}).items():
        p = objs[ref]  # type: ignore[assignment]
        assert isinstance(p, Proc)
        p.p_pid, p.p_stat = f["p_pid"], PStat(f["p_stat"])
        p.p_flag = {PFlag(x) for x in f.get("p_flag", ()) if x in PFlag.__members__}
        p.p_sflag = {PSFlag(x) for x in f.get("p_sflag", ()) if x in PSFlag.__members__}
        p.p_lock = f.get("p_lock", 0)
        for name in ("p_pptr", "p_pgrp", "p_args", "p_ucred", "p_limit", "p_procsig", "p_fd", "p_textvp",
                     "p_vmspace", "p_peers", "p_leader"):
            setattr(p, name, o(f.get(name)))
        p.p_children = [objs[x] for x in f.get("p_children", ())]  # type: ignore[misc]
        p.p_estcpu, p.p_sigparent, p.p_xstat = 0, "SIGCHLD", 0
        p.p_mtx = new_p_mtx(p) if f.get("p_mtx_inited", True) else None
    for ref, f in state0.get("pgrp", {}).items():
        objs[ref].pg_members = [objs[x] for x in f.get("pg_members", ())]  # type: ignore[attr-defined]
    for s in k.live.get("session", {}).values():
        assert isinstance(s, Session)
        s.s_leader = next((p for p in k.procs if p.p_pid == s.s_sid), None)
    k.allproc = [objs[x] for x in state0.get("allproc", ())]  # type: ignore[misc]
    k.zombproc = [objs[x] for x in state0.get("zombproc", ())]  # type: ignore[misc]
    for p in k.allproc + k.zombproc:
        k.pidhash[p.p_pid % cfg.PIDHASH_SIZE].insert(0, p)
    k.fork_list = [ForkCallout(f"fn{state0['forklist'][x]['function']}") for x in state0.get("fork_list", ())]
    k.nprocs = int(state0.get("nprocs", len(k.procs)))
    k.lastpid = int(state0.get("lastpid", 0))
    k.pidchecked = int(state0.get("pidchecked", 0))
    k.randompid = int(state0.get("randompid", 0))
    k.maxproc = cfg.maxproc
    init = state0.get("initproc")
    if init is not None:
        k.initproc = objs[init]  # type: ignore[assignment]
    return k, objs


# ---------------------------------------------------------------- comparison


class _Bijection:
    """Model ref <-> kernel object, per kind, grown as pointers are followed."""

    def __init__(self, initial: dict[str, KObj]):
        self.s2k: dict[str, Any] = dict(initial)
        self.k2s: dict[int, str] = {id(v): r for r, v in initial.items()}

    def forget(self, alive_refs: set[str], k: Kernel) -> None:
        """Drop pairs whose model slot or kernel object was freed (a slot may be reused)."""
        def gone(v: Any) -> bool:
            if isinstance(v, Proc):
                return v.freed
            return k.live.get(v.kind, {}).get(v.oid) is not v
        for r in [r for r, v in self.s2k.items() if r not in alive_refs or gone(v)]:
            self.k2s.pop(id(self.s2k.pop(r)), None)

    def pair(self, sref: str, kobj: Any) -> str | None:
        """Record or check that sref is kobj; an error text when they are paired otherwise."""
        have = self.s2k.get(sref)
        if have is not None:
            return None if have is kobj else f"{sref} is {_kname(have)} on the kernel, not {_kname(kobj)}"
        other = self.k2s.get(id(kobj))
        if other is not None and other != sref:
            return f"the kernel's {_kname(kobj)} is {other} in the trace, not {sref}"
        self.s2k[sref] = kobj
        self.k2s[id(kobj)] = sref
        return None


def _kname(o: Any) -> str:
    if isinstance(o, Proc):
        return f"proc with pid {o.p_pid}" if isinstance(o.p_pid, int) else o.ref
    return getattr(o, "ref", repr(o))


_PROC_PTRS = ("p_pptr", "p_peers", "p_leader")
_PROC_OBJS = {"p_pgrp": "pgrp", "p_ucred": "ucred", "p_limit": "plimit", "p_procsig": "procsig",
              "p_args": "pargs", "p_fd": "filedesc", "p_textvp": "vnode", "p_vmspace": "vmspace"}
# model field -> (kernel attribute, converter of the kernel value to the model's)
_OBJ_FIELDS: dict[str, dict[str, tuple[str, Callable[[Any], Any]]]] = {
    "ucred": {"cr_ref": ("cr_ref", int), "cr_ruid": ("cr_ruid", int)},
    "uidinfo": {"ui_uid": ("ui_uid", int), "ui_proccnt": ("ui_proccnt", int)},
    "plimit": {"p_refcnt": ("p_refcnt", int), "pl_sharemod": ("sharemod", bool)},
    "procsig": {"ps_refcnt": ("ps_refcnt", int), "ps_sigacts_uarea": ("shared_sigacts", lambda v: not v)},
    "pargs": {"ar_ref": ("ar_ref", int)},
    "filedesc": {"fd_refcnt": ("fd_refcnt", int)},
    "vmspace": {"vm_refcnt": ("vm_refcnt", int)},
    "vnode": {"v_usecount": ("v_usecount", int)},
    "session": {"s_sid": ("s_sid", int), "s_ttyvp": ("s_ttyvp", lambda v: v is not None)},
    "pgrp": {"pg_id": ("pg_id", int)},
}
_OBJ_PTRS = {"ucred": {"cr_ruidinfo": "uidinfo"}, "pgrp": {"pg_session": "session"}}


class _Comparer:
    def __init__(self, system: ir.System, k: Kernel, bij: _Bijection):
        self.skip_fields: frozenset[tuple[str, str]] = frozenset()
        self.v: dict[str, Any] = {}
        self.exiting = False
        self.system = system
        self.k = k
        self.bij = bij
        self.thread_names = [t.name for t in system.threads]
        self.pflags = set(system.pool["proc"].get_field("p_flag").type.enum.members)  # type: ignore[union-attr]
        self.psflags = set(system.pool["proc"].get_field("p_sflag").type.enum.members)  # type: ignore[union-attr]

    def owner_name(self, cpu: int | None) -> str | None:
        if cpu is None:
            return None
        if 0 <= cpu - ENV_CPU < len(self.thread_names):
            return self.thread_names[cpu - ENV_CPU]     # an environment thread's own kernel cpu
        return self.thread_names[cpu] if 0 <= cpu < len(self.thread_names) else f"kernel cpu {cpu}"

    def lock_view(self, lk: Any) -> dict[str, Any]:
        if lk.kind is LockKind.SX:
            return {"xowner": self.owner_name(lk.owner),
                    "shared": sorted(self.owner_name(c) or "" for c in lk.shared)}
        return {"owner": self.owner_name(lk.owner), "depth": lk.depth}

    def compare(self, v: dict[str, Any], skip_locks: set[str],
                skip_fields: frozenset[tuple[str, str]] = frozenset()) -> list[str]:
        k = self.k
        # Known difference: the model drops p_args in exit1 and p_limit in wait; 2001 (and the
        # kernel) the other way round. While a process is exiting those counts are not compared.
        self.exiting = any("P_WEXIT" in f.get("p_flag", ()) for f in v.get("proc", {}).values())
        if self.exiting:
            skip_fields = skip_fields | {("plimit", "p_refcnt"), ("pargs", "ar_ref")}
        self.skip_fields = skip_fields
        self.v = v
        diffs: list[str] = []
        alive = {r for pool in self.system.pools for r in v.get(pool.name, {})}
        self.bij.forget(alive, k)
        for name in ("nprocs", "lastpid", "pidchecked", "randompid", "maxproc"):
            if name in v and v[name] != getattr(k, name):
                diffs.append(f"{name}: trace {v[name]}, kernel {getattr(k, name)}")
        for name in COMPARED_LOCKS:
            if name in v and name not in skip_locks:
                kv = self.lock_view(getattr(k, name))
                if _lock_differs(v[name], kv):
                    diffs.append(f"{name}: trace {_lock_text(v[name])}, kernel {_lock_text(kv)}")
        if "fork_list" in v:
            fl = [v.get("forklist", {}).get(r, {}).get("function") for r in v["fork_list"]]
            kfl = [int(e.name[2:]) if e.name.startswith("fn") and e.name[2:].isdigit() else e.name
                   for e in k.fork_list]
            if fl != kfl:
                diffs.append(f"fork_list functions: trace {fl}, kernel {kfl}")
        work: list[tuple[str, str, Any]] = []   # (kind, model ref, kernel object)
        for name in ("allproc", "zombproc"):
            if name in v:
                self._list(name, v[name], getattr(k, name), diffs, work)
        init = v.get("initproc")
        if init is not None and k.initproc is not None:
            self._ptr("initproc", "proc", init, k.initproc, diffs, work)
        seen: set[str] = set()
        while work:
            kind, sref, ko = work.pop()
            if sref in seen:
                continue
            seen.add(sref)
            fields = v.get(kind, {}).get(sref)
            if fields is None:
                continue
            if kind == "proc":
                self._proc(sref, fields, ko, diffs, work, skip_locks)
            else:
                self._obj(kind, sref, fields, ko, diffs, work)
        return diffs

    @staticmethod
    def _has_tty(f: dict[str, Any], v_all: dict[str, Any]) -> bool:
        g = v_all.get("pgrp", {}).get(f.get("p_pgrp") or "", {})
        return bool(v_all.get("session", {}).get(g.get("pg_session") or "", {}).get("s_ttyvp"))

    def _list(self, what: str, refs: list[Any], kobjs: list[Any], diffs: list[str],
              work: list[tuple[str, str, Any]]) -> None:
        if len(refs) != len(kobjs):
            diffs.append(f"{what}: trace {len(refs)} entries {refs}, kernel {len(kobjs)} "
                         f"{[_kname(x) for x in kobjs]}")
            return
        for i, (r, ko) in enumerate(zip(refs, kobjs)):
            self._ptr(f"{what}[{i}]", "proc", r, ko, diffs, work)

    def _ptr(self, what: str, kind: str, sref: Any, ko: Any, diffs: list[str],
             work: list[tuple[str, str, Any]]) -> None:
        if ko is UNINIT:
            return                      # zone garbage on the kernel: the model's initial value is an abstraction
        if (sref is None) != (ko is None):
            diffs.append(f"{what}: trace {sref}, kernel {'NULL' if ko is None else _kname(ko)}")
            return
        if sref is None:
            return
        if isinstance(ko, Proc) and ko.freed:
            # a dangling pointer (p_peers after a lost unlink): the model reuses the freed slot, the
            # kernel's zone hands out other memory, so what it points to is not compared
            return
        err = self.bij.pair(sref, ko)
        if err is not None:
            diffs.append(f"{what}: {err}")
            return
        work.append((kind, sref, ko))

    def _proc(self, sref: str, f: dict[str, Any], p: Proc, diffs: list[str],
              work: list[tuple[str, str, Any]], skip_locks: set[str]) -> None:
        name = f"{sref} (pid {f.get('p_pid')})"

        def same(field: str, sv: Any, kv: Any) -> None:
            if kv is UNINIT or field not in f:
                return
            if sv != kv:
                diffs.append(f"{name}.{field}: trace {sv}, kernel {kv}")

        same("p_pid", f.get("p_pid"), p.p_pid)
        kstat = p.p_stat if p.p_stat is UNINIT else p.p_stat.value
        if kstat == "SSLEEP" and f.get("p_stat") == "SRUN":
            kstat = "SRUN"          # the model leaves p_stat alone in msleep (see KNOWN DIFFERENCES)
        same("p_stat", f.get("p_stat"), kstat)
        if p.p_flag is not UNINIT:
            sflags = set(f.get("p_flag", []))
            kflags = {x.value for x in p.p_flag if x.value in self.pflags}
            if not self._has_tty(f, v_all=self.v):
                # setsid clears P_CONTROLT in the kernel (as 2001's enterpgrp), not in the model; without
                # a terminal (s_ttyvp) line 493 ignores the flag, so it is not compared.
                sflags.discard("P_CONTROLT")
                kflags.discard("P_CONTROLT")
            same("p_flag", sorted(sflags), sorted(kflags))
        if p.p_sflag is not UNINIT:
            same("p_sflag", sorted(f.get("p_sflag", [])),
                 sorted(x.value for x in p.p_sflag if x.value in self.psflags))
        same("p_lock", f.get("p_lock"), p.p_lock)
        for fld in _PROC_PTRS:
            if fld in f:
                self._ptr(f"{name}.{fld}", "proc", f[fld], getattr(p, fld), diffs, work)
        if "p_children" in f:
            self._list(f"{name}.p_children", f["p_children"], p.p_children, diffs, work)
        wexit = "P_WEXIT" in f.get("p_flag", ())
        for fld, kind in _PROC_OBJS.items():
            if fld in f and not (wexit and fld in ("p_limit", "p_args")):
                self._ptr(f"{name}.{fld}", kind, f[fld], getattr(p, fld), diffs, work)
        if "p_mtx" in f and p.p_mtx is not None and f"{sref}.p_mtx" not in skip_locks:
            kv = self.lock_view(p.p_mtx)
            if _lock_differs(f["p_mtx"], kv):
                diffs.append(f"{name}.p_mtx: trace {_lock_text(f['p_mtx'])}, kernel {_lock_text(kv)}")

    def _obj(self, kind: str, sref: str, f: dict[str, Any], ko: Any, diffs: list[str],
             work: list[tuple[str, str, Any]]) -> None:
        for fld, (attr, conv) in _OBJ_FIELDS.get(kind, {}).items():
            if fld in f and hasattr(ko, attr) and (kind, fld) not in self.skip_fields:
                kv = conv(getattr(ko, attr))
                if f[fld] != kv:
                    diffs.append(f"{sref}.{fld}: trace {f[fld]}, kernel {kv}")
        for fld, pkind in _OBJ_PTRS.get(kind, {}).items():
            if fld in f:
                self._ptr(f"{sref}.{fld}", pkind, f[fld], getattr(ko, fld, None), diffs, work)
        if kind == "pgrp" and "pg_members" in f:
            self._list(f"{sref}.pg_members", f["pg_members"], ko.pg_members, diffs, work)


def _lock_differs(sv: Any, kv: dict[str, Any]) -> bool:
    if not isinstance(sv, dict):
        return False
    if "xowner" in kv:
        return sv.get("xowner") != kv["xowner"] or sorted(sv.get("shared", [])) != kv["shared"]
    return sv.get("owner") != kv["owner"]


def _lock_text(v: Any) -> str:
    if not isinstance(v, dict):
        return str(v)
    if "xowner" in v:
        if v.get("xowner"):
            return f"held exclusive by {v['xowner']}"
        return f"held shared by {', '.join(v['shared'])}" if v.get("shared") else "free"
    return f"held by {v['owner']}" if v.get("owner") else "free"


# ------------------------------------------------------------------- replay


@dataclass
class _Lane:
    """One model thread and the kernel cpu that mirrors it (cpu id = thread number)."""
    tid: int
    name: str
    code: str
    call: Call | None = None              # lockstep call waiting to be spawned on the kernel
    call_frame: str = ""
    spawned: bool = False
    last_line: int | None = None          # line of the kernel's last step on this cpu
    last_covers: tuple[int, ...] = ()
    owes_wake: bool = False               # the model woke (msleep) but the kernel's wake step is still blocked
    kresult: tuple[str, Any] | None = None  # (model call, the kernel's SysResult) to compare at the return
    ahead: bool = False                   # the kernel took msleep's sleep step before the model's
    random: int | None = None             # the model's arc4random() pick at 318, not yet used by the kernel
    open_call: int | None = None          # frame depth of a call made at a seed line whose body cites none
    atomic: Call | None = None            # an environment call in flight (model or kernel side)
    atomic_frame: str = ""
    atomic_args: dict[str, Any] = field(default_factory=dict)
    atomic_effect: bool = False           # the model's call changed something the kernel must do too
    atomic_model_done: bool = False       # the model's call has returned
    # "no" | "synced" (run in step with the model's sync points) | "running" (the model's call has
    # returned: run on, retried after each step while blocked on a lock) | "done"
    atomic_kernel: str = "no"
    proc: Proc | None = None
    # ATOMIC_SYNC steps the model / the kernel has taken in the environment call in flight
    sync_model: Counter[tuple[str, str]] = field(default_factory=Counter)
    sync_kernel: Counter[tuple[str, str]] = field(default_factory=Counter)
    swap_lock_owed: bool = False          # the swapper's PROC_LOCK of an uninitialised p_mtx: at the assert


def _matches(label: str, want: tuple[str, str]) -> bool:
    return label.startswith(want[0]) and label.endswith(want[1])


class _Replayer:
    def __init__(self, trace: Trace, system: ir.System):
        self.trace = trace
        self.system = system
        self.sem = Semantics(system)
        self.k, objs = build_kernel(system, trace.states[0])
        self.bij = _Bijection(objs)
        self.cmp = _Comparer(system, self.k, self.bij)
        self.klines = kernel_seed_lines()
        self.spec_lines = frozenset(s.ref.line for s in system.steps
                                    if s.ref is not None and s.ref.file == system.source_file)
        self.tids = {t.name: i for i, t in enumerate(system.threads)}
        self.lanes = [_Lane(i, t.name, t.code) for i, t in enumerate(system.threads)]
        self.log: list[str] = []
        self.kernel_steps = 0
        self.compared = 0
        self.unsynced_locks: dict[str, int] = {}
        self.index = 0
        self.state: State = self.sem.initial_state()
        # wakeup channels an environment call's kernel run has woken (see _lockstep's wake)
        self.env_wakeups: set[int] = set()
        self._stepping: int | None = None
        k_step, k_wakeup = self.k.step, self.k.wakeup

        def step(cpu: int) -> Any:
            self._stepping = cpu
            try:
                return k_step(cpu)
            finally:
                self._stepping = None

        def wakeup(chan: Any) -> int:
            if self._stepping is not None and self._stepping >= ENV_CPU:
                self.env_wakeups.add(id(chan))
            return k_wakeup(chan)

        self.k.step, self.k.wakeup = step, wakeup  # type: ignore[method-assign]

    # -------------------------------------------------------------- values

    def local(self, state: State, tid: int, frame: str, display: str) -> Any:
        code = self.sem.thread_code[tid]
        locs = state[2][tid][1]
        for i, v in enumerate(code.locals):
            if v.frame == frame and v.display == display and locs[i] not in (0, None):
                return locs[i]
        for i, v in enumerate(code.locals):
            if v.frame == frame and v.display == display:
                return locs[i]
        raise ReplayError(f"the model has no local `{display}` in `{frame}` of {self.system.threads[tid].name}")

    def kproc(self, slot: int) -> Proc:
        ko = self.bij.s2k.get(f"proc#{slot}")
        if not isinstance(ko, Proc):
            # a proc the comparison has not reached yet: pair it through allproc/zombproc now
            self.cmp.compare(self.sem.valuation(self.state), set(self._skip_locks()))
            ko = self.bij.s2k.get(f"proc#{slot}")
        if not isinstance(ko, Proc):
            raise _Diverged(f"proc#{slot} has no counterpart on the kernel")
        return ko

    # --------------------------------------------------------------- kernel

    def _settle_lazy(self) -> None:
        """Owed LAZY_SYNC steps (wait's nprocs--) are taken before a lockstep cpu reads nprocs."""
        for other in self.lanes:
            if other.atomic_frame in LAZY_SYNC and other.atomic is not None and \
                    other.atomic_kernel in ("no", "synced"):
                for want, n in list(other.sync_model.items()):
                    if other.sync_kernel[want] < n:
                        self._advance_env_to(other, want)

    def kstep(self, lane: _Lane, why: str) -> None:
        k = self.k
        c = k.cpus.get(lane.tid)
        at = None if c is None else c.pending
        if at is not None and at.line in NPROCS_LINES and at.file == SEED_FILE and lane.tid < ENV_CPU:
            self._settle_lazy()
        if at is not None and at.line == 318 and at.file == SEED_FILE:
            k.random_values[:] = [] if lane.random is None else [lane.random]
            lane.random = None
        info = k.step(lane.tid)
        if info.status is StepStatus.BLOCKED:
            raise _Diverged(f"the kernel cannot take `{info.label}` (kern_fork.c:{info.seed_line}) on "
                            f"{lane.name}: {info.blocked_on}")
        if info.status is StepStatus.IDLE:
            raise _Diverged(f"the kernel's call on {lane.name} has already returned")
        self.kernel_steps += 1
        where = f"{info.file}:{info.seed_line}" if info.seed_line is not None else info.file
        self.log.append(f"    kernel {lane.name}: {where} `{info.label}` ({why})")
        if info.status is StepStatus.PANIC:
            raise _KernelPanicked(info.panic)
        if info.seed_line is not None and info.file == SEED_FILE:
            lane.last_line = info.seed_line
            lane.last_covers = at.covers if at is not None else ()
        if info.label.endswith("[wake]") and c is not None:
            self._sflag_from_model(c.proc)

    def spawn(self, lane: _Lane, call: Call, proc: Proc | None, **args: Any) -> None:
        k = self.k
        c = k.cpus.get(lane.tid)
        if c is not None and not c.done:
            raise _Diverged(f"{lane.name} starts `{call.value}` in the trace, but the kernel is still in "
                            f"`{c.name}` at `{c.pending.label if c.pending else '?'}`")
        k.spawn(lane.tid, start(k, lane.tid, call, proc, **args), proc, name=call.value)
        lane.spawned, lane.last_line, lane.last_covers, lane.owes_wake = True, None, (), False
        self.log.append(f"    kernel {lane.name}: start {call.value}"
                        f"{'' if proc is None else f' for pid {proc.p_pid}'}"
                        f"{'' if not args else ' ' + json.dumps(args, default=str)}")

    def pending(self, lane: _Lane) -> Any:
        c: Cpu | None = self.k.cpus.get(lane.tid)
        return None if c is None or c.done else c.pending

    # ---------------------------------------------------------------- steps

    def run(self) -> ReplayResult:
        trace = self.trace
        try:
            self._check_initial()
        except _Diverged as d:
            return self._diverged(0, None, "the initial state", d)
        for i in range(1, len(trace.states)):
            self.index = i
            st = trace.steps[i]
            if st is None:
                raise ReplayError(f"state {i} of the trace says no step led to it")
            tid = self.tids.get(st.thread)
            if tid is None:
                raise ReplayError(f"state {i}: the model has no thread {st.thread!r}")
            if not 0 <= st.step_id < len(self.system.steps) or \
                    self.system.steps[st.step_id].code != self.system.threads[tid].code:
                raise ReplayError(f"state {i}: step {st.step_id} is not a step of {st.thread} in this model")
            step = self.system.steps[st.step_id]
            if step.src != self.state[2][tid][0] or step.label != st.label:
                raise ReplayError(f"state {i}: {st.thread} cannot take step {st.step_id} `{st.label}` here in "
                                  f"this model (its step {st.step_id} is `{step.label}`); the trace is not a "
                                  f"run of this model (another spec or other constants?)")
            t = self.sem.run_step(self.state, tid, step)
            if t is None:
                raise ReplayError(f"state {i}: `{step.label}` of {st.thread} is not enabled in the model here; "
                                  f"the trace is not a run of this model (another spec or other constants?)")
            before, self.state = self.state, t.state
            self._forget_freed(before, t.state)
            desc = f"{st.thread} {st.ref or '-'} `{st.label}`"
            self.log.append(f"[{i}] {desc}")
            lane = self.lanes[tid]
            try:
                self._drive(lane, st.ref, step, before, t.state, last=i == len(trace.states) - 1)
                self._pump_atomic()
                if self._in_sync(i):
                    diffs = self.cmp.compare(trace.states[i], self._skip_locks(), self._transient())
                    self.compared += 1
                    if diffs:
                        raise _Diverged(f"after this step the kernel's state differs ({len(diffs)} "
                                        f"variable{'s' if len(diffs) > 1 else ''})", tuple(diffs))
            except _Diverged as d:
                return self._diverged(i, st.thread, desc, d)
            except _KernelPanicked as kp:
                if i != len(trace.states) - 1:
                    return self._diverged(i, st.thread, desc, _Diverged(
                        f"the kernel panicked here ({kp.describe()}) but the trace goes on"))
                break
            except _NotApplicable as na:
                return self._na(str(na))
        return self._finish()

    def _forget_freed(self, before: State, after: State) -> None:
        """A model slot freed by this step may be reused by a later one: unpair it now."""
        for pi, pool in enumerate(self.system.pools):
            b, a = before[1][pi], after[1][pi]
            if b is a:
                continue
            for slot in range(len(b)):
                if b[slot] is not None and a[slot] is None:
                    ref = f"{pool.name}#{slot + 1}"
                    ko = self.bij.s2k.pop(ref, None)
                    if ko is not None:
                        self.bij.k2s.pop(id(ko), None)

    def _check_initial(self) -> None:
        v0 = self.sem.valuation(self.state)
        t0 = self.trace.states[0]
        common = [key for key in t0 if key in v0 and not key.startswith("#")]
        bad = [key for key in common if t0[key] != v0[key]]
        if bad:
            raise ReplayError(f"the trace's initial state is not this model's ({', '.join(sorted(bad)[:5])} "
                              f"differ): another spec or other constants?")
        diffs = self.cmp.compare(t0, set())
        self.compared += 1
        if diffs:
            raise _Diverged("the kernel built from the model's init differs from it", tuple(diffs))

    def _drive(self, lane: _Lane, ref: str | None, step: ir.Step, before: State, after: State,
               last: bool) -> None:
        th = self.system.threads[lane.tid]
        if th.name == "swapper":
            self._swapper(lane, step, after)
            return
        top = len(step.frames) <= 1
        if top and lane.kresult is not None and lane.call is None:
            self._check_result(lane, before)
        # An environment call finished in the model: run (the rest of) it on the kernel.
        if lane.atomic is not None and not lane.atomic_model_done and top and not (
                step.kind is ir.StepKind.CALL and self._callee(step) == lane.atomic_frame):
            lane.atomic_model_done = True
            if lane.atomic_kernel == "no":
                self._start_atomic(lane)
            elif lane.atomic_kernel in ("running", "synced"):
                lane.atomic_kernel = "running"
                self._advance_atomic(lane)
        if th.family == "cpu" or th.name == "atfork_caller":
            if step.kind is ir.StepKind.CALL and top:
                self._start_call(lane, step, after)
        self._note_atomic(lane, step, after)
        self._sync_atomic(lane, step)
        self._mirror(lane, step, before, after)
        self._track_locks(step, ref)
        line = self._seed_line(ref)
        # `ok := chgproccnt(...) @276`, `faultin(p1)` after 555: the model does the line's work in the
        # callee's unnumbered steps; no comparison until the callee returns or cites a line itself.
        if step.kind is ir.StepKind.CALL:
            lane.open_call = len(step.frames) + 1
        elif lane.open_call is not None and (line is not None or len(step.frames) < lane.open_call):
            lane.open_call = None
        if th.name == "randompid_sysctl" and line == 181:
            self.spawn(lane, Call.SYSCTL_RANDOMPID, None, value=self._assigned(step, lane.tid, after))
        if lane.call is not None and not lane.spawned and (line is not None or _giant_step(step) is not None):
            self._spawn_call(lane, after)
        if line == 318 and " := pick " in step.label:
            r = self._assigned(step, lane.tid, after)
            if r is not None:
                lane.random = int(r)      # arc4random()'s value, fed to the kernel's own 318 step
        if not lane.spawned:
            return
        paired = PAIRED_UNCITED.get((step.frames[-1] if step.frames else "", step.label))
        if line is None and paired is not None:
            self._paired_uncited(lane, paired)
            self._retire(lane)
            return
        if line is None:
            direction = _giant_step(step)
            if direction is not None:
                at = self.pending(lane)
                if at is not None and _kernel_giant(at) == direction:
                    self.kstep(lane, "the model's Giant at syscall entry/exit or around a sleep")
                    self._retire(lane)
            return
        self._lockstep(lane, line, step)
        self._retire(lane)

    def _lockstep(self, lane: _Lane, line: int, step: ir.Step) -> None:
        if line not in self.klines:
            self.log.append(f"    (kern_fork.c:{line} has no kernel step: the model's own)")
            return
        for _ in range(MAX_KERNEL_ONLY_STEPS):
            at = self.pending(lane)
            if at is None:
                raise _Diverged(f"the trace steps kern_fork.c:{line} on {lane.name}, but the kernel's call "
                                f"there has returned")
            half = _msleep_half(at.label)
            if lane.owes_wake and half == "wake" and at.line == line and self._line_goes_on(lane, line):
                # not yet the model's last step of this msleep (unlock interlock, lock Giant):
                # the kernel's wake re-takes Giant, which the model has not yet
                self.log.append("    (wake still owed: the model's msleep goes on at this line)")
                return
            if lane.owes_wake and half == "wake" and self.k.blocked_on(lane.tid) is None:
                self.kstep(lane, "wake owed since the model's wake")
                lane.owes_wake = False
                continue
            if at.line == line and at.file == SEED_FILE:
                if half == "sleep" and step.kind is not ir.StepKind.SLEEP:
                    if _giant_step(step) == "unlock":
                        # the model drops Giant just before its sleep step; the kernel's sleep step
                        # drops Giant and the interlock together: take it now so Giant is free on both
                        self.kstep(lane, "msleep drops Giant with the model's unlock(Giant)")
                        lane.ahead = True          # until the model's own sleep step
                        return
                    self.log.append("    (absorbed: the model's part of msleep)")
                    return
                if half == "wake" and step.kind is ir.StepKind.SLEEP:
                    lane.ahead = False
                if half == "wake" and step.kind is not ir.StepKind.WAKE and not lane.owes_wake:
                    self.log.append("    (absorbed: the model's part of msleep)")
                    return
                if half == "wake" and self.k.cpus[lane.tid].wchan is not None:
                    self._wake_early(lane.tid)
                wchan = self.k.cpus[lane.tid].wchan
                if half == "wake" and wchan is not None and id(wchan) in self.env_wakeups:
                    # an environment call (run coarser than the model's) issued this wakeup on the
                    # kernel before the sleep (exit1 holds proctree_lock up to its wakeup(p->p_pptr),
                    # the model drops it first): the model's later wakeup on the same channel is replayed
                    self.env_wakeups.discard(id(wchan))
                    self.k.wakeup(wchan)
                    self.log.append("    (the kernel's environment call woke this channel before the sleep: "
                                    "the model's wakeup is replayed on it)")
                if half == "wake" and self._line_goes_on(lane, line):
                    # The model re-takes the interlock, drops it, takes Giant, takes the interlock
                    # again (PICKUP_GIANT first): the kernel's one wake step goes with the last of those.
                    lane.owes_wake = True
                    self.log.append("    (wake owed: the kernel re-takes Giant and the interlock together, "
                                    "at the model's last step of this msleep)")
                    return
                lane.owes_wake = False
                if at.label.endswith("[load]") and "[load]" not in step.label and \
                        self._next_label_at(lane.name, line).endswith("[load]"):
                    # the model first reads the pointer (470 `fd := p1.p_fd`), then loads and stores the
                    # count: the kernel's load and store go with the model's
                    self.log.append("    (deferred: the model's racy load at this line comes next)")
                    return
                if step.is_local and half is None and self._line_goes_on(lane, line):
                    # the model splits the line and touches shared state only in a later step of it
                    # (318: pick r, then read randompid): the kernel's one step goes with that one
                    self.log.append("    (deferred: the model's shared access at this line comes next)")
                    return
                if _kernel_giant(at) is not None:
                    if step.is_local:
                        # maysleep() itself: the kernel drops and re-takes Giant with the model's own
                        # unlock(Giant) / lock(Giant) steps that follow (matched without a seed line)
                        self.log.append("    (Giant is dropped and re-taken with the model's Giant steps)")
                        return
                    self.kstep(lane, "Giant around a may-sleep point")
                    continue
                self.kstep(lane, "same line")
                return
            if lane.last_line == line or line in lane.last_covers:
                self.log.append(f"    (absorbed: the kernel did kern_fork.c:{line} in one step)")
                return
            if at.line is None or at.file != SEED_FILE or at.line not in self.spec_lines:
                self.kstep(lane, "kernel-only step")
                continue
            if at.line == lane.last_line:
                # the model did line `last_line` in fewer steps (fdfree's load/store inside its call)
                self.kstep(lane, "the kernel finishes the line the model has left")
                continue
            raise _Diverged(f"the trace takes kern_fork.c:{line} `{step.label}`, the kernel's next step on "
                            f"{lane.name} is kern_fork.c:{at.line} `{at.label}`")
        raise _Diverged(f"the kernel ran {MAX_KERNEL_ONLY_STEPS} steps without reaching kern_fork.c:{line}")

    def _paired_uncited(self, lane: _Lane, label: str) -> None:
        """A fix's step without a seed line that the kernel has too (PAIRED_UNCITED): the kernel
        takes its Giant and other uncited steps before it, then that one."""
        for _ in range(MAX_KERNEL_ONLY_STEPS):
            at = self.pending(lane)
            if at is None:
                raise _Diverged(f"the trace takes `{label}` on {lane.name}, but the kernel's call has returned")
            if at.label == label:
                self.kstep(lane, "the fix's step, paired by label")
                return
            if at.line is not None:
                # nothing of the kind pending (taken with its line already): the comparison judges
                self.log.append(f"    (no kernel step `{label}` pending here)")
                return
            self.kstep(lane, "kernel-only step")
        raise _Diverged(f"the kernel ran {MAX_KERNEL_ONLY_STEPS} steps without reaching `{label}`")

    def _retire(self, lane: _Lane) -> None:
        """A call that returned on the kernel frees its lane for the next call."""
        c = self.k.cpus.get(lane.tid)
        if c is not None and c.done:
            if lane.call is not None:
                lane.kresult = (lane.call_frame, c.result)
            lane.spawned = False
            lane.call = None

    def _check_result(self, lane: _Lane, before: State) -> None:
        """The call's return value (errno) in the model equals the kernel's."""
        if lane.kresult is None:
            return
        frame, res = lane.kresult
        lane.kresult = None
        display = "n" if frame == "rm_at_fork" else "e"
        code = self.sem.thread_code[lane.tid]
        var = next((v for v in code.locals if v.frame == code.name and v.display == display), None)
        if var is None or res is None:
            return
        raw = before[2][lane.tid][1][self.sem.lindex[code.name][var.name]]
        model = var.type.members[raw] if isinstance(var.type, ir.EnumT) else raw
        if frame == "rm_at_fork":
            kernel: Any = res.ret
        else:
            kernel = "OK" if res.errno is None else res.errno.value
        if model != kernel:
            raise _Diverged(f"{frame} returned {model} in the model and {kernel} on the kernel")

    # ------------------------------------------------------------ the calls

    @staticmethod
    def _callee(step: ir.Step) -> str:
        m = _CALLEE.match(step.label)
        return m.group(1) if m else ""

    def _start_call(self, lane: _Lane, step: ir.Step, after: State) -> None:
        name = self._callee(step)
        if name in LOCKSTEP_CALLS:
            lane.call, lane.call_frame, lane.spawned = LOCKSTEP_CALLS[name], name, False
        elif name in ATOMIC_CALLS:
            lane.atomic, lane.atomic_frame, lane.atomic_args, lane.atomic_effect = \
                ATOMIC_CALLS[name], name, {}, name in ("exit1", "execve", "setsid")
            lane.sync_model.clear()
            lane.sync_kernel.clear()
            p = self.local(after, lane.tid, "cpu", "p")
            lane.proc = self.kproc(int(p))
            if name == "setpgid":
                # the kernel's setpgid takes (pid, pgid) at its start; the model picks them on the way
                # (pfind, then the pgid): read them where the model calls enterpgrp. A setpgid that
                # fails in the model is not run (ESRCH for an exec'd child here, EACCES on the kernel).
                fut = self._lookahead(lane.tid, "enterpgrp")
                if fut is not None:
                    t = self.kproc(int(self.local(fut, lane.tid, "setpgid", "t")))
                    pgid = int(self.local(fut, lane.tid, "setpgid", "pgid"))
                    lane.atomic_args = {"target": 0 if t is lane.proc else t.p_pid, "pgid": pgid}
                    lane.atomic_effect = True
        elif name == "kthread_create":
            raise _NotApplicable("the trace runs kthread_create, which the reference kernel has no "
                                 "counterpart of (it has in-kernel fork1 without the model's P_KTHREAD start)")

    def _spawn_call(self, lane: _Lane, after: State) -> None:
        call = lane.call
        assert call is not None
        if call in (Call.AT_FORK, Call.RM_AT_FORK):
            f = self.local(after, lane.tid, lane.code, "f")
            self.spawn(lane, call, None, fn=f"fn{f}")
            return
        p = self.kproc(int(self.local(after, lane.tid, "cpu", "p")))
        if call is Call.RFORK:
            mask = self.local(after, lane.tid, "sys_rfork", "rflags")
            members = self.system.code[lane.code].locals
            enum_t = next(v.type for v in members if v.frame == "sys_rfork" and v.display == "rflags")
            names = [m for i, m in enumerate(enum_t.enum.members) if mask >> i & 1]  # type: ignore[union-attr]
            flags = 0
            for n in names:
                flags |= int(RF[n])
            self.spawn(lane, call, p, flags=flags)
        else:
            self.spawn(lane, call, p)

    def _note_atomic(self, lane: _Lane, step: ir.Step, after: State) -> None:
        """Remember what an environment call did in the model (the kernel redoes it at the return)."""
        if lane.atomic is None or step.kind is not ir.StepKind.CALL:
            return
        callee = self._callee(step)
        if lane.atomic_kernel != "no":
            return
        if lane.atomic is Call.WAIT and callee == "wait_reap":
            q = self.local(after, lane.tid, "sys_wait", "q")
            lane.atomic_args = {"child": self.kproc(int(q)).p_pid}
            lane.atomic_effect = True

    def _lookahead(self, tid: int, callee: str) -> State | None:
        """The model's state just after thread `tid` calls `callee`, found by running the rest of the
        trace on the IR from here; None if the thread's current call returns first."""
        state = self.state
        for j in range(self.index + 1, len(self.trace.states)):
            st = self.trace.steps[j]
            t = self.tids.get(st.thread) if st is not None else None
            if t is None or not 0 <= st.step_id < len(self.system.steps):
                return None
            step = self.system.steps[st.step_id]
            tr = self.sem.run_step(state, t, step)
            if tr is None:
                return None                 # not a run of the model: run() says so when it gets there
            state = tr.state
            if t == tid:
                if step.kind is ir.StepKind.CALL and self._callee(step) == callee:
                    return state
                if len(step.frames) <= 1:
                    return None
        return None

    def _sync_atomic(self, lane: _Lane, step: ir.Step) -> None:
        """Keep an environment call's kernel run in step with the model's at the locks other CPUs
        observe it through (allproc_lock: the pid scan; proctree_lock: p_children), so a concurrent
        fork1 sees the same lists on both sides, and at the steps of ATOMIC_SYNC."""
        if lane.atomic is None or not lane.atomic_effect or lane.atomic_kernel == "done" or \
                lane.atomic_model_done:
            return
        # either way of a test is the same read; a pick's label names the value picked
        label = re.sub(r" \[(else|exit|\w+#\d+|\d+)\]$", "", step.label)
        key = (step.frames[-1] if step.frames else "", label)
        want = self._sync_pairs(lane.atomic_frame).get(key)
        if want is not None:
            lane.sync_model[want] += 1
            if lane.atomic_frame not in LAZY_SYNC:
                self._advance_env_to(lane, want)
            return
        nxt = ATOMIC_SYNC_IF_NEXT.get(lane.atomic_frame, {}).get(key)
        c = self.k.cpus.get(ENV_CPU + lane.tid)
        if nxt is not None and lane.atomic_kernel == "synced" and c is not None and not c.done and \
                c.pending is not None and c.pending.label == nxt:
            lane.sync_model[(nxt, "")] = lane.sync_kernel[(nxt, "")] + 1
            self._advance_env_to(lane, (nxt, ""))
            return
        if lane.atomic_frame in STEP_PAIRED_CALLS:
            return
        for e in step.effects:
            if not (isinstance(e, (ir.Acquire, ir.Release)) and isinstance(e.lock, ir.GlobalVarRef)
                    and e.lock.name in SYNC_LOCKS):
                continue
            lk = getattr(self.k, e.lock.name)
            cpu = ENV_CPU + lane.tid
            # started at the model's release (setpgid's effect is known only at enterpgrp, inside the
            # section): the kernel takes the lock, does the section, and drops it
            to_take = isinstance(e, ir.Release) and lane.atomic_kernel == "no"
            if lane.atomic_kernel == "no":
                self._spawn_atomic(lane, "synced")
            for _ in range(MAX_KERNEL_ONLY_STEPS):
                c = self.k.cpus[cpu]
                if c.done or self.k.blocked_on(cpu) is not None:
                    break
                if isinstance(e, ir.Release) and not self.k.owned(cpu, lk) and not to_take:
                    break
                takes = isinstance(c.pending.need, NeedLock) and c.pending.need.lock is lk
                took_lock = isinstance(e, ir.Acquire) and takes
                to_take = to_take and not takes
                info = self._env_kstep(lane, cpu, ", with the model's lock step")
                if info.status is StepStatus.DONE:
                    lane.atomic_kernel = "done"
                    break
                if took_lock:
                    break

    def _sync_pairs(self, frame: str) -> dict[tuple[str, str], tuple[str, str]]:
        """ATOMIC_SYNC's pairs for a call, with those of the kernel toggles that are on."""
        pairs = ATOMIC_SYNC.get(frame, {})
        extra = [t[frame] for fix, t in ATOMIC_SYNC_FIX.items() if self.k.fix(fix) and frame in t]
        if not extra:
            return pairs
        merged = {**pairs, **{k: v for e in extra for k, v in e.items()}}
        return {k: v for k, v in merged.items() if v is not None}

    def _env_kstep(self, lane: _Lane, cpu: int, note: str) -> Any:
        """One step of an environment call's kernel cpu, logged; a panic ends the replay."""
        info = self.k.step(cpu)
        self.kernel_steps += 1
        self.log.append(f"    kernel {lane.name}: {info.file} `{info.label}` (env cpu {cpu}{note})")
        if info.status is StepStatus.PANIC:
            raise _KernelPanicked(info.panic)
        return info

    def _advance_env_to(self, lane: _Lane, want: tuple[str, str]) -> None:
        """Step the environment call's kernel cpu up to and including its step labelled
        `want` (prefix, suffix); a kernel cpu that blocks first stays where it is."""
        cpu = ENV_CPU + lane.tid
        if lane.atomic_kernel == "no":
            self._spawn_atomic(lane, "synced")
        wants = set(self._sync_pairs(lane.atomic_frame).values()) | \
            {(x, "") for x in ATOMIC_SYNC_IF_NEXT.get(lane.atomic_frame, {}).values()}
        for _ in range(MAX_KERNEL_ONLY_STEPS):
            if lane.sync_kernel[want] >= lane.sync_model[want]:
                return                    # the kernel took its counterpart already (or just now)
            c = self.k.cpus[cpu]
            if c.done or c.pending is None or self.k.blocked_on(cpu) is not None:
                return
            label = c.pending.label
            info = self._env_kstep(lane, cpu, ", with the model" if _matches(label, want) else "")
            for w in wants:
                if _matches(label, w):
                    lane.sync_kernel[w] += 1
            if info.status is StepStatus.DONE:
                lane.atomic_kernel = "done"
                return

    def _spawn_atomic(self, lane: _Lane, state: str = "running") -> None:
        call, args = lane.atomic, dict(lane.atomic_args)
        assert call is not None
        if call is Call.EXEC and lane.proc is not None and isinstance(lane.proc.p_textvp, Vnode):
            args = {"path": lane.proc.p_textvp.path}    # the model execs the same image (one vnode)
        cpu = ENV_CPU + lane.tid
        self.k.spawn(cpu, start(self.k, cpu, call, lane.proc, **args), lane.proc, name=call.value)
        self.log.append(f"    kernel {lane.name}: {call.value} starts on kernel cpu {cpu}")
        lane.atomic_kernel = state

    def _start_atomic(self, lane: _Lane) -> None:
        """Run an environment call on the kernel (its own kernel cpu: ENV_CPU + thread number)."""
        call, args = lane.atomic, dict(lane.atomic_args)
        assert call is not None
        if not lane.atomic_effect:
            self.log.append(f"    (the model's {call.value} changed nothing the kernel has: not run)")
            lane.atomic_kernel = "done"
            self._settle_atomic(lane)
            return
        self._spawn_atomic(lane)
        self._advance_atomic(lane)

    def _advance_atomic(self, lane: _Lane) -> None:
        cpu = ENV_CPU + lane.tid
        info = self.k.run(cpu)
        self.kernel_steps += 1
        if info.status is StepStatus.PANIC:
            raise _KernelPanicked(info.panic)
        if info.status is StepStatus.BLOCKED:
            if self.k.cpus[cpu].wchan is not None:
                raise _Diverged(f"the kernel's {lane.atomic.value if lane.atomic else 'call'} sleeps "
                                f"({info.blocked_on}) where the model's does not")
            return                        # a lock another cpu holds on the kernel: retried after each step
        self.log.append(f"    kernel {lane.name}: {lane.atomic.value if lane.atomic else ''} returned "
                        f"{info.result}")
        lane.atomic_kernel = "done"
        self._settle_atomic(lane)

    def _settle_atomic(self, lane: _Lane) -> None:
        if lane.atomic_model_done and lane.atomic_kernel == "done":
            lane.atomic, lane.atomic_args, lane.atomic_effect = None, {}, False
            lane.atomic_model_done, lane.atomic_kernel = False, "no"

    def _pump_atomic(self) -> None:
        for lane in self.lanes:
            if lane.atomic is not None and lane.atomic_kernel == "running":
                self._advance_atomic(lane)
            elif lane.atomic is not None:
                self._settle_atomic(lane)

    def _wake_early(self, sleeper: int) -> None:
        """The model woke a sleeper from inside an environment call the kernel has not run (so far)."""
        for lane in self.lanes:
            if lane.atomic in (Call.EXEC, Call.EXIT) and lane.atomic_kernel == "no":
                self._start_atomic(lane)
            elif lane.atomic in (Call.EXEC, Call.EXIT) and lane.atomic_kernel == "synced":
                # run the call on to its wakeup (exit1's wakeup(p->p_pptr) after SZOMB)
                cpu = ENV_CPU + lane.tid
                for _ in range(MAX_KERNEL_ONLY_STEPS):
                    c = self.k.cpus[cpu]
                    if self.k.cpus[sleeper].wchan is None or c.done or self.k.blocked_on(cpu) is not None:
                        break
                    info = self._env_kstep(lane, cpu, ", on to the model's wakeup")
                    if info.status is StepStatus.DONE:
                        lane.atomic_kernel = "done"

    def _mirror(self, lane: _Lane, step: ir.Step, before: State, after: State) -> None:
        """The model's swap-in is mirrored: the p_sflag its scheduler (a CPU's pick: swapped in before
        it runs) and faultin write is copied into the kernel, which has no scheduler (see the module doc)."""
        th = self.system.threads[lane.tid]
        # faultin's PS_INMEM too: the kernel does it inside _PHOLD at 555, and the swapper's PS_SWAPPING,
        # which the model's faultin clears, may be set on the kernel still
        mirror = (th.family == "cpu" and len(step.frames) <= 1) or \
            (bool(step.frames) and step.frames[-1] == "faultin")
        if not (mirror and step.ref is None and ir.Loc("proc", "p_sflag") in step.writes):
            return
        frame = "faultin" if step.frames and step.frames[-1] == "faultin" else lane.code
        p = self.local(after, lane.tid, frame, "p")
        ref = f"proc#{p}"
        old = self.sem.valuation(before)["proc"].get(ref, {}).get("p_sflag")
        new = self.sem.valuation(after)["proc"].get(ref, {}).get("p_sflag")
        kp = self.bij.s2k.get(ref)
        if old == new or new is None or not isinstance(kp, Proc):
            return
        kp.p_sflag = {PSFlag(x) for x in new}
        self.log.append(f"    kernel: p_sflag of pid {kp.p_pid} mirrored from the model's {lane.name}: {new}")

    # ------------------------------------------------------------ the swapper

    def _swapper(self, lane: _Lane, step: ir.Step, after: State) -> None:
        """One step of the model's swapper: the kernel's swapout_procs (env cpu) takes the paired step
        (SWAPPER_PAIRS), after the walk steps the model has no counterpart of."""
        cpu = ENV_CPU + lane.tid
        frame = step.frames[-1] if step.frames else ""
        c = self.k.cpus.get(cpu)
        idle = c is None or c.done
        if lane.swap_lock_owed:
            # the model's lock(p.p_mtx) of a mutex mtx_init has not set up went on to the assert
            # (mtx_inited_swapper): the kernel's PROC_LOCK, which panics there, goes with it
            lane.swap_lock_owed = False
            self._swapper_to(lane, "PROC_LOCK(p)", optional=False)
        if step.label.startswith("p := pick proc where p in allproc"):
            kp = self.kproc(int(self.local(after, lane.tid, lane.code, "p")))
            if idle or c.pending is None or c.pending.label != "p = LIST_FIRST(&allproc)":
                raise _Diverged(f"the model's swapper picks pid {kp.p_pid}, but the kernel's swapper is not at "
                                f"the start of a walk of allproc "
                                f"({'idle' if idle or c.pending is None else c.pending.label})")
            self.k.swapout_pick = kp
            self._swapper_to(lane, "PROC_LOCK(p)", optional=False, take=False)
            self.log.append(f"    (the kernel's walk has reached the model's pick, pid {kp.p_pid})")
            return
        want = next((k for (f, m), k in SWAPPER_PAIRS.items() if f == frame and step.label.startswith(m)), None)
        if want is None:
            self._track_locks(step, None)
            return
        if idle and want in ("mtx_lock(&Giant) [swapper]", "sx_slock(&allproc_lock)"):
            self.k.spawn(cpu, start(self.k, cpu, Call.SWAPPER, None), None, name=Call.SWAPPER.value)
            self.log.append(f"    kernel {lane.name}: swapout_procs starts on kernel cpu {cpu}")
        if want == "PROC_LOCK(p)":
            c = self.k.cpus.get(cpu)
            kp = self._swapper_proc(after, lane)
            if c is not None and not c.done and c.pending is not None and c.pending.label == want and \
                    kp is not None and kp.p_mtx is None:
                lane.swap_lock_owed = True
                self.log.append("    (deferred: the kernel's PROC_LOCK of a mutex mtx_init has not set up "
                                "goes with the model's assert)")
                return
        if not self._swapper_to(lane, want, optional=want in SWAPPER_OPTIONAL):
            self._track_locks(step, None)       # absorbed: its lock is not compared until dropped again

    def _swapper_proc(self, state: State, lane: _Lane) -> Proc | None:
        p = self.local(state, lane.tid, lane.code, "p")
        ko = self.bij.s2k.get(f"proc#{p}") if p else None
        return ko if isinstance(ko, Proc) else None

    def _swapper_to(self, lane: _Lane, want: str, optional: bool, take: bool = True) -> bool:
        """Run the swapper's kernel cpu through unpaired steps up to its step `want` and take it (or
        stop before it: take False). A paired step other than `want` in the way (or the call over):
        False if `optional`, else a divergence."""
        cpu = ENV_CPU + lane.tid
        paired = set(SWAPPER_PAIRS.values())
        for _ in range(MAX_KERNEL_ONLY_STEPS):
            c = self.k.cpus.get(cpu)
            at = None if c is None or c.done else c.pending
            label = "" if at is None else at.label
            if at is not None and label.startswith(want):
                if not take:
                    return True
            elif at is None or any(label.startswith(x) for x in paired):
                if optional:
                    self.log.append(f"    (the kernel's swapper has no `{want}` here: absorbed)")
                    return False
                raise _Diverged(f"the model's swapper takes `{want}`, the kernel's next step is "
                                f"{'none: its swapout_procs has returned' if at is None else f'`{label}`'}")
            blocked = self.k.blocked_on(cpu)
            if blocked is not None:
                raise _Diverged(f"the kernel's swapper cannot take `{label}`: {blocked}")
            self._env_kstep(lane, cpu, ", with the model" if label.startswith(want) else "")
            if label.startswith(want):
                return True
        raise _Diverged(f"the kernel's swapper ran {MAX_KERNEL_ONLY_STEPS} steps without reaching `{want}`")

    def _sflag_from_model(self, kp: Proc | None) -> None:
        """The kernel's wake faults a swapped-out sleeper in at once; the model's swap-in is its
        scheduler's (mirrored), so the model's p_sflag is copied back."""
        ref = None if kp is None else self.bij.k2s.get(id(kp))
        new = None if ref is None else self.sem.valuation(self.state)["proc"].get(ref, {}).get("p_sflag")
        if kp is not None and new is not None and {x.value for x in kp.p_sflag} != set(new):
            kp.p_sflag = {PSFlag(x) for x in new}
            self.log.append(f"    kernel: p_sflag of pid {kp.p_pid} after its wake mirrored from the model: {new}")

    def _track_locks(self, step: ir.Step, ref: str | None) -> None:
        """Global locks a step without a seed line takes or drops are not compared until dropped again
        (unless the kernel takes the same step: PAIRED_UNCITED)."""
        if ref is not None or (step.frames[-1] if step.frames else "", step.label) in PAIRED_UNCITED:
            return
        for e in step.effects:
            if isinstance(e, (ir.Acquire, ir.Release)) and isinstance(e.lock, ir.GlobalVarRef) \
                    and e.lock.name in COMPARED_LOCKS:
                n = self.unsynced_locks.get(e.lock.name, 0) + (1 if isinstance(e, ir.Acquire) else -1)
                self.unsynced_locks[e.lock.name] = n

    def _transient(self) -> frozenset[tuple[str, str]]:
        lines = {lane.last_line for lane in self.lanes if lane.spawned}
        return frozenset((pool, fld) for line, pool, fld in TRANSIENT if line in lines)

    def _skip_locks(self) -> set[str]:
        return {n for n, c in self.unsynced_locks.items() if c != 0}

    def _assigned(self, step: ir.Step, tid: int, after: State) -> Any:
        for e in step.effects:
            if isinstance(e, ir.Assign) and isinstance(e.target, ir.LocalVarRef):
                code = self.sem.thread_code[tid]
                return after[2][tid][1][self.sem.lindex[code.name][e.target.name]]
        return None

    def _seed_line(self, ref: str | None) -> int | None:
        if not ref or ":" not in ref:
            return None
        f, _, n = ref.rpartition(":")
        if f != self.system.source_file or not n.isdigit():
            return None
        return int(n)

    # ------------------------------------------------------------ sync points

    def _in_sync(self, i: int) -> bool:
        """Compare only where no thread is half-way through a C statement the two split differently."""
        for lane in self.lanes:
            if lane.atomic is not None or lane.owes_wake or lane.ahead or lane.swap_lock_owed:
                return False
            if not lane.spawned:
                continue
            if lane.open_call is not None or self._calls_next(lane.name, i):
                return False
            nxt = self._next_line(lane.name, i)
            at = self.pending(lane)
            if nxt is None:
                # the thread takes no more steps in the trace: ask the model what it cites next
                ahead = self._model_next_lines(lane.tid)
                if any((x == lane.last_line or x in lane.last_covers) and (at is None or at.line != x)
                       for x in ahead):
                    return False
            if nxt is not None and (nxt == lane.last_line or nxt in lane.last_covers) and \
                    (at is None or at.line != nxt):
                return False
            if nxt is not None and nxt in self.klines and (at is None or at.line != nxt) and \
                    at is not None and at.line is not None and at.line not in self.spec_lines:
                # the kernel has kernel-only steps to take before the model's next line
                return False
        return True

    def _calls_next(self, thread: str, i: int) -> bool:
        """The thread's next step calls a procedure with no seed line (`faultin(p1)` after 555): the
        line before it is not finished in the model yet."""
        for j in range(i + 1, len(self.trace.states)):
            st = self.trace.steps[j]
            if st is not None and st.thread == thread:
                return st.ref is None and 0 <= st.step_id < len(self.system.steps) and \
                    self.system.steps[st.step_id].kind is ir.StepKind.CALL
        # the thread takes no more steps in the trace: ask the model what it may take next
        tid = self.tids[thread]
        code = self.sem.thread_code[tid]
        return any(st.ref is None and st.kind is ir.StepKind.CALL
                   for st in code.steps_from[self.state[2][tid][0]])

    def _next_label_at(self, thread: str, line: int) -> str:
        """The label of the thread's next trace step if it cites `line`, else ""."""
        for j in range(self.index + 1, len(self.trace.states)):
            st = self.trace.steps[j]
            if st is not None and st.thread == thread:
                return st.label if self._seed_line(st.ref) == line else ""
        return ""

    def _line_goes_on(self, lane: _Lane, line: int) -> bool:
        """The thread's next cited step is at `line` again (the model's lookahead at its last step)."""
        nxt = self._next_line(lane.name, self.index)
        if nxt is None:
            return any(x == line for x in self._model_next_lines(lane.tid))
        return nxt == line

    def _model_next_lines(self, tid: int, depth: int = 40) -> set[int]:
        """Seed lines of the first cited steps reachable from the thread's pc (guards ignored)."""
        code = self.sem.thread_code[tid]
        out: set[int] = set()
        seen: set[int] = set()
        todo = [(self.state[2][tid][0], 0)]
        while todo:
            pc, d = todo.pop()
            if pc in seen or d > depth:
                continue
            seen.add(pc)
            for st in code.steps_from[pc]:
                if st.ref is not None and st.ref.file == self.system.source_file:
                    out.add(st.ref.line)
                else:
                    todo.append((st.dst, d + 1))
        return out

    def _next_line(self, thread: str, i: int) -> int | None:
        for j in range(i + 1, len(self.trace.states)):
            st = self.trace.steps[j]
            if st is not None and st.thread == thread:
                line = self._seed_line(st.ref)
                if line is not None:
                    return line
                if st.label.endswith(")") and self._callee_label(st.label) in ATOMIC_CALLS:
                    return None
        return None

    @staticmethod
    def _callee_label(label: str) -> str:
        m = _CALLEE.match(label)
        return m.group(1) if m else ""

    # ---------------------------------------------------------------- results

    def _diverged(self, i: int, thread: str | None, desc: str, d: _Diverged) -> ReplayResult:
        div = Divergence(i, thread, desc, d.what, d.diffs)
        lines = [f"diverges at state {i}: {desc}", f"  {d.what}"] + [f"    {x}" for x in d.diffs[:12]]
        if len(d.diffs) > 12:
            lines.append(f"    ... and {len(d.diffs) - 12} more")
        return ReplayResult(False, "\n".join(lines), div, ReplayStatus.DIVERGED, i, self.kernel_steps,
                            self.compared, None, tuple(self.log))

    def _na(self, why: str) -> ReplayResult:
        return ReplayResult(True, f"not replayed: {why}", None, ReplayStatus.NOT_APPLICABLE, self.index,
                            self.kernel_steps, self.compared, None, tuple(self.log))

    def _finish(self) -> ReplayResult:
        n = len(self.trace.states) - 1
        confirmed, text = confirm_property(self, self.trace.property, self.trace.kind)
        head = (f"replayed {n} steps on the reference kernel ({self.kernel_steps} kernel steps, "
                f"{self.compared} states compared, no divergence)")
        if confirmed is False:
            div = Divergence(n, None, "end of the trace", text)
            return ReplayResult(False, f"{head}\n  but {text}", div, ReplayStatus.DIVERGED, n, self.kernel_steps,
                                self.compared, False, tuple(self.log))
        return ReplayResult(True, f"{head}\n  {text}", None, ReplayStatus.REPLAYED, n, self.kernel_steps,
                            self.compared, confirmed, tuple(self.log))


class _KernelPanicked(Exception):
    def __init__(self, panic: Any):
        super().__init__(str(panic))
        self.panic = panic

    def describe(self) -> str:
        p = self.panic
        if p is None:
            return "panic"
        where = f"{p.file}:{p.line}" if p.line is not None else p.file
        return f"{where}: {p.message}"


def _giant_step(step: ir.Step) -> str | None:
    """"lock" / "unlock" for a model step that takes or drops Giant, else None."""
    for e in step.effects:
        if isinstance(e, (ir.Acquire, ir.Release)) and isinstance(e.lock, ir.GlobalVarRef) and \
                e.lock.name == "Giant":
            return "lock" if isinstance(e, ir.Acquire) else "unlock"
    return None


def _kernel_giant(at: Any) -> str | None:
    """The same for a kernel step: Giant at syscall entry/exit (trap.c) or around a may-sleep point."""
    label = at.label
    if at.line is None and "Giant" in label:
        return "unlock" if "unlock" in label else "lock"
    if label.endswith("[drop Giant]"):
        return "unlock"
    if label.endswith("[pick up Giant]"):
        return "lock"
    return None


def _msleep_half(label: str) -> str | None:
    if label.startswith("msleep("):
        if label.endswith("[sleep]"):
            return "sleep"
        if label.endswith("[wake]"):
            return "wake"
    return None


# ------------------------------------------------------ the property, kernel-side

_REFS_KIND = {"ucred_refs": "ucred", "plimit_refs": "plimit", "procsig_refs": "procsig", "pargs_refs": "pargs",
              "filedesc_refs": "filedesc", "vmspace_refs": "vmspace", "vnode_refs": "vnode",
              "proccnt_exact": "uidinfo"}


def confirm_property(rp: _Replayer, prop: str, kind: str) -> tuple[bool | None, str]:
    """Is `prop` violated on the kernel at the end of the replay? None: not decidable on one run."""
    k = rp.k
    if k.panic is not None and kind in ("runtime", "witness", "assert"):
        where = f"{k.panic.file}:{k.panic.line}" if k.panic.line is not None else k.panic.file
        return True, f"the kernel panics too ({where}: {k.panic.message})"
    last = rp.trace.steps[-1] if len(rp.trace.steps) > 1 else None
    last_line = rp._seed_line(last.ref) if last is not None else None
    hits = [(ln, what) for ln, what in k.freed_accesses if ln == last_line]
    if kind in ("runtime", "witness") and hits:
        # the model's error there comes from a freed proc (its slot reset or reused); C reads or locks
        # the freed memory without a fault, which the kernel logs
        return True, f"the kernel uses a freed proc at the same line (kern_fork.c:{hits[0][0]}: {hits[0][1]})"
    inflight = [f"{l.name}'s {l.atomic.value}" for l in rp.lanes if l.atomic is not None]
    if kind in ("runtime", "witness") and inflight:
        return None, (f"not judged on the kernel: {', '.join(inflight)} is half-way in the model, and the "
                      f"kernel runs such calls (no seed lines) in coarser steps, so this interleaving has no "
                      f"kernel counterpart")
    if kind in ("runtime", "witness"):
        return False, f"the model's {prop} violation ({rp.trace.message or prop}) has no kernel panic"
    if prop == "nprocs_bounded":
        return (k.nprocs > k.maxproc,
                f"nprocs_bounded is violated on the kernel too: nprocs = {k.nprocs} > maxproc = {k.maxproc}"
                if k.nprocs > k.maxproc else
                f"the kernel keeps nprocs_bounded: nprocs = {k.nprocs}, maxproc = {k.maxproc}")
    if prop in ("pid_unique", "pid_fresh"):
        if prop == "pid_fresh":
            _run_to_line(rp, 377)
        pids = [p.p_pid for p in k.procs if isinstance(p.p_pid, int) and p.p_pid != 0 and not p.freed]
        dup = sorted({x for x in pids if pids.count(x) > 1})
        return (bool(dup), f"{prop} is violated on the kernel too: pid {dup} is used twice" if dup
                else f"the kernel's pids stay unique: {sorted(pids)}")
    if prop in _REFS_KIND:
        if any(not c.done for c in k.cpus.values()):
            return None, f"{prop} is a quiescent-state property and a kernel call is still in flight"
        bad = [b for b in refcount_violations(k) if b.startswith(_REFS_KIND[prop])]
        return (bool(bad), f"{prop} is violated on the kernel too: {'; '.join(bad)}" if bad
                else f"the kernel's {_REFS_KIND[prop]} counts all equal their holders")
    if kind == "deadlock":
        stuck = [i for i, c in k.cpus.items() if not c.done]
        if stuck and not k.runnable():
            why = "; ".join(f"{rp.lanes[i].name if i < len(rp.lanes) else i}: {k.blocked_on(i)}" for i in stuck)
            return True, f"the kernel is stuck too ({why})"
        return False, "the kernel is not deadlocked at the end of the trace"
    if kind == "assert":
        # The model asserts just before the C statement that goes wrong (parent_resident before
        # vm_fork at 563): run the violating CPU on a little and see whether the kernel panics there.
        last = rp.trace.steps[-1] if len(rp.trace.steps) > 1 else None
        lane = next((l for l in rp.lanes if last is not None and l.name == last.thread), None)
        if lane is not None and lane.spawned:
            for _ in range(ASSERT_RUN_ON):
                if rp.pending(lane) is None or rp.k.blocked_on(lane.tid) is not None:
                    break
                try:
                    rp.kstep(lane, f"run on after the model's assert {prop}")
                except _KernelPanicked:
                    break
                except _Diverged:
                    break
            if k.panic is not None:
                where = f"{k.panic.file}:{k.panic.line}" if k.panic.line is not None else k.panic.file
                return True, f"the kernel panics a little later ({where}: {k.panic.message})"
    if kind == "leadsto":
        return None, "a liveness property: the kernel replays the lasso once, which shows no violation by itself"
    return None, (f"{prop} ({kind}) has no kernel-side check; the kernel agrees with the trace on every "
                  f"compared variable")


def _run_to_line(rp: _Replayer, line: int) -> None:
    """Step the cpu(s) inside fork1 until one has taken `line` (for pid_fresh: the pid is assigned at 377)."""
    for lane in rp.lanes:
        if not lane.spawned:
            continue
        for _ in range(MAX_KERNEL_ONLY_STEPS):
            if lane.last_line == line or rp.pending(lane) is None or rp.k.blocked_on(lane.tid) is not None:
                break
            try:
                rp.kstep(lane, f"run on to kern_fork.c:{line} to see the pid")
            except (_KernelPanicked, _Diverged):
                break


# ------------------------------------------------------------------ the API


def replay_trace(trace: Trace, system: ir.System) -> ReplayResult:
    """Replay `trace` (a run of `system`) on the reference kernel.

    ok is False when the kernel and the trace diverge or the kernel does not
    violate the trace's property; status NOT_APPLICABLE (ok True) when the
    model is not a fork1 model or uses what the kernel does not have.
    Raises ReplayError when the trace is not a run of `system`."""
    if not is_fork1_system(system):
        return ReplayResult(True, f"not replayed: replay drives the reference kernel's fork1, and "
                                  f"{getattr(system, 'name', '') or getattr(system, 'spec_file', 'this')} "
                                  f"is not a fork1 model",
                            status=ReplayStatus.NOT_APPLICABLE)
    try:
        rp = _Replayer(trace, system)
    except _NotApplicable as e:
        return ReplayResult(True, f"not replayed: {e}", status=ReplayStatus.NOT_APPLICABLE)
    except (KeyError, TypeError, ValueError) as e:
        raise ReplayError(f"the trace's initial state does not fit the model: {e!r}") from None
    return rp.run()


# ------------------------------------------------------------------- the CLI


def find_model(trace_path: Path, trace: Trace) -> Path | None:
    """models/<name>.toml next to counterexamples/<name>/, or under the current directory."""
    name = trace.model
    if not name:
        return None
    cands = [Path.cwd() / "models" / f"{name}.toml"]
    for d in [trace_path.resolve().parent, *trace_path.resolve().parents]:
        cands.append(d / "models" / f"{name}.toml")
    return next((c for c in cands if c.is_file()), None)


def cmd_replay(args: argparse.Namespace) -> int:
    from ..model import load_model
    path = Path(args.file)
    trace = Trace.read(path)
    mpath = Path(args.model) if args.model else find_model(path, trace)
    if mpath is None:
        raise UsageError(f"{path}: cannot find the model {trace.model!r} (looked for models/{trace.model}.toml); "
                         f"pass --model MODEL.toml")
    model = load_model(mpath)
    res = replay_trace(trace, model.system)
    if args.json:
        out = res.to_json()
        out.update({"trace": str(path), "model": str(mpath), "property": trace.property})
        if args.steps:
            out["log"] = list(res.log)
        print(json.dumps(out, indent=1))
    else:
        if args.steps:
            for line in res.log:
                print(line)
        stream = sys.stdout if res.applicable else sys.stderr
        print(f"{path}: {res.message}", file=stream)
    if not res.applicable:
        return EXIT_USAGE
    return EXIT_OK if res.ok else EXIT_UNEXPECTED


def register(subparsers: Any) -> None:
    rp = subparsers.add_parser(
        "replay", help="replay a fork1 counterexample on the reference kernel, comparing states step by step",
        description="Drive the reference kernel (checker/kernel) through the trace's steps, compare its state "
                    "with the trace's after every step, and check the violated property on the kernel. "
                    "Exit 0: replayed; 1: the kernel diverges (the first difference is printed); "
                    "2: not a fork1 trace, or bad input.")
    rp.add_argument("file", metavar="TRACE", help="an .itf.json counterexample of a fork1 model")
    rp.add_argument("--model", metavar="MODEL", help="the model file (default: models/<trace's model>.toml)")
    rp.add_argument("--steps", action="store_true", help="print what each trace step did on the kernel")
    rp.add_argument("--json", action="store_true", help="print the result as one JSON object")
    rp.set_defaults(func=cmd_replay)
