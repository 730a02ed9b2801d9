"""`forkcheck verify [MODEL...]`: run every model as its file asks and compare with its [expect].

CI's one command. For each model it runs the engines the model asks for,
merges their verdicts per property, compares each with the model's
expectation, keeps the committed counterexamples honest (still found, same
length; rewritten only with --update), prints a table and a summary line,
and can write JSON, JUnit XML and SARIF. Exit codes as DESIGN.md: 0 all as
expected, 1 an unexpected verdict, 2 an input error, 3 a limit stopped a
model first, 4 a counterexample to induction, 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import interrupt
from .cliargs import positive_int
from .diagnostics import ForkcheckError, UsageError
from .results import EXIT_INTERRUPTED, PropertyResult, RunResult, StopReason, Verdict
from .trace.itf import Trace, TraceError, write_atomic
from .trace.report import Location, ModelReport, Row, Status, VerifyReport
from .trace.seed import SeedSource, find_seed_dir, repo_root
from .trace.shrink import FOCUS_KEY, focus_from_system

CEX_DIR = "counterexamples"
MODELS_DIR = "models"
ITF_SUFFIX = ".itf.json"


@dataclass(frozen=True)
class VerifyOptions:
    root: Path                          # paths in reports are relative to this (the checkout)
    cex_dir: Path                       # counterexamples/<model>/<property>.itf.json
    update: bool = False                # rewrite committed counterexamples
    write_traces: bool = True
    time_limit: float | None = None     # per engine run, seconds
    max_states: int | None = None
    workers: int = 1
    max_memory: int | None = None       # MiB, per explorer run
    progress: bool | None = None        # the explorer's live line (None: when stderr is a terminal)
    progress_label: str = ""            # put in front of that line: which model of how many


@dataclass
class ModelRun:
    """What the engines said about one model (a runner's answer)."""
    name: str
    model_file: Path
    spec_file: str | None
    expect: dict[str, str]
    results: list[RunResult]
    system: Any = None                  # ir.System, for property locations and trace focus
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False           # Ctrl-C/SIGTERM between or inside the engines: `results` so far


Runner = Callable[[Path, VerifyOptions], ModelRun]


# ------------------------------------------------------------------ engines


def default_runner(path: Path, opts: VerifyOptions) -> ModelRun:
    """Load the model and run what it asks: the explorer (invariants, asserts, deadlock,
    lock order, races, liveness) and, when asked and available, the prover."""
    model_mod = _require("checker.model", "the model loader")
    model = model_mod.load_model(path)
    system = model.system
    name = getattr(model, "name", None) or path.stem
    expect = dict(getattr(model, "expect", {}) or {})
    results: list[RunResult] = []
    notes: list[str] = []

    explore = _require("checker.explore", "the explorer")
    eopts = _explore_options(explore, model, opts)
    props = getattr(model, "properties", None)
    kwargs: dict[str, Any] = {"model_name": name, "expect": expect}
    if props is not None:
        kwargs["properties"] = props
    interrupted = False
    try:
        results.append(explore.check(system, eopts, **kwargs))
        interrupt.check()               # a signal whose KeyboardInterrupt was lost: no second engine
        if _wants_proofs(model) and not any(r.stop is StopReason.INTERRUPTED for r in results):
            if importlib.util.find_spec("checker.prove") is None or not hasattr(
                    importlib.import_module("checker.prove"), "prove_model"):
                notes.append("the model asks for proofs but this build has no prover entry point (prove_model)")
            else:
                prove = importlib.import_module("checker.prove")
                results.append(prove.prove_model(model, time_limit=opts.time_limit))
    except KeyboardInterrupt:
        # between the engines (or before the explorer's search): keep what the finished ones said
        interrupted = True
    return ModelRun(name=name, model_file=path, spec_file=str(getattr(system, "spec_file", "") or "") or None,
                    expect=expect, results=results, system=system, notes=notes, interrupted=interrupted)


def _require(module: str, what: str) -> Any:
    if importlib.util.find_spec(module) is None:
        raise UsageError(f"{what} ({module}) is not available in this build of forkcheck")
    return importlib.import_module(module)


def _explore_options(explore: Any, model: Any, opts: VerifyOptions) -> Any:
    base = None
    for attr in ("explore_options", "options"):
        v = getattr(model, attr, None)
        v = v() if callable(v) else v
        if v is not None and type(v).__name__ == "ExploreOptions":
            base = v
            break
    if base is None:
        base = explore.ExploreOptions()
    changes: dict[str, Any] = {}
    if opts.time_limit is not None:
        changes["time_limit"] = opts.time_limit
    if opts.max_states is not None:
        changes["max_states"] = opts.max_states
    if opts.workers != 1:
        changes["workers"] = opts.workers
    if opts.max_memory is not None:
        changes["max_memory"] = opts.max_memory
    if opts.progress is not None:
        changes["progress"] = opts.progress
    if opts.progress_label:
        changes["progress_label"] = opts.progress_label
    if dataclasses.is_dataclass(base) and changes:
        names = {f.name for f in dataclasses.fields(base)}
        base = dataclasses.replace(base, **{k: v for k, v in changes.items() if k in names})
    return base


def _wants_proofs(model: Any) -> bool:
    check = getattr(model, "check", None)
    for key in ("proofs", "prove"):
        v = check.get(key) if isinstance(check, dict) else getattr(check, key, None)
        if v:
            return True
    return False


# --------------------------------------------------------------- comparison

# Which verdict a row shows when engines give different ones (and none meets the expectation).
_PREFERENCE = (Verdict.VIOLATED, Verdict.PROVED, Verdict.HOLDS, Verdict.CTI, Verdict.UNKNOWN)


def _merge(expected: str, found: list[tuple[RunResult, PropertyResult]]) -> tuple[Verdict, PropertyResult,
                                                                                 RunResult, str]:
    """One verdict per property out of every engine's, and a disagreement note."""
    verdicts = {p.verdict for _, p in found}
    conflict = ""
    if Verdict.VIOLATED in verdicts and verdicts & {Verdict.PROVED, Verdict.HOLDS}:
        # A sound toolchain cannot both find a counterexample and prove or exhaust its absence.
        conflict = "engines disagree: " + ", ".join(f"{r.engine} {p.verdict.value}" for r, p in found)
    if not conflict:
        for r, p in found:
            if p.verdict.satisfies(expected):
                return p.verdict, p, r, ""
        if expected in ("holds", "proved"):
            for r, p in found:
                if p.verdict is Verdict.CTI:
                    return p.verdict, p, r, ""
    best = min(found, key=lambda rp: _PREFERENCE.index(rp[1].verdict))
    return best[1].verdict, best[1], best[0], conflict


_MACHINE_LIMITS = (StopReason.TIME_LIMIT, StopReason.MEMORY_LIMIT)


def _status(verdict: Verdict | None, expected: str, conflict: str) -> Status:
    if conflict or verdict is None:
        return Status.UNEXPECTED
    if verdict.satisfies(expected):
        return Status.OK
    if verdict is Verdict.UNKNOWN:
        return Status.LIMIT
    if verdict is Verdict.CTI:
        return Status.CTI
    return Status.UNEXPECTED


def property_location(system: Any, name: str, root: Path) -> Location | None:
    """Where the spec declares a property (invariant, leads-to)."""
    if system is None:
        return None
    for decl in list(getattr(system, "invariants", ())) + list(getattr(system, "leadsto", ())):
        if decl.name == name and decl.span.line > 0:
            return Location(_rel(Path(decl.span.file), root), decl.span.line, decl.span.col)
    return None


def compare(run: ModelRun, opts: VerifyOptions) -> list[Row]:
    """Rows for every property an engine reported or the model expects, in report order."""
    by_name: dict[str, list[tuple[RunResult, PropertyResult]]] = {}
    for r in run.results:
        for p in r.properties:
            by_name.setdefault(p.name, []).append((r, p))
    rows: list[Row] = []
    for name, found in by_name.items():
        # A property with no [expect] entry must hold: CI should not pass on an unannounced bug.
        expected = run.expect.get(name) or next((p.expected for _, p in found if p.expected), None) or "holds"
        verdict, prop, res, conflict = _merge(expected, found)
        status = _status(verdict, expected, conflict)
        message = conflict or prop.message
        if status is Status.LIMIT and res.stop.is_limit and not message:
            message = f"{res.engine} stopped: {res.stop.value}"
        if status is Status.OK and verdict is Verdict.UNKNOWN and res.stop in _MACHINE_LIMITS:
            # An expected "unknown" must come from the model's state or depth bound: a time or
            # memory stop gives it on one machine and a verdict on a faster one.
            status = Status.LIMIT
            message = (f"{res.engine} stopped: {res.stop.value}, before the model's own bound "
                       f"(max_states/max_depth): this 'unknown' depends on the machine")
        trace = prop.trace if isinstance(prop.trace, Trace) else None
        rows.append(Row(model=run.name, property=name, kind=prop.kind, verdict=verdict, expected=expected,
                        status=status, seconds=sum(p.seconds for _, p in found),
                        engines=tuple(dict.fromkeys(r.engine for r, _ in found)), message=message,
                        trace=trace, spec_location=property_location(run.system, name, opts.root)))
    for name, expected in run.expect.items():
        if name not in by_name:
            kind = "?"
            if run.system is not None and hasattr(run.system, "property_names"):
                kind = run.system.property_names.get(name, "?")
            stopped = [r for r in run.results if r.stop.is_limit or r.stop is StopReason.INTERRUPTED]
            why = (f" ({stopped[0].engine} stopped: {stopped[0].stop.value})" if stopped else
                   " (interrupted before every engine ran)" if run.interrupted else "")
            rows.append(Row(model=run.name, property=name, kind=kind, verdict=None, expected=expected,
                            status=Status.LIMIT if stopped or run.interrupted else Status.UNEXPECTED,
                            message="no engine reported a verdict for this property" + why,
                            spec_location=property_location(run.system, name, opts.root)))
    return rows


# ------------------------------------------------------- counterexample files


def cex_path(opts: VerifyOptions, model: str, prop: str) -> Path:
    return opts.cex_dir / model / f"{prop}{ITF_SUFFIX}"


def reconcile(row: Row, run: ModelRun, opts: VerifyOptions) -> None:
    """Write, or check against, counterexamples/<model>/<property>.itf.json."""
    path = cex_path(opts, row.model, row.property)
    if row.trace is None:
        if row.expected == "violated" and path.exists():
            row.notes.append(f"the committed counterexample {_rel(path, opts.root)} is no longer found")
        return
    trace = row.trace
    trace.model, trace.property = row.model, row.property
    if row.kind and not trace.kind:
        trace.kind = row.kind
    if run.system is not None and FOCUS_KEY not in trace.extra:
        focus = focus_from_system(run.system, row.property)
        if focus:
            trace.extra[FOCUS_KEY] = focus
    rel = _rel(path, opts.root)
    regression = row.status is Status.OK and row.expected == "violated"
    if regression and path.exists() and not opts.update:
        row.trace_file = rel
        try:
            committed = Trace.read(path)
        except TraceError as e:
            row.status = Status.UNEXPECTED
            row.notes.append(f"the committed counterexample cannot be read: {e.message}")
            return
        old, new = len(committed.states) - 1, len(trace.states) - 1
        if old != new:
            row.status = Status.UNEXPECTED
            row.notes.append(f"the counterexample now has {new} steps, the committed {rel} has {old} "
                             f"(forkcheck verify --update rewrites it if the change is intended)")
        else:
            row.notes.append(f"same length as the committed counterexample ({new} steps)")
        replay_note = _replay(committed, run)
        if replay_note is not None:
            ok, text = replay_note
            row.notes.append(text)
            if not ok:
                row.status = Status.UNEXPECTED
        return
    if not opts.write_traces:
        return
    existed = path.exists()
    trace.write(path)
    row.trace_file = rel
    row.notes.append(f"{'rewrote' if existed else 'wrote'} {rel}")


def _replay(trace: Trace, run: ModelRun) -> tuple[bool, str] | None:
    """Replay a committed counterexample on the reference kernel, once checker.trace.replay exists.

    Contract: `replay_trace(trace, system) -> object with .ok: bool and .message: str`.
    """
    if importlib.util.find_spec("checker.trace.replay") is None:
        return None
    mod = importlib.import_module("checker.trace.replay")
    fn = getattr(mod, "replay_trace", None)
    if fn is None:
        return None
    try:
        out = fn(trace, run.system)
    except ForkcheckError as e:  # the committed file is not a run of this model (any more)
        return False, f"does not replay on the reference kernel: {e.message}"
    ok = bool(getattr(out, "ok", False))
    msg = str(getattr(out, "message", ""))
    if not getattr(out, "applicable", True):
        return True, msg if msg.startswith("not replayed") else f"not replayed: {msg}"
    return ok, ("replays on the reference kernel" if ok else f"does not replay on the reference kernel: {msg}")


# ------------------------------------------------------------------- driver


def run_model(path: Path, opts: VerifyOptions, runner: Runner, label: str,
              progress: Callable[[str], None] | None = None) -> tuple[ModelReport, bool]:
    """Run one model, compare and reconcile its counterexamples: its report, and whether an
    interrupt stopped it (its report then holds what the engines had so far)."""
    m0 = time.perf_counter()
    try:
        if progress:
            progress(f"verify {label} ...")
        run = runner(path, dataclasses.replace(opts, progress_label=label + "  ") if progress else opts)
    except ForkcheckError as e:
        return ModelReport(name=path.stem, model_file=_rel(path, opts.root), error=e.render(),
                           seconds=time.perf_counter() - m0), False
    except KeyboardInterrupt:
        # interrupted before an engine ran (loading, compiling): nothing of this model to report
        return ModelReport(name=path.stem, model_file=_rel(path, opts.root),
                           stop=["interrupted"], seconds=time.perf_counter() - m0), True
    # An engine that was interrupted returns what it had; the run stops after this model.
    interrupted = run.interrupted or interrupt.requested() or any(
        r.stop is StopReason.INTERRUPTED for r in run.results)
    with interrupt.deferred():      # a signal now only stops the run after this model's report
        rows = compare(run, opts)
    if not interrupted:
        # A partial run neither rewrites nor judges the committed counterexamples.
        if progress:
            progress(f"verify {label}: counterexamples ...")
        try:
            for row in rows:
                reconcile(row, run, opts)
        except KeyboardInterrupt:
            interrupted = True
    with interrupt.deferred():
        stats: dict[str, Any] = {r.engine: r.stats.to_json() for r in run.results}
        stop = [f"{r.engine}: {r.stop.value}" for r in run.results]
        if run.interrupted and not any(r.stop is StopReason.INTERRUPTED for r in run.results):
            stop.append("interrupted")
        report = ModelReport(
            name=run.name, model_file=_rel(run.model_file, opts.root),
            spec_file=None if run.spec_file is None else _rel(Path(run.spec_file), opts.root), rows=rows,
            stop=stop, stats=stats, seconds=time.perf_counter() - m0)
    return report, interrupted


# How long an interrupted model process may take to send what it had (it stops within a second).
_JOB_GRACE = 10.0
_JOB_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _job_main(conn: Any, path: Path, opts: VerifyOptions, runner: Runner, label: str) -> None:
    """One model in its own process (forked, SIGINT/SIGTERM blocked): the report goes back
    through `conn`."""
    # Its own process group: a terminal's Ctrl-C reaches only the parent, which forwards one
    # SIGINT. One sent to the old group before this line is pending (blocked) and merges with
    # the forwarded one; the handler raises only once in any case, so a second signal cannot cut
    # the report short.
    os.setpgid(0, 0)
    signal.set_wakeup_fd(-1)        # the parent's wakeup socket is not ours to write to
    from .cli import interrupt_z3_on_signal
    from .explore.parallel import _die_with_parent

    def once(signum: int, frame: Any) -> None:
        if interrupt.requested():
            interrupt.request()
            return
        interrupt.handler(signum, frame)

    signal.signal(signal.SIGINT, once)
    signal.signal(signal.SIGTERM, once)
    _die_with_parent()
    interrupt_z3_on_signal()       # threads do not survive fork: a watcher of our own for z3
    m0 = time.perf_counter()
    try:
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _JOB_SIGNALS)
            report, interrupted = run_model(path, opts, runner, label)
        except KeyboardInterrupt:   # before the model started
            report, interrupted = ModelReport(name=path.stem, model_file=_rel(path, opts.root),
                                              stop=["interrupted"], seconds=time.perf_counter() - m0), True
        msg: tuple[Any, ...] = ("done", report, interrupted)
    except BaseException:           # a bug, not a verdict: the parent shows it
        import traceback
        msg = ("crash", traceback.format_exc())
    with interrupt.deferred():
        conn.send(msg)
        conn.close()


