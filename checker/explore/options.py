"""Options of one explorer run."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Strategy(str, enum.Enum):
    BFS = "bfs"     # shortest counterexamples
    DFS = "dfs"     # less memory for the frontier; traces are not shortest


@dataclass(frozen=True)
class ExploreOptions:
    strategy: Strategy = Strategy.BFS
    max_states: int | None = None      # stop once this many distinct states are stored
    max_depth: int | None = None       # do not expand states at this depth
    time_limit: float | None = None    # seconds
    max_memory: int | None = None      # MiB of resident memory (all processes): stop with "memory limit"
    symmetry: bool = True              # canonicalise thread families and symmetric pool slots
    por: bool = True                   # partial-order reduction (ample sets, cycle proviso)
    fingerprint: bool = False          # store 64-bit fingerprints instead of full states
    compact: bool = True               # full states packed into one arena (False: a Python dict of states)
    workers: int = 1                   # processes partitioning the states by hash
    stop_first: bool = False           # stop at the first violation (others stay unknown)
    progress: bool | None = None       # live line on stderr; None = only when stderr is a TTY
    progress_label: str = ""           # printed in front of that line (verify: which model)
    compiled: bool = True              # use the compiled successor function (False: reference interpreter)
    shorten: bool = True               # re-search DFS (and BFS+POR) counterexamples for a shortest one
    all_races: bool = False            # races: keep exploring after the first report, list every location x rule
    race_skip_ghosts: bool = True      # races: ignore accesses to `ghost var`s (model bookkeeping)
    race_contexts: bool = True         # races: the lockset rule's thread is a `context` (the process a CPU runs)
    race_handoff: bool = True          # races: `context p new E` / `dead D`: accesses before its run / after its end
