"""The interrupt flag (checker/interrupt.py) at the exact points a signal can land.

A real signal's KeyboardInterrupt can be dropped (raised in a finalizer: z3's objects have
`__del__`), and a z3 call does not return until asked to. These tests put the interrupt
at chosen points: "raised" is a real SIGINT through the CLI's handler, "lost" only sets
the flag, as when the exception was dropped. Either way the run stops at the next check
and reports what it had decided, with the stop reason `interrupted`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import z3

from checker import interrupt
from checker.explore import ExploreOptions, check
from checker.lang import load_spec
from checker.prove import ProveOptions, prove_system
from checker.prove import encode, induction, pidscan
from checker.results import PropertyResult, RunResult, Stats, StopReason, Verdict
from checker.verify import ModelRun, VerifyOptions, default_runner, verify

from .bigspec import BIG_SPEC, write_big

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_flag():
    old = signal.getsignal(signal.SIGINT)
    interrupt.reset()
    yield
    signal.signal(signal.SIGINT, old)
    interrupt.reset()


def _hard_solver() -> z3.Solver:
    """Pigeonhole 10 into 9 with the prover's own solver: seconds of search."""
    s = encode.make_solver()
    n = 9
    p = [[z3.Bool(f"p{i}_{j}") for j in range(n)] for i in range(n + 1)]
    for i in range(n + 1):
        s.add(z3.Or(p[i]))
    for j in range(n):
        for i in range(n + 1):
            for k in range(i + 1, n + 1):
                s.add(z3.Or(z3.Not(p[i][j]), z3.Not(p[k][j])))
    return s


def _interrupt(how: str) -> None:
    if how == "raised":
        signal.signal(signal.SIGINT, interrupt.handler)
        os.kill(os.getpid(), signal.SIGINT)     # the handler runs before the next bytecode
    else:
        interrupt.request()


def test_an_interrupted_z3_call_is_the_interrupt_not_unknown() -> None:
    s = _hard_solver()

    def watcher() -> None:                      # what the CLI's watcher does after a signal
        time.sleep(0.3)
        interrupt.request()
        z3.main_ctx().interrupt()

    threading.Thread(target=watcher).start()
    with pytest.raises(KeyboardInterrupt):
        encode.solve(s)


def test_no_z3_call_starts_once_interrupted() -> None:
    # a z3 interrupt only stops the call running at that moment: one that came between two
    # calls must not let the next one run to its end
    interrupt.request()
    z3.main_ctx().interrupt()
    with pytest.raises(KeyboardInterrupt):
        encode.solve(_hard_solver())


