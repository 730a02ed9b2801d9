"""verify: verdict comparison, exit codes, counterexample regression files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checker.results import StopReason, Verdict
from checker.trace.itf import Trace
from checker.trace.report import Status
from checker.verify import VerifyOptions, cex_path, table_plain, verify

from .fakes import model_files, nprocs_race, prop, result, runner, standard


def opts(root: Path, **kw) -> VerifyOptions:
    return VerifyOptions(root=root, cex_dir=root / "counterexamples", **kw)


def test_expected_violations_pass_and_write_counterexamples(tmp_path: Path) -> None:
    rep = verify(model_files(tmp_path, "race", "ppwait"), opts(tmp_path), runner(standard()))
    assert rep.exit_code() == 0
    assert [r.status for r in rep.rows] == [Status.OK] * 4
    f = cex_path(opts(tmp_path), "race", "nprocs_bounded")
    assert f.is_file()
    back = Trace.read(f)
    assert back.property == "nprocs_bounded" and back.model == "race" and len(back.states) == 8
    lasso = Trace.read(cex_path(opts(tmp_path), "ppwait", "ppwait_ends"))
    assert lasso.loop == 1
    assert not cex_path(opts(tmp_path), "race", "pid_unique").exists()
    row = rep.rows[0]
    assert row.trace_file == "counterexamples/race/nprocs_bounded.itf.json"
    assert "wrote" in row.notes[0]


def test_known_bug_that_no_longer_shows_is_unexpected(tmp_path: Path) -> None:
    sc = standard()
    sc["race"] = lambda: ({"nprocs_bounded": "violated"},
                          [result("race", prop("nprocs_bounded", "invariant", Verdict.HOLDS))])
    rep = verify(model_files(tmp_path, "race"), opts(tmp_path), runner(sc))
    assert rep.rows[0].status is Status.UNEXPECTED
    assert rep.exit_code() == 1


def test_unannounced_violation_is_unexpected(tmp_path: Path) -> None:
    sc = {"race": lambda: ({}, [result("race", prop("nprocs_bounded", "invariant", Verdict.VIOLATED,
                                                     nprocs_race()))])}
    rep = verify(model_files(tmp_path, "race"), opts(tmp_path), runner(sc))
    assert rep.rows[0].expected == "holds"
    assert rep.exit_code() == 1
    assert cex_path(opts(tmp_path), "race", "nprocs_bounded").is_file()  # every violation is written


def test_limit_gives_3_and_input_error_gives_2(tmp_path: Path) -> None:
    sc = {"big": lambda: ({"nprocs_bounded": "holds"}, [result(
        "big", prop("nprocs_bounded", "invariant", Verdict.UNKNOWN), stop=StopReason.STATE_LIMIT)])}
    rep = verify(model_files(tmp_path, "big"), opts(tmp_path), runner(sc))
    assert rep.rows[0].status is Status.LIMIT and rep.exit_code() == 3
    assert "state limit" in rep.rows[0].message
    rep = verify(model_files(tmp_path, "big", "broken"), opts(tmp_path), runner(sc))
    assert rep.exit_code() == 2
    assert "models/broken.toml:3:1: error: unknown constant MAXPROCS" in rep.models[1].error


def test_cti_gives_4_and_engines_disagreeing_gives_1(tmp_path: Path) -> None:
    sc = {"p": lambda: ({"refs": "proved"}, [
        result("p", prop("refs", "invariant", Verdict.HOLDS)),
        result("p", prop("refs", "proof", Verdict.CTI), engine="prove")])}
    rep = verify(model_files(tmp_path, "p"), opts(tmp_path), runner(sc))
    assert rep.rows[0].verdict is Verdict.CTI and rep.exit_code() == 4
    assert rep.rows[0].engines == ("explore", "prove")
    sc = {"p": lambda: ({"refs": "holds"}, [
        result("p", prop("refs", "invariant", Verdict.VIOLATED, nprocs_race())),
        result("p", prop("refs", "proof", Verdict.PROVED), engine="prove")])}
    rep = verify(model_files(tmp_path, "p"), opts(tmp_path), runner(sc))
    assert rep.rows[0].status is Status.UNEXPECTED and "engines disagree" in rep.rows[0].message


def test_proof_meets_holds(tmp_path: Path) -> None:
    sc = {"p": lambda: ({"refs": "holds"}, [
        result("p", prop("refs", "invariant", Verdict.UNKNOWN), stop=StopReason.TIME_LIMIT),
        result("p", prop("refs", "proof", Verdict.PROVED), engine="prove")])}
    rep = verify(model_files(tmp_path, "p"), opts(tmp_path), runner(sc))
    assert rep.rows[0].verdict is Verdict.PROVED and rep.exit_code() == 0


def test_expected_but_unreported_property_is_unexpected(tmp_path: Path) -> None:
    sc = {"race": lambda: ({"nprocs_bounded": "violated", "ghost": "holds"}, [result(
        "race", prop("nprocs_bounded", "invariant", Verdict.VIOLATED, nprocs_race()))])}
    rep = verify(model_files(tmp_path, "race"), opts(tmp_path), runner(sc))
    ghost = rep.rows[1]
    assert ghost.property == "ghost" and ghost.verdict is None and ghost.status is Status.UNEXPECTED


def test_committed_counterexample_regression(tmp_path: Path) -> None:
    files = model_files(tmp_path, "race")
    o = opts(tmp_path)
    verify(files, o, runner(standard()))
    f = cex_path(o, "race", "nprocs_bounded")
    committed = f.read_text()

    # Same length again: passes and leaves the committed file alone.
    rep = verify(files, o, runner(standard()))
    assert rep.exit_code() == 0 and f.read_text() == committed
    assert "same length" in rep.rows[0].notes[0]

    # The explorer now finds a longer trace: a regression, the file is kept.
    def longer():
        t = nprocs_race()
        t.states.append(dict(t.states[-1]))
        t.steps.append(t.steps[-1])
        return ({"nprocs_bounded": "violated"}, [result("race", prop("nprocs_bounded", "invariant",
                                                                      Verdict.VIOLATED, t))])
    rep = verify(files, o, runner({"race": longer}))
    assert rep.exit_code() == 1 and rep.rows[0].status is Status.UNEXPECTED
    assert "now has 8 steps, the committed counterexamples/race/nprocs_bounded.itf.json has 7" \
        in rep.rows[0].notes[0]
    assert f.read_text() == committed

    # --update accepts it.
    rep = verify(files, opts(tmp_path, update=True), runner({"race": longer}))
    assert rep.exit_code() == 0 and len(Trace.read(f).states) == 9
    assert rep.rows[0].notes[0].startswith("rewrote")


def test_unreadable_committed_counterexample_is_reported(tmp_path: Path) -> None:
    files = model_files(tmp_path, "race")
    o = opts(tmp_path)
    f = cex_path(o, "race", "nprocs_bounded")
    f.parent.mkdir(parents=True)
    f.write_text("{ not json")
    rep = verify(files, o, runner(standard()))
    assert rep.rows[0].status is Status.UNEXPECTED
    assert "invalid JSON" in rep.rows[0].notes[0]


def test_table_and_summary(tmp_path: Path) -> None:
    rep = verify(model_files(tmp_path, "race", "ppwait"), opts(tmp_path), runner(standard()))
    t = table_plain(rep).splitlines()
    assert t[0].split() == ["model", "property", "kind", "verdict", "expected", "trace", "time"]
    assert t[2].split()[:6] == ["race", "nprocs_bounded", "invariant", "violated", "violated", "7"]
    assert "1 (lasso)" not in t[4] and "3 (lasso)" in table_plain(rep)
    assert rep.summary().startswith("verify OK: 2 models, 4 properties: 4 as expected")


def test_json_report_matches_schema(tmp_path: Path, repo: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    rep = verify(model_files(tmp_path, "race", "broken"), opts(tmp_path), runner(standard()))
    schema = json.loads((repo / "tests/data/schemas/verify-report.schema.json").read_text())
    doc = json.loads(json.dumps(rep.to_json()))
    jsonschema.validate(doc, schema)
    assert doc["exit_code"] == 2 and doc["summary"]["error"] == 1
    assert doc["models"][0]["properties"][0]["trace_length"] == 7


def test_focus_from_the_property_goes_into_the_written_trace(tmp_path: Path) -> None:
    o = opts(tmp_path)

    def bare():
        t = nprocs_race()
        t.extra.clear()
        return ({"nprocs_bounded": "violated"}, [result("race", prop("nprocs_bounded", "invariant",
                                                                      Verdict.VIOLATED, t))])
    verify(model_files(tmp_path, "race"), o, runner({"race": bare}))
    assert Trace.read(cex_path(o, "race", "nprocs_bounded")).extra["focus"] == ["maxproc", "nprocs"]


def test_expected_unknown_from_a_time_limit_is_a_limit(tmp_path: Path) -> None:
    """A bounded model's 'unknown' must come from its state/depth bound, not the machine's speed."""
    def sc(stop: StopReason):
        return {"bounded": lambda: ({"pid_unique": "unknown"}, [result(
            "bounded", prop("pid_unique", "invariant", Verdict.UNKNOWN), stop=stop)])}
    for stop in (StopReason.STATE_LIMIT, StopReason.DEPTH_LIMIT):
        rep = verify(model_files(tmp_path, "bounded"), opts(tmp_path), runner(sc(stop)))
        assert rep.rows[0].status is Status.OK and rep.exit_code() == 0
    for stop in (StopReason.TIME_LIMIT, StopReason.MEMORY_LIMIT):
        rep = verify(model_files(tmp_path, "bounded"), opts(tmp_path), runner(sc(stop)))
        assert rep.rows[0].status is Status.LIMIT and rep.exit_code() == 3
        assert stop.value in rep.rows[0].message and "depends on the machine" in rep.rows[0].message


def test_rows_stream_as_each_model_finishes(tmp_path: Path) -> None:
    """The printer writes a model's rows when it is done, aligned to widths fixed before any row."""
    import io

    from checker.verify import TablePrinter, column_widths

    files = model_files(tmp_path, "race", "ppwait")
    files[0].write_text('spec = "../spec/x.fk"\n[expect]\nnprocs_bounded = "violated"\npid_unique = "holds"\n')
    out = io.StringIO()
    seen: list[str] = []
    printer = TablePrinter(out, column_widths(files))

    def on_model(m) -> None:            # noqa: ANN001
        printer.model(m)
        seen.append(out.getvalue())

    rep = verify(files, opts(tmp_path), runner(standard()), on_model=on_model)
    printer.finish(rep)
    first, second = seen
    assert "race" in first and "ppwait" not in first           # printed before ppwait ran
    assert "ppwait_ends" in second and "verify OK" not in second
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("verify OK: 2 models, 4 properties")
    table = lines[:6]
    assert table[0].split() == ["model", "property", "kind", "verdict", "expected", "trace", "time"]
    # one table: every column starts at the same offset on every row
    col = table[0].index("kind")
    assert all(ln[col - 2:col] == "  " and ln[col] != " " for ln in table[2:])
    assert table[0].index("verdict") == table[2].index("violated")


