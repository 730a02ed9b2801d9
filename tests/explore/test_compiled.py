"""The compiled successor function agrees with the reference interpreter (checker/semantics.py)."""

from __future__ import annotations

from hypothesis import given

from checker.explore.compiled import compile_system
from checker.semantics import Semantics
from irbuild import abba, fork_exit, racy_counter_assert
from randsys import systems
from test_liveness import lost_wakeup
from test_reductions import _pool_model
from test_core import _counter_loop


def _key(t, track):
    k = (t.thread, t.step.id, t.state if not t.violations else None, tuple(v.prop for v in t.violations))
    if track and not t.violations:
        k += (frozenset(t.accesses), t.acquisitions)
    return k


def _agree(sysm, limit=3000, track=False):
    sem = Semantics(sysm)
    comp = compile_system(sysm, tracking=track)
    init = sem.initial_state()
    assert comp.initial_state() == init
    seen = {init}
    todo = [init]
    while todo and len(seen) < limit:
        s = todo.pop()
        a = [_key(t, track) for t in sem.successors(s)]
        b = [_key(t, track) for t in comp.successors(s)]
        assert a == b, s
        for inv in sysm.invariants:
            assert bool(sem.eval_in(s, inv.expr)) == bool(comp.eval_in(s, inv.expr))
        for t in sem.successors(s):
            if not t.violations and t.state not in seen:
                seen.add(t.state)
                todo.append(t.state)
    return len(seen)


def test_examples_agree():
    for m in (abba(), racy_counter_assert(3), lost_wakeup(), lost_wakeup(True), _pool_model(), _counter_loop(2, 3),
              fork_exit(2, 2, 3)):
        assert _agree(m) > 1
        assert _agree(m, track=True) > 1


@given(systems())
def test_random_systems_agree(sysm):
    _agree(sysm)
    _agree(sysm, limit=300, track=True)


def test_no_spec_text_in_generated_code():
    m = fork_exit(2, 2, 3)
    comp = compile_system(m, tracking=True)
    names = {g.name for g in m.globals} | {f.name for p in m.pools for f in p.fields} | {p.name for p in m.pools}
    names |= {v.name for c in m.codes for v in c.locals if len(v.name) > 1}
    for st in m.steps:
        for tracked in (False, True):
            src = comp.step_source(st, tracked)
            for n in names:
                assert n not in src, (n, st.label)
