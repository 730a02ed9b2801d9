"""The reference kernel's state and its explicit scheduler.

Every kernel function is a generator. It yields an `At` *before* each atomic
step: the seed line the step cites, a label, and (for a blocking step) what it
needs. `Kernel.step(cpu)` checks that need; if it is met the generator runs on
to its next yield, and everything it did in between is the step. Nothing else
runs in between, so one step is atomic. A CPU whose next step's need is unmet
is *blocked* and does not step.

A "cpu" is a kernel thread slot: the lock owner identity, and the unit a
scheduler interleaves. `spawn(cpu, gen, proc)` puts a system call on it.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from typing import Any, Generator, Iterator, TypeVar

from .config import FIXES, KernelConfig, PFlag, PSFlag, PStat
from .locks import KernelPanic, Lock, LockKind, Mode, Witness, WitnessViolation
from .objects import (UNINIT, Filedesc, KObj, Pargs, Pgrp, Plimit, Proc, Procsig, Session, Ucred,
                      Uidinfo, Vmspace, Vnode, _Counter, flags_json, new_p_mtx, oref, pid_of)

SEED_FILE = "kern_fork.c"


class Need:
    """What a blocking step waits for."""

    def ready(self, k: "Kernel", cpu: int) -> bool:
        raise NotImplementedError

    def why(self, k: "Kernel", cpu: int) -> str:
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class NeedLock(Need):
    lock: Lock
    mode: Mode = Mode.EXCLUSIVE

    def ready(self, k: "Kernel", cpu: int) -> bool:
        return self.lock.available(cpu, self.mode)

    def why(self, k: "Kernel", cpu: int) -> str:
        return f"lock {self.lock.name} held by cpu {self.lock.holders()}"


@dataclass(frozen=True, eq=False)
class NeedWoken(Need):
    """Second half of msleep: woken, then the interlock and Giant are free."""
    interlock: Lock | None

    def ready(self, k: "Kernel", cpu: int) -> bool:
        c = k.cpus[cpu]
        if c.wchan is not None:
            return False
        if c.giant_depth and not k.Giant.available(cpu, Mode.EXCLUSIVE):
            return False
        return self.interlock is None or self.interlock.available(cpu, Mode.EXCLUSIVE)

    def why(self, k: "Kernel", cpu: int) -> str:
        c = k.cpus[cpu]
        if c.wchan is not None:
            return f"asleep on {c.wmesg!r}"
        return "woken, waiting for Giant or the interlock"


@dataclass(frozen=True)
class At:
    """The step about to be taken."""
    line: int | None          # seed line (kern_fork.c) or None outside the seed
    label: str
    file: str = SEED_FILE
    func: str = "fork1"
    need: Need | None = None
    covers: tuple[int, ...] = ()   # further seed lines this one step performs (a fix merging two lines)


R = TypeVar("R")
Gen = Generator[At, None, R]


class StepStatus(str, enum.Enum):
    STEPPED = "stepped"       # took one step, more to come
    DONE = "done"             # took its last step; `result` is set
    BLOCKED = "blocked"       # did not step
    PANIC = "panic"           # the step panicked the kernel
    IDLE = "idle"             # nothing on this cpu


@dataclass(frozen=True)
class StepInfo:
    cpu: int
    status: StepStatus
    seed_line: int | None = None
    file: str = SEED_FILE
    label: str = ""
    func: str = ""
    locks_held: tuple[str, ...] = ()     # after the step
    blocked_on: str | None = None
    result: Any = None
    panic: KernelPanic | None = None

    def to_json(self) -> dict[str, Any]:
        return {"cpu": self.cpu, "status": self.status.value, "file": self.file, "line": self.seed_line,
                "label": self.label, "func": self.func, "locks_held": list(self.locks_held),
                "blocked_on": self.blocked_on,
                "result": self.result.to_json() if hasattr(self.result, "to_json") else self.result,
                "panic": None if self.panic is None else self.panic.to_json()}


@dataclass(eq=False)
class Cpu:
    id: int
    gen: Gen[Any] | None = None
    pending: At | None = None
    proc: Proc | None = None
    name: str = ""
    wchan: Any = None
    wmesg: str | None = None
    giant_depth: int = 0
    result: Any = None
    done: bool = True


@dataclass(frozen=True)
class ForkCallout:
    """A fork_list entry: `forklist_fn function` by name. Calling it logs (p1, p2, flags)."""
    name: str


class Kernel:
    def __init__(self, config: KernelConfig | None = None, boot: bool = True) -> None:
        """`boot=False` leaves the process table empty (no proc0, no init) for a
        caller that builds its own, as trace replay does from a model's init."""
        self.config = config or KernelConfig()
        c = self.config
        self.PID_MAX = c.PID_MAX
        self._ids = _Counter()
        self.live: dict[str, dict[int, KObj]] = {}
        self.witness = Witness()
        self.cpus: dict[int, Cpu] = {}
        self.panic: KernelPanic | None = None
        self.rng = random.Random(c.seed)
        self.random_values: list[int] = []     # queued arc4random() results (trace replay)
        # The one process the swapper's next walk may take (trace replay: the model's pick); None: any
        self.swapout_pick: Proc | None = None
        self.callout_log: list[tuple[str, int, int, int]] = []
        # Reads of a proc after it was freed (zfree'd by wait): type-stable zone memory, so C reads
        # garbage or a recycled proc rather than faulting; logged like a KASAN report, not a panic.
        self.freed_accesses: list[tuple[int | None, str]] = []
        self.cnt: dict[str, int] = {"v_forks": 0, "v_vforks": 0, "v_rforks": 0, "v_kthreads": 0}

        # Locks: a global lock's class is its own name; p_mtx is class "process lock".
        self.Giant = Lock("Giant", LockKind.MUTEX, "Giant", recursive=True)
        self.sched_lock = Lock("sched_lock", LockKind.SPIN, "sched_lock")
        self.allproc_lock = Lock("allproc_lock", LockKind.SX, "allproc_lock")
        self.proctree_lock = Lock("proctree_lock", LockKind.SX, "proctree_lock")
        self.fork_list_lock = Lock("fork_list_lock", LockKind.SX, "fork_list_lock")
        self.vm_mtx = Lock("vm_mtx", LockKind.MUTEX, "vm_mtx")
        self.ppeers_lock = Lock("ppeers_lock", LockKind.MUTEX, "ppeers")   # taken only with FIX_PEERS_LOCK

        # Globals, C names.
        self.nprocs = 1                      # process 0 (line 160); init added below
        self.lastpid = 0
        self.pidchecked = 0                  # static in fork1 (line 208)
        self.randompid = c.randompid
        self.maxproc = c.maxproc
        self.allproc: list[Proc] = []        # LIST, head first
        self.zombproc: list[Proc] = []
        self.pidhash: dict[int, list[Proc]] = {i: [] for i in range(c.PIDHASH_SIZE)}
        self.pgrphash: dict[int, Pgrp] = {}
        self.fork_list: list[ForkCallout] = []   # TAILQ
        self.procs: list[Proc] = []          # every allocated, not yet freed proc
        self.proc0: Proc | None = None
        self.initproc: Proc = None  # type: ignore[assignment]   # set by _boot or by the caller
        if boot:
            self._boot()

    # ----------------------------------------------------------- objects
    def new(self, cls: type[KObj], **kw: Any) -> Any:
        o = cls(**kw)
        o.oid = self._ids.take(cls.kind)
        self.live.setdefault(cls.kind, {})[o.oid] = o
        return o

    def free(self, o: KObj) -> None:
        self.live.get(o.kind, {}).pop(o.oid, None)
        if isinstance(o, Proc):
            o.freed = True
            self.procs = [p for p in self.procs if p is not o]

    def touch(self, p: Any, line: int | None, what: str) -> None:
        """`what` reads proc `p` at `line`: log it if `p` was freed already."""
        if isinstance(p, Proc) and p.freed:
            self.freed_accesses.append((line, f"{what}: {p.ref} (pid {p.p_pid}) was freed"))

    def fix(self, name: str) -> bool:
        return self.config.fix(name)

    def uidinfo(self, uid: int) -> Uidinfo:
        for u in self.live.get("uidinfo", {}).values():
            if isinstance(u, Uidinfo) and u.ui_uid == uid:
                return u
        return self.new(Uidinfo, ui_uid=uid)

    def zalloc_proc(self) -> Proc:
        """zalloc(proc_zone): type-stable memory, not zeroed: every field UNINIT."""
        p: Proc = self.new(Proc)
        if self.fix("FIX_SCAN_NULL_PGRP"):
            p.p_pgrp = None          # zeroed zone memory: the scan can tell a half-built proc
        self.procs.append(p)
        return p

    def arc4random(self) -> int:
        if self.random_values:
            return self.random_values.pop(0)
        return self.rng.getrandbits(32)

    def _boot(self) -> None:
        """proc0 (pid 0) and init (pid 1, child of proc0, leader of session and pgrp 1), lastpid 1."""
        c = self.config
        root = self.uidinfo(0)
        cred = self.new(Ucred, cr_ref=2, cr_uid=0, cr_ruid=0, cr_ruidinfo=root)
        limit = self.new(Plimit, p_refcnt=2, rlim_nproc=c.maxprocperuid)
        p0 = self._boot_proc(0, cred, limit, textvp=None, args=None)
        p0.p_flag = {PFlag.P_SYSTEM}
        p0.p_pptr = None
        s0 = self.new(Session, s_sid=0, s_leader=p0)
        g0 = self.new(Pgrp, pg_id=0, pg_session=s0, pg_members=[p0])
        p0.p_pgrp = g0
        self.pgrphash[0] = g0
        p1 = self._boot_proc(1, cred, limit, textvp=self.new(Vnode, path="/sbin/init"), args=self.new(Pargs))
        p1.p_pptr = p0
        p0.p_children = [p1]
        s1 = self.new(Session, s_sid=1, s_leader=p1)
        g1 = self.new(Pgrp, pg_id=1, pg_session=s1, pg_members=[p1])
        p1.p_pgrp = g1
        self.pgrphash[1] = g1
        self.allproc = [p1, p0]              # LIST_INSERT_HEAD order
        for p in (p0, p1):
            self.pidhash[p.p_pid % c.PIDHASH_SIZE].insert(0, p)
        root.ui_proccnt = 1                  # init was counted by chgproccnt; proc0 never was
        self.proc0, self.initproc = p0, p1
        self.nprocs, self.lastpid = 2, 1

    def _boot_proc(self, pid: int, cred: Ucred, limit: Plimit, textvp: Vnode | None,
                   args: Pargs | None) -> Proc:
        p = self.zalloc_proc()
        p.p_pid, p.p_stat, p.p_flag, p.p_sflag, p.p_lock = pid, PStat.SRUN, set(), {PSFlag.PS_INMEM}, 0
        p.p_ucred, p.p_limit, p.p_args, p.p_textvp = cred, limit, args, textvp
        p.p_procsig = self.new(Procsig)
        p.p_fd = self.new(Filedesc)
        p.p_vmspace = self.new(Vmspace)
        p.p_peers, p.p_leader, p.p_estcpu, p.p_sigparent = None, p, 0, "SIGCHLD"
        p.p_children = []
        p.p_mtx = new_p_mtx(p)
        return p

    # ----------------------------------------------------------- lookups
    def pfind(self, pid: int) -> Proc | None:
        for p in self.pidhash[pid % self.config.PIDHASH_SIZE]:
            if p.p_pid == pid:
                return p
        return None

    def zpfind(self, pid: int) -> Proc | None:
        for p in self.zombproc:
            if p.p_pid == pid:
                return p
        return None

    def pgfind(self, pgid: int) -> Pgrp | None:
        return self.pgrphash.get(pgid)

    def busy(self, p: Proc) -> bool:
        """Is `p` in the middle of a system call on some cpu?"""
        return any(c.proc is p and not c.done for c in self.cpus.values())

    # --------------------------------------------------------- scheduler
    def spawn(self, cpu: int, gen: Gen[Any], proc: Proc | None = None, name: str = "") -> None:
        c = self.cpus.get(cpu)
        if c is not None and not c.done:
            raise RuntimeError(f"cpu {cpu} is busy with {c.name}")
        c = self.cpus[cpu] = Cpu(cpu, gen, None, proc, name, done=False)
        self.witness.held[cpu] = []
        try:
            c.pending = next(gen)   # runs nothing: every kernel function starts with a yield
        except StopIteration as e:
            c.result, c.done = e.value, True

    def blocked_on(self, cpu: int) -> str | None:
        c = self.cpus.get(cpu)
        if c is None or c.done or c.pending is None or c.pending.need is None:
            return None
        need = c.pending.need
        return None if need.ready(self, cpu) else need.why(self, cpu)

    def can_step(self, cpu: int) -> bool:
        c = self.cpus.get(cpu)
        return self.panic is None and c is not None and not c.done and self.blocked_on(cpu) is None

    def runnable(self) -> list[int]:
        return [i for i in sorted(self.cpus) if self.can_step(i)]

    def locks_held(self, cpu: int) -> tuple[str, ...]:
        return tuple(lk.name + ("(s)" if m is Mode.SHARED else "") for lk, m in self.witness.held_by(cpu))

    def step(self, cpu: int) -> StepInfo:
        c = self.cpus.get(cpu)
        if c is None or c.done:
            return StepInfo(cpu, StepStatus.IDLE, result=None if c is None else c.result)
        at = c.pending
        assert at is not None
        if self.panic is not None:
            return StepInfo(cpu, StepStatus.PANIC, at.line, at.file, at.label, at.func, panic=self.panic)
        why = self.blocked_on(cpu)
        if why is not None:
            return StepInfo(cpu, StepStatus.BLOCKED, at.line, at.file, at.label, at.func,
                            self.locks_held(cpu), blocked_on=why)
        assert c.gen is not None
        try:
            c.pending = c.gen.send(None)
        except StopIteration as e:
            c.result, c.done, c.pending = e.value, True, None
            return StepInfo(cpu, StepStatus.DONE, at.line, at.file, at.label, at.func,
                            self.locks_held(cpu), result=e.value)
        except KernelPanic as p:
            self.panic = p
            c.done = True
            return StepInfo(cpu, StepStatus.PANIC, at.line, at.file, at.label, at.func,
                            self.locks_held(cpu), panic=p)
        return StepInfo(cpu, StepStatus.STEPPED, at.line, at.file, at.label, at.func, self.locks_held(cpu))

    def run(self, cpu: int, max_steps: int = 1_000_000) -> StepInfo:
        """Run one cpu until it finishes, blocks or panics (or max_steps, reported as STEPPED)."""
        info = StepInfo(cpu, StepStatus.IDLE)
        for _ in range(max_steps):
            info = self.step(cpu)
            if info.status is not StepStatus.STEPPED:
                return info
        return info

    # ------------------------------------------------- lock primitives
    def lock(self, cpu: int, lk: Lock, line: int | None, func: str, file: str = SEED_FILE,
             label: str | None = None, mode: Mode = Mode.EXCLUSIVE) -> Gen[None]:
        yield At(line, label or f"lock({lk.name})", file, func, NeedLock(lk, mode))
        self.witness.acquire(cpu, lk, mode, file, line)

    def unlock(self, cpu: int, lk: Lock, line: int | None, func: str, file: str = SEED_FILE,
               label: str | None = None, mode: Mode = Mode.EXCLUSIVE) -> Gen[None]:
        yield At(line, label or f"unlock({lk.name})", file, func)
        self.witness.release(cpu, lk, mode, file, line)

    def proc_lock(self, cpu: int, p: Proc, who: str, line: int | None, func: str,
                  file: str = SEED_FILE) -> Gen[None]:
        assert p.p_mtx is not None
        yield from self.lock(cpu, p.p_mtx, line, func, file, f"PROC_LOCK({who})")

    def proc_unlock(self, cpu: int, p: Proc, who: str, line: int | None, func: str,
                    file: str = SEED_FILE) -> Gen[None]:
        assert p.p_mtx is not None
        yield from self.unlock(cpu, p.p_mtx, line, func, file, f"PROC_UNLOCK({who})")

    def owned(self, cpu: int, lk: Lock) -> bool:
        return lk.owner == cpu or cpu in lk.shared

    def mtx_assert(self, cpu: int, lk: Lock, owned: bool, line: int | None, file: str = SEED_FILE) -> None:
        if self.owned(cpu, lk) != owned:
            raise WitnessViolation(f"mtx_assert({lk.name}, {'MA_OWNED' if owned else 'MA_NOTOWNED'}) failed",
                                   line, file)

    def msleep(self, cpu: int, chan: Any, interlock: Lock | None, wmesg: str, line: int | None,
               func: str, file: str = SEED_FILE) -> Gen[None]:
        """msleep(chan, interlock): sleep step (drop interlock and Giant, set the
        wait channel), then a wake step (woken; Giant and interlock re-taken)."""
        yield At(line, f"msleep({wmesg}) [sleep]", file, func)
        spin = self.witness.holds_spin(cpu)
        if spin is not None:
            raise WitnessViolation(f"msleep({wmesg}) with spin lock {spin.name} held", line, file)
        for lk, _ in self.witness.held_by(cpu):
            if lk is not interlock and lk is not self.Giant and lk.kind is LockKind.MUTEX:
                raise WitnessViolation(f"msleep({wmesg}) with {lk.name} held", line, file)
        c = self.cpus[cpu]
        if interlock is not None:
            self.witness.release(cpu, interlock, Mode.EXCLUSIVE, file, line)
        c.giant_depth = self.witness.release_all(cpu, self.Giant)   # DROP_GIANT
        c.wchan, c.wmesg = chan, wmesg
        if c.proc is not None:
            c.proc.p_stat = PStat.SSLEEP
        yield At(line, f"msleep({wmesg}) [wake]", file, func, NeedWoken(interlock))
        self.witness.reacquire(cpu, self.Giant, c.giant_depth)       # PICKUP_GIANT
        c.giant_depth = 0
        if interlock is not None:
            self.witness.acquire(cpu, interlock, Mode.EXCLUSIVE, file, line)
        if c.proc is not None and PSFlag.PS_INMEM not in c.proc.p_sflag:
            c.proc.p_sflag.add(PSFlag.PS_INMEM)     # faultin: the swapper brings it back to run

    def maysleep(self, cpu: int, line: int, func: str, what: str, file: str = SEED_FILE) -> Gen[None]:
        """An M_WAITOK allocation (zalloc, MALLOC, fdcopy, vm_fork) may sleep, and a sleep drops
        Giant (DROP_GIANT ... PICKUP_GIANT): two steps, only when this cpu holds Giant. The
        allocation itself never fails and is the caller's next step."""
        if not self.owned(cpu, self.Giant):
            return
        yield At(line, f"{what} may sleep [drop Giant]", file, func)
        depth = self.witness.release_all(cpu, self.Giant)
        yield At(line, f"{what} [pick up Giant]", file, func, NeedLock(self.Giant))
        self.witness.reacquire(cpu, self.Giant, depth)

    def wakeup(self, chan: Any) -> int:
        n = 0
        for c in self.cpus.values():
            if not c.done and c.wchan is not None and c.wchan is chan:
                c.wchan, c.wmesg = None, None
                if c.proc is not None and c.proc.p_stat is PStat.SSLEEP:
                    c.proc.p_stat = PStat.SRUN
                n += 1
        return n

    def racy_add(self, obj: Any, attr: str, delta: int, line: int | None, func: str, label: str,
                 atomic: bool, file: str = SEED_FILE) -> Gen[int]:
        """`obj->attr += delta`: one step when atomic, else a load and a store
        (the 2001 C on SMP: a lost update is reachable)."""
        if atomic:
            yield At(line, label, file, func)
            new = getattr(obj, attr) + delta
        else:
            yield At(line, f"{label} [load]", file, func)
            tmp = getattr(obj, attr)
            yield At(line, f"{label} [store]", file, func)
            new = tmp + delta
        setattr(obj, attr, new)
        return int(new)

    # ----------------------------------------------------------- snapshot
    def snapshot(self) -> dict[str, Any]:
        """The whole observable state, JSON-able, C names; procs by pid, other objects as "kind#id"."""
        def proc_json(p: Proc) -> dict[str, Any]:
            return {
                "id": p.ref, "p_pid": pid_of(p), "p_stat": getattr(p.p_stat, "value", repr(p.p_stat)),
                "p_flag": flags_json(p.p_flag), "p_sflag": flags_json(p.p_sflag),
                "p_lock": repr(p.p_lock) if p.p_lock is UNINIT else p.p_lock,
                "p_pptr": pid_of(p.p_pptr), "p_pgrp": oref(p.p_pgrp),
                "p_session": oref(p.p_session), "p_ucred": oref(p.p_ucred), "p_limit": oref(p.p_limit),
                "p_procsig": oref(p.p_procsig), "p_fd": oref(p.p_fd), "p_args": oref(p.p_args),
                "p_textvp": oref(p.p_textvp), "p_vmspace": oref(p.p_vmspace), "p_peers": pid_of(p.p_peers),
                "p_leader": pid_of(p.p_leader), "p_children": [pid_of(q) for q in p.p_children],
                "p_mtx": None if p.p_mtx is None else p.p_mtx.to_json(),
            }

        objects: dict[str, list[dict[str, Any]]] = {}
        for kind, objs in sorted(self.live.items()):
            if kind == "proc":
                continue
            rows = []
            for o in objs.values():
                row: dict[str, Any] = {"id": o.ref}
                for k, v in vars(o).items():
                    if k in ("oid",):
                        continue
                    if isinstance(v, Proc):
                        v = pid_of(v)
                    elif isinstance(v, KObj):
                        v = v.ref
                    elif isinstance(v, list):
                        v = [pid_of(x) if isinstance(x, Proc) else x for x in v]
                    row[k] = v
                rows.append(row)
            objects[kind] = rows
        locks = {lk.name: lk.to_json() for lk in (self.Giant, self.sched_lock, self.allproc_lock,
                                                    self.proctree_lock, self.fork_list_lock, self.vm_mtx)}
        return {
            "nprocs": self.nprocs, "lastpid": self.lastpid, "pidchecked": self.pidchecked,
            "randompid": self.randompid, "maxproc": self.maxproc,
            "allproc": [pid_of(p) for p in self.allproc], "zombproc": [pid_of(p) for p in self.zombproc],
            "pidhash": {str(b): [pid_of(p) for p in ps] for b, ps in self.pidhash.items() if ps},
            "fork_list": [e.name for e in self.fork_list],
            "procs": [proc_json(p) for p in self.procs],
            "objects": objects, "locks": locks,
            "cpus": [{"cpu": c.id, "name": c.name, "proc": None if c.proc is None else pid_of(c.proc),
                      "done": c.done, "wmesg": c.wmesg,
                      "next": None if c.pending is None else {"file": c.pending.file, "line": c.pending.line,
                                                              "label": c.pending.label},
                      "locks_held": list(self.locks_held(c.id))} for c in self.cpus.values()],
            "fixes": {name: self.fix(name) for name in FIXES},
            "panic": None if self.panic is None else self.panic.to_json(),
        }


def list_next(lst: list[Any], x: Any) -> Any:
    """LIST_NEXT: the successor of x (by identity), None at the end or if x is gone."""
    for i, y in enumerate(lst):
        if y is x:
            return lst[i + 1] if i + 1 < len(lst) else None
    return None


def list_remove(lst: list[Any], x: Any, what: str, line: int | None, file: str) -> None:
    for i, y in enumerate(lst):
        if y is x:
            del lst[i]
            return
    raise KernelPanic(f"LIST_REMOVE: {getattr(x, 'ref', x)} not on {what}", line, file)


def iter_ident(lst: list[Any]) -> Iterator[Any]:
    return iter(list(lst))
