"""Ctrl-C and SIGTERM during long runs: stats so far, "interrupted", exit 130, no half-written file.

The child's stderr is a pseudo-terminal so that it prints its live progress line; the
signal is sent once that line shows the search running (not after a sleep), so the
outcome does not depend on the machine's speed.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .bigspec import write_big

# A stuck child fails the test instead of hanging the suite (not a pass/fail timing).
HANG = 240.0


def _run_and_signal(args: list[str], cwd: Path, sig: int, ready: bytes,
                    tty_stdout: bool = False, watch_stdout: bool = False) -> tuple[int, str, str]:
    """Run `forkcheck ARGS`, send `sig` to its process group once its stderr (with
    `watch_stdout`: its piped stdout) shows `ready`.

    With `tty_stdout` stdout is the same terminal as stderr (verify shows progress only
    then): both come back as one text, as `out` and as `err`."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "checker.cli", *args], cwd=cwd,
                         stdout=slave if tty_stdout else subprocess.PIPE,
                         stderr=slave, stdin=subprocess.DEVNULL, start_new_session=True)
    os.close(slave)
    err = early = b""
    srcs = [master] + ([p.stdout.fileno()] if watch_stdout else [])
    try:
        while ready not in (early if watch_stdout else err):
            r, _, _ = select.select(srcs, [], [], HANG)
            assert r, f"no progress line from {args}: {err!r} {early!r}"
            for fd in r:                  # both, so that a full terminal buffer cannot block the child
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    chunk = b""
                assert chunk, f"forkcheck ended before the search ran: {err!r} {early!r}"
                if fd == master:
                    err += chunk
                else:
                    early += chunk
        os.killpg(p.pid, sig)             # the whole group, as a terminal's Ctrl-C does
        try:
            out, _ = p.communicate(timeout=HANG)
            out = early + (out or b"")
        except subprocess.TimeoutExpired:
            p.kill()
            rest = os.read(master, 65536) if select.select([master], [], [], 1)[0] else b""
            raise AssertionError(f"still running {HANG} s after the signal; stderr: {(err + rest)[-3000:]!r}")
        while True:
            r, _, _ = select.select([master], [], [], 0.1)
            if not r:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            err += chunk
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    if tty_stdout:
        both = err.decode(errors="replace")
        return p.returncode, both, both
    return p.returncode, out.decode(), err.decode(errors="replace")


def _no_temp_files(d: Path) -> None:
    left = [p.name for p in d.rglob("*") if p.name.endswith(".tmp")]
    assert not left, f"half-written files left behind: {left}"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("workers", [1, 2])
def test_check_interrupted(tmp_path: Path, sig: int, workers: int) -> None:
    spec, _ = write_big(tmp_path)
    traces = tmp_path / "traces"
    args = ["check", spec.name, "--trace-dir", str(traces), "--no-trace"]
    if workers > 1:
        args += ["--workers", str(workers)]
    rc, out, err = _run_and_signal(args, tmp_path, sig, b" states ")
    assert rc == 130, (out, err)
    assert "stopped: interrupted" in out, out
    assert " states, " in out and "transitions" in out and "peak memory" in out, out   # the stats so far
    assert "Traceback" not in err, err
    _no_temp_files(tmp_path)
    for f in traces.glob("*.itf.json") if traces.exists() else ():
        json.loads(f.read_text(encoding="utf-8"))     # whole files only


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_verify_interrupted(tmp_path: Path, jobs: str) -> None:
    _, model = write_big(tmp_path)
    (tmp_path / "models").mkdir()
    second = tmp_path / "models" / "second.toml"
    second.write_text((tmp_path / "big.toml").read_text().replace('"big.fk"', '"../big.fk"'))
    out_dir = tmp_path / "out"
    args = ["verify", str(model), str(second), "--json", str(out_dir / "r.json"), "--junit",
            str(out_dir / "r.xml"), "--sarif", str(out_dir / "r.sarif"), "--cex-dir", str(tmp_path / "cex"),
            "-j", jobs]
    # one by one the explorer's live line shows; with -j 2 verify's own line names the running models
    ready = b" states " if jobs == "1" else b"running big, second"
    rc, out, err = _run_and_signal(args, tmp_path, signal.SIGINT, ready, tty_stdout=True)
    assert rc == 130, (out, err)
    assert "Traceback" not in err, err
    assert "stopped: interrupted" in out, out
    report = json.loads((out_dir / "r.json").read_text())
    assert report["exit_code"] == 130 and report["stop_reason"] == "interrupted"
    if jobs == "1":
        assert "1 not run" in out, out
        assert "second" in err            # the models an interrupt left out are named
        assert report["not_run"] == ["second"]
        assert report["models"][0]["stop_reasons"] == ["explore: interrupted"]
    else:                               # both were running: each stopped and said what it had
        assert report["not_run"] == [], report
        assert [m["model"] for m in report["models"]] == ["big", "second"]
        for m in report["models"]:
            assert m["stop_reasons"] in (["explore: interrupted"], ["interrupted"]), m
    ET.parse(out_dir / "r.xml")
    json.loads((out_dir / "r.sarif").read_text())
    _no_temp_files(tmp_path)
    # a partial run writes no counterexample (and would not rewrite a committed one)
    assert not (tmp_path / "cex").exists()


