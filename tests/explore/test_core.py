"""Search, safety properties, limits and results on hand-built IR systems."""

from __future__ import annotations

import json

import pytest

from checker import ir
from checker.explore import ExploreOptions, Strategy, check
from checker.results import EXIT_LIMIT, EXIT_OK, EXIT_UNEXPECTED, StopReason, Verdict
from irbuild import (BOOL, I, SysBuilder, abba, bin, c, g, gv, lv, loc, mutex, racy_counter,
                     racy_counter_assert, spin, sx)

BFS = ExploreOptions(strategy=Strategy.BFS, progress=False, symmetry=False, por=False)
DFS = ExploreOptions(strategy=Strategy.DFS, progress=False, symmetry=False, por=False)


def verdicts(r):
    return {p.name: p.verdict for p in r.properties}


def prop(r, name):
    return next(p for p in r.properties if p.name == name)


def test_racy_counter_lost_update_minimal_trace():
    r = check(racy_counter_assert(2), BFS, model_name="racy", properties=["all_counted"])
    p = prop(r, "all_counted")
    assert p.verdict is Verdict.VIOLATED
    # load, load, store, done++, store, done++, assert: 7 steps is the shortest lost update
    assert p.trace_length == 7
    assert p.trace.steps[-1].label == "assert all_counted"
    assert p.trace.extra["shortest_count"] >= 1 and "preemptions" in p.trace.extra
    assert p.trace.states[-1]["x"] == 1


def test_racy_counter_exact_counts_bfs_dfs_agree():
    for opts in (BFS, DFS):
        r = check(racy_counter_assert(2), opts, model_name="racy")
        assert r.stats.states == 48
        assert r.stop is StopReason.FINISHED
        assert verdicts(r)["all_counted"] is Verdict.VIOLATED


def test_atomic_counter_holds():
    sysm = racy_counter(3, racy=False)
    r = check(sysm, BFS, model_name="atomic", properties=["x_bounded", "deadlock", "runtime"])
    assert all(v is Verdict.HOLDS for v in verdicts(r).values())
    assert r.stats.states == 8          # 2^3 subsets of threads done
    assert r.exit_code() == EXIT_OK


def test_abba_deadlock_and_lock_order_reversal():
    r = check(abba(), BFS, model_name="abba")
    d = prop(r, "deadlock")
    assert d.verdict is Verdict.VIOLATED and d.trace_length == 2
    assert {s.thread for s in d.trace.steps[1:]} == {"t1", "t2"}
    assert set(d.trace.steps[-1].blocked) == {"t1", "t2"}
    lo = prop(r, "lock_order")
    assert lo.verdict is Verdict.VIOLATED
    rev = lo.details["reversals"][0]
    assert rev["reachable_deadlock"] and set(rev["classes"]) == {"lock A", "lock B"}
    assert len(lo.trace.extra["order_traces"]) == 2
    assert r.stats.states == 19


def test_expectations_and_exit_codes():
    r = check(abba(), BFS, model_name="abba", expect={"deadlock": "violated", "lock_order": "violated"})
    assert r.exit_code() == EXIT_OK
    r = check(abba(), BFS, model_name="abba", expect={"deadlock": "holds"})
    assert r.exit_code() == EXIT_UNEXPECTED


def _one_thread(*steps, globals_=(), n=1, invariants=()):
    b = SysBuilder("t")
    for name, t, init in globals_:
        b.glob(name, t, init)
    cb = b.code("main", exit=len(steps))
    for i, (effects, kw) in enumerate(steps):
        cb.step(i, i + 1, *effects, **kw)
    for k in range(n):
        b.thread(f"t{k}", "main")
    for name, e in invariants:
        b.invariant(name, e)
    return b.build()


M = mutex("m")
S = spin("s")
X = sx("x")