def _verify_parallel(paths: Sequence[Path], opts: VerifyOptions, runner: Runner, jobs: int,
                     progress: Callable[[str], None] | None, done: Callable[[ModelReport], None],
                     models: list[ModelReport], t0: float) -> VerifyReport:
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("fork")
    child_opts = dataclasses.replace(opts, progress=False)   # one terminal line: the parent's
    finished: dict[int, ModelReport] = {}
    running: dict[int, tuple[Any, Any]] = {}                 # index -> (process, connection)
    next_i = flushed = 0
    interrupted = False

    def flush() -> None:
        nonlocal flushed
        while flushed in finished:
            with interrupt.deferred():
                done(finished[flushed])
            flushed += 1

    def collect(i: int) -> None:
        nonlocal interrupted
        proc, conn = running.pop(i)
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            msg = ("lost",)
        conn.close()
        proc.join()
        if msg[0] == "crash":
            raise RuntimeError(f"verify: model {paths[i]} crashed:\n{msg[1]}")
        if msg[0] == "lost":        # killed before it could report (only after an interrupt)
            interrupted = True
            return
        finished[i] = msg[1]
        interrupted = interrupted or msg[2]

    try:
        while (next_i < len(paths) or running) and not interrupted:
            while next_i < len(paths) and len(running) < jobs and not interrupt.requested():
                recv, send = ctx.Pipe(duplex=False)
                label = f"[{next_i + 1}/{len(paths)}] {paths[next_i].stem}"
                proc = ctx.Process(target=_job_main, args=(send, paths[next_i], child_opts, runner, label),
                                   name=f"forkcheck-verify-{paths[next_i].stem}", daemon=True)
                # blocked until the child has its own group and handler (see _job_main)
                old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _JOB_SIGNALS)
                try:
                    proc.start()
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
                send.close()
                running[next_i] = (proc, recv)
                next_i += 1
            if interrupt.requested():
                raise KeyboardInterrupt
            if progress:
                progress(f"verify: {len(finished)}/{len(paths)} done, running "
                         + ", ".join(paths[i].stem for i in sorted(running)))
            ready = wait([c for _, c in running.values()], timeout=0.5)
            for i in [i for i, (_, c) in running.items() if c in ready]:
                collect(i)
            flush()
    except KeyboardInterrupt:
        interrupted = True
    if interrupted:
        # The models still running stop and send what they had; the others never start.
        for proc, _ in running.values():
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + _JOB_GRACE
        with interrupt.deferred():
            for i in sorted(running):
                proc, conn = running[i]
                if not conn.poll(max(0.0, deadline - time.monotonic())):
                    proc.kill()
                collect(i)
            # models that finished after one before them was interrupted are reported too
            for i in sorted(finished):
                if i >= flushed:
                    done(finished[i])
    else:
        flush()
    not_run = [p.stem for i, p in enumerate(paths) if i not in finished] if interrupted else []
    return VerifyReport(models=models, seconds=time.perf_counter() - t0, interrupted=interrupted,
                        not_run=not_run)


