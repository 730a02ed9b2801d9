"""--workers N: the same reachable states and verdicts as one process."""

from __future__ import annotations

import pytest

from checker.explore import ExploreOptions, check
from checker.results import StopReason, Verdict
from irbuild import abba, fork_exit, racy_counter_assert
from test_core import _counter_loop

SAFE = ["deadlock", "runtime", "witness"]


@pytest.mark.parametrize("mk,props", [
    (lambda: racy_counter_assert(3), ["all_counted"] + SAFE),
    (abba, SAFE),
    (lambda: _counter_loop(3, 4), ["small"] + SAFE),
    (lambda: fork_exit(2, 2, 4), ["nprocs_exact", "pid_unique"] + SAFE),
])
@pytest.mark.parametrize("sym", [False, True])
def test_workers_same_counts_and_verdicts(mk, props, sym):
    m = mk()
    one = check(m, ExploreOptions(symmetry=sym, por=False, progress=False), model_name="m", properties=props)
    two = check(m, ExploreOptions(symmetry=sym, por=False, workers=2, progress=False), model_name="m",
                properties=props)
    assert [(p.name, p.verdict) for p in one.properties] == [(p.name, p.verdict) for p in two.properties]
    if one.stop is StopReason.FINISHED:
        assert one.stats.states == two.stats.states and one.stats.transitions == two.stats.transitions
    for a, b in zip(one.properties, two.properties):
        if a.verdict is Verdict.VIOLATED:
            assert a.trace_length == b.trace_length      # both shortest


def test_workers_with_sequential_analyses_merged():
    r = check(abba(), ExploreOptions(workers=2, progress=False), model_name="abba")
    v = {p.name: p.verdict for p in r.properties}
    assert v["deadlock"] is Verdict.VIOLATED and v["lock_order"] is Verdict.VIOLATED
    assert any("separate one process run" in n for n in r.notes)


def _counts(r):
    return (r.stats.states, r.stats.transitions, r.stats.depth, r.stop,
            [(p.name, p.verdict, p.trace_length) for p in r.properties])


@pytest.mark.parametrize("store", ["compact", "dict", "fingerprint"])
@pytest.mark.parametrize("mk,props", [
    (lambda: racy_counter_assert(3), ["all_counted"] + SAFE),
    (lambda: fork_exit(2, 3, 6), ["nprocs_exact", "pid_unique"] + SAFE),
    (lambda: _counter_loop(3, 4), ["small"] + SAFE),
])
def test_workers_1_2_3_pin_the_same_counts(mk, props, store):
    """States, transitions, depth, verdicts and counterexample lengths do not depend on the
    number of workers, in every store (fork_exit: 13,182 states, half cross between workers)."""
    m = mk()
    opts = dict(por=False, progress=False, compact=store == "compact", fingerprint=store == "fingerprint")
    runs = [_counts(check(m, ExploreOptions(workers=w, **opts), model_name="m", properties=props))
            for w in (1, 2, 3)]
    assert runs[0] == runs[1] == runs[2]
    assert runs[0][3] in (StopReason.FINISHED, StopReason.VIOLATION)


def test_fork_exit_count_pinned():
    r = check(fork_exit(2, 3, 6), ExploreOptions(por=False, workers=2, progress=False), model_name="m",
              properties=SAFE)
    assert (r.stats.states, r.stop) == (13182, StopReason.FINISHED)


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_fork1_2001_to_a_depth(repo, workers):
    """The real model, cut at depth 14 (exact counts: a depth bound stops every search at a
    level's end, a state bound does not)."""
    from checker.model import load_model
    m = load_model(str(repo / "models" / "fork1_2001.toml"))
    props = ["pid_unique", "nprocs_bounded", "runtime", "witness", "deadlock"]
    one = check(m.system, ExploreOptions(por=False, max_depth=14, progress=False), model_name="m", properties=props)
    par = check(m.system, ExploreOptions(por=False, max_depth=14, workers=workers, progress=False), model_name="m",
                properties=props)
    assert one.stop is StopReason.DEPTH_LIMIT
    assert _counts(one) == _counts(par)