@pytest.mark.parametrize("steps,globals_,msg", [
    ([([ir.Release(gv("m", M))], {})], [("m", M, None)], "not held"),
    ([([ir.Acquire(gv("m", M))], {}), ([ir.Acquire(gv("m", M))], {})], [("m", M, None)], "recursed"),
    ([([ir.Acquire(gv("s", S))], {}), ([ir.Acquire(gv("m", M))], {})], [("m", M, None), ("s", S, None)],
     "spin lock"),
    ([([ir.Acquire(gv("s", S))], {}), ([ir.Sleep(c(1) if False else ir.Const(1, ir.RefT("__chan__")), None)], {})],
     [("s", S, None)], "sleeping"),
    ([([ir.LockAssert(gv("m", M), ir.LockAssertKind.OWNED)], {})], [("m", M, None)], "MA_OWNED"),
])
def test_witness_rules(steps, globals_, msg):
    b = SysBuilder("w")
    b.chans.append("c0")
    for name, t, init in globals_:
        b.glob(name, t, init)
    cb = b.code("main", exit=len(steps))
    for i, (effects, kw) in enumerate(steps):
        cb.step(i, i + 1, *effects, **kw)
    b.thread("t0", "main")
    r = check(b.build(), BFS, model_name="w", properties=["witness"])
    p = prop(r, "witness")
    assert p.verdict is Verdict.VIOLATED, p
    assert msg in p.message


def test_upgrade_while_shared_by_others():
    b = SysBuilder("up")
    xl = b.glob("x", X)
    cb = b.code("main", exit=3)
    cb.step(0, 1, ir.Acquire(xl, ir.LockMode.SHARED))
    cb.step(1, 2, ir.Upgrade(xl))
    cb.step(2, 3, ir.Release(xl))
    b.family("cpu", "main", 2)
    r = check(b.build(), BFS, model_name="up", properties=["witness"])
    assert "while cpu[" in prop(r, "witness").message


@pytest.mark.parametrize("value,msg", [
    (bin(ir.BinOp.ADD, g("v", I(0, 1)), c(5)), "out of range"),
    (bin(ir.BinOp.DIV, c(1), g("v", I(0, 1))), "division by zero"),
])
def test_runtime_errors(value, msg):
    b = SysBuilder("rt")
    v = b.glob("v", I(0, 1), 0)
    cb = b.code("main", exit=1)
    cb.step(0, 1, ir.Assign(v, value))
    b.thread("t0", "main")
    r = check(b.build(), BFS, model_name="rt", properties=["runtime"])
    assert prop(r, "runtime").verdict is Verdict.VIOLATED
    assert msg in prop(r, "runtime").message


def test_null_deref_and_full_pool():
    b = SysBuilder("pool")
    P = ir.RefT("obj")
    b.pool("obj", 1, [ir.Field("f", I(0, 3), 0)])
    p = b.glob("p", P, 0)
    cb = b.code("main", exit=3)
    cb.step(0, 1, ir.Alloc(p, "obj", blocking=False))
    cb.step(1, 2, ir.Alloc(p, "obj", blocking=False))
    b.thread("t0", "main")
    r = check(b.build(), BFS, model_name="pool", properties=["runtime"])
    assert "full" in prop(r, "runtime").message
    b2 = SysBuilder("null")
    b2.pool("obj", 1, [ir.Field("f", I(0, 3), 0)])
    p2 = b2.glob("p", P, 0)
    cb = b2.code("main", exit=1)
    cb.step(0, 1, ir.Assign(ir.FieldRef(g("p", P), "obj", "f", I(0, 3)), c(1)))
    b2.thread("t0", "main")
    r = check(b2.build(), BFS, model_name="null", properties=["runtime"])
    assert "null" in prop(r, "runtime").message


