"""Same model, same options: same verdicts, state counts and byte-identical counterexamples.

Each pair of runs uses different PYTHONHASHSEED values (string hashing) and, being two
processes, different addresses (hash(None) in Python 3.11). Found by this test:
lock-order cycles reported from a hash-dependent starting class, and --workers
partitioning states by hash().
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent.parent

# Allocation, free (None slots in the state), a lost update and several shortest paths
# to the violation: which one is reported depends on the order of the search.
POOL_SPEC = """\
struct obj [3] { v: 0..3 = 0 }
var n: 0..3 = 0
var done: 0..3 = 0
thread t[i in 0..2] {
  var q: ref obj = null
  q := alloc obj
  q.v := 1
  racy n := n + 1
  free q
  done := done + 1
}
invariant all_counted: done == 3 => n == 3
"""

_TIMING = {"seconds", "states_per_second", "peak_memory", "store_bytes"}


def _strip(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in _TIMING}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def _run(args: list[str], cwd: Path, seed: str) -> tuple[Any, dict[str, bytes]]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    traces = cwd / f"traces-{seed}"
    p = subprocess.run([sys.executable, "-m", "checker.cli", *args, "--json", "--trace-dir", str(traces)],
                       cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode in (0, 1), p.stderr
    out = json.loads(p.stdout)
    for prop in out["properties"]:
        prop.pop("trace_file", None)      # names the per-run folder
    files = {f.name: f.read_bytes() for f in sorted(traces.glob("*.itf.json"))}
    return _strip(out), files


def _same_twice(args: list[str], cwd: Path) -> dict[str, bytes]:
    a, fa = _run(args, cwd, "1")
    b, fb = _run(args, cwd, "4242")
    assert a == b
    assert fa.keys() == fb.keys()
    for name in fa:
        assert fa[name] == fb[name], f"{name} differs between runs"
    return fa


@pytest.mark.parametrize("model", ["ex_abba", "ex_racy_counter", "ex_lost_wakeup"])
def test_example_models(tmp_path: Path, model: str) -> None:
    files = _same_twice(["check", str(REPO / "models" / f"{model}.toml")], tmp_path)
    assert files                         # each has a counterexample to compare


@pytest.mark.parametrize("extra", [[], ["--workers", "2"], ["--dfs"], ["--no-symmetry", "--no-por"]],
                         ids=["bfs", "workers2", "dfs", "unreduced"])
def test_pool_spec(tmp_path: Path, extra: list[str]) -> None:
    spec = tmp_path / "pool.fk"
    spec.write_text(POOL_SPEC)
    files = _same_twice(["check", spec.name, *extra], tmp_path)
    assert "all_counted.itf.json" in files


def test_simulate_seed_is_printed_and_replays(tmp_path: Path) -> None:
    spec = tmp_path / "pool.fk"
    spec.write_text(POOL_SPEC)

    def sim(seed: str | None, hashseed: str) -> subprocess.CompletedProcess[str]:
        args = [sys.executable, "-m", "checker.cli", "simulate", spec.name, "--runs", "20"]
        if seed is not None:
            args += ["--seed", seed]
        return subprocess.run(args + ["--json"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONHASHSEED": hashseed})

    first = sim(None, "1")
    notes = json.loads(first.stdout)["notes"]
    seed = next(n.split()[1] for n in notes if n.startswith("seed "))
    a, b = sim(seed, "2"), sim(seed, "3")
    ja, jb = _strip(json.loads(a.stdout)), _strip(json.loads(b.stdout))
    assert ja == jb and f"seed {seed}" in " ".join(ja["notes"])
    assert _strip(json.loads(first.stdout)) == ja
