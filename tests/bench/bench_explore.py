"""Explorer benchmark: `python tests/bench/bench_explore.py [--quick] [MODEL...]`.

For each bundled model (models/ex_*.toml, models/*.toml with --all, and the
built-in fork/exit-like IR model) and each mode (reductions off/on, store
kind), prints distinct states, transitions, states/s, peak memory and bytes
per stored state, the time to the first counterexample and to the full
verdict. Each run is its own process so peak memory is per run. `st/cpu-s` is
states per second of the run's own CPU time: on a shared machine compare
that (or ratios of runs made back to back) rather than wall-clock states/s.
Not a pass/fail test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
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


def _safety(system: Any, props: list[str] | None) -> list[str]:
    names = props or list(system.property_names)
    return [p for p in names if system.property_names[p] != "leadsto"]


def _one(job: tuple[str, str, bool, bool, str, float, int | None], q: Any) -> None:
    name, mode, sym, por, store, limit, max_states = job
    from checker.explore import ExploreOptions, check
    from checker.explore.search import peak_memory
    system, props = _load(name)
    props = _safety(system, props)
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


def run(job: tuple[str, str, bool, bool, str, float, int | None]) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_one, args=(job, q))
    p.start()
    out = q.get()
    p.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*")
    ap.add_argument("--quick", action="store_true", help="only the plain and sym+por modes")
    ap.add_argument("--all", action="store_true", help="also models/*.toml beyond the examples")
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--max-states", type=int, default=None,
                    help="stop each run after this many states (same work before and after a change)")
    a = ap.parse_args()
    models = a.models or ([str(p.relative_to(ROOT)) for p in sorted((ROOT / "models").glob(
        "*.toml" if a.all else "ex_*.toml"))] + ["ir:fork_exit,2,3,6", "ir:fork_exit,3,3,6"])
    modes = [m for m in MODES if not a.quick or m[0] in ("plain/compact", "sym+por")]
    print(f"{'model':<32} {'mode':<14} {'states':>9} {'trans':>9} {'states/s':>9} {'st/cpu-s':>9} {'B/state':>8} "
          f"{'peak MiB':>8} {'first cex':>9} {'verdict s':>9}  stop")
    for name in models:
        base = None
        for mode, sym, por, store in modes:
            r = run((name, mode, sym, por, store, a.time_limit, a.max_states))
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