def test_blocking_alloc_blocks_then_deadlocks():
    b = SysBuilder("pool")
    P = ir.RefT("obj")
    b.pool("obj", 1, [ir.Field("f", I(0, 3), 0)])
    p = b.glob("p", P, 0)
    cb = b.code("main", exit=2)
    cb.step(0, 1, ir.Alloc(p, "obj"))
    cb.step(1, 2, ir.Alloc(p, "obj"))
    b.thread("t0", "main")
    r = check(b.build(), BFS, model_name="pool", properties=["deadlock", "runtime"])
    assert prop(r, "deadlock").verdict is Verdict.VIOLATED
    assert "free obj slot" in prop(r, "deadlock").trace.states[-1]["#threads"]["t0"]["status"] or \
        prop(r, "deadlock").trace.states[-1]["#threads"]["t0"]["status"] == "blocked"
    assert prop(r, "runtime").verdict is Verdict.HOLDS


def test_termination_is_not_deadlock():
    r = check(racy_counter(2, racy=False), BFS, model_name="t", properties=["deadlock"])
    assert prop(r, "deadlock").verdict is Verdict.HOLDS


def _counter_loop(n_threads=2, hi=6):
    """Threads loop incrementing a bounded counter until it reaches hi: many states."""
    b = SysBuilder("loop")
    X = I(0, hi)
    x = b.glob("x", X, 0)
    lk = b.glob("m", mutex("m"))
    cb = b.code("main", exit=4)
    cb.local("seen", X, 0)
    cb.step(0, 1, ir.Acquire(lk), kind=ir.StepKind.LOCK, label="lock(m)")
    cb.step(1, 2, ir.Assign(lv("seen", X), g("x", X)), guard=bin(ir.BinOp.LT, g("x", X), c(hi)), label="seen := x")
    cb.step(1, 3, guard=bin(ir.BinOp.GE, g("x", X), c(hi)), kind=ir.StepKind.COND, label="x >= hi")
    cb.step(2, 0, ir.Assign(x, bin(ir.BinOp.ADD, loc("seen", X), c(1))), ir.Release(lk), label="x := seen + 1; unlock")
    cb.step(3, 4, ir.Release(lk), kind=ir.StepKind.UNLOCK, label="unlock(m)")
    b.family("cpu", "main", n_threads)
    b.invariant("small", bin(ir.BinOp.LE, g("x", X), c(hi)))
    return b.build()


def test_limits_never_claim_holds():
    sysm = _counter_loop()
    full = check(sysm, BFS, model_name="loop", properties=["small", "deadlock"])
    assert full.stop is StopReason.FINISHED and verdicts(full)["small"] is Verdict.HOLDS
    n = full.stats.states
    r = check(sysm, ExploreOptions(max_states=10, progress=False, symmetry=False), model_name="loop",
              expect={"small": "holds"}, properties=["small", "deadlock"])
    assert r.stop is StopReason.STATE_LIMIT and r.stats.states == 10 < n
    assert verdicts(r)["small"] is Verdict.UNKNOWN and r.exit_code() == EXIT_LIMIT
    r = check(sysm, ExploreOptions(max_depth=3, progress=False, symmetry=False), model_name="loop", properties=["small"])
    assert r.stop is StopReason.DEPTH_LIMIT and r.stats.depth == 3
    assert verdicts(r)["small"] is Verdict.UNKNOWN
    # a depth limit above the real depth is no limit
    r = check(sysm, ExploreOptions(max_depth=10_000, progress=False, symmetry=False), model_name="loop", properties=["small"])
    assert r.stop is StopReason.FINISHED and r.stats.states == n


def test_time_limit_stop_reason():
    sysm = _counter_loop(3, 20)
    r = check(sysm, ExploreOptions(time_limit=1e-9, progress=False), model_name="loop", properties=["small"])
    assert r.stop is StopReason.TIME_LIMIT and verdicts(r)["small"] is Verdict.UNKNOWN


def test_stop_first_leaves_rest_unknown():
    r = check(abba(), ExploreOptions(stop_first=True, progress=False), model_name="abba",
              properties=["deadlock", "runtime"])
    assert r.stop is StopReason.VIOLATION
    assert verdicts(r) == {"deadlock": Verdict.VIOLATED, "runtime": Verdict.UNKNOWN}


