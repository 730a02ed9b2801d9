"""A longer soak of the BMC-from-a-state cross-check (not a pass/fail test of the suite):
`python tests/bench/sweep_bmc_states.py [MODEL ...]` (default: every models/*.toml).

The suite's test (tests/prove/test_models.py) starts BMC at one state per explorer trace and
three sampled states per model. This starts it at s_{L-m} for m = 3, 7, 13 on each of the
explorer's shortest traces, at every 37th state along them (depth 8), and at twelve states of
three random runs (depth 8), and compares BMC's depth for every provable property with the
interpreter's BFS from the same state. Prints one line per model; exits 1 on any disagreement.
"""

from __future__ import annotations

import random
import sys
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "prove"))


def main(names: list[str]) -> int:
    import checker.explore as ex
    from checker.explore.traces import replay
    from checker.model import load_model
    from checker.prove.bmc import bmc
    from checker.prove.run import provable_subset, select
    from checker.semantics import Semantics
    from crosscheck import distances, shows, walk

    known = sorted(p.stem for p in (REPO / "models").glob("*.toml"))
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"unknown model {unknown[0]!r}; the models are: {', '.join(known)}", file=sys.stderr)
        return 2
    paths = [REPO / "models" / f"{n}.toml" for n in names or known]
    total = near = bad = 0
    for path in paths:
        t0 = time.monotonic()
        model = load_model(path)
        system = model.system
        sem = Semantics(system)
        props = provable_subset(system, model.properties) or select(system, None)
        expect = dict(model.expect or {})
        starts: list[tuple[object, int, str]] = []
        violated = [p for p in props if expect.get(p) == "violated"]
        if violated:
            res = ex.check(system, ex.ExploreOptions(por=False, symmetry=False, progress=False),
                           model_name=path.stem, properties=violated)
            for e in res.properties:
                if e.trace is None:
                    print(f"  {path.stem}: the explorer gives no trace for {e.name} ({e.verdict.value})")
                    bad += 1
                    continue
                moves = [(sem.thread_names.index(st.thread), st.step_id) for st in e.trace.steps[1:]]
                states = [sem.initial_state()] + [t.state for t in replay(sem, moves)]
                n = len(moves)
                starts += [(states[n - m], m, f"{e.name} s_{n - m} of {n}") for m in (3, 7, 13) if m <= n]
                starts += [(states[j], 8, f"{e.name} s_{j}") for j in range(0, n - 13, 37)]
        rng = random.Random(zlib.crc32(path.stem.encode()) + 1)
        for i in range(3):
            starts += [(s, 8, f"random run {i}") for s in walk(sem, rng, [0.1, 0.4, 0.6, 0.9])]
        for state, m, where in starts:
            ref = distances(sem, state, props, m)
            r = bmc(system, props, m, start=state)
            got = {p: f.depth for p, f in r.found.items()}
            total += 1
            near += bool(ref)
            if got != ref or r.unknown or not all(shows(sem, state, f.moves, p) for p, f in r.found.items()):
                bad += 1
                print(f"  DISAGREE {path.stem} {where}: BMC {got} {r.unknown or ''}, interpreter BFS {ref}")
        print(f"{path.stem:<28} {len(starts):>3} start states  {time.monotonic() - t0:6.1f}s", flush=True)
    print(f"{total} start states, {near} within reach of a violation, {bad} disagreements")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
