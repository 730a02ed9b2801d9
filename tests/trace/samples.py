"""Hand-made traces shaped like the explorer's, used by the trace and verify tests."""

from __future__ import annotations

from typing import Any

from checker.trace.itf import Trace, TraceStep


def _threads(pcs: dict[str, str], status: dict[str, str] | None = None,
             local: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    status = status or {}
    local = local or {}
    return {t: {"pc": pc, "locals": local.get(t, {}), "wchan": None, "status": status.get(t, "running")}
            for t, pc in pcs.items()}


def nprocs_race() -> Trace:
    """Two CPUs pass the maxproc check at 262 before either increments nprocs at 270: 3 > maxproc 2.

    Between its store and cpu[1]'s, cpu[0] takes allproc_lock (310).
    """
    free = {"xowner": None, "shared": []}
    c0, c1 = "cpu[0]", "cpu[1]"
    s: list[dict[str, Any]] = []

    def state(nprocs: int, pcs: tuple[str, str], tmp: tuple[int | None, int | None], lock: Any = free) -> None:
        local = {t: {"tmp": v} for t, v in zip((c0, c1), tmp) if v is not None}
        s.append({"nprocs": nprocs, "maxproc": 2, "allproc_lock": lock,
                  "proc": {"proc#1": {"pid": 0, "stat": "SRUN"}},
                  "#threads": _threads(dict(zip((c0, c1), pcs)), local=local)})

    state(1, ("check", "check"), (None, None))
    state(1, ("load", "check"), (None, None))
    state(1, ("load", "load"), (None, None))
    state(1, ("store", "load"), (2, None))
    state(2, ("lock", "load"), (None, None))
    state(2, ("pid", "load"), (None, None), {"xowner": c0, "shared": []})
    state(2, ("pid", "store"), (None, 3), {"xowner": c0, "shared": []})
    state(3, ("pid", "alloc"), (None, None), {"xowner": c0, "shared": []})
    L = {c0: ["allproc_lock"]}
    f = ("cpu", "fork1")
    steps: list[TraceStep | None] = [
        None,
        TraceStep(c0, 3, "nprocs < maxproc - 1 || uid == 0 [cond]", "kern_fork.c:262", f),
        TraceStep(c1, 3, "nprocs < maxproc - 1 || uid == 0 [cond]", "kern_fork.c:262", f),
        TraceStep(c0, 4, "tmp := nprocs + 1 [load]", "kern_fork.c:270", f),
        TraceStep(c0, 5, "nprocs := tmp [store]", "kern_fork.c:270", f),
        TraceStep(c0, 9, "sx_xlock(allproc_lock)", "kern_fork.c:310", f, locks_held=L),
        TraceStep(c1, 4, "tmp := nprocs + 1 [load]", "kern_fork.c:270", f, locks_held=L),
        TraceStep(c1, 5, "nprocs := tmp [store]", "kern_fork.c:270", f, locks_held=L),
    ]
    return Trace(model="nprocs_race", property="nprocs_bounded", kind="invariant", states=s, steps=steps,
                 message="nprocs = 3 exceeds maxproc = 2", extra={"focus": ["nprocs", "maxproc"]})


def lock_wait() -> Trace:
    """cpu[0] holds allproc_lock and sleeps; cpu[1] blocks on the lock: a deadlock."""
    c0, c1 = "cpu[0]", "cpu[1]"
    held = {"xowner": c0, "shared": []}
    s = [{"allproc_lock": {"xowner": None, "shared": []}, "#threads": _threads({c0: "lock", c1: "lock"})},
         {"allproc_lock": held, "#threads": _threads({c0: "sleep", c1: "lock"})},
         {"allproc_lock": held, "#threads": _threads({c0: "wake", c1: "lock"}, status={c0: "sleeping"})},
         {"allproc_lock": held, "#threads": _threads({c0: "wake", c1: "lock"},
                                                     status={c0: "sleeping", c1: "blocked"})}]
    s[2]["#threads"][c0]["wchan"] = "proc#1"
    s[3]["#threads"][c0]["wchan"] = "proc#1"
    L = {c0: ["allproc_lock"]}
    steps: list[TraceStep | None] = [
        None,
        TraceStep(c0, 1, "sx_xlock(allproc_lock)", "kern_fork.c:310", locks_held=L),
        TraceStep(c0, 2, "msleep(p1, null)", "kern_fork.c:623", locks_held=L, blocked={c0: "sleeping on proc#1"}),
        TraceStep(c1, 1, "sx_xlock(allproc_lock)", "kern_fork.c:310", locks_held=L,
                  blocked={c0: "sleeping on proc#1", c1: "sx_xlock allproc_lock"}),
    ]
    return Trace(model="lock_wait", property="deadlock", kind="deadlock", states=s, steps=steps,
                 message="every thread is blocked")


def ppwait_lasso() -> Trace:
    """A lasso: the parent sleeps on P_PPWAIT while the child spins; the cycle starts at state 1."""
    s = [{"ppwait": False, "spins": 0, "#threads": _threads({"parent": "set", "child": "run"})},
         {"ppwait": True, "spins": 0, "#threads": _threads({"parent": "sleep", "child": "run"})},
         {"ppwait": True, "spins": 1, "#threads": _threads({"parent": "sleep", "child": "run"})},
         {"ppwait": True, "spins": 0, "#threads": _threads({"parent": "sleep", "child": "run"})}]
    steps: list[TraceStep | None] = [
        None,
        TraceStep("parent", 1, "p2.flag := p2.flag | P_PPWAIT", "kern_fork.c:496"),
        TraceStep("child", 2, "spins := spins + 1", None),
        TraceStep("child", 3, "spins := 0", None),
    ]
    return Trace(model="ppwait", property="ppwait_ends", kind="leadsto", states=s, steps=steps, loop=1,
                 message="P_PPWAIT stays set forever")