def test_all_violated_stops_early():
    r = check(abba(), BFS, model_name="abba", properties=["deadlock"])
    assert r.stop is StopReason.VIOLATION and r.stats.states < 19


def test_unknown_property_is_usage_error():
    from checker.diagnostics import UsageError
    with pytest.raises(UsageError, match="unknown property"):
        check(abba(), BFS, model_name="abba", properties=["nope"])


def test_trace_is_valid_itf_and_roundtrips():
    from checker.trace.itf import Trace
    r = check(racy_counter_assert(2), BFS, model_name="racy", properties=["all_counted"])
    tr = prop(r, "all_counted").trace
    back = Trace.from_itf(json.loads(tr.dumps()))
    assert back.states == json.loads(json.dumps(tr.states))
    assert tr.steps[1].thread.startswith("cpu[") and tr.steps[1].ref == "kern_fork.c:270"
    assert r.to_json()["properties"][0]["trace_length"] == 7


def test_progress_line_only_when_asked(capsys):
    sysm = _counter_loop(3, 20)          # > 1024 expansions, so the progress tick runs
    check(sysm, ExploreOptions(progress=True, symmetry=False), model_name="loop", properties=["small"])
    err = capsys.readouterr().err
    assert "states" in err and "states/s" in err
    check(sysm, ExploreOptions(progress=False, symmetry=False), model_name="loop", properties=["small"])
    assert capsys.readouterr().err == ""


def test_interrupt_keeps_partial_result(monkeypatch):
    from checker.explore import search as search_mod
    calls = {"n": 0}
    real = search_mod.Search._expand

    def flaky(self, idx, state):
        calls["n"] += 1
        if calls["n"] == 50:
            raise KeyboardInterrupt
        return real(self, idx, state)
    monkeypatch.setattr(search_mod.Search, "_expand", flaky)
    r = check(_counter_loop(3, 20), ExploreOptions(progress=False, symmetry=False), model_name="loop",
              expect={"small": "holds"}, properties=["small"])
    assert r.stop is StopReason.INTERRUPTED and r.exit_code() == 130
    assert r.properties[0].verdict is Verdict.UNKNOWN and r.stats.states > 0


def _two_proc_locks(declared: bool, opposite: bool):
    b = SysBuilder("dup")
    R = ir.RefT("proc")
    M = ir.LockT(ir.LockKind.MUTEX, "process lock")
    b.pool("proc", 2, [ir.Field("mtx", M, None)])
    p1, p2 = b.glob("p1", R, 0), b.glob("p2", R, 0)
    b.init += [ir.Alloc(p1, "proc"), ir.Alloc(p2, "proc")]
    lk = lambda v: ir.FieldRef(g(v, R), "proc", "mtx", M)
    orders = [("p2", "p1")] + ([("p1", "p2")] if opposite else [])
    for i, (a, c_) in enumerate(orders):
        cb = b.code(f"c{i}", exit=4)
        cb.step(0, 1, ir.Acquire(lk(a)), kind=ir.StepKind.LOCK, label=f"PROC_LOCK({a})")
        cb.step(1, 2, ir.Acquire(lk(c_)), kind=ir.StepKind.LOCK, label=f"PROC_LOCK({c_})")
        cb.step(2, 3, ir.Release(lk(c_)), kind=ir.StepKind.UNLOCK, label=f"PROC_UNLOCK({c_})")
        cb.step(3, 4, ir.Release(lk(a)), kind=ir.StepKind.UNLOCK, label=f"PROC_UNLOCK({a})")
        b.thread(f"t{i}", f"c{i}")
    if declared:
        b.lock_orders.append(ir.LockOrder("process lock", "process lock"))
    return b.build()


def test_duplicate_lock_of_same_type():
    r = check(_two_proc_locks(False, False), BFS, model_name="dup", properties=["lock_order"])
    p = prop(r, "lock_order")
    assert p.verdict is Verdict.VIOLATED and "duplicate lock of same type" in p.message
    assert not p.details["reversals"][0]["reachable_deadlock"]
    assert "not reachable within the model" in p.details["reversals"][0]["reason"]
    assert "proc#2.mtx then proc#1.mtx" in p.details["reversals"][0]["orders"][0]


