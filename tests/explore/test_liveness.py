"""Leads-to / eventually under weak fairness; lost wakeup."""

from __future__ import annotations

from hypothesis import given, settings

from checker import ir
from checker.explore import ExploreOptions, check
from checker.results import Verdict
from irbuild import BOOL, SysBuilder, bin, c, g, gv, lv
from randsys import systems

OPTS = ExploreOptions(progress=False)
CH = ir.Const(1, ir.RefT("__chan__"))


def lost_wakeup(fixed: bool = False) -> ir.System:
    """waiter: if !ready { sleep(chan) }; got := true.  waker: ready := true; wakeup(chan).
    Without the interlock the wakeup can come between the test and the sleep."""
    b = SysBuilder("lost_wakeup")
    b.chans.append("chan")
    ready = b.glob("ready", BOOL, False)
    got = b.glob("got", BOOL, False)
    m = b.glob("m", ir.LockT(ir.LockKind.MUTEX, "m"))
    w = b.code("waiter", exit=6)
    il = m if fixed else None
    if fixed:
        w.step(0, 1, ir.Acquire(m), kind=ir.StepKind.LOCK, label="lock(m)")
    else:
        w.step(0, 1, kind=ir.StepKind.SKIP, label="skip")
    w.step(1, 2, guard=ir.Unary(ir.UnOp.NOT, g("ready", BOOL), BOOL), kind=ir.StepKind.COND, label="!ready")
    w.step(1, 4, guard=g("ready", BOOL), kind=ir.StepKind.COND, label="ready")
    w.step(2, 3, ir.Sleep(CH, il), kind=ir.StepKind.SLEEP, label="msleep(chan) [sleep]")
    w.step(3, 4, *((ir.Acquire(m),) if fixed else ()), guard=ir.Woken(), kind=ir.StepKind.WAKE,
           label="msleep(chan) [wake]")
    w.step(4, 5, *((ir.Release(m),) if fixed else ()), kind=ir.StepKind.UNLOCK, label="unlock(m)")
    w.step(5, 6, ir.Assign(got, c(True)), label="got := true")
    k = b.code("waker", exit=2)
    if fixed:
        k.step(0, 1, ir.Acquire(m), ir.Assign(ready, c(True)), kind=ir.StepKind.ATOMIC, label="lock(m); ready := true")
        k.step(1, 2, ir.Wakeup(CH), ir.Release(m), kind=ir.StepKind.ATOMIC, label="wakeup(chan); unlock(m)")
    else:
        k.step(0, 1, ir.Assign(ready, c(True)), label="ready := true")
        k.step(1, 2, ir.Wakeup(CH), kind=ir.StepKind.WAKEUP, label="wakeup(chan)")
    b.thread("waiter", "waiter")
    b.thread("waker", "waker")
    b.eventually("wakes", g("got", BOOL))
    return b.build()


def test_lost_wakeup_found_as_deadlock_and_liveness():
    r = check(lost_wakeup(), OPTS, model_name="lw", properties=["deadlock", "wakes"])
    v = {p.name: p for p in r.properties}
    assert v["deadlock"].verdict is Verdict.VIOLATED
    assert v["deadlock"].trace.states[-1]["#threads"]["waiter"]["status"] == "sleeping"
    assert v["wakes"].verdict is Verdict.VIOLATED
    tr = v["wakes"].trace
    assert tr.loop == len(tr.states) - 1        # ends stuck: the lasso stutters on its last state
    labels = [s.label for s in tr.steps[1:]]
    assert labels.index("!ready") < labels.index("wakeup(chan)") < labels.index("msleep(chan) [sleep]")


def test_lost_wakeup_fixed_with_interlock_holds():
    r = check(lost_wakeup(fixed=True), OPTS, model_name="lw", properties=["deadlock", "wakes", "witness"])
    assert all(p.verdict is Verdict.HOLDS for p in r.properties), r.describe()


def _spinner(setter_fair: bool) -> ir.System:
    b = SysBuilder("spin")
    done = b.glob("done", BOOL, False)
    sp = b.code("spinner", exit=1)
    sp.step(0, 0, kind=ir.StepKind.SKIP, label="spin")
    st = b.code("setter", exit=1)
    st.step(0, 1, ir.Assign(done, c(True)), label="done := true")
    b.thread("spinner", "spinner")
    b.thread("setter", "setter", fair=setter_fair)
    b.eventually("finishes", g("done", BOOL))
    return b.build()


def test_weak_fairness_prevents_starvation():
    r = check(_spinner(True), OPTS, model_name="spin", properties=["finishes"])
    assert r.properties[0].verdict is Verdict.HOLDS


