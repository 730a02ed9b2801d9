"""Fingerprint-mode memory: `python tests/bench/bench_fingerprint.py [--max-states N] [MODEL...]`.

For each model (default: models/fork1_2001.toml cut at 100k states and the
fork/exit-like IR model fork_exit(3, 3, 6)), one BFS in fingerprint mode
(invariants, asserts, deadlock, runtime, witness; no reductions) prints, per
stored state: the fingerprint table, the hasher's value cache at the end and
at its largest (sampled every 5,000 states; it is bounded by a number of
components, not by the states, so its share per state shrinks as a run
grows), the search's parent pointers (kept per state beside the store), and
the BFS frontier at its peak (the level being expanded plus the one being
built, each shared object counted once). Speed: see bench_explore.py (the
measuring here slows the search). Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "explore"))

KINDS = ("invariant", "assert", "deadlock", "runtime", "witness")
DEFAULT = [("models/fork1_2001.toml", 100_000), ("ir:fork_exit,3,3,6", None)]


def _load(name: str) -> Any:
    if name.startswith("ir:"):
        import irbuild
        kind, *args = name[3:].split(",")
        return getattr(irbuild, kind)(*map(int, args))
    from checker.model import load_model
    return load_model(str(ROOT / name)).system


def measure(name: str, max_states: int | None) -> dict[str, Any]:
    from checker.explore import ExploreOptions, check, search
    from checker.explore.store import _deep_distinct
    system = _load(name)
    props = [p for p, k in system.property_names.items() if k in KINDS]
    levels: dict[int, list[Any]] = {}
    cur = [-1]
    peak = {"frontier": 0, "frontier_states": 0, "cache": 0}
    srch: list[Any] = []
    next_sample = [0]

    def level_done(d: int) -> None:
        sts = levels.get(d, []) + levels.get(d + 1, [])
        # the states' objects, plus per entry a list slot and the (index, state) pair
        b = _deep_distinct(sts) + len(sts) * (8 + 56)
        if b > peak["frontier"]:
            peak["frontier"], peak["frontier_states"] = b, len(sts)
        levels.pop(d, None)

    def wrap(exp: Any) -> Any:
        def expand(s: Any, idx: int, st: Any) -> Any:
            d = s.depth[idx]
            if d != cur[0]:
                if cur[0] >= 0:
                    level_done(cur[0])
                cur[0] = d
            out = exp(s, idx, st)
            if out:
                levels.setdefault(d + 1, []).extend(x[1] for x in out)
            if len(s.store) >= next_sample[0]:
                next_sample[0] = len(s.store) + 5000
                peak["cache"] = max(peak["cache"], s.store.hasher.nbytes())
            return out
        return expand

    orig = search.Search._bind_fused

    def bind(self: Any) -> None:
        orig(self)
        srch.append(self)
        self._exp = wrap(self._exp)

    search.Search._bind_fused = bind      # type: ignore[method-assign]
    try:
        r = check(system, ExploreOptions(symmetry=False, por=False, fingerprint=True, max_states=max_states,
                                         progress=False), model_name=name, properties=props)
    finally:
        search.Search._bind_fused = orig  # type: ignore[method-assign]
    if cur[0] >= 0:
        level_done(cur[0])
    s = srch[0]
    n = len(s.store)
    cache_end = s.store.hasher.nbytes()
    parents = sum(a.itemsize * len(a) for a in (s.parent, s.via_tid, s.via_step, s.depth, s.pre, s.last)) + \
        sys.getsizeof(s.count) + sum(sys.getsizeof(c) for c in s.count if c > 256)
    return dict(model=name, states=n, table=s.store.table_bytes() / n,
                cache_end=cache_end / n, cache_peak=max(peak["cache"], cache_end) / n,
                total=r.stats.store_bytes / n, parents=parents / n, frontier=peak["frontier"] / n,
                frontier_mib=peak["frontier"] / 2**20, frontier_states=peak["frontier_states"],
                computed=s.store.hasher.computed[0], stop=r.stop.value)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*")
    ap.add_argument("--max-states", type=int, default=None)
    a = ap.parse_args()
    jobs = [(m, a.max_states) for m in a.models] or DEFAULT
    print(f"{'model':<24} {'states':>9} {'table':>6} {'cache':>6} {'(peak)':>6} {'store':>6} "
          f"{'parents':>7} {'frontier peak':>22}  stop   (bytes per stored state)")
    for name, ms in jobs:
        r = measure(name, ms)
        print(f"{r['model']:<24} {r['states']:>9,} {r['table']:>6.1f} {r['cache_end']:>6.1f} "
              f"{r['cache_peak']:>6.1f} {r['total']:>6.1f} {r['parents']:>7.1f} "
              f"{r['frontier']:>6.1f} ({r['frontier_states']:,} st, {r['frontier_mib']:.1f} MiB)  {r['stop']}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
