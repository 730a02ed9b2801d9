"""The narrow fork1 models reach the verdicts their [expect] tables claim.

Exhaustive explorations of the real spec: minutes, so `slow`. (Once
`forkcheck verify` runs model files, it does this for every model; this test
pins the ones that finish quickly and the spec engineer's reading of them.)"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from checker.explore.check import check
from checker.explore.options import ExploreOptions
from checker.lang import load_spec

REPO = Path(__file__).resolve().parents[2]

# Models whose exploration ends (violation found, or the state space done)
# within minutes on one core; the others are bounded runs.
QUICK = ["fork1_randompid", "fork1_swapout", "fork1_swapout_fixed", "fork1_vfork"]


def _run(name: str):  # type: ignore[no-untyped-def]
    path = REPO / "models" / f"{name}.toml"
    m = tomllib.loads(path.read_text())
    system = load_spec(str((path.parent / m["spec"]).resolve()), m.get("constants", {}))
    c = m.get("check", {})
    props = list(c.get("invariants", [])) + list(c.get("properties", []))
    props += [b for b in ("deadlock", "lock_order", "races") if c.get(b)]
    return m["expect"], check(system, ExploreOptions(progress=False), model_name=name,
                              expect=m["expect"], properties=props)


@pytest.mark.slow
@pytest.mark.parametrize("name", QUICK)
def test_narrow_model_verdicts(name: str) -> None:
    expect, result = _run(name)
    got = {p.name: p.verdict.value for p in result.properties if p.name in expect}
    assert got == expect
