"""The race observer's memo of `context p new/dead` values per object tuple gives the same reports
as evaluating every time, and is used only where the value depends on the object alone."""

from __future__ import annotations

import pytest

from checker.explore import ExploreOptions, check
from checker.explore.races import RaceObserver
from checker.lang import load_text

from test_race_refinements import _KILLER, _REVIVER, _STARTER, dead_spec, handoff_spec


def full(s):
    r = check(s, ExploreOptions(progress=False, all_races=True), model_name="t", properties=["races"])
    p = next(p for p in r.properties if p.name == "races")
    return p.verdict, p.details.get("races", []), len(p.trace.states) if p.trace else 0, r.stats.states


# (spec, whether it has reports): ordered by new/dead, breaches of either, and real races
SPECS = [
    (lambda: handoff_spec(), False),
    (lambda: handoff_spec(after="o.mine := 3"), True),
    (lambda: handoff_spec(start="skip", starter=_STARTER), True),
    (lambda: dead_spec(), False),
    (lambda: dead_spec(decl="p.st == 1"), True),
    (lambda: dead_spec(other=_REVIVER), True),
    (lambda: dead_spec(other=_KILLER), True),
]


@pytest.mark.parametrize("make,reported", SPECS)
def test_memo_gives_the_reports_of_evaluating_every_time(make, reported, monkeypatch):
    s = make()
    memo = full(s)
    again = full(make())            # a second model in the same process: its own observer, own memo
    monkeypatch.setattr(RaceObserver, "_reads_binder_only", classmethod(lambda cls, e, b: False))
    plain = full(s)
    assert memo == again == plain
    assert bool(memo[1]) == reported


def test_memo_only_for_the_bound_objects_own_fields():
    s = dead_spec()
    cpu = s.threads[0]
    assert RaceObserver._reads_binder_only(cpu.context_dead, cpu.context)
    # a global, or another object through a pointer, is not part of the object's tuple
    for decl in ("p.st == 1 && g == 0", "p.nx.st == 1"):
        text = (DEAD_G if "g ==" in decl else DEAD_NX).replace("DECL", decl)
        t = load_text(text).threads[0]
        assert not RaceObserver._reads_binder_only(t.context_dead, t.context), decl


DEAD_G = """
var g: 0..1 = 0
struct proc [1] {
  st: 0..2 = 0
}
thread cpu context p dead DECL {
  var p: ref proc = null
  p := pick proc where p.st == 0
  p := null
}
"""
DEAD_NX = DEAD_G.replace("st: 0..2 = 0", "st: 0..2 = 0\n  nx: ref proc = null")
