"""Explorer benchmark: `python tests/bench/bench_explore.py [--quick] [MODEL...]`.

For each bundled model (models/ex_*.toml, models/*.toml with --all, and the
built-in fork/exit-like IR model) and each mode (reductions off/on, store
kind), prints distinct states, transitions, states/s, peak memory and bytes
per stored state, the time to the first counterexample and to the full
verdict. Each run is its own process so peak memory is per run. `st/cpu-s` is
states per second of the run's own CPU time: on a shared machine compare
that (or ratios of runs made back to back) rather than wall-clock states/s.
Not a pass/fail test: numbers depend on the machine and its load.

`--kinds invariant,deadlock,runtime,witness` checks only properties of those kinds (races and
lock order make every step log its accesses); `--modes plain/compact,sym` only those modes.

`--workers [N ...]` instead compares `--workers N` with one process (default N = 2) on
fork1_2001 cut at 100k states and the fork/exit-like IR model fork_exit(2, 4, 8) (242k states),
each run --repeat times (with `--fingerprint`, in fingerprint mode): wall seconds, user+sys CPU
of the run and its workers, states/s and the speedup over one process (best wall of each). The load average is printed: with other
jobs on the 2 cores, wall time says more about them than about the workers (the scheduler
shares the CPU per session, and every BFS level waits for the slower worker). So it also
prints `idle est`: the wall time with a core per process and nothing else running (one
process: its CPU; workers: the coordinator's CPU plus, per round, the busiest worker's),
and the speedup that would give.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "explore"))

# name, symmetry, por, store
MODES = [
    ("plain/compact", False, False, "compact"),
    ("sym", True, False, "compact"),
    ("por", False, True, "compact"),
    ("sym+por", True, True, "compact"),
    ("plain/dict", False, False, "dict"),
    ("plain/fp", False, False, "fingerprint"),
]


def _load(name: str) -> tuple[Any, list[str] | None]:
    if name.startswith("ir:"):
        import irbuild
        kind, *args = name[3:].split(",")
        return getattr(irbuild, kind)(*map(int, args)), None
    from checker.model import load_model
    m = load_model(str(ROOT / name))
    return m.system, getattr(m, "properties", None)


def _safety(system: Any, props: list[str] | None, kinds: frozenset[str] | None = None) -> list[str]:
    """The model's safety properties (or those it selects), only of `kinds` if given."""
    names = props or list(system.property_names)
    return [p for p in names if system.property_names[p] != "leadsto"
            and (kinds is None or system.property_names[p] in kinds)]


def _one(job: tuple[str, str, bool, bool, str, float, int | None, frozenset[str] | None], q: Any) -> None:
    name, mode, sym, por, store, limit, max_states, kinds = job
    from checker.explore import ExploreOptions, check
    from checker.explore.search import peak_memory
    system, props = _load(name)
    props = _safety(system, props, kinds)
    opts = ExploreOptions(symmetry=sym, por=por, compact=store == "compact", fingerprint=store == "fingerprint",
                          time_limit=limit, max_states=max_states, progress=False)
    t0 = time.monotonic()
    first = check(system, ExploreOptions(symmetry=sym, por=por, compact=opts.compact, fingerprint=opts.fingerprint,
                                         time_limit=limit, max_states=max_states, stop_first=True, progress=False),
                  model_name=name, properties=props)
    t_first = time.monotonic() - t0 if any(p.verdict.value == "violated" for p in first.properties) else None
    c0 = time.process_time()
    r = check(system, opts, model_name=name, properties=props)
    cpu = time.process_time() - c0       # this process's CPU: steadier than wall time on a shared machine
    q.put({"cpu_sps": r.stats.states / max(cpu, 1e-9), "model": name, "mode": mode, "states": r.stats.states, "transitions": r.stats.transitions,
           "sps": r.stats.states_per_second, "seconds": r.stats.seconds, "peak": peak_memory(),
           "bps": r.stats.store_bytes / max(1, r.stats.states), "first": t_first, "stop": r.stop.value,
           "verdicts": {p.name: p.verdict.value for p in r.properties}})


def _in_child(target: Any, job: tuple) -> dict[str, Any]:
    """target(job, queue) in a forked process: each run's peak memory is its own."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(job, q))
    p.start()
    out = q.get()
    p.join()
    return out


def run(job: tuple[str, str, bool, bool, str, float, int | None, frozenset[str] | None]) -> dict[str, Any]:
    return _in_child(_one, job)


WORKER_MODELS = [("models/fork1_2001.toml", 100_000), ("ir:fork_exit,2,4,8", None)]


def _cpu() -> float:
    """User+sys CPU of this process and its waited-for children (the workers)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _one_workers(job: tuple[str, int, int | None, bool], q: Any) -> None:
    name, workers, max_states, fp = job
    from checker.explore import ExploreOptions, check
    from checker.explore.parallel import PARALLEL_KINDS
    system, props = _load(name)
    # only what the workers check: the others would run in one process beside them
    props = [p for p in _safety(system, props) if system.property_names[p] in PARALLEL_KINDS]
    opts = ExploreOptions(por=False, workers=workers, max_states=max_states, progress=False, fingerprint=fp)
    from checker.explore import parallel
    c0, s0, t0 = _cpu(), time.process_time(), time.monotonic()
    r = check(system, opts, model_name=name, properties=props)
    wall, cpu = time.monotonic() - t0, _cpu() - c0
    # the wall time with a core per process and nothing else running: one process's CPU, or
    # the coordinator's plus each round's busiest worker's
    ideal = time.process_time() - s0 + (parallel.profile.critical_cpu if workers > 1 else 0.0)
    q.put({"states": r.stats.states, "transitions": r.stats.transitions, "wall": wall, "cpu": cpu, "ideal": ideal,
           "stop": r.stop.value, "verdicts": [(p.name, p.verdict.value, p.trace_length) for p in r.properties],
           "fingerprint": any(nt.startswith("fingerprint mode") for nt in r.notes)})


