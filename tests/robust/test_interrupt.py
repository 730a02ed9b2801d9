"""Ctrl-C and SIGTERM during long runs: stats so far, "interrupted", exit 130, no half-written file.

The child's stderr is a pseudo-terminal so that it prints its live progress line; the
signal is sent once that line shows the search running (not after a sleep), so the
outcome does not depend on the machine's speed.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .bigspec import write_big

# A stuck child fails the test instead of hanging the suite (not a pass/fail timing).
HANG = 240.0


def _run_and_signal(args: list[str], cwd: Path, sig: int, ready: bytes,
                    tty_stdout: bool = False) -> tuple[int, str, str]:
    """Run `forkcheck ARGS`, send `sig` to its process group once its stderr shows `ready`.

    With `tty_stdout` stdout is the same terminal as stderr (verify shows progress only
    then): both come back as one text, as `out` and as `err`."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "checker.cli", *args], cwd=cwd,
                         stdout=slave if tty_stdout else subprocess.PIPE,
                         stderr=slave, stdin=subprocess.DEVNULL, start_new_session=True)
    os.close(slave)
    err = b""
    try:
        while ready not in err:
            r, _, _ = select.select([master], [], [], HANG)
            assert r, f"no progress line from {args}: {err!r}"
            try:
                chunk = os.read(master, 4096)
            except OSError:
                chunk = b""
            assert chunk, f"forkcheck ended before the search ran: {err!r}"
            err += chunk
        os.killpg(p.pid, sig)             # the whole group, as a terminal's Ctrl-C does
        try:
            out, _ = p.communicate(timeout=HANG)
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


def test_verify_interrupted(tmp_path: Path) -> None:
    _, model = write_big(tmp_path)
    (tmp_path / "models").mkdir()
    second = tmp_path / "models" / "second.toml"
    second.write_text((tmp_path / "big.toml").read_text().replace('"big.fk"', '"../big.fk"'))
    out_dir = tmp_path / "out"
    args = ["verify", str(model), str(second), "--json", str(out_dir / "r.json"), "--junit",
            str(out_dir / "r.xml"), "--sarif", str(out_dir / "r.sarif"), "--cex-dir", str(tmp_path / "cex")]
    rc, out, err = _run_and_signal(args, tmp_path, signal.SIGINT, b" states ", tty_stdout=True)
    assert rc == 130, (out, err)
    assert "Traceback" not in err, err
    assert "stopped: interrupted" in out and "1 not run" in out, out
    assert "second" in err            # the models an interrupt left out are named
    report = json.loads((out_dir / "r.json").read_text())
    assert report["exit_code"] == 130 and report["stop_reason"] == "interrupted"
    assert report["not_run"] == ["second"]
    assert report["models"][0]["stop_reasons"] == ["explore: interrupted"]
    ET.parse(out_dir / "r.xml")
    json.loads((out_dir / "r.sarif").read_text())
    _no_temp_files(tmp_path)
    # a partial run writes no counterexample (and would not rewrite a committed one)
    assert not (tmp_path / "cex").exists()


# fixme: about 1 run in 8 the KeyboardInterrupt is lost inside z3's Python layer and the
# watcher in checker/cli.py never catches the main thread inside z3 again; the run then goes
# on to the BMC bound. Slow tier only (a lost interrupt waits out HANG).
@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="an interrupt can be lost inside z3 (see checker/cli.py)")
def test_prove_interrupted_fixme(tmp_path: Path) -> None:
    # BMC deepens one step at a time; by depth 6 each z3 call is a real solve. The CLI's
    # signal watcher interrupts z3 inside a call (Python alone would wait for it to return).
    spec, _ = write_big(tmp_path)
    rc, out, err = _run_and_signal(["prove", spec.name, "--bmc", "400"], tmp_path, signal.SIGINT, b"BMC depth 6")
    assert rc == 130, (out, err)
    assert "stopped: interrupted" in out, out
    assert "Traceback" not in err, err
