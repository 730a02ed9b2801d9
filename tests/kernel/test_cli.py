"""`forkcheck kernel run`: output shapes and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checker import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def only_kernel_commands(monkeypatch):
    # The real entry point, but only this stage's subcommands: other stages'
    # work in progress must not decide whether the kernel CLI passes.
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("checker.kernel.commands",))


def main(argv: list[str]) -> int:
    return cli.main(argv)


def write(tmp_path: Path, data: object) -> str:
    p = tmp_path / "s.json"
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(p)


def test_example_scenario_json(capsys):
    assert main(["kernel", "run", str(ROOT / "scenarios/basic.json"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"][:5] == [{"ret": 2}, {"ret": 3, "completed_after_op": 5}, {"ret": 4},
                                  {"exited": 0}, {"ret": 4}]
    assert {"pid", "ppid", "pgid", "sid", "stat", "flags"} == set(out["procs"][0])
    assert out["nprocs"] == len(out["procs"]) and out["lastpid"] == 6
    assert out["refcounts"]["ucred#1.cr_ref"] == 6


def test_text_shows_vfork_parent_asleep(tmp_path, capsys):
    path = write(tmp_path, {"config": {"PID_MAX": 30, "PID_FLOOR": 5, "PID_HIGH_FLOOR": 3},
                            "ops": [{"op": "vfork", "pid": 1}]})
    assert main(["kernel", "run", path]) == 0
    text = capsys.readouterr().out
    assert "asleep (ppwait)" in text
    assert any(line.split()[:5] == ["1", "0", "1", "1", "SSLEEP"] for line in text.splitlines())


def test_all_shipped_scenarios_run(capsys):
    for p in sorted((ROOT / "scenarios").glob("*.json")):
        code = main(["kernel", "run", str(p), "--json"])
        out = json.loads(capsys.readouterr().out)
        assert code == (1 if out["panic"] else 0), p


@pytest.mark.parametrize("data,needle", [
    ({"ops": [{"op": "fork"}]}, "ops[0].pid: missing"),
    ({"ops": [{"op": "fork", "pid": 1}, {"op": "frok", "pid": 1}]}, 'ops[1].op: unknown operation "frok"'),
    ({"ops": [{"op": "rfork", "pid": 1, "flags": ["RFPROC", "RFBOGUS"]}]}, "ops[0].flags: unknown flag 'RFBOGUS'"),
    ({"ops": [{"op": "wait", "pid": 1, "child": "2"}]}, 'ops[0].child: expected integer, got "2"'),
    ({"ops": [{"op": "exec", "pid": 1, "argv": []}]}, "ops[0].argv: unknown field for exec"),
    ({"ops": [{"op": "exit", "pid": 9}]}, "ops[0].pid: pid 9 is not a process"),
    ({"ops": [{"op": "vfork", "pid": 1}, {"op": "fork", "pid": 1}]}, "ops[1].pid: pid 1 is still inside vfork"),
    ({"config": {"fixes": {"FIX_NOPE": True}}, "ops": []}, "config.fixes.FIX_NOPE: unknown fix toggle"),
    ({"config": {"PID_MAX": 30, "PID_FLOOR": 50}, "ops": []}, "PID_FLOOR < PID_MAX"),
    ({"config": {"PID_MAX": 30, "PID_FLOOR": 5, "PID_HIGH_FLOOR": 3},
      "ops": [{"op": "fork", "pid": 1}, {"op": "exit", "pid": 2}, {"op": "exit", "pid": 2}]},
     "ops[2].pid: pid 2 is a zombie"),
])
def test_malformed_scenarios_exit_2(tmp_path, capsys, data, needle):
    assert main(["kernel", "run", write(tmp_path, data)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_bad_json_points_at_line_and_column(tmp_path, capsys):
    path = write(tmp_path, '{"ops": [\n  {"op": "fork", "pid": 1,}\n]}')
    assert main(["kernel", "run", path]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2:" in err and "^" in err


def test_kernel_without_subcommand_is_usage_error(capsys):
    assert main(["kernel"]) == 2


def test_missing_file(capsys):
    assert main(["kernel", "run", "/nonexistent/s.json"]) == 2
    assert "cannot read scenario" in capsys.readouterr().err


def test_panic_exits_1(tmp_path, capsys):
    path = write(tmp_path, {"ops": [{"op": "exit", "pid": 1}, {"op": "fork", "pid": 1}]})
    assert main(["kernel", "run", path, "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert "init died" in out["panic"]["panic"] and len(out["results"]) == 1