def test_sigint_inside_a_z3_call_stops_the_cli_at_once(tmp_path: Path) -> None:
    # the whole path in a fresh process: the CLI's handler and watcher, z3 with its own
    # Ctrl-C handling off (with it on, z3 swallows the signal and the solve runs to its end)
    script = textwrap.dedent(f"""
        import signal, sys, threading, time
        sys.path.insert(0, {str(REPO)!r})
        from checker import cli, interrupt
        from tests.robust.test_interrupt_flag import _hard_solver
        from checker.prove.encode import solve
        signal.signal(signal.SIGINT, interrupt.handler)
        cli.interrupt_z3_on_signal()
        s = _hard_solver()
        main = threading.main_thread().ident
        threading.Timer(0.5, lambda: signal.pthread_kill(main, signal.SIGINT)).start()
        t0 = time.monotonic()
        try:
            solve(s)
            print("not interrupted")
        except KeyboardInterrupt:
            print(f"interrupted after {{time.monotonic() - t0:.2f}}s; z3: {{s.reason_unknown()}}")
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert p.stdout.startswith("interrupted after"), (p.stdout, p.stderr)
    # z3 was stopped in the call (the solve alone takes seconds), not left to finish it
    assert p.stdout.rstrip().endswith("z3: interrupted"), p.stdout
    assert "Traceback" not in p.stderr, p.stderr


@pytest.mark.parametrize("how", ["raised", "lost"])
def test_prove_interrupted_between_properties(how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # k-induction decides `small` first (a CTI: a + ... = 89 steps to 90), then is interrupted
    system = load_spec(str(write_big(tmp_path)[0]), {})
    calls = []
    real = induction.solve

    def solve(slv: z3.Solver) -> z3.CheckSatResult:
        calls.append(1)
        if len(calls) == 2:
            _interrupt(how)
        return real(slv)

    monkeypatch.setattr(induction, "solve", solve)
    props = ["small", "deadlock", "runtime", "witness"]
    res = prove_system(system, ProveOptions(progress=False), model_name="big", properties=props)
    assert res.stop is StopReason.INTERRUPTED
    by = {p.name: p for p in res.properties}
    assert by["small"].verdict is Verdict.CTI                # decided before the interrupt
    for p in props[1:]:
        assert by[p].verdict is Verdict.UNKNOWN and by[p].message == "interrupted before it was decided"
    assert res.exit_code() == 130
    assert "stopped: interrupted" in res.describe()


def test_bmc_keeps_what_it_found_before_the_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "big.fk"
    spec.write_text(BIG_SPEC + "invariant tiny: a + b < 2\n")
    system = load_spec(str(spec), {})
    from checker.prove import bmc as bmc_mod
    real = bmc_mod.solve
    seen = []

    def solve(slv: z3.Solver) -> z3.CheckSatResult:
        seen.append(1)
        if len(seen) == 16:                     # depth 3 or so: tiny is violated at depth 2
            interrupt.request()
        return real(slv)

    monkeypatch.setattr(bmc_mod, "solve", solve)
    res = prove_system(system, ProveOptions(bmc=50, progress=False), model_name="big")
    assert res.stop is StopReason.INTERRUPTED
    by = {p.name: p for p in res.properties}
    assert by["tiny"].verdict is Verdict.VIOLATED and by["tiny"].trace is not None
    d = res.stats.depth
    assert 2 <= d < 50
    assert by["small"].verdict is Verdict.UNKNOWN
    assert by["small"].message == f"interrupted: no violation within {d} steps (bounded: not a proof)"


def test_explorer_stops_on_a_lost_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = load_spec(str(write_big(tmp_path)[0]), {})
    interrupt.request()
    res = check(system, ExploreOptions(progress=False), model_name="big")
    assert res.stop is StopReason.INTERRUPTED
    assert 0 < res.stats.states < 5000          # stopped at its first clock check, not at the end


def test_check_interrupted_before_the_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # compiling the steps is outside the search: still a result, with the stop reason and time
    system = load_spec(str(write_big(tmp_path)[0]), {})
    from checker.explore import compiled

    def compile_system(*a, **k):
        _interrupt("raised")

    monkeypatch.setattr(compiled, "compile_system", compile_system)
    res = check(system, ExploreOptions(progress=False), model_name="big")
    assert res.stop is StopReason.INTERRUPTED and res.exit_code() == 130
    assert all(p.verdict is Verdict.UNKNOWN for p in res.properties) and res.properties
    assert "stopped: interrupted" in res.describe() and "0 states" in res.describe()


def _run(name: str, verdict: Verdict = Verdict.HOLDS) -> RunResult:
    return RunResult(name, "explore", StopReason.FINISHED, [PropertyResult("inv", "invariant", verdict)],
                     Stats(states=7, transitions=9, depth=3, seconds=0.1))


@pytest.mark.parametrize("where", ["lost after the engines", "while reporting the first"])
def test_verify_interrupted_between_models(tmp_path: Path, where: str) -> None:
    ran: list[str] = []

    def runner(path: Path, opts: VerifyOptions) -> ModelRun:
        ran.append(path.stem)
        if path.stem == "one" and where.startswith("lost"):
            interrupt.request()                 # its KeyboardInterrupt was dropped somewhere
        return ModelRun(path.stem, path, None, {"inv": "holds"}, [_run(path.stem)])

    def on_model(m) -> None:                    # printing the first model's rows
        if where.startswith("while") and m.name == "one":
            _interrupt("raised")

    paths = [tmp_path / "one.toml", tmp_path / "two.toml", tmp_path / "three.toml"]
    rep = verify(paths, VerifyOptions(root=tmp_path, cex_dir=tmp_path / "cex"), runner=runner, on_model=on_model)
    assert ran == ["one"]
    assert rep.interrupted and rep.exit_code() == 130
    assert rep.not_run == ["two", "three"]
    assert [m.name for m in rep.models] == ["one"]
    assert rep.models[0].rows[0].verdict is Verdict.HOLDS
    assert rep.models[0].stats["explore"]["states"] == 7


def test_verify_keeps_the_explorer_results_when_interrupted_before_the_prover(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "small.fk").write_text("var a: 0..3 = 0\nthread t[i in 0..1] {\n  a := (a + 1) % 4\n}\n"
                                       "invariant small: a < 4\n")
    model = tmp_path / "m.toml"
    model.write_text('spec = "small.fk"\n\n[check]\nproofs = true\n\n[expect]\nraces = "violated"\n')
    import checker.prove

    def prove_model(*a, **k):
        _interrupt("raised")

    monkeypatch.setattr(checker.prove, "prove_model", prove_model)
    run = default_runner(model, VerifyOptions(root=tmp_path, cex_dir=tmp_path / "cex"))
    assert run.interrupted
    assert [r.engine for r in run.results] == ["explore"] and run.results[0].stop is StopReason.FINISHED


def test_pidscan_interrupted_reports_the_groups_done(monkeypatch: pytest.MonkeyPatch) -> None:
    real = pidscan.solve
    calls = []

    def solve(slv: z3.Solver) -> z3.CheckSatResult:
        calls.append(1)
        if len(calls) == 40:                    # inside the cache-invariant group (32 calls before it)
            interrupt.request()
        return real(slv)

    monkeypatch.setattr(pidscan, "solve", solve)
    rep = pidscan.prove_pidscan()
    assert rep.interrupted and not rep.proved and rep.verdict == "unknown"
    groups = {o.group for o in rep.obligations}
    assert groups == {"loop invariant"}         # whole groups only
    assert rep.to_json()["stop_reason"] == "interrupted"


def test_prove_interrupted_before_its_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = load_spec(str(write_big(tmp_path)[0]), {})
    from checker.prove import run as run_mod

    def k_induction(*a, **k):                   # e.g. while the encoder is built
        _interrupt("raised")

    monkeypatch.setattr(run_mod, "k_induction", k_induction)
    res = prove_system(system, ProveOptions(progress=False), model_name="big")
    assert res.stop is StopReason.INTERRUPTED and res.exit_code() == 130
    assert res.properties and all(p.verdict is Verdict.UNKNOWN and p.message == "interrupted before it was decided"
                                  for p in res.properties)


def test_a_signal_in_a_deferred_block_is_only_recorded() -> None:
    signal.signal(signal.SIGINT, interrupt.handler)
    with interrupt.deferred():
        os.kill(os.getpid(), signal.SIGINT)
        x = sum(range(1000))                    # bytecodes run: the handler has been called
    assert x == 499500 and interrupt.requested()
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(1000))


def test_simulate_stops_on_a_lost_interrupt(tmp_path: Path) -> None:
    from checker.explore.simulate import simulate
    system = load_spec(str(write_big(tmp_path)[0]), {})
    interrupt.request()
    res = simulate(system, runs=50, depth=100, seed=1, model_name="big")
    assert res.stop is StopReason.INTERRUPTED and res.stats.transitions == 0


def test_a_stale_z3_interrupt_does_not_cancel_the_next_proof(tmp_path: Path) -> None:
    # a Ctrl-C handled earlier in this process left z3's context interrupted with no call
    # running; the next BMC run must not die on "push canceled"
    spec = tmp_path / "big.fk"
    spec.write_text(BIG_SPEC + "invariant tiny: a + b < 2\n")
    system = load_spec(str(spec), {})
    z3.main_ctx().interrupt()
    res = prove_system(system, ProveOptions(bmc=3, progress=False), model_name="big", properties=["tiny"])
    assert res.properties[0].verdict is Verdict.VIOLATED
