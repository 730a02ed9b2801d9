"""The generated expand (Search._bind_fused) does exactly what Search._expand does: same states
in the same order, same parents, depths, preemption counts, shortest-path counts, verdicts and
counterexamples, in every configuration it takes (BFS/DFS, symmetry, invariant cache or not)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from checker.explore import ExploreOptions, Strategy
from checker.explore import search as search_mod
from checker.explore.check import Explorer
from checker.lang import load_spec
from irbuild import abba, fork_exit, racy_counter_assert
from randsys import systems
from test_core import _counter_loop
from test_liveness import lost_wakeup
from test_reductions import _pool_model

EXAMPLES = Path(__file__).resolve().parents[2] / "spec" / "examples"


_BIND_FUSED = search_mod.Search._bind_fused


def _run(system, opts, props, fuse, monkeypatch):
    monkeypatch.setattr(search_mod, "FUSE", fuse)
    # every (index, state) an expansion hands the search to expand next, in order: the fingerprint
    # store keeps no states to compare afterwards
    handed = []
    bind = _BIND_FUSED

    def recording(self):
        bind(self)
        exp = self._exp

        def rec(search, idx, state):
            out = exp(search, idx, state)
            handed.append((idx, out))
            return out
        self._exp = rec
        self._fused = exp is not search_mod.Search._expand
    monkeypatch.setattr(search_mod.Search, "_bind_fused", recording)
    ex = Explorer(system, opts, props, "m")
    r = ex.run()
    s = ex.search
    arrays = tuple(list(a) for a in (s.parent, s.via_tid, s.via_step, s.depth, s.pre, s.last)) + (list(s.count),)
    states = [] if opts.fingerprint else [s.store.get(i) for i in range(len(s.store))]
    verdicts = [(p.name, p.verdict, p.trace_length, p.message) for p in r.properties]
    fp = (s.store.n, s.store.hasher.computed[0], list(s.store.table)) if opts.fingerprint else None
    return s._fused, (r.stats.states, r.stats.transitions, s.max_depth, r.stop, arrays, states, handed, verdicts,
                      r.notes, fp)


def _same(system, monkeypatch, props=None, **kw):
    """Both paths agree; returns whether the fused one ran (it does unless the run needs transitions)."""
    props = props or [p for p, k in system.property_names.items() if k not in ("leadsto", "race", "lock_order")]
    opts = ExploreOptions(progress=False, shorten=False, **{"por": False, **kw})
    fused, a = _run(system, opts, props, True, monkeypatch)
    plain, b = _run(system, opts, props, False, monkeypatch)
    assert not plain
    assert a == b
    return fused


@pytest.mark.parametrize("fingerprint", [False, True], ids=["compact", "fp"])
@pytest.mark.parametrize("strategy", [Strategy.BFS, Strategy.DFS])
@pytest.mark.parametrize("symmetry", [False, True])
def test_fused_expand_matches_expand(strategy, symmetry, fingerprint, monkeypatch):
    systems_ = [fork_exit(2, 3, 6), racy_counter_assert(2), abba(), lost_wakeup(), _counter_loop(2, 4),
                _pool_model()] + [load_spec(str(f), {}) for f in sorted(EXAMPLES.glob("*.fk"))]
    for m in systems_:
        assert _same(m, monkeypatch, strategy=strategy, symmetry=symmetry, fingerprint=fingerprint)


def test_fused_fingerprint_expand_with_small_cache(monkeypatch):
    """The fingerprint store's value cache starts over many times during the run (the parent's
    components are then found again by value or hashed again): still the same search."""
    from checker.explore import fingerprint as fp_mod
    monkeypatch.setattr(fp_mod.StateHasher.__init__, "__defaults__", (8,))
    m = fork_exit(2, 3, 6)
    props = [p for p, k in m.property_names.items() if k not in ("leadsto", "race", "lock_order")]
    for sym in (False, True):
        opts = ExploreOptions(progress=False, shorten=False, por=False, fingerprint=True, symmetry=sym)
        fused, a = _run(m, opts, props, True, monkeypatch)
        plain, b = _run(m, opts, props, False, monkeypatch)
        assert fused and not plain
        # all but the digests computed (the collision note): the two paths meet the cache's restarts
        # at other moments, so either may hash a component again that the other still had
        assert a[:8] == b[:8] and (a[9][0], a[9][2]) == (b[9][0], b[9][2])
        assert a[9][1] > 8 and b[9][1] > 8


@pytest.mark.parametrize("fingerprint", [False, True], ids=["compact", "fp"])
def test_fused_expand_with_stop_first_and_limits(fingerprint, monkeypatch):
    m = fork_exit(2, 3, 6)
    assert _same(m, monkeypatch, stop_first=True, fingerprint=fingerprint)
    assert _same(m, monkeypatch, max_states=5000, fingerprint=fingerprint)
    assert _same(m, monkeypatch, max_depth=9, fingerprint=fingerprint)


def test_fused_expand_only_where_nothing_needs_transitions(monkeypatch):
    m = fork_exit(2, 3, 6)
    assert not _same(m, monkeypatch, props=["races", "pid_unique"])       # an observer
    assert not _same(m, monkeypatch, por=True)                            # POR's ample sets
    assert not _same(m, monkeypatch, compact=False)                       # the dict store
    assert not _same(m, monkeypatch, compiled=False)                      # the interpreter
    # an invariant that reads a thread: checked on every new state, no cache
    assert _same(_counter_loop(2, 4), monkeypatch)


# each example sets FUSE itself, so the shared monkeypatch is fine
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(systems())
def test_fused_expand_matches_expand_random(monkeypatch, sysm):
    _same(sysm, monkeypatch)
    _same(sysm, monkeypatch, strategy=Strategy.DFS, symmetry=False)
    _same(sysm, monkeypatch, fingerprint=True)


def test_relative_encode_matches_encode():
    """The fused expand's packing against the parent gives encode()'s key, for successors,
    for states whose components moved to other positions, and for unrelated states."""
    from checker.explore.store import StateCodec
    from checker.semantics import Semantics
    for m in (fork_exit(3, 2, 4), _pool_model(), lost_wakeup()):
        sem = Semantics(m)
        init = sem.initial_state()
        seen, todo = {init}, [init]
        while todo and len(seen) < 500:
            for t in sem.successors(todo.pop()):
                if not t.violations and t.state not in seen:
                    seen.add(t.state)
                    todo.append(t.state)
        states = sorted(seen, key=repr)
        for moved in (False, True):
            codec = StateCodec(m)
            enc = codec.fn_with_parts("def enc(state, pkey, s):\n    #PARENT\n    #RELATIVE\n    return key\n",
                                      "enc", codec.relative_encode(moved))
            for k, st in enumerate(states):
                pkey = codec.encode(st)
                parent = codec.decode(pkey)
                swapped = (st[0], st[1], st[2][::-1])     # the parent's threads, other positions
                for s in [t.state for t in sem.successors(st) if not t.violations] + [swapped, states[k - 1]]:
                    assert enc(parent, pkey, s) == codec.encode(s)


def test_blocked_acquisitions_agree_with_interpreter():
    """The compiled steps' test for an acquisition that would block (taken before copying) agrees
    with the interpreter: blocked, taken, recursion and own-shared violations, spin locks held."""
    from irbuild import SysBuilder, mutex, spin, sx
    from checker import ir
    from test_compiled import _agree
    for with_spin in (False, True):
        b = SysBuilder("locks")
        m, r, x = b.glob("m", mutex("m")), b.glob("r", mutex("r", recursive=True)), b.glob("x", sx("x"))
        S, X = ir.LockMode.SHARED, ir.LockMode.EXCLUSIVE
        a = b.code("a", exit=5)
        a.step(0, 1, ir.Acquire(x, X)).step(1, 2, ir.Acquire(m)).step(2, 3, ir.Acquire(m))
        a.step(2, 4, ir.Release(m)).step(4, 5, ir.Release(x, X)).step(1, 5, ir.Acquire(x, X))
        c = b.code("c", exit=7)
        c.step(0, 1, ir.Acquire(x, S)).step(1, 2, ir.Acquire(x, S)).step(1, 3, ir.Release(x, S))
        c.step(1, 7, ir.Acquire(x, X))
        c.step(3, 4, ir.Acquire(r)).step(4, 5, ir.Acquire(r)).step(5, 6, ir.Release(r)).step(6, 7, ir.Release(r))
        if with_spin:
            sp = b.glob("sp", spin("sp"))
            d = b.code("d", exit=4)
            d.step(0, 1, ir.Acquire(sp)).step(1, 2, ir.Acquire(m)).step(1, 3, ir.Release(sp))
            d.step(3, 4, ir.Acquire(sp))
            b.thread("d", "d")
        b.family("a", "a", 2)
        b.thread("c0", "c")
        b.thread("c1", "c")
        _agree(b.build(), limit=5000)


def test_tracking_engine_compiles_only_what_it_runs():
    """With access tracking a non-local step runs only its tracked function, so its plain one is
    never compiled (fork1 models compile hundreds of steps per run); local steps keep the plain one."""
    from checker.explore.compiled import compile_system
    from checker.semantics import Semantics
    m = fork_exit(2, 2, 3)
    comp = compile_system(m, tracking=True)
    sem = Semantics(m)
    todo, seen = [sem.initial_state()], set()
    while todo:
        st = todo.pop()
        if st in seen:
            continue
        seen.add(st)
        todo += [t.state for t in comp.successors(st) if not t.violations]
    steps = {s.id: s for s in m.steps}
    compiled = set(comp._fn_cache)
    assert any(tr for _, tr, _ in compiled)
    assert all(tr != steps[sid].is_local for sid, tr, _ in compiled), compiled