def verify(paths: Sequence[Path], opts: VerifyOptions, runner: Runner = default_runner,
           progress: Callable[[str], None] | None = None,
           on_model: Callable[[ModelReport], None] | None = None, jobs: int = 1) -> VerifyReport:
    """Run the models; `on_model` gets each model's report, in the order of `paths`, as soon as it
    and every model before it are done. `jobs` > 1 runs that many models at once, each in its own
    process (same verdicts, rows, counts and files as one at a time)."""
    t0 = time.perf_counter()
    models: list[ModelReport] = []
    interrupted = False

    def done(m: ModelReport) -> None:
        models.append(m)
        if on_model:
            on_model(m)

    if jobs > 1 and len(paths) > 1:
        return _verify_parallel(paths, opts, runner, jobs, progress, done, models, t0)
    for i, path in enumerate(paths):
        if interrupt.requested():
            interrupted = True          # between two models (its KeyboardInterrupt may have been lost)
            break
        label = f"[{i + 1}/{len(paths)}] {path.stem}"
        report, interrupted = run_model(path, opts, runner, label, progress)
        with interrupt.deferred():
            done(report)
        if interrupted or interrupt.requested():
            interrupted = True
            break
    not_run = [p.stem for p in paths[len(models):]] if interrupted else []
    return VerifyReport(models=models, seconds=time.perf_counter() - t0, interrupted=interrupted, not_run=not_run)


