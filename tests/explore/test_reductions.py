"""Reductions never change a verdict; BFS and DFS agree; pinned state counts."""

from __future__ import annotations

import pytest
from hypothesis import given

from checker import ir
from checker.explore import ExploreOptions, Strategy, check
from irbuild import SysBuilder, abba, bin, c, g, gv, mutex, racy_counter_assert
from randsys import systems
from test_core import _counter_loop

SAFETY = ["deadlock", "witness", "lock_order", "races", "runtime", "inv"]


def run(sysm, props=None, **kw):
    kw.setdefault("progress", False)
    return check(sysm, ExploreOptions(**kw), model_name=sysm.name, properties=props)


def verdicts(r):
    return {p.name: p.verdict for p in r.properties}


@given(systems())
def test_bfs_dfs_agree(sysm):
    props = [p for p in sysm.property_names if p != "ev"]
    a = run(sysm, props, strategy=Strategy.BFS, symmetry=False, por=False)
    b = run(sysm, props, strategy=Strategy.DFS, symmetry=False, por=False)
    assert verdicts(a) == verdicts(b)
    assert a.stats.states == b.stats.states


@given(systems(family=True))
def test_symmetry_keeps_verdicts(sysm):
    a = run(sysm, symmetry=False, por=False)
    b = run(sysm, [p for p in sysm.property_names if p != "ev"], symmetry=True, por=False)
    va, vb = verdicts(a), verdicts(b)
    va.pop("ev")
    assert va == vb
    assert b.stats.states <= a.stats.states


@given(systems())
def test_por_keeps_verdicts(sysm):
    a = run(sysm, symmetry=False, por=False)
    b = run(sysm, symmetry=False, por=True)
    assert verdicts(a) == verdicts(b)
    assert b.stats.states <= a.stats.states


def _pool_model(free: bool = True) -> ir.System:
    """cpu[i]: p := alloc obj; p.f := 1; lock(p.m); live++, unlock(p.m); [free p]; p := null."""
    I2 = ir.IntT(0, 2)
    b = SysBuilder("pool")
    R = ir.RefT("obj")
    M = ir.LockT(ir.LockKind.MUTEX, "obj lock")
    b.pool("obj", 3, [ir.Field("f", I2, 0), ir.Field("m", M, None)])
    cnt = b.glob("live", ir.IntT(0, 3), 0)
    cb = b.code("w", exit=6)
    cb.local("p", R, 0)
    P = ir.LocalRead("p", R)
    cb.step(0, 1, ir.Alloc(ir.LocalVarRef("p", R), "obj"), kind=ir.StepKind.ALLOC, label="p := alloc obj")
    cb.step(1, 2, ir.Assign(ir.FieldRef(P, "obj", "f", I2), c(1)), label="p.f := 1")
    cb.step(2, 3, ir.Acquire(ir.FieldRef(P, "obj", "m", M)), kind=ir.StepKind.LOCK, label="lock(p.m)")
    cb.step(3, 4, ir.Assign(cnt, bin(ir.BinOp.ADD, g("live", ir.IntT(0, 3)), c(1))),
            ir.Release(ir.FieldRef(P, "obj", "m", M)), kind=ir.StepKind.ATOMIC, label="live++; unlock(p.m)")
    if free:
        cb.step(4, 5, ir.Free(P), kind=ir.StepKind.FREE, label="free p")
    else:
        cb.step(4, 5, kind=ir.StepKind.SKIP, label="keep p")
    cb.step(5, 6, ir.Assign(ir.LocalVarRef("p", R), ir.Const(0, R)), label="p := null")
    b.family("cpu", "w", 3)
    b.invariant("bounded", bin(ir.BinOp.LE, g("live", ir.IntT(0, 3)), c(3)))
    return b.build()


# (model, properties) -> exact state counts per mode: (plain, symmetry, por, both)
PINNED = {
    "racy3": (lambda: racy_counter_assert(3), ["all_counted", "deadlock", "runtime"]),
    "abba": (abba, ["deadlock", "runtime", "witness"]),
    "loop": (lambda: _counter_loop(3, 4), ["small", "deadlock"]),
    "pool": (_pool_model, ["bounded", "deadlock", "runtime", "witness"]),
    "pool_kept": (lambda: _pool_model(free=False), ["bounded", "deadlock", "runtime", "witness"]),
}
COUNTS = {
    "racy3": (808, 163, 808, 163),
    "abba": (19, 19, 19, 19),
    "loop": (764, 138, 764, 138),
    "pool": (1842, 329, 1630, 249),
    "pool_kept": (1478, 113, 1476, 65),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_pinned_counts_and_verdicts(name):
    mk, props = PINNED[name]
    sysm = mk()
    res = {}
    for mode, (sym, por) in zip(("plain", "sym", "por", "both"), ((False, False), (True, False), (False, True), (True, True))):
        r = run(sysm, props, symmetry=sym, por=por)
        res[mode] = r
    base = verdicts(res["plain"])
    for mode, r in res.items():
        assert verdicts(r) == base, mode
    got = tuple(res[m].stats.states for m in ("plain", "sym", "por", "both"))
    want = COUNTS[name]
    for g_, w in zip(got, want):
        if w is not None:
            assert g_ == w, (name, got)


def test_freed_pools_are_not_permuted():
    from checker.explore.symmetry import Symmetry
    assert Symmetry(_pool_model()).pools == []
    assert any("freed" in r for r in Symmetry(_pool_model()).reasons)
    assert Symmetry(_pool_model(free=False)).pools == [0]


def test_pool_symmetry_reduces_and_traces_replay():
    sysm = _pool_model(free=False)
    a = run(sysm, ["bounded", "races"], symmetry=False, por=False)
    b = run(sysm, ["bounded", "races"], symmetry=True, por=False)
    assert b.stats.states < a.stats.states
    assert verdicts(a) == verdicts(b)
