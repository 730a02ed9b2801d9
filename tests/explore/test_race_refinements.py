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
