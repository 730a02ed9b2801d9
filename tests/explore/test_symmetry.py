"""The generated canonicaliser (`Symmetry.canon_perm`) returns exactly what the plain one
(`canon_perm_plain`) returns: the same representative and the same thread permutation.

States are reached by random walks, then their lock values are overwritten at random
(owners and shared-holder masks the walks rarely reach) and their threads and slots are
scrambled by a random permutation, so every path of the generated code (in order, threads
only, slots moved, locks renamed) is taken. The pinned state counts with symmetry on and off
are in test_reductions.py."""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checker import ir
from checker.explore.symmetry import Symmetry
from checker.semantics import Semantics
from tests.prove.crosscheck import random_run
from irbuild import SysBuilder, bin, c, g, gv, fork_exit
from randsys import systems
from test_reductions import _pool_model

ROOT = Path(__file__).resolve().parents[2]


def _two_families() -> ir.System:
    """Two families (2 and 3 threads) of different code, both taking an sx lock shared."""
    V = ir.IntT(0, 3)
    b = SysBuilder("twofam")
    b.glob("v", V, 0)
    lk = b.glob("lk", ir.LockT(ir.LockKind.SX, "lk"))
    for name in ("a", "b"):
        cb = b.code(name, exit=3)
        cb.step(0, 1, ir.Acquire(lk, ir.LockMode.SHARED), kind=ir.StepKind.LOCK, label="slock(lk)")
        cb.step(1, 2, ir.Assign(gv("v", V), bin(ir.BinOp.MOD, bin(ir.BinOp.ADD, g("v", V), c(1)), c(4))),
                label="v++")
        cb.step(2, 3, ir.Release(lk), kind=ir.StepKind.UNLOCK, label="sunlock(lk)")
    b.family("fa", "a", 2)
    b.family("fb", "b", 3)
    return b.build()


@lru_cache(maxsize=None)
def _model(name: str) -> ir.System:
    if name == "fork_exit":
        return fork_exit(3, 3, 6)
    if name == "pool_kept":
        return _pool_model(free=False)
    if name == "twofam":
        return _two_families()
    from checker.model import load_model
    return load_model(str(ROOT / "models" / f"{name}.toml")).system


MODELS = ["fork_exit", "pool_kept", "twofam", "fork1_2001", "fork1_randompid"]


def _scramble(sym: Symmetry, state, rnd: random.Random):
    """`state` with random lock values, then a random permutation of family threads and
    symmetric slots applied (by the plain `_apply`, refs and lock owners renamed)."""
    s = sym.system
    n = sym.nthreads

    def lock(t: ir.LockT, v):
        if rnd.random() < 0.5:
            return v
        owner = rnd.randrange(-1, n)
        other = rnd.randrange(0, 1 << n) if t.kind is ir.LockKind.SX else rnd.randrange(0, 3)
        return (owner, other)

    g_, pools, threads = state
    g_ = tuple(lock(v.type, x) if isinstance(v.type, ir.LockT) else x for v, x in zip(s.globals, g_))
    pools = tuple(tuple(None if o is None else tuple(lock(f.type, x) if isinstance(f.type, ir.LockT) else x
                                                      for f, x in zip(p.fields, o)) for o in slots)
                  for p, slots in zip(s.pools, pools))
    state = (g_, pools, threads)
    tperm, order = list(range(n)), list(range(n))
    for fam in sym.families:
        shuffled = fam[:]
        rnd.shuffle(shuffled)
        for new, old in zip(shuffled, fam):
            tperm[old], order[new] = new, old
    smap = {}
    for pi in sym.pools:
        size = len(pools[pi])
        alloc = [i for i, o in enumerate(pools[pi]) if o is not None]
        new = alloc[:]
        rnd.shuffle(new)                 # allocated slots among themselves: free ones stay put
        m = list(range(1, size + 1))
        for old, nw in zip(alloc, new):
            m[old] = nw + 1
        smap[s.pools[pi].name] = m
    return sym._apply(state, tperm, order, smap)


def _agree(sym: Symmetry, state) -> None:
    fast = sym.canon_perm(state)
    plain = sym.canon_perm_plain(state)
    assert fast == plain, (state, fast, plain)
    assert type(fast[1]) is tuple and all(type(x) is tuple for x in fast[0])
    if not (sym.pools and sym._slot_sort(state[1])):
        # only threads moved: globals and pools equal to the input's are the input's objects
        for new, old in zip(fast[0][:2], state[:2]):
            assert new is old or new != old


@settings(max_examples=40)
@given(st.sampled_from(MODELS), st.integers(0, 2**32 - 1), st.integers(0, 80))
def test_generated_canon_agrees_with_plain(name, seed, steps):
    sysm = _model(name)
    sym = Symmetry(sysm)
    assert sym.active
    rnd = random.Random(seed)
    for state in random_run(Semantics(sysm), rnd, steps):
        _agree(sym, state)
        _agree(sym, _scramble(sym, state, rnd))


@given(systems(family=True), st.integers(0, 2**32 - 1))
def test_generated_canon_agrees_on_random_systems(sysm, seed):
    sym = Symmetry(sysm)
    rnd = random.Random(seed)
    for state in random_run(Semantics(sysm), rnd, 30):
        _agree(sym, state)
        _agree(sym, _scramble(sym, state, rnd))


@pytest.mark.parametrize("name", ["pool_kept", "twofam", "fork_exit"])
def test_generated_canon_agrees_on_every_reachable_state(name):
    """Every reachable state, as is and scrambled; also that each path of the generated code
    was taken (so the comparison is not vacuous)."""
    sysm = _model(name)
    sym = Symmetry(sysm)
    sem = Semantics(sysm)
    rnd = random.Random(7)
    seen, todo = set(), [sem.initial_state()]
    kinds = set()
    while todo:
        state = todo.pop()
        if state in seen:
            continue
        seen.add(state)
        for x in (state, _scramble(sym, state, rnd)):
            _agree(sym, x)
            rep = sym.canon_perm(x)[0]
            smap = sym._slot_sort(x[1]) if sym.pools else {}
            kinds.add("slots" if smap else "in order" if rep is x else "threads")
        todo += [t.state for t in sem.successors(state) if not t.violations]
    want = {"in order", "threads"} | ({"slots"} if sym.pools else set())
    assert kinds == want, kinds


def test_canonicaliser_is_generated():
    sym = Symmetry(fork_exit(3, 3, 6))
    assert "RL_SX(g[3], tp)" in sym.canon_source      # only the lock owner is rewritten
    assert "SLOT_SORT" not in sym.canon_source        # no symmetric pool: no slot maps
    assert "SLOT_SORT" in Symmetry(_pool_model(free=False)).canon_source
