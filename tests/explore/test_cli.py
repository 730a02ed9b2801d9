"""`forkcheck check/lockorder/simulate/graph` on hand-built systems (the loader is stubbed)."""

from __future__ import annotations

import json

import pytest

from checker import cli
from checker.explore import commands
from irbuild import abba, racy_counter_assert


@pytest.fixture
def target(monkeypatch):
    # only this stage's commands: other stages' modules may be mid-change
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("checker.explore.commands",))
    systems = {"abba.toml": (abba(), {"deadlock": "violated", "lock_order": "violated"}),
               "racy.toml": (racy_counter_assert(2), {"all_counted": "violated"})}

    def load(path):
        s, exp = systems[path]
        return commands.Target(s.name, s, dict(exp), None, None)
    monkeypatch.setattr(commands, "load_target", load)


def test_check_json_and_exit_code(target, capsys):
    rc = cli.main(["check", "racy.toml", "--json", "--property", "all_counted"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["stop_reason"] == "violation" and out["properties"][0]["verdict"] == "violated"
    assert out["stats"]["states"] > 0


def test_check_text_as_expected_and_unexpected(target, capsys, monkeypatch):
    rc = cli.main(["check", "abba.toml"])
    text = capsys.readouterr().out
    assert "violated (expected violated)" in text and rc == 0
    assert "counterexample for deadlock" in text
    real = commands.load_target
    monkeypatch.setattr(commands, "load_target",
                        lambda p: commands.Target("abba", abba(), {"deadlock": "holds"}, None, None))
    rc = cli.main(["check", "abba.toml", "--no-trace"])
    assert "UNEXPECTED" in capsys.readouterr().out and rc == 1


def test_check_writes_traces(target, tmp_path, capsys):
    rc = cli.main(["check", "abba.toml", "--property", "deadlock", "--trace-dir", str(tmp_path), "--json"])
    assert rc == 0
    assert (tmp_path / "deadlock.itf.json").exists()


def test_lockorder_dot(target, tmp_path, capsys):
    dot = tmp_path / "lo.dot"
    rc = cli.main(["lockorder", "abba.toml", "--dot", str(dot)])
    out = capsys.readouterr().out
    assert "reversal" in out and rc == 0
    assert '"lock A" -> "lock B"' in dot.read_text()


def test_simulate_prints_seed_and_finds(target, capsys):
    rc = cli.main(["simulate", "abba.toml", "--runs", "50", "--depth", "10", "--seed", "7", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert any("--seed 7" in n for n in out["notes"])
    v = {p["name"]: p["verdict"] for p in out["properties"]}
    assert v["deadlock"] == "violated"
    assert rc == 0      # the violation was expected; unknowns are not held against a random walk


def test_graph_limit(target, tmp_path, capsys):
    rc = cli.main(["graph", "abba.toml", "--dot", str(tmp_path / "g.dot")])
    assert rc == 0 and "s0 ->" in (tmp_path / "g.dot").read_text()
    rc = cli.main(["graph", "abba.toml", "--dot", str(tmp_path / "g.dot"), "--limit", "3"])
    assert rc == 2 and "more than 3 states" in capsys.readouterr().err


def test_bad_limits_are_usage_errors(target, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["check", "abba.toml", "--max-states", "0"])
    assert e.value.code == 2
