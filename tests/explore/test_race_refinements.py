"""The race check's listing (--all-races) and its refinements (ghosts, execution contexts)."""

from __future__ import annotations

from checker import cli
from checker.explore import ExploreOptions, check
from checker.lang import load_text
from checker.results import Verdict

OPTS = ExploreOptions(progress=False)

TWO_RACES = """
var x: 0..3 = 0
var y: 0..3 = 0
thread a {
  x := 1
  y := 1
}
thread b {
  x := 2
  y := 2
}
"""


def reports(r):
    p = next(p for p in r.properties if p.name == "races")
    return p, [(i["kind"], i["location"]) for i in p.details.get("races", [])]


def test_all_races_lists_every_location_and_rule():
    s = load_text(TWO_RACES)
    _, first = reports(check(s, OPTS, model_name="t", properties=["races"]))
    assert first == [("race", "x")]           # the search stops once races is violated
    r = check(s, ExploreOptions(progress=False, all_races=True), model_name="t", properties=["races"])
    p, every = reports(r)
    assert r.stop.value == "finished" and p.verdict is Verdict.VIOLATED
    assert set(every) == {("race", "x"), ("race", "y"), ("lockset", "x"), ("lockset", "y")}
    acc = p.details["races"][0]["accesses"]
    assert acc == ["a: x := 1 (<text>.fk:5:3)", "b: x := 2 (<text>.fk:9:3)"]


def test_all_races_cli_prints_the_list(tmp_path, capsys):
    f = tmp_path / "two.fk"
    f.write_text(TWO_RACES)
    rc = cli.main(["check", str(f), "--all-races", "--no-trace"])
    out = capsys.readouterr().out
    assert rc == 0       # a bare spec: a violation is not unexpected
    assert "4 race reports (location x rule):" in out
    assert f"b: y := 2 ({f}:10:3)" in out


# ------------------------------------------------------------------ ghosts

GHOSTS = """
ghost var budget: 0..4 = 0
var x: 0..3 = 0
thread a {
  atomic { await budget < 2; budget := budget + 1 }
  x := 1
}
thread b {
  budget := budget + 1
  XB
}
"""


def test_ghost_accesses_are_not_races_and_can_be_checked_on_request():
    s = load_text(GHOSTS.replace("XB", "skip"))
    assert [g.name for g in s.globals if g.ghost] == ["budget"]
    p, rep = reports(check(s, OPTS, model_name="t", properties=["races"]))
    assert p.verdict is Verdict.HOLDS and rep == []
    p, rep = reports(check(s, ExploreOptions(progress=False, race_skip_ghosts=False, all_races=True),
                           model_name="t", properties=["races"]))
    assert p.verdict is Verdict.VIOLATED and {loc for _, loc in rep} == {"budget"}


def test_a_kernel_race_beside_a_ghost_is_still_reported():
    s = load_text(GHOSTS.replace("XB", "x := 2"))
    p, rep = reports(check(s, ExploreOptions(progress=False, all_races=True), model_name="t",
                           properties=["races"]))
    assert p.verdict is Verdict.VIOLATED and {loc for _, loc in rep} == {"x"}