def test_declared_same_class_order_is_allowed():
    r = check(_two_proc_locks(True, False), BFS, model_name="dup", properties=["lock_order"])
    assert prop(r, "lock_order").verdict is Verdict.HOLDS


def test_same_class_opposite_orders_deadlock():
    r = check(_two_proc_locks(False, True), BFS, model_name="dup", properties=["lock_order", "deadlock"])
    p = prop(r, "lock_order")
    assert p.verdict is Verdict.VIOLATED and p.details["reversals"][0]["reachable_deadlock"]
    assert prop(r, "deadlock").verdict is Verdict.VIOLATED


def test_guarded_by_excuses_unpublished_objects():
    """Writing a guarded field of a fresh object before it is linked anywhere is initialisation."""
    b = SysBuilder("guard")
    R = ir.RefT("obj")
    I3 = I(0, 3)
    b.pool("obj", 2, [ir.Field("v", I3, 0, guarded_by=("m",))])
    m = b.glob("m", mutex("m"))
    head = b.glob("head", R, 0)
    cb = b.code("w", exit=4)
    cb.local("p", R, 0)
    P = ir.LocalRead("p", R)
    cb.step(0, 1, ir.Alloc(ir.LocalVarRef("p", R), "obj"), kind=ir.StepKind.ALLOC)
    cb.step(1, 2, ir.Assign(ir.FieldRef(P, "obj", "v", I3), c(1)), label="p.v := 1 (unpublished)")
    cb.step(2, 3, ir.Acquire(m), ir.Assign(head, P), ir.Release(m), kind=ir.StepKind.ATOMIC, label="publish")
    cb.step(3, 4, ir.Assign(ir.FieldRef(P, "obj", "v", I3), c(2)), label="p.v := 2 (published, unlocked)")
    b.thread("t0", "w")
    r = check(b.build(), BFS, model_name="guard", properties=["races"])
    p = prop(r, "races")
    assert p.verdict is Verdict.VIOLATED
    assert [d["kind"] for d in p.details["races"]] == ["guarded_by"]
    assert "obj#1.v without m" in p.message and p.trace.steps[-1].label.startswith("p.v := 2")


def test_lockset_race_without_coenabled_accesses():
    """A writes x then raises a flag; B awaits the flag, then reads x. Never co-enabled, but no
    lock orders them: Eraser's lockset rule reports it, with a trace for each access."""
    b = SysBuilder("flag")
    X = I(0, 3)
    x = b.glob("x", X, 0)
    flag = b.glob("flag", BOOL, False)
    a = b.code("a", exit=2)
    a.step(0, 1, ir.Assign(x, c(1)), label="x := 1")
    a.step(1, 2, ir.Assign(flag, c(True)), label="flag := true")
    r_ = b.code("b", exit=2)
    r_.local("t", X, 0)
    r_.step(0, 1, guard=g("flag", BOOL), kind=ir.StepKind.AWAIT, label="await flag")
    r_.step(1, 2, ir.Assign(lv("t", X), g("x", X)), label="t := x")
    b.thread("A", "a")
    b.thread("B", "b")
    # deadlock (which holds) keeps the search going after the first race, so every race is listed
    r = check(b.build(), BFS, model_name="flag", properties=["races", "deadlock"])
    p = prop(r, "races")
    assert p.verdict is Verdict.VIOLATED
    kinds = {d["location"]: d["kind"] for d in p.details["races"]}
    assert kinds["x"] == "lockset"
    assert "flag" in kinds           # the flag itself: written and read with no lock, co-enabled
    lockset = next(d for d in p.details["races"] if d["location"] == "x")
    assert "A writes (holding no lock)" in lockset["message"] and "B reads" in lockset["message"]
