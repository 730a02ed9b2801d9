"""The unbounded pid-scan proofs, their mutants, and the concrete scan."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from checker.prove.pidscan import (
    SCAN_MUTATIONS, Entry, Mutation, Outcome, Status, Table, find_fork_bug, find_scan_bug, nonterminating_table,
    prove_cache_invariant, prove_loop_invariant, prove_nontermination, prove_pidscan, prove_termination, run_scan)


@pytest.mark.parametrize("fn", [prove_loop_invariant, prove_cache_invariant, prove_termination])
def test_seed_scan_obligations_proved_and_not_vacuous(fn):
    obs = fn()
    assert obs
    for o in obs:
        assert o.status is Status.PROVED, (o.name, o.model, o.reason)
        assert not o.vacuous, o.name


def test_every_scan_edge_is_covered():
    # one obligation per CFG edge of the scan (15) plus the postcondition
    names = [o.name for o in prove_loop_invariant()]
    assert len(names) == 16
    assert any("goto retry" in n for n in names) and any("wrap" in n for n in names)
    assert any("zombproc" in n for n in names)


def test_nontermination_when_all_ids_above_floor_are_used():
    obs = prove_nontermination()
    assert all(o.status is Status.PROVED for o in obs), [(o.name, o.status) for o in obs]
    t, run = nonterminating_table()
    assert run.outcome is Outcome.NONTERMINATING and run.loop_start is not None
    assert set(range(t.floor, t.pid_max)) <= t.used()
    # the cycle goes through `goto retry` and the wrap
    cycle = run.states[run.loop_start:]
    assert any(s.trypid == t.floor for s in cycle) and any(s.loc.name == "RETRY" for s in cycle)


def test_one_free_id_makes_the_same_table_terminate():
    t, _ = nonterminating_table()
    # free id 7 by making the last process its own session: (5, 6, 5)
    procs = t.allproc[:-1] + (Entry(5, 6, 5),)
    t2 = Table(procs, (), t.lastpid, t.pidchecked, t.pid_max, t.floor, 1)
    run = run_scan(t2)
    assert run.outcome is Outcome.RETURNED and run.trypid == 7


@pytest.mark.parametrize("m", sorted(SCAN_MUTATIONS, key=lambda m: m.value))
def test_scan_mutant_is_caught_with_a_concrete_table(m):
    rep = prove_pidscan([m], search=False)
    assert rep.failed, f"{m.value}: every obligation still proved"
    bug = find_scan_bug([m])
    assert bug is not None, m.value
    # the concrete (unmutated-code-independent) judge: the run replays and the id is bad
    run = run_scan(bug.table, [m])
    assert run.outcome is Outcome.RETURNED
    assert run.trypid in bug.table.used() or run.trypid >= bug.table.pid_max
    # and the seed's own scan on the same table is fine
    ok = run_scan(bug.table)
    assert ok.outcome is Outcome.RETURNED and ok.trypid not in bug.table.used() and ok.trypid < bug.table.pid_max
    assert "returns trypid" in bug.describe()


@pytest.mark.parametrize("m", [Mutation.NO_HIGHPID_RESET, Mutation.SETPGID_UNCHECKED])
def test_cache_mutant_is_caught_by_a_fork_sequence(m):
    rep = prove_pidscan([m])
    assert [o.group for o in rep.failed] == ["cache invariant"]
    log = find_fork_bug([m])
    assert log is not None and "returns" in log.splitlines()[-1]
    assert find_fork_bug([]) is None


def test_the_cache_cti_is_in_domain_terms():
    obs = {o.name: o for o in prove_cache_invariant([Mutation.SETPGID_UNCHECKED])}
    o = obs["setpgid"]
    assert o.status is Status.FAILED
    assert {"allproc", "after: allproc", "lastpid", "pidchecked", "new pgid"} <= set(o.model)
    lp, pc, pg = o.model["lastpid"], o.model["pidchecked"], o.model["new pgid"]
    assert lp < pg < pc    # the new group id lands inside the cached free range


# ------------------------------------------------------------ concrete scan

ids = st.integers(0, 11)
entries = st.tuples(ids, ids, ids).map(lambda t: Entry(*t))


@st.composite
def tables(draw):
    P = draw(st.integers(4, 12))
    floor = draw(st.integers(0, P // 2))
    allp = draw(st.lists(entries, max_size=4))
    zomb = draw(st.lists(entries, max_size=3))
    allp = [Entry(e.pid % P, e.pgid % P, e.sid % P) for e in allp]
    zomb = [Entry(e.pid % P, e.pgid % P, e.sid % P) for e in zomb]
    used = {x for e in allp + zomb for x in e.ids()}
    lastpid = draw(st.integers(0, P - 1))
    # the largest pidchecked the cache invariant allows
    above = [x for x in used if x > lastpid]
    pidchecked = draw(st.integers(0, min(above) if above else P))
    high = draw(st.booleans())
    rnd = draw(st.integers(0, 3))
    add = draw(st.integers(0, max(0, rnd - 1)))
    return Table(tuple(allp), tuple(zomb), lastpid, pidchecked, P, floor, draw(st.integers(0, P - 1)), high,
                 0 if high else rnd, 0 if high else add)


@given(tables())
def test_seed_scan_returns_a_free_pid_whenever_one_exists_above_floor(t):
    run = run_scan(t)
    free_above_floor = any(x not in t.used() for x in range(t.floor, t.pid_max))
    if free_above_floor:
        assert run.outcome is Outcome.RETURNED
    if run.outcome is Outcome.RETURNED:
        assert run.trypid is not None and 0 <= run.trypid < t.pid_max and run.trypid not in t.used()
    else:
        assert run.outcome is Outcome.NONTERMINATING
