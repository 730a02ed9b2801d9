"""`forkcheck verify` end to end through the CLI, with the engines replaced by the fake runner."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from checker import verify as verify_mod
from checker.cli import main

from .fakes import model_files, runner, standard


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    model_files(tmp_path, "race", "ppwait")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(verify_mod, "default_runner", runner(standard()))
    return tmp_path


def test_verify_all_models_writes_reports(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["verify", "--json", "out/r.json", "--junit", "out/r.xml", "--sarif", "out/r.sarif"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.splitlines()[-1].startswith("verify OK: 2 models, 4 properties: 4 as expected")
    assert json.loads((checkout / "out/r.json").read_text())["exit_code"] == 0
    assert ET.parse(checkout / "out/r.xml").getroot().get("tests") == "4"
    sarif = json.loads((checkout / "out/r.sarif").read_text())
    assert sarif["runs"][0]["originalUriBaseIds"]["SRCROOT"]["uri"] == checkout.resolve().as_uri() + "/"
    assert (checkout / "counterexamples/race/nprocs_bounded.itf.json").is_file()
    assert not list(checkout.glob("out/.*.tmp"))   # atomic writes leave no temporaries


def test_verify_named_model_and_errors(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "race"]) == 0
    assert "ppwait" not in capsys.readouterr().out
    assert main(["verify", "nosuch"]) == 2
    assert "error: no such model: nosuch" in capsys.readouterr().err
    model_files(checkout, "broken")
    assert main(["verify"]) == 2
    out = capsys.readouterr().out
    assert "broken: could not be run:" in out and "models/broken.toml:3:1: error: unknown constant" in out


def test_verify_unexpected_prints_why_and_where(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (checkout / "counterexamples/race").mkdir(parents=True)
    (checkout / "counterexamples/race/nprocs_bounded.itf.json").write_text(
        json.dumps({"states": [{"#meta": {"index": 0}}]}))
    assert main(["verify", "race"]) == 1
    out = capsys.readouterr().out
    assert "race/nprocs_bounded: unexpected: verdict violated, expected violated" in out
    assert "now has 7 steps" in out and "forkcheck trace show counterexamples/race/nprocs_bounded.itf.json" in out
    assert main(["verify", "race", "--update"]) == 0


def test_verify_off_a_terminal_is_plain_and_quiet(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """CI logs: the table and the summary, no progress line, no colour codes."""
    assert main(["verify"]) == 0
    cap = capsys.readouterr()
    assert "\x1b" not in cap.out and "\r" not in cap.out
    assert cap.err == ""
    lines = cap.out.splitlines()
    assert lines[0].split()[:2] == ["model", "property"] and set(lines[1]) <= {"-", " "}
    assert len(lines) == 2 + 4 + 1
