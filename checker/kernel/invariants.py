"""Invariants of the kernel state at a quiescent point (no call in flight on
one CPU). Each returns a list of human-readable violations; empty is good.
Used by the tests and, later, by the model cross-check."""

from __future__ import annotations

from collections import Counter

from .config import PStat
from .kernel import Kernel
from .objects import KObj, Proc


def _holders(k: Kernel) -> dict[str, Counter[int]]:
    """kind -> Counter(oid -> number of procs holding a counted reference)."""
    out: dict[str, Counter[int]] = {kind: Counter() for kind in
                                    ("ucred", "plimit", "procsig", "pargs", "filedesc", "vmspace", "vnode",
                                     "uidinfo")}
    for p in k.procs:
        for kind, o in (("ucred", p.p_ucred), ("plimit", p.p_limit), ("procsig", p.p_procsig),
                        ("pargs", p.p_args), ("filedesc", p.p_fd), ("vmspace", p.p_vmspace),
                        ("vnode", p.p_textvp)):
            if isinstance(o, KObj):
                out[kind][o.oid] += 1
        if p is not k.proc0 and isinstance(p.p_ucred, KObj) and p.p_ucred.cr_ruidinfo is not None:
            out["uidinfo"][p.p_ucred.cr_ruidinfo.oid] += 1
    return out


REFCOUNT_FIELD = {"ucred": "cr_ref", "plimit": "p_refcnt", "procsig": "ps_refcnt", "pargs": "ar_ref",
                  "filedesc": "fd_refcnt", "vmspace": "vm_refcnt", "vnode": "v_usecount",
                  "uidinfo": "ui_proccnt"}


def refcount_violations(k: Kernel) -> list[str]:
    bad = []
    holders = _holders(k)
    for kind, field in REFCOUNT_FIELD.items():
        for oid, o in k.live.get(kind, {}).items():
            n, h = getattr(o, field), holders[kind][oid]
            if n != h and not (kind == "uidinfo" and n == h == 0):
                bad.append(f"{o.ref}.{field} = {n} but {h} holder(s)")
        for oid, h in holders[kind].items():
            if oid not in k.live.get(kind, {}):
                bad.append(f"{kind}#{oid} is freed but still held by {h} proc(s)")
    return bad


def structure_violations(k: Kernel) -> list[str]:
    bad = []
    listed = k.allproc + k.zombproc
    pids = [p.p_pid for p in listed]
    dup = [pid for pid, n in Counter(pids).items() if n > 1]
    if dup:
        bad.append(f"pids not unique across allproc and zombproc: {dup}")
    if k.nprocs != len(listed):
        bad.append(f"nprocs = {k.nprocs} but allproc + zombproc hold {len(listed)}")
    if any(p.p_stat is PStat.SZOMB for p in k.allproc) or any(p.p_stat is not PStat.SZOMB for p in k.zombproc):
        bad.append("a zombie on allproc or a live proc on zombproc")
    hashed = [p for b in k.pidhash.values() for p in b]
    if sorted(id(p) for p in hashed) != sorted(id(p) for p in k.allproc):
        bad.append("pidhash does not hold exactly the procs of allproc")
    for b, ps in k.pidhash.items():
        if any(p.p_pid % k.config.PIDHASH_SIZE != b for p in ps):
            bad.append(f"pidhash bucket {b} holds a pid of another bucket")
    for p in listed:
        if p.p_pptr is not None and not any(c is p for c in p.p_pptr.p_children):
            bad.append(f"pid {p.p_pid} not on its parent's p_children")
        for c in p.p_children:
            if c.p_pptr is not p:
                bad.append(f"pid {c.p_pid} on p_children of {p.p_pid} but p_pptr is another")
        if p.p_pgrp is None or not any(m is p for m in p.p_pgrp.pg_members):
            bad.append(f"pid {p.p_pid} not a member of its pgrp")
    for pgid, g in k.pgrphash.items():
        if g.pg_id != pgid or not g.pg_members:
            bad.append(f"pgrp {pgid} empty or misfiled")
        if any(m.p_pgrp is not g for m in g.pg_members):
            bad.append(f"pgrp {pgid} lists a proc of another pgrp")
    if not 0 <= k.lastpid < k.config.PID_MAX:
        bad.append(f"lastpid {k.lastpid} out of range")
    for cpu in k.cpus:
        if k.cpus[cpu].done and k.locks_held(cpu):
            bad.append(f"cpu {cpu} finished holding {k.locks_held(cpu)}")
    return bad


def all_violations(k: Kernel) -> list[str]:
    return structure_violations(k) + refcount_violations(k)


def fresh_pid_ok(k: Kernel, child: Proc) -> bool:
    """The scan's guarantee at the moment of the fork: the new pid is no other
    listed proc's pid, pgid or sid (checked right after fork1 returns on one CPU)."""
    for p in k.allproc + k.zombproc:
        if p is child:
            continue
        if child.p_pid in (p.p_pid, p.p_pgrp.pg_id, p.p_session.s_sid):
            return False
    return True