def test_jobs_report_in_model_order_whatever_finishes_first(tmp_path: Path) -> None:
    """With -j 2 the slow first model finishes last, and is still reported (and printed) first."""
    import time

    base = runner(standard())

    def slow_first(path: Path, o: VerifyOptions):  # noqa: ANN202
        if path.stem == "race":
            time.sleep(1.0)
        return base(path, o)

    files = model_files(tmp_path, "race", "ppwait")
    seen: list[str] = []
    rep = verify(files, opts(tmp_path), slow_first, jobs=2, on_model=lambda m: seen.append(m.name))
    assert seen == ["race", "ppwait"]
    assert rep.exit_code() == 0 and not rep.interrupted
    # the same rows and files as one by one
    one = verify(files, opts(tmp_path / "one"), base, jobs=1)
    key = [(r.model, r.property, r.verdict, r.status) for r in rep.rows]
    assert key == [(r.model, r.property, r.verdict, r.status) for r in one.rows]
    assert cex_path(opts(tmp_path), "race", "nprocs_bounded").read_bytes() == \
        cex_path(opts(tmp_path / "one"), "race", "nprocs_bounded").read_bytes()


def test_jobs_a_crashing_model_is_an_error_naming_it(tmp_path: Path) -> None:
    # Only race crashes (when both did, whichever job reported first was named: a flaky test).
    def crash(path: Path, o: VerifyOptions):  # noqa: ANN202
        if path.stem == "race":
            raise ValueError("boom")
        return runner(standard())(path, o)

    for order in (("race", "ppwait"), ("ppwait", "race")):
        with pytest.raises(RuntimeError, match=r"model .*race\.toml crashed:(.|\n)*ValueError: boom"):
            verify(model_files(tmp_path, *order), opts(tmp_path), crash, jobs=2)


def test_jobs_on_the_bundled_examples_give_identical_results(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    files = sorted((repo / "models").glob("ex_*.toml"))
    got = {}
    for j in (1, 2):
        cex = tmp_path / f"j{j}"
        rep = verify(files, VerifyOptions(root=repo, cex_dir=cex), jobs=j)
        rows = [(r.model, r.property, r.verdict, r.status, None if r.trace is None else len(r.trace.states))
                for r in rep.rows]
        stats = [(m.name, m.stats.get("explore", {}).get("states")) for m in rep.models]
        files_ = {p.relative_to(cex).as_posix(): p.read_bytes() for p in sorted(cex.rglob("*.itf.json"))}
        got[j] = (rows, stats, files_)
    assert got[1] == got[2]
    assert [m for m, _ in got[1][1]] == [f.stem for f in files]
    assert got[1][2], "the examples' expected violations wrote counterexamples"