def test_unfair_thread_may_starve_lasso():
    r = check(_spinner(False), OPTS, model_name="spin", properties=["finishes"])
    p = r.properties[0]
    assert p.verdict is Verdict.VIOLATED
    tr = p.trace
    assert tr.loop is not None and tr.loop < len(tr.states) - 1
    assert tr.states[tr.loop] == tr.states[-1]        # the cycle closes
    assert all(s.thread == "spinner" for s in tr.steps[tr.loop + 1:])


def test_leadsto_with_binder():
    """forall o in obj: o.f == 1 ~> o.f == 2; a thread sets f=1 then only sometimes 2."""
    I3 = ir.IntT(0, 3)
    b = SysBuilder("bind")
    P = ir.RefT("obj")
    b.pool("obj", 2, [ir.Field("f", I3, 0)])
    p = b.glob("p", P, 0)
    cb = b.code("main", exit=3)
    cb.step(0, 1, ir.Alloc(p, "obj"))
    cb.step(1, 2, ir.Assign(ir.FieldRef(g("p", P), "obj", "f", I3), c(1)))
    cb.step(2, 3, ir.Assign(ir.FieldRef(g("p", P), "obj", "f", I3), c(3)))
    b.thread("t", "main")
    o = ir.BoundRead("o", P)
    f = ir.FieldRead(o, "obj", "f", I3)
    b.leadsto.append(ir.LeadsTo("done2", (("o", "obj"),), bin(ir.BinOp.EQ, f, c(1)), bin(ir.BinOp.EQ, f, c(2))))
    r = check(b.build(), OPTS, model_name="bind", properties=["done2"])
    p = r.properties[0]
    assert p.verdict is Verdict.VIOLATED and p.trace.extra["binding"] == {"o": "obj#1"}


# ------------------------------------------------ liveness under partial-order reduction

def _lasso_ok(p) -> bool:
    tr = p.trace
    if tr.loop is None:
        return False
    return tr.loop == len(tr.states) - 1 or tr.states[tr.loop] == tr.states[-1]


@settings(max_examples=150)
@given(systems(local_loops=True))
def test_por_keeps_liveness_verdicts_and_lassos(sysm):
    live = [n for n, k in sysm.property_names.items() if k == "leadsto"]
    a = check(sysm, ExploreOptions(symmetry=False, por=False, progress=False), model_name="r", properties=live)
    b = check(sysm, ExploreOptions(symmetry=False, por=True, progress=False), model_name="r", properties=live)
    assert {p.name: p.verdict for p in a.properties} == {p.name: p.verdict for p in b.properties}
    assert b.stats.states <= a.stats.states
    for p in b.properties:
        if p.verdict is Verdict.VIOLATED:
            assert _lasso_ok(p), p.name


def _local_spinner() -> ir.System:
    """worker: three local steps, then spins locally until `go`; setter: go := true; done := true."""
    I2 = ir.IntT(0, 2)
    b = SysBuilder("lspin")
    go = b.glob("go", BOOL, False)
    done = b.glob("done", BOOL, False)
    w = b.code("worker", exit=5)
    w.local("t", I2, 0)
    for i in range(3):
        w.step(i, i + 1, ir.Assign(lv("t", I2), c(i % 3)), label=f"t := {i % 3}")
    w.step(3, 3, kind=ir.StepKind.SKIP, label="spin")          # local: the proviso must stop it
    w.step(3, 4, guard=g("go", BOOL), kind=ir.StepKind.COND, label="go")
    w.step(4, 5, kind=ir.StepKind.SKIP, label="leave")
    st = b.code("setter", exit=2)
    st.step(0, 1, ir.Assign(go, c(True)), label="go := true")
    st.step(1, 2, ir.Assign(done, c(True)), label="done := true")
    b.thread("worker", "worker")
    b.thread("setter", "setter")
    b.eventually("finishes", g("done", BOOL))
    return b.build()


def test_liveness_with_por_in_one_pass():
    s = _local_spinner()
    on = check(s, ExploreOptions(progress=False), model_name="ls", properties=["finishes", "deadlock"])
    off = check(s, ExploreOptions(por=False, progress=False), model_name="ls", properties=["finishes", "deadlock"])
    assert [p.verdict for p in on.properties] == [p.verdict for p in off.properties] == [Verdict.HOLDS] * 2
    assert on.stats.states < off.stats.states           # POR did reduce, liveness and all
    assert not any("separate" in n or "off in runs" in n for n in on.notes)


def test_liveness_with_por_finds_the_starving_lasso():
    import dataclasses
    s = _local_spinner()
    s = dataclasses.replace(s, threads=(s.threads[0], dataclasses.replace(s.threads[1], fair=False)))
    on = check(s, ExploreOptions(progress=False), model_name="ls", properties=["finishes"])
    off = check(s, ExploreOptions(por=False, progress=False), model_name="ls", properties=["finishes"])
    assert on.properties[0].verdict is off.properties[0].verdict is Verdict.VIOLATED
    assert _lasso_ok(on.properties[0])
    assert on.stats.states < off.stats.states