def test_owner_is_the_same_from_a_packed_state_and_from_its_value():
    """Workers compute owners from their own component ids; every worker (and owner_of on the
    state itself) must agree, or a state would be stored twice. An equal component made of
    bools instead of ints hashes the same."""
    from checker.explore.compiled import compile_system
    from checker.explore.parallel import _Worker, component_hash, owner_of
    m = fork_exit(2, 3, 6)
    eng = compile_system(m)
    ws = [_Worker(w, 3, m, ExploreOptions(por=False), SAFE) for w in range(3)]
    seen, todo = {eng.initial_state()}, [eng.initial_state()]
    while todo and len(seen) < 2000:
        for t in eng.successors(todo.pop()):
            if not t.violations and t.state not in seen:
                seen.add(t.state)
                todo.append(t.state)
    owners = {owner_of(s, 3) for s in seen}
    assert owners == {0, 1, 2}
    for s in list(seen)[::7]:
        assert {wk.owner(wk.codec.encode(s)) for wk in ws} == {owner_of(s, 3)}
    assert component_hash((1, (0, None), True)) == component_hash((True, (False, None), 1))
    assert component_hash((1, 2)) != component_hash((2, 1))


def test_a_worker_that_dies_is_an_error_not_a_hang(monkeypatch):
    """The other workers hold copies of a worker's pipe, so its death shows as no EOF: the
    coordinator asks the process instead of waiting forever."""
    from checker.diagnostics import ForkcheckError
    from checker.explore import parallel

    real = parallel._Worker.expand

    def dies(self, *args):
        if self.w == 1:
            raise SystemExit(3)     # quietly, as a worker killed mid-round would
        return real(self, *args)

    monkeypatch.setattr(parallel._Worker, "expand", dies)
    with pytest.raises(ForkcheckError, match="worker 1 ended unexpectedly .exit code 3"):
        check(fork_exit(2, 2, 4), ExploreOptions(por=False, workers=2, progress=False), model_name="m",
              properties=SAFE)


@pytest.mark.parametrize("mk,props", [
    (lambda: racy_counter_assert(3), ["all_counted"] + SAFE),
    (lambda: fork_exit(2, 3, 6), ["nprocs_exact", "pid_unique"] + SAFE),
    (lambda: _counter_loop(3, 4), ["small"] + SAFE),
    (abba, SAFE),
])
@pytest.mark.parametrize("workers", [1, 2])
def test_fingerprint_mode_same_as_full_states(mk, props, workers):
    """Fingerprints of the states' values: the same counts, verdicts and trace lengths as the
    compact store, in one process and with workers (where states cross marshalled)."""
    m = mk()
    full, fp = (_counts(check(m, ExploreOptions(por=False, progress=False, workers=workers, fingerprint=f),
                              model_name="m", properties=props)) for f in (False, True))
    assert full == fp


def test_workers_fingerprint_collision_note():
    """--workers in fingerprint mode reports the chance that a collision hid a state: the sum
    over the workers' tables (each state's owner is picked from its fingerprint)."""
    import json
    from checker.explore.store import collision_bound
    m = fork_exit(2, 3, 6)
    r = check(m, ExploreOptions(por=False, progress=False, workers=2, fingerprint=True), model_name="m",
              properties=SAFE)
    assert r.stats.states == 13182
    note = [n for n in r.notes if "collision" in n]
    assert len(note) == 1 and "summed over the 2 workers' tables" in note[0]
    p = float(note[0].split("<= ")[1].split(" ")[0])
    # below one table's bound for all the states (the tables split them), above half of it
    whole = collision_bound(13182, 0)
    assert whole / 2 * 0.9 < p <= whole
    assert note[0] in json.loads(json.dumps(r.to_json()))["notes"]
    one = check(m, ExploreOptions(por=False, progress=False, fingerprint=True), model_name="m", properties=SAFE)
    assert any("collision" in n and "13,182 64-bit fingerprints" in n for n in one.notes)


def test_workers_fingerprint_note_per_run():
    """With --workers, lock order runs in one process beside the workers: each run's collision
    bound is noted, the separate run's marked with its properties."""
    r = check(abba(), ExploreOptions(progress=False, workers=2, fingerprint=True), model_name="abba",
              properties=["deadlock", "lock_order"])
    notes = [n for n in r.notes if "collision" in n]
    assert len(notes) == 2
    assert "summed over the 2 workers' tables" in notes[0]
    assert notes[1].startswith("lock_order: fingerprint mode: probability")


def _count_value_lookups(hasher):
    """Make the hasher count its by-value cache lookups (the generated code calls G): a
    one-element list that the count goes to."""
    looked = [0]
    get = hasher._encode_ns["G"]

    def counting(x):
        looked[0] += 1
        return get(x)
    hasher._encode_ns["G"] = counting
    return looked