def find_models(args: Sequence[str], root: Path) -> list[Path]:
    """MODEL arguments are files, folders of *.toml, or names in models/; none means all of models/."""
    if not args:
        d = _models_dir(root)
        found = sorted(d.glob("*.toml")) if d.is_dir() else []
        if not found:
            raise UsageError(f"no model files (*.toml) in {d}")
        return found
    out: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            out += sorted(p.glob("*.toml"))
        elif p.is_file():
            out.append(p)
        elif (_models_dir(root) / f"{a}.toml").is_file():
            out.append(_models_dir(root) / f"{a}.toml")
        else:
            raise UsageError(f"no such model: {a} (a .toml file, a folder of them, or a name in "
                             f"{_models_dir(root)})")
    return out


def _models_dir(root: Path) -> Path:
    return root / MODELS_DIR


def find_root(start: Path | None = None) -> Path:
    """The checkout: the nearest folder upwards with models/ (or pyproject.toml), else this package's."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / MODELS_DIR).is_dir() or (d / "pyproject.toml").is_file():
            return d
    return repo_root()


def _rel(p: Path, root: Path) -> str:
    try:
        return str(p.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(p)


# -------------------------------------------------------------------- output

_COLUMNS = ("model", "property", "kind", "verdict", "expected", "trace", "time", "")
_RIGHT = {"trace", "time"}
# Widths the streamed table reserves before any row is known (a longer cell just pushes its row).
_MIN_WIDTHS = {"kind": len("lock_order"), "verdict": len("violated"), "expected": len("violated"),
               "trace": len("999 (lasso)"), "time": len("999.99s"), "": len("UNEXPECTED")}
_BUILTIN_PROPERTIES = ("deadlock", "witness", "lock_order", "races", "runtime")
_STYLE = {Status.OK: "green", Status.UNEXPECTED: "bold red", Status.LIMIT: "yellow", Status.CTI: "yellow",
          Status.ERROR: "bold red"}


def _cells(r: Row) -> tuple[str, ...]:
    trace = "" if r.trace_length is None else str(r.trace_length) + (" (lasso)" if r.trace and
                                                                       r.trace.loop is not None else "")
    mark = {Status.OK: "ok", Status.UNEXPECTED: "UNEXPECTED", Status.LIMIT: "LIMIT", Status.CTI: "CTI",
            Status.ERROR: "ERROR"}[r.status]
    return (r.model, r.property, r.kind, r.verdict.value if r.verdict else "-", r.expected or "-", trace,
            f"{r.seconds:.2f}s", mark)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.rjust(w) if h in _RIGHT else c.ljust(w)
                     for c, w, h in zip(cells, widths, _COLUMNS)).rstrip()


def _head(widths: Sequence[int]) -> list[str]:
    return [_line(_COLUMNS, widths), "  ".join("-" * w for w in widths).rstrip()]


def table_plain(report: VerifyReport) -> str:
    """The whole table at once, each column as wide as its widest cell."""
    rows = [_cells(r) for r in report.rows]
    widths = [max([len(h)] + [len(c[i]) for c in rows]) for i, h in enumerate(_COLUMNS)]
    return "\n".join(_head(widths) + [_line(c, widths) for c in rows])


def column_widths(paths: Sequence[Path]) -> list[int]:
    """Widths for a table printed row by row: model and property names from the model files
    (their names, [expect] and [check] lists, the built-in checks), the rest fixed."""
    import tomllib
    models, props = [], list(_BUILTIN_PROPERTIES)
    for p in paths:
        models.append(p.stem)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue                    # the run reports it, with its position
        if isinstance(data.get("name"), str):
            models.append(data["name"])
        for key in ("expect", "check"):
            tbl = data.get(key)
            if not isinstance(tbl, dict):
                continue
            props += [k for k in tbl if key == "expect"]
            for lst in ("invariants", "properties"):
                if isinstance(tbl.get(lst), list):
                    props += [x for x in tbl[lst] if isinstance(x, str)]
    cols = {"model": models, "property": props}
    return [max([len(h), _MIN_WIDTHS.get(h, 0)] + [len(x) for x in cols.get(h, ())]) for h in _COLUMNS]


def details(report: VerifyReport) -> list[str]:
    """What the reader must know beyond the table: errors, why a row is not ok, where its trace is."""
    out: list[str] = []
    for m in report.models:
        if m.error is not None:
            out.append(f"{m.name}: could not be run:")
            out += ["  " + ln for ln in m.error.splitlines()]
        for r in m.rows:
            if r.status is Status.OK:
                continue
            head = f"{r.model}/{r.property}: {r.status.value}: verdict {r.verdict.value if r.verdict else '-'}, " \
                   f"expected {r.expected}"
            out.append(head)
            if r.message:
                out.append(f"  {r.message}")
            out += [f"  {n}" for n in r.notes]
            if r.trace_file and r.is_violation:
                out.append(f"  see: forkcheck trace show {r.trace_file}")
    return out


class TablePrinter:
    """The table, printed model by model as each finishes (one aligned table: the widths are
    fixed up front by `column_widths`), then the details and the summary line.

    On a terminal the status marks are coloured and `clear` (the progress line's eraser) runs
    before each write; elsewhere (CI logs, files) it is plain text, flushed per model."""

    def __init__(self, stream: Any, widths: Sequence[int], *, color: bool = False,
                 clear: Callable[[], None] | None = None):
        self.stream = stream
        self.widths = list(widths)
        self.clear = clear
        self.started = False
        self.con = None
        if color:
            from rich.console import Console
            self.con = Console(file=stream, highlight=False, soft_wrap=True)

    def _write(self, lines: list[list[tuple[str, str]]]) -> None:
        """Lines of (text, rich style) segments."""
        if self.clear:
            self.clear()
        if self.con is not None:
            from rich.text import Text
            for segs in lines:
                self.con.print(Text.assemble(*segs))
        else:
            self.stream.write("".join("".join(t for t, _ in segs) + "\n" for segs in lines))
        self.stream.flush()

    def model(self, m: ModelReport) -> None:
        lines: list[list[tuple[str, str]]] = []
        if not self.started:
            self.started = True
            lines += [[(h, "bold")] for h in _head(self.widths)]
        for r in m.rows:
            cells = _cells(r)
            pre = _line(list(cells[:-1]) + [""], self.widths)
            lines.append([(pre + "  ", ""), (cells[-1], _STYLE[r.status])])
        if lines:
            self._write(lines)

    def finish(self, report: VerifyReport) -> None:
        lines: list[list[tuple[str, str]]] = []
        if not self.started:
            self.started = True
            lines += [[(h, "bold")] for h in _head(self.widths)]
        lines += [[(ln, "")] for ln in details(report)]
        lines.append([(report.summary(), "bold green" if report.exit_code() == 0 else "bold red")])
        self._write(lines)


def write_outputs(report: VerifyReport, args: argparse.Namespace, opts: VerifyOptions, seed: SeedSource) -> None:
    from .trace import junit, sarif

    if args.json:
        write_atomic(args.json, json.dumps(report.to_json(), indent=1) + "\n")
    if args.junit:
        write_atomic(args.junit, junit.to_junit(report, seed))
    if args.sarif:
        doc = sarif.to_sarif(report, seed=seed, src_root_uri=opts.root.resolve().as_uri() + "/",
                             seed_root_uri=None if seed.directory is None
                             else seed.directory.resolve().as_uri() + "/")
        write_atomic(args.sarif, sarif.dumps(doc))


def cmd_verify(args: argparse.Namespace) -> int:
    root = find_root()
    # A progress line only on a terminal: CI logs and files get the rows and nothing else.
    tty = sys.stdout.isatty()
    show = tty and sys.stderr.isatty() and not args.quiet
    opts = VerifyOptions(root=root, cex_dir=Path(args.cex_dir) if args.cex_dir else root / CEX_DIR,
                         update=args.update, write_traces=not args.no_write, time_limit=args.time_limit,
                         max_states=args.max_states, workers=args.workers, max_memory=args.max_memory,
                         progress=show)
    paths = find_models(args.models, root)
    seed = SeedSource(find_seed_dir(args.seed_dir))
    progress = clear = None
    if show:
        def progress(msg: str) -> None:
            sys.stderr.write("\r\033[K" + msg)
            sys.stderr.flush()

        def clear() -> None:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
    printer = TablePrinter(sys.stdout, column_widths(paths), color=tty, clear=clear)
    try:
        jobs = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
        report = verify(paths, opts, runner=default_runner, progress=progress, on_model=printer.model,
                        jobs=min(jobs, len(paths)))
    finally:
        if clear:
            clear()
    # the report and its files are written whole: a signal now is noted, then exits 130
    with interrupt.deferred():
        printer.finish(report)
        write_outputs(report, args, opts, seed)
    if report.interrupted:
        sys.stderr.write("verify: interrupted" + (f" ({len(report.not_run)} models not run: "
                                                 f"{', '.join(report.not_run)})" if report.not_run else "") + "\n")
    elif interrupt.requested():
        sys.stderr.write("verify: interrupted while writing the report (every model had run)\n")
        return EXIT_INTERRUPTED
    return report.exit_code()


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("verify", help="run every model and compare verdicts with their [expect]",
                              description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="model files, folders, or names in models/ (default: every model in models/)")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (one testcase per model and property)")
    p.add_argument("--sarif", metavar="FILE", help="write SARIF 2.1.0 (violations with their traces)")
    p.add_argument("--update", action="store_true",
                   help="rewrite the committed counterexamples under counterexamples/")
    p.add_argument("--no-write", action="store_true", help="write no counterexample files")
    p.add_argument("--cex-dir", metavar="DIR", help="counterexample folder (default: counterexamples/)")
    p.add_argument("--seed-dir", metavar="DIR", help="folder with the seed kern_fork.c "
                   "(default: $FORKCHECK_SEED_DIR, then ../shared/seed)")
    p.add_argument("--time-limit", type=float, metavar="SECONDS", help="per engine run")
    p.add_argument("--max-states", type=int, metavar="N", help="per explorer run")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="explorer worker processes")
    p.add_argument("--jobs", "-j", type=positive_int, default=None, metavar="N",
                   help="models run at once, each in its own process (default: the number of CPUs; "
                        "1 runs them one by one in this process)")
    p.add_argument("--max-memory", type=int, metavar="MIB",
                   help="per explorer run: stop cleanly once resident memory reaches MIB mebibytes")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress line (there is none anyway when stdout or stderr is not a terminal)")
    p.set_defaults(func=cmd_verify)
