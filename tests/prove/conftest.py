"""Prover tests. Random and hand-built IR systems come from the explorer's
test helpers (tests/explore/irbuild.py, randsys.py): the same systems both
engines are tested on."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "explore"))
