"""bench_fingerprint.py's accounting (the numbers themselves depend on the model and are not pinned)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).with_name("bench_fingerprint.py")


def test_fingerprint_bench_splits_store_cache_parents_and_frontier():
    r = subprocess.run([sys.executable, str(BENCH), "ir:fork_exit,2,3,6"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    row = r.stdout.splitlines()[1].split()
    states, table, cache, cache_peak, store, parents, frontier = (float(x.replace(",", "")) for x in row[1:8])
    assert states == 24939 and row[-1] == "finished"
    assert table <= 8 / 0.6                      # the table's load stays at least 0.6 past its first size
    assert abs(store - (table + cache)) <= 0.11  # the store is the table and the cache, nothing else
    assert cache <= cache_peak and parents > 0 and frontier > 0