def test_receiver_adopts_states_by_their_digests():
    """A state another worker sent (fresh objects from marshal, with its sender's key) is interned
    by the digests in the key: the same key and interned state as hashing it, no digest computed
    for a component the receiver has (by digest), its value never hashed; with a cache that
    starts over all the time too."""
    import marshal
    from checker.explore.fingerprint import StateHasher
    from checker.semantics import Semantics
    from test_store import _reachable
    m = fork_exit(2, 3, 6)
    states = list(_reachable(m, 3000))
    sender = StateHasher(m)
    for cache_max in (1024, 4):
        recv = StateHasher(m, cache_max=cache_max)
        looked = _count_value_lookups(recv)
        for s in states:
            key = sender.encode(s)
            copy = marshal.loads(marshal.dumps(s))
            recv.adopt(copy, key)
            got = recv.interned()
            assert got == s and sender.encode(got) == key
        assert looked[0] == 0 and recv.computed[0] == 0
        assert len(recv.cache) <= cache_max and len(recv.bydig) <= cache_max
    assert Semantics(m).initial_state() in states


def test_hasher_finds_a_new_shared_component_by_identity():
    """Successors share a changed component as one new object, equal to a cached one but not it:
    the hasher looks its value up once while it stays at its position, not once per state."""
    from checker.explore.fingerprint import StateHasher
    from checker.semantics import Semantics
    m = fork_exit(2, 3, 6)
    h = StateHasher(m)
    s = Semantics(m).initial_state()
    h.encode(s)
    g, P, T = s
    t0 = tuple(list(T[0]))                # equal to T[0], another object (a step's copy)
    assert t0 == T[0] and t0 is not T[0]
    looked = _count_value_lookups(h)
    keys = {h.encode((g, P, (t0, *T[1:]))) for _ in range(5)}
    assert looked[0] == 1 and keys == {h.encode(s)}
    assert h.interned()[2][0] is T[0]      # rebuilt from the cached object


def test_fingerprint_workers_ship_only_what_the_owner_lacks():
    """Fingerprint mode: a round sends the fingerprints first, the owner answers which it has not
    stored, and only those states cross: with 2 workers (one sender per owner) every state shipped
    is new to its owner, none it lacked is held back, and the states are those of one process."""
    from array import array
    from checker.explore import parallel as par
    m = fork_exit(2, 3, 6)
    props = ["nprocs_exact", "pid_unique"] + SAFE
    opts = ExploreOptions(por=False, workers=2, fingerprint=True, progress=False)
    ws = [par._Worker(w, 2, m, opts, props) for w in range(2)]
    states = sum(w.init()[0] for w in ws)
    offered = shipped = 0
    while any(w.frontier for w in ws):
        outs = []
        for w in ws:
            r = w.expand(True)
            outs.append(r[0])
            states += r[5]
        masks = [w.probe([o[d] for o in outs]) for d, w in enumerate(ws)]
        for d, w in enumerate(ws):
            for s, mask in enumerate(masks[d]):
                if mask is None:
                    continue
                fps = array("Q")
                fps.frombytes(outs[s][d])
                assert len(mask) == len(fps) and all(b == (not w.store.has_fp(fp)) for b, fp in zip(mask, fps))
                offered += len(fps)
        sent = [w.ship([masks[o][s] for o in range(2)]) for s, w in enumerate(ws)]
        for d, w in enumerate(ws):
            parts = [sent[s][d] for s in range(2)]
            n = sum(len(p[0]) // 8 for p in parts if p is not None)
            new, _ = w.insert(parts)
            assert new == n
            shipped += n
            states += new
    one = check(m, ExploreOptions(por=False, progress=False), model_name="m", properties=props)
    assert states == one.stats.states
    assert 0 < shipped < offered        # some were seen by their owner and did not cross


@pytest.mark.parametrize("threshold", [0, 1 << 60])
def test_fingerprint_workers_same_with_and_without_asking_first(threshold, monkeypatch):
    """Whether a round sends fingerprints first (probe/ship, from the second round on with a
    threshold of 0) or every state at once (never), the states, verdicts and traces are those of
    one process; the switch between the two is per round."""
    from checker.explore import parallel as par
    monkeypatch.setattr(par, "TWO_PHASE_BYTES", threshold)
    asked = []
    phase = par._phase

    def counting(conns, op, args):
        asked.append(op)
        return phase(conns, op, args)
    monkeypatch.setattr(par, "_phase", counting)
    m = fork_exit(2, 3, 6)
    props = ["nprocs_exact", "pid_unique"] + SAFE
    one = check(m, ExploreOptions(por=False, progress=False), model_name="m", properties=props)
    two = check(m, ExploreOptions(por=False, progress=False, workers=2, fingerprint=True), model_name="m",
                properties=props)
    assert one.stats.states == two.stats.states and one.stats.transitions == two.stats.transitions
    assert [(p.name, p.verdict, p.trace_length) for p in one.properties] == [
        (p.name, p.verdict, p.trace_length) for p in two.properties]
    assert bool(asked) == (threshold == 0)
