"""k-induction outcomes: proved, violated, CTI (with its content) and unknown."""

from __future__ import annotations

import json

from checker.cli import main
from checker.lang import load_text
from checker.prove.induction import k_induction
from checker.prove.run import ProveOptions, prove_system
from checker.results import EXIT_CTI, EXIT_LIMIT, EXIT_OK, EXIT_UNEXPECTED, Verdict

from . import specs


def _prove(text: str, name: str, **kw):
    system = load_text(text, f"{name}.fk")
    res = prove_system(system, ProveOptions(progress=False, **kw), model_name=name)
    return {p.name: p for p in res.properties}, res


def test_proved_with_a_lemma():
    by, _ = _prove(specs.LEMMA, "lemma", lemmas=("x_small",))
    assert by["y_small"].verdict is Verdict.PROVED
    assert "x_small" in by["y_small"].details["with"]


def test_without_the_lemma_the_cti_shows_the_unconstrained_x():
    system = load_text(specs.LEMMA, "lemma.fk")
    r = k_induction(system, ["y_small"], [], 1)
    assert r.proved == [] and "y_small" in r.ctis
    cti = r.ctis["y_small"]
    pre, post = cti.states[-2], cti.states[-1]
    assert pre["y"] <= 3 and pre["x"] > 3          # the lemma rules exactly this pre-state out
    assert post["y"] == pre["x"]
    assert cti.steps[-1].thread == "b" and "y := x" in cti.steps[-1].label
    assert "not a reachable bug" in cti.describe().lower() or "NOT a reachable bug" in cti.describe()


def test_cti_at_k1_and_proved_at_k2():
    by, res = _prove(specs.TWO_STEP, "two", k=1)
    pr = by["bounded"]
    assert pr.verdict is Verdict.CTI
    cti = pr.details["cti"]
    assert cti["pre"]["x"] == 1 and cti["post"]["x"] == 2
    assert cti["step"]["label"].startswith("x := x + 1")
    assert cti["changed"]["x"] == [1, 2]
    by2, _ = _prove(specs.TWO_STEP, "two", k=2)
    assert by2["bounded"].verdict is Verdict.PROVED


def test_violated_by_bmc_behind_the_cti():
    by, res = _prove(specs.RACY, "racy")
    pr = by["counted"]
    assert pr.verdict is Verdict.VIOLATED and pr.trace is not None
    assert pr.trace_length == 6 and "cti" in pr.details      # it was a CTI first, then a real trace


def test_unknown_on_solver_timeout():
    by, res = _prove(specs.HARD, "hard", timeout=0.05)
    assert by["no_cube"].verdict is Verdict.UNKNOWN


def test_step_properties_are_proved_or_refuted():
    by, _ = _prove(specs.RUNTIME, "rt")
    assert by["runtime"].verdict is Verdict.VIOLATED       # use after free, a real trace
    by, _ = _prove(specs.WITNESS, "w")
    assert by["witness"].verdict is Verdict.VIOLATED


def test_cli_exit_codes_and_json(tmp_path, capsys):
    f = tmp_path / "two.fk"
    f.write_text(specs.TWO_STEP)
    assert main(["prove", str(f), "--property", "bounded"]) == EXIT_CTI
    out = capsys.readouterr().out
    assert "CTI for bounded" in out and "x: 1 -> 2" in out
    assert main(["prove", str(f), "--property", "bounded", "--k", "2", "--json"]) == EXIT_OK
    d = json.loads(capsys.readouterr().out)
    assert d["engine"] == "prove" and d["properties"][0]["verdict"] == "proved"
    assert set(d) >= {"model", "engine", "stop_reason", "properties", "stats"}
    g = tmp_path / "racy.fk"
    g.write_text(specs.RACY)
    assert main(["prove", str(g), "--bmc", "8", "--trace-dir", str(tmp_path / "cx")]) == EXIT_UNEXPECTED
    assert (tmp_path / "cx" / "counted.itf.json").exists()
    h = tmp_path / "hard.fk"
    h.write_text(specs.HARD)
    assert main(["prove", str(h), "--property", "no_cube", "--timeout", "0.05"]) == EXIT_LIMIT


def test_cli_input_errors(tmp_path, capsys):
    assert main(["prove", str(tmp_path / "missing.fk")]) == 2
    f = tmp_path / "two.fk"
    f.write_text(specs.TWO_STEP)
    assert main(["prove", str(f), "--property", "nope"]) == 2
    assert "unknown property" in capsys.readouterr().err
    assert main(["prove", str(f), "--mutate", "no_pgid_check"]) == 2


def test_cli_pidscan(capsys):
    assert main(["prove", "pidscan", "--json"]) == EXIT_OK
    d = json.loads(capsys.readouterr().out)
    assert d["verdict"] == "proved" and d["nonterminating_table"]["outcome"] == "nonterminating"
    assert main(["prove", "pidscan", "--mutate", "no_zombproc_pass"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "FAILED" in out and "zombproc" in out and "returns trypid" in out


# ------------------------------------------------------- soundness vs explorer

from hypothesis import given  # noqa: E402

import checker.explore as ex  # noqa: E402
from randsys import systems  # noqa: E402


@given(systems())
def test_induction_never_contradicts_the_explorer(system):
    props = [p for p, k in system.property_names.items() if k in ("invariant", "assert", "deadlock", "runtime",
                                                                  "witness")]
    r = k_induction(system, props, [], 1)
    res = ex.check(system, ex.ExploreOptions(), model_name=system.name)
    exp = {p.name: p.verdict for p in res.properties}
    for p in r.proved:
        if p in exp:
            assert exp[p] is Verdict.HOLDS, (p, exp[p])
    for p in r.violated:
        assert exp[p] is Verdict.VIOLATED, p
