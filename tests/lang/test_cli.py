"""`forkcheck parse` and `forkcheck fmt` through checker.cli.main."""

from __future__ import annotations

from pathlib import Path

import pytest

from checker.cli import main

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "spec" / "examples"


def test_parse_spec_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(EX / "racy_counter.fk")]) == 0
    out = capsys.readouterr().out
    assert "spec ok" in out and "constants   NTHREADS = 2" in out
    assert "thread      t[0], t[1]: 3 steps" in out and "invariant   both_counted" in out


def test_parse_steps_and_defines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", "--steps", "-D", "FIXED=true", str(EX / "lost_wakeup.fk")]) == 0
    out = capsys.readouterr().out
    assert "fix         FIXED = true" in out
    assert "sleep" in out and "msleep(ev, m) [wake]" in out


def test_parse_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(ROOT / "models" / "ex_abba.toml")]) == 0
    out = capsys.readouterr().out
    assert "model ok" in out and "deadlock: violated" in out


def test_parse_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(tmp_path / "nope.fk")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "x.txt"
    bad.write_text("")
    assert main(["parse", str(bad)]) == 2
    assert main(["parse", "-D", "X", str(EX / "abba.fk")]) == 2


def test_fmt_check_and_rewrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "a.fk"
    f.write_text("var x:0..3=0\nthread t{x:=1;x:=2}\n")
    assert main(["fmt", "--check", str(f)]) == 1
    assert "would reformat" in capsys.readouterr().out
    assert main(["fmt", str(f)]) == 0
    assert f.read_text() == "var x: 0..3 = 0\nthread t {\n  x := 1\n  x := 2\n}\n"
    assert main(["fmt", "--check", str(f)]) == 0
    assert main(["fmt", "--stdout", str(EX / "abba.fk")]) == 0
    assert capsys.readouterr().out.endswith((EX / "abba.fk").read_text())


@pytest.mark.parametrize("cmd", ["parse", "fmt"])
def test_help(cmd: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert "usage: forkcheck " + cmd in capsys.readouterr().out
