"""Resource limits: refused with the figure and the limit, or stopped cleanly with "memory limit"."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from checker.diagnostics import ForkcheckError
from checker.lang import load_text
from checker.lang.build import MAX_POOL_SIZE
from checker.lang.lower import MAX_THREADS
from checker.lang.parser import MAX_INT
from checker.results import EXIT_LIMIT

from .bigspec import write_big


@pytest.mark.parametrize("text, figure, limit", [
    ("struct proc [1025] { a: 0..1 = 0 }\nthread t { skip }\n", "1025 slots", f"the limit is {MAX_POOL_SIZE}"),
    ("const N = 5000\nstruct proc [N * 2] { a: 0..1 = 0 }\nthread t { skip }\n", "10000 slots", "the limit is"),
    ("var x: 0..1 = 0\nthread t[i in 0..64] { x := 1 }\n", "65 threads", f"the limit is {MAX_THREADS}"),
    ("var x: 0..1 = 0\nthread t[i in 0..40] { x := 1 }\nthread u[i in 0..40] { x := 1 }\n", "82 threads",
     f"the limit is {MAX_THREADS}"),
    ("var x: 0..99999999999999999999 = 0\nthread t { skip }\n", "integer 99999999999999999999", str(MAX_INT)),
    ("const A = 4294967296\nconst B = A * A\nthread t { skip }\n", "overflows", str(MAX_INT)),
    ("const A = 4294967296\nvar x: 0..A * A * A = 0\nthread t { skip }\n", "overflows", str(MAX_INT)),
])
def test_refused_with_figure_and_limit(text: str, figure: str, limit: str) -> None:
    with pytest.raises(ForkcheckError) as ei:
        load_text(text, "big.fk")
    msg = ei.value.render().splitlines()[0]
    assert msg.startswith("big.fk:") and figure in msg and limit in msg, msg


def test_largest_allowed_values_load() -> None:
    s = load_text(f"const N = {MAX_INT}\nvar x: 0..N = 0\nstruct p [{MAX_POOL_SIZE}] {{ a: 0..1 = 0 }}\n"
                  f"thread t[i in 0..{MAX_THREADS - 1}] {{ x := 1 }}\n", "edge.fk")
    assert len(s.threads) == MAX_THREADS and s.pools[0].size == MAX_POOL_SIZE


def test_model_override_beyond_the_limit(tmp_path: Path) -> None:
    from checker.model import load_model
    (tmp_path / "s.fk").write_text("const N = 2\nvar x: 0..N = 0\nthread t { skip }\n")
    m = tmp_path / "m.toml"
    m.write_text('spec = "s.fk"\n[constants]\nN = 999999999999999999999\n')
    with pytest.raises(ForkcheckError) as ei:
        load_model(m)
    text = ei.value.render()
    assert str(MAX_INT) in text and "m.toml:3:" in text, text


def _forkcheck(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "checker.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


# 1 MiB is below any Python process: the run stops at its first memory check, the same
# way in every run (the check itself is what is tested, not the machine's memory).
@pytest.mark.parametrize("workers", [1, 2])
def test_check_max_memory_stops_cleanly(tmp_path: Path, workers: int) -> None:
    spec, _ = write_big(tmp_path)
    p = _forkcheck(["check", spec.name, "--property", "small", "--max-memory", "1", "--json",
                    "--workers", str(workers)], tmp_path)
    assert p.returncode == EXIT_LIMIT, p.stderr
    res = json.loads(p.stdout)
    assert res["stop_reason"] == "memory limit"
    assert res["stats"]["states"] >= 1 and res["stats"]["peak_memory"] > 2**20
    assert res["properties"][0]["verdict"] == "unknown"
    assert "memory limit" in res["properties"][0]["message"]


def test_check_max_memory_text(tmp_path: Path) -> None:
    spec, _ = write_big(tmp_path)
    p = _forkcheck(["check", spec.name, "--property", "small", "--max-memory", "1"], tmp_path)
    assert p.returncode == EXIT_LIMIT
    assert "stopped: memory limit" in p.stdout and "peak memory" in p.stdout


def test_verify_max_memory(tmp_path: Path) -> None:
    _, model = write_big(tmp_path)
    p = _forkcheck(["verify", model.name, "--max-memory", "1", "--no-write", "--json", "r.json"], tmp_path)
    assert p.returncode == EXIT_LIMIT, p.stdout + p.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["models"][0]["stop_reasons"] == ["explore: memory limit"]


def test_max_memory_must_be_positive(tmp_path: Path) -> None:
    spec, _ = write_big(tmp_path)
    p = _forkcheck(["check", spec.name, "--max-memory", "0"], tmp_path)
    assert p.returncode == 2 and "at least 1" in p.stderr


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("args", [
    ["lockorder", "models/ex_abba.toml", "--svg", "{tmp}"],                  # a folder
    ["graph", "models/ex_abba.toml", "--dot", "{tmp}/file/x.dot"],           # under a file
    ["check", "models/ex_abba.toml", "--trace-dir", "{tmp}/file"],           # a file, not a folder
    ["verify", "models/ex_abba.toml", "--json", "{tmp}"],
])
def test_an_output_that_cannot_be_written_is_a_named_error(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    p = subprocess.run([sys.executable, "-m", "checker.cli", *argv], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and "cannot write" in p.stderr, p.stderr