def _run_workers(job: tuple[str, int, int | None, bool]) -> dict[str, Any]:
    return _in_child(_one_workers, job)


def compare_workers(counts: list[int], repeat: int, fp: bool = False) -> None:
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"{'model':<24} {'workers':>7} {'states':>9} {'wall s':>14} {'cpu s':>14} {'states/s':>9} "
          f"{'speedup':>7} {'idle est':>8} {'speedup':>7}  stop")
    for name, max_states in WORKER_MODELS:
        base = None
        for w in [1] + counts:
            rs = [_run_workers((name, w, max_states, fp)) for _ in range(repeat)]
            best = min(rs, key=lambda r: r["wall"])
            if base is None:
                base = best
            elif (best["states"], best["transitions"], best["verdicts"]) != (
                    base["states"], base["transitions"], base["verdicts"]) and max_states is None:
                print(f"  !! counts or verdicts differ from one process: {best} vs {base}")
            walls = "/".join(f"{r['wall']:.2f}" for r in rs)
            cpus = "/".join(f"{r['cpu']:.2f}" for r in rs)
            ideal = min(r["ideal"] for r in rs)
            if w == 1:
                base_ideal = ideal
            print(f"{name:<24} {w:>7} {best['states']:>9,} {walls:>14} {cpus:>14} "
                  f"{best['states'] / best['wall']:>9,.0f} {base['wall'] / best['wall']:>6.2f}x "
                  f"{ideal:>8.2f} {base_ideal / ideal:>6.2f}x  {best['stop']}")
            sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*")
    ap.add_argument("--quick", action="store_true", help="only the plain and sym+por modes")
    ap.add_argument("--all", action="store_true", help="also models/*.toml beyond the examples")
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--max-states", type=int, default=None,
                    help="stop each run after this many states (same work before and after a change)")
    ap.add_argument("--workers", nargs="*", type=int, metavar="N",
                    help="compare --workers N (default 2) with one process instead (see the top)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each --workers configuration")
    ap.add_argument("--fingerprint", action="store_true", help="--workers runs in fingerprint mode")
    ap.add_argument("--kinds", type=lambda v: frozenset(v.split(",")), default=None, metavar="KIND,...",
                    help="check only properties of these kinds (e.g. invariant,deadlock,runtime,witness: "
                         "without race and lock_order no step logs its accesses)")
    ap.add_argument("--modes", type=lambda v: v.split(","), default=None, metavar="MODE,...",
                    help=f"only these modes ({', '.join(m[0] for m in MODES)})")
    a = ap.parse_args()
    from checker import ir
    kinds_known = set(ir.BUILTIN_PROPERTIES.values()) | {"invariant", "assert"}
    if a.kinds is not None and not a.kinds <= kinds_known:
        ap.error(f"unknown kind {sorted(a.kinds - kinds_known)[0]!r}; choose from {', '.join(sorted(kinds_known))}")
    if a.modes is not None and not set(a.modes) <= {m[0] for m in MODES}:
        ap.error(f"unknown mode {sorted(set(a.modes) - {m[0] for m in MODES})[0]!r}; "
                 f"choose from {', '.join(m[0] for m in MODES)}")
    if a.workers is not None:
        compare_workers(a.workers or [2], a.repeat, a.fingerprint)
        return
    models = a.models or ([str(p.relative_to(ROOT)) for p in sorted((ROOT / "models").glob(
        "*.toml" if a.all else "ex_*.toml"))] + ["ir:fork_exit,2,3,6", "ir:fork_exit,3,3,6"])
    modes = [m for m in MODES if (not a.quick or m[0] in ("plain/compact", "sym+por"))
             and (a.modes is None or m[0] in a.modes)]
    print(f"{'model':<32} {'mode':<14} {'states':>9} {'trans':>9} {'states/s':>9} {'st/cpu-s':>9} {'B/state':>8} "
          f"{'peak MiB':>8} {'first cex':>9} {'verdict s':>9}  stop")
    for name in models:
        base = None
        for mode, sym, por, store in modes:
            r = run((name, mode, sym, por, store, a.time_limit, a.max_states, a.kinds))
            first = "-" if r["first"] is None else f"{r['first']:.3f}"
            print(f"{name:<32} {mode:<14} {r['states']:>9,} {r['transitions']:>9,} {r['sps']:>9,.0f} "
                  f"{r['cpu_sps']:>9,.0f} "
                  f"{r['bps']:>8.1f} {r['peak'] / 2**20:>8.1f} {first:>9} {r['seconds']:>9.3f}  {r['stop']}")
            if base is None:
                base = r["verdicts"]
            elif r["verdicts"] != base and r["stop"] == "finished":
                print(f"  !! verdicts differ from the plain run: {r['verdicts']} vs {base}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