# BMC deepens one step at a time; from depth 6 on each z3 call is a real solve (depth 9: seconds),
# so the signal lands inside z3. Python runs its handler only between bytecodes: the CLI's
# watcher thread stops z3 (checker/cli.py), and z3 must not catch SIGINT itself. `tiny` is
# violated at depth 2, before the signal: a verdict the interrupted run still reports.
TINY = "invariant tiny: a + b < 2\n"


def _bmc_interrupted(tmp_path: Path, sig: int, at_depth: int) -> tuple[str, str]:
    spec, _ = write_big(tmp_path)
    spec.write_text(spec.read_text() + TINY)
    traces = tmp_path / "traces"
    rc, out, err = _run_and_signal(["prove", spec.name, "--bmc", "400", "--trace-dir", str(traces)], tmp_path,
                                   sig, f"BMC depth {at_depth},".encode())
    assert rc == 130, (out, err)
    assert "stopped: interrupted" in out, out
    assert "Traceback" not in err and "Exception ignored" not in err, err
    # the stats so far: the verdict found before the signal, the depth every open property was
    # checked to, which is the one in progress when the signal came, not a later one
    m = re.search(r"BMC depth (\d+)$", out, re.M)
    assert m and at_depth - 1 <= int(m.group(1)) <= at_depth, out
    assert re.search(r"invariant\s+tiny\s+violated", out), out
    assert "counterexample for tiny" in out
    for p in ("small", "deadlock", "runtime"):
        assert re.search(rf"{p}\s+unknown\n\s+interrupted: no violation within {m.group(1)} steps", out), out
    json.loads((traces / "tiny.itf.json").read_text())
    _no_temp_files(tmp_path)
    return out, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_prove_interrupted(tmp_path: Path, sig: int) -> None:
    _bmc_interrupted(tmp_path, sig, 6)


@pytest.mark.slow
def test_prove_interrupted_inside_a_long_z3_call(tmp_path: Path) -> None:
    # at depth 9 one check takes seconds: the signal always lands inside z3
    _bmc_interrupted(tmp_path, signal.SIGINT, 9)


def test_prove_induction_interrupted(tmp_path: Path) -> None:
    spec, _ = write_big(tmp_path)
    rc, out, err = _run_and_signal(["prove", spec.name], tmp_path, signal.SIGINT, b"step case")
    assert rc == 130, (out, err)
    assert "stopped: interrupted" in out and "k-induction k=1" in out, out
    assert "proved" not in out, out        # Houdini did not finish: nothing is proved
    assert "Traceback" not in err, err


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_verify_interrupted_between_models(tmp_path: Path, jobs: str) -> None:
    # the first model finishes at once; the signal comes once its rows are printed, so it lands
    # between the models or in the second: the first model's rows and stats are reported.
    # With -j 2 the second runs in its own process group: verify forwards the signal to it.
    _, big = write_big(tmp_path)
    (tmp_path / "small.fk").write_text("var a: 0..3 = 0\nthread t[i in 0..1] {\n  a := (a + 1) % 4\n}\n"
                                       "invariant small: a < 4\n")
    first = tmp_path / "first.toml"
    first.write_text('spec = "small.fk"\n\n[expect]\nraces = "violated"\n')
    out_dir = tmp_path / "out"
    args = ["verify", str(first), str(big), "--json", str(out_dir / "r.json"), "--cex-dir", str(tmp_path / "cex"),
            "-j", jobs]
    rc, out, err = _run_and_signal(args, tmp_path, signal.SIGINT, b"first  small", watch_stdout=True)
    assert rc == 130, (out, err)
    assert "Traceback" not in err, err
    assert "stopped: interrupted" in out, out
    assert re.search(r"first\s+races\s+race\s+violated\s+violated", out), out
    report = json.loads((out_dir / "r.json").read_text())
    assert report["stop_reason"] == "interrupted" and report["exit_code"] == 130
    names = [m["model"] for m in report["models"]]
    assert names[0] == "first" and report["models"][0]["stop_reasons"] == ["explore: finished"]
    assert report["models"][0]["stats"]["explore"]["states"] > 0
    assert report["not_run"] == ([] if len(names) == 2 else ["big"]), report
    if jobs == "2":             # big ran beside first: it was stopped, and says what it had
        assert names == ["first", "big"], report
        assert "interrupted" in " ".join(report["models"][1]["stop_reasons"]), report
    _no_temp_files(tmp_path)


def test_prove_refcounts_interrupted_says_what_was_derived(tmp_path: Path) -> None:
    # deriving fork1's effect from the IR takes seconds: a signal 4 s in lands inside it (z3
    # calls included: the watcher's cancel can surface from model.eval, not only from check)
    p = subprocess.Popen([sys.executable, "-m", "checker.cli", "prove", "refcounts"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    time.sleep(4)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=HANG)
    assert p.returncode == 130, (out, err)
    assert b"Traceback" not in err, err
    assert b"interrupted while deriving" in out and b"stopped: interrupted" in out, (out, err)
