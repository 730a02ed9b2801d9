"""State stores: exact codec, same state counts in every store, bytes per state, collision report."""

from __future__ import annotations

from hypothesis import given

from checker.explore import ExploreOptions, check
from checker.explore.store import CompactStore, FingerprintStore, StateCodec
from checker.semantics import Semantics
from randsys import systems
from test_core import _counter_loop
from test_liveness import lost_wakeup
from test_reductions import _pool_model


def _reachable(sysm, limit=2000):
    sem = Semantics(sysm)
    init = sem.initial_state()
    seen, todo = {init}, [init]
    while todo and len(seen) < limit:
        for t in sem.successors(todo.pop()):
            if not t.violations and t.state not in seen:
                seen.add(t.state)
                todo.append(t.state)
    return seen


def test_codec_roundtrip_on_examples():
    for m in (_pool_model(), lost_wakeup(), _counter_loop(2, 3)):
        codec = StateCodec(m)
        for s in _reachable(m):
            b = codec.encode(s)
            assert len(b) == codec.width
            assert codec.decode(b) == s


@given(systems())
def test_codec_roundtrip_random(sysm):
    codec = StateCodec(sysm)
    for s in _reachable(sysm, 300):
        assert codec.decode(codec.encode(s)) == s


def test_compact_store_grows_and_finds():
    m = _pool_model()
    st = CompactStore(StateCodec(m))
    states = sorted(_reachable(m), key=repr)
    for i, s in enumerate(states):
        assert st.add(s) == (i, True)
    for i, s in enumerate(states):
        assert st.add(s) == (i, False) and s in st and st.get(i) == s
    assert len(st) == len(states) and len(st.table) > 4096 // 2


def test_every_store_gives_the_same_counts_and_verdicts():
    m = _counter_loop(3, 8)
    props = ["small", "deadlock", "runtime"]
    rs = [check(m, ExploreOptions(progress=False, symmetry=False, por=False, compact=c, fingerprint=f),
                model_name="loop", properties=props) for c, f in ((False, False), (True, False), (False, True))]
    assert len({r.stats.states for r in rs}) == 1
    assert len({tuple(p.verdict for p in r.properties) for r in rs}) == 1
    compact, fp = rs[1], rs[2]
    # store bytes include the interned component tables
    assert compact.stats.store_bytes / compact.stats.states <= 100
    assert any("collision" in n for n in fp.notes)


def test_fingerprint_table_at_most_16_bytes_per_state():
    m = _counter_loop(3, 8)
    st = FingerprintStore(StateCodec(m))
    for s in _reachable(m, 100_000):
        st.add(s)
    # past the first table (4096 slots) the load stays in [1/2, 3/4]
    assert len(st) > 4096
    assert st.table_bytes() / len(st) <= 16


def test_fingerprint_mode_still_gives_traces():
    from irbuild import racy_counter_assert
    r = check(racy_counter_assert(2), ExploreOptions(progress=False, fingerprint=True), model_name="r",
              properties=["all_counted"])
    assert r.properties[0].trace_length == 7


def test_component_bytes_count_shared_parts_once():
    from checker.explore.store import _deep_distinct
    import sys
    inner = (1, 2, 3)
    a, b = (inner, (4,)), (inner, (5,))
    once = sys.getsizeof(a) + sys.getsizeof(b) + sys.getsizeof(inner) + 2 * sys.getsizeof((4,))
    assert _deep_distinct([a, b]) == once
    assert _deep_distinct([a, a]) == sys.getsizeof(a) + sys.getsizeof(inner) + sys.getsizeof((4,))


def test_codec_cache_follows_changed_components():
    # the per-position last-object cache must not return a stale id when a position changes
    m = _pool_model()
    codec = StateCodec(m)
    states = sorted(_reachable(m), key=repr)
    keys = [codec.encode(s) for s in states]
    for s, k in zip(reversed(states), reversed(keys)):
        assert codec.encode(s) == k and codec.decode(k) == s
    assert len(set(keys)) == len(states)


def test_search_restores_the_gc_threshold(monkeypatch):
    import gc
    from checker.explore import search
    before = gc.get_threshold()
    seen = []
    real = gc.set_threshold
    monkeypatch.setattr(gc, "set_threshold", lambda *a: (seen.append(a), real(*a)))
    r = check(_counter_loop(3, 8), ExploreOptions(progress=False, symmetry=False, por=False), model_name="loop",
              properties=["small"])
    assert r.stats.states > 1024        # long enough to raise it
    assert seen[0][0] == max(before[0], search.GC_YOUNG) and seen[-1] == before
    assert gc.get_threshold() == before


def test_fingerprint_store_finds_duplicates_across_growth():
    m = _counter_loop(3, 8)
    codec = StateCodec(m)
    st = FingerprintStore(codec)
    states = sorted(_reachable(m, 20_000), key=repr)
    assert len(states) > 4096 * 0.75 * 1.5     # grows twice (at 3/4 load, by half)
    for s in states:
        assert st.add(s)[1] is True
    sizes = st.size
    assert sizes > 4096 * 1.5
    for s in states:
        assert st.add(s) == (-1, False)     # found by add (inlined probe) and by add_key alike
        assert st.add_key(codec.encode(s)) == (-1, False) and s in st
    assert len(st) == len(states) and st.size == sizes
    assert st.n <= st.size * FingerprintStore.MAX_LOAD


def test_fingerprint_collision_bound():
    st = FingerprintStore(StateCodec(_counter_loop(2, 3)))
    st.n = 2 ** 32
    assert 0.49 < st.collision_probability() < 0.51   # n^2/2 / 2^64
    st.n = 1_000_000
    assert st.collision_probability() < 1e-7


def test_stores_and_codec_are_freed_without_a_collection():
    # no reference cycle through the generated functions: a finished run's store goes at once
    import gc
    import weakref
    m = _pool_model()
    gc.disable()
    try:
        for make in (CompactStore, FingerprintStore):
            st = make(StateCodec(m))
            for s in _reachable(m):
                st.add(s)
            refs = [weakref.ref(st), weakref.ref(st.codec)]
            del st
            assert [r() for r in refs] == [None, None]
    finally:
        gc.enable()
