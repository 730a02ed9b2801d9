"""State stores: exact codec, same state counts in every store, bytes per state, collision report."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from checker.explore import ExploreOptions, check
from checker.explore.fingerprint import StateHasher
from checker.explore.store import CompactStore, FingerprintStore, StateCodec
from checker.results import Verdict
from checker.semantics import Semantics
from irbuild import fork_exit
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
def test_fingerprint_keys_random(sysm):
    """Distinct reachable states get distinct keys and equal ones (rebuilt as other objects)
    equal keys, through a cache that starts over every few components."""
    import marshal
    h = StateHasher(sysm, cache_max=4)
    states = list(_reachable(sysm, 300))
    keys = [h.encode(s) for s in states]
    assert len(set(keys)) == len(states)
    for s, k in zip(reversed(states), reversed(keys)):
        assert h.encode(marshal.loads(marshal.dumps(s))) == k


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


@pytest.mark.parametrize("symmetry", [False, True])
def test_every_store_gives_the_same_counts_and_verdicts_with_por(symmetry):
    """With POR the ample function packs candidate successors before the search adds them, so a
    store whose interned() is the state it last packed (fingerprints) must not queue another
    candidate in place of the one added: that explored 20 of fork_exit's 22,955 states and
    reported pid_unique as holding."""
    m = fork_exit(2, 3, 6)
    rs = [check(m, ExploreOptions(progress=False, symmetry=symmetry, por=True, shorten=False, compact=c,
                                  fingerprint=f), model_name="fe")
          for c, f in ((False, False), (True, False), (False, True))]
    assert len({r.stats.states for r in rs}) == 1 and rs[0].stats.states > 1000
    assert len({tuple((p.name, p.verdict) for p in r.properties) for r in rs}) == 1
    assert next(p for p in rs[2].properties if p.name == "pid_unique").verdict is Verdict.VIOLATED


@settings(max_examples=60, deadline=None)
@given(systems(local_loops=True))
def test_every_store_gives_the_same_counts_with_por_random(sysm):
    # local steps and loops: what POR reduces (ample sets of several steps, the cycle proviso)
    props = [p for p, k in sysm.property_names.items() if k != "leadsto"]
    rs = [check(sysm, ExploreOptions(progress=False, por=True, shorten=False, compact=c, fingerprint=f),
                model_name="r", properties=props) for c, f in ((True, False), (False, True))]
    assert rs[0].stats.states == rs[1].stats.states
    assert [(p.name, p.verdict) for p in rs[0].properties] == [(p.name, p.verdict) for p in rs[1].properties]


def test_fingerprint_table_at_most_16_bytes_per_state():
    from irbuild import fork_exit
    m = fork_exit(2, 3, 6)
    hasher = StateHasher(m, cache_max=64)
    st = FingerprintStore(hasher)
    for i, s in enumerate(_reachable(m, 100_000)):
        st.add(s)
        if len(st) > 4096:
            # past the first table (4096 slots) the load stays in [0.6, 3/4]
            assert st.table_bytes() / len(st) <= 8 / 0.6 <= 16
    assert len(st) > 3 * 4096          # 13,182 states: the table grew 4 times
    # nothing else grows with the states or the components: the value cache is bounded
    assert not hasattr(st, "codec") and len(hasher.cache) <= 64 and len(hasher.byid) <= 64
    assert hasher.computed[0] > 64        # it was cleared and refilled
    assert st.nbytes() - st.table_bytes() == hasher.nbytes()


def test_fingerprint_keys_equal_for_equal_values():
    m = _pool_model()
    a, b = StateHasher(m), StateHasher(m, cache_max=2)
    states = sorted(_reachable(m), key=repr)
    keys = [a.encode(s) for s in states]
    assert len(set(keys)) == len(states)
    # copies (other objects: marshal builds new tuples), in another order, through a cache cleared
    # all the time
    import marshal
    for s, k in zip(reversed(states), reversed(keys)):
        c = marshal.loads(marshal.dumps(s))
        assert c == s and c[2] is not s[2]
        assert b.encode(c) == k
    # True == 1 in a state, as the full-state stores compare them
    g, P, T = states[0]
    assert len(g) == 1
    assert a.encode(((1,), P, T)) == b.encode(((True,), P, T)) != a.encode(((2,), P, T))


def test_fingerprint_keys_are_process_independent(repo):
    """The key (so the fingerprint and a --workers owner) of a state is the same in another
    interpreter with another hash seed (hash(None) is an address; str hashes are seeded)."""
    import os
    import subprocess
    import sys
    src = ("import sys\n"
           "sys.path.insert(0, sys.argv[1])\n"
           "from checker.model import load_model\n"
           "from checker.explore.compiled import compile_system\n"
           "from checker.explore.fingerprint import StateHasher\n"
           "from checker.explore.store import fingerprint\n"
           "m = load_model(sys.argv[1] + '/models/fork1_2001.toml').system\n"
           "eng, h = compile_system(m), StateHasher(m)\n"
           "todo, seen, out = [eng.initial_state()], set(), []\n"
           "while todo and len(out) < 300:\n"
           "    s = todo.pop(0)\n"
           "    if s in seen:\n"
           "        continue\n"
           "    seen.add(s)\n"
           "    out.append(fingerprint(h.encode(s)))\n"
           "    todo += [t.state for t in eng.successors(s) if not t.violations]\n"
           "print('None' in repr(seen), ' '.join(map(str, out)))\n")
    runs = []
    for seed in ("1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run([sys.executable, "-c", src, str(repo)], env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        runs.append(r.stdout.split(" ", 1))
    assert runs[0][0] == "True"           # the states hold None, whose hash() differs per process
    assert runs[0][1] == runs[1][1] and len(runs[0][1].split()) == 300


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
    codec = StateHasher(m)
    st = FingerprintStore(codec)
    states = sorted(_reachable(m, 20_000), key=repr)
    g = FingerprintStore.GROWTH
    assert len(states) > 4096 * 0.75 * g * g     # grows at least twice (at 3/4 load)
    for s in states:
        assert st.add(s)[1] is True
    sizes = st.size
    assert sizes > 4096 * g * g
    for s in states:
        assert st.add(s) == (-1, False)     # found by add (inlined probe) and by add_key alike
        assert st.add_key(codec.encode(s)) == (-1, False) and s in st
    assert len(st) == len(states) and st.size == sizes
    assert st.n <= st.size * FingerprintStore.MAX_LOAD


def test_fingerprint_collision_bound():
    st = FingerprintStore(StateHasher(_counter_loop(2, 3)))
    st.n = 2 ** 32
    assert 0.49 < st.collision_probability() < 0.51   # n^2/2 / 2^64
    st.n = 1_000_000
    assert st.collision_probability() < 1e-7
    # two distinct components with one 64-bit digest would merge states too: counted
    st.n, st.hasher.computed[0] = 0, 2 ** 32
    assert 0.49 < st.collision_probability() < 0.51


def test_stores_and_codec_are_freed_without_a_collection():
    # no reference cycle through the generated functions: a finished run's store goes at once
    import gc
    import weakref
    m = _pool_model()
    gc.disable()
    try:
        for make, helper in ((CompactStore, StateCodec), (FingerprintStore, StateHasher)):
            st = make(helper(m))
            for s in _reachable(m):
                st.add(s)
            refs = [weakref.ref(st), weakref.ref(getattr(st, "codec", None) or st.hasher)]
            del st
            assert [r() for r in refs] == [None, None]
    finally:
        gc.enable()
