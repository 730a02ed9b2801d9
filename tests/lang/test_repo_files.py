"""Every spec and model in the repository parses and type-checks; the examples give their verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from checker.lang import load_spec, parse_file
from checker.lang.ast import ImportD
from checker.model import load_model

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "spec").rglob("*.fk"))
MODELS = sorted((ROOT / "models").glob("*.toml"))


def test_there_are_specs_and_models() -> None:
    assert {p.name for p in SPECS} >= {"racy_counter.fk", "abba.fk", "lost_wakeup.fk", "peterson.fk"}
    assert {p.name for p in MODELS} >= {"ex_racy_counter.toml", "ex_abba.toml", "ex_lost_wakeup.toml",
                                        "ex_peterson.toml"}


def _imported() -> set[Path]:
    """Files some other spec imports: they may use names of their importer, so they are
    type-checked through it (and parsed on their own)."""
    out: set[Path] = set()
    for p in SPECS:
        for d in parse_file(p).decls:
            if isinstance(d, ImportD):
                out.add((p.parent / d.path).resolve())
    return out


IMPORTED = _imported()


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(ROOT)))
def test_spec_loads(path: Path) -> None:
    if path.resolve() in IMPORTED:
        parse_file(path)
        return
    s = load_spec(path)
    assert [st.id for st in s.steps] == list(range(len(s.steps)))
    for c in s.codes:
        assert 0 <= c.entry < c.npcs and 0 <= c.exit < c.npcs
        assert all(0 <= st.src < c.npcs and 0 <= st.dst < c.npcs for st in c.steps)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_model_loads(path: Path) -> None:
    m = load_model(path)
    assert set(m.expect) <= set(m.properties) <= set(m.system.property_names)
    for k, v in m.constants.items():
        assert m.system.constant[k] == v


EXAMPLE_MODELS = sorted((ROOT / "models").glob("ex_*.toml"))


@pytest.mark.parametrize("path", EXAMPLE_MODELS, ids=lambda p: p.name)
def test_example_models_meet_their_expectations(path: Path) -> None:
    explore = pytest.importorskip("checker.explore.check")
    m = load_model(path)
    r = explore.check(m.system, m.explore_options(), model_name=m.name, expect=m.expect,
                      properties=list(m.properties))
    bad = [(p.name, p.verdict.value, p.expected) for p in r.properties if not p.as_expected]
    assert not bad
    assert r.exit_code() == 0


def test_language_reference_snippets_parse() -> None:
    import re

    from checker.lang import parse_text
    text = (ROOT / "spec" / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```\n(.*?)```", text, re.S)
    assert len(blocks) >= 4
    for b in blocks:
        parse_text(b, "spec/README.md")


# Pinned sizes of the teaching examples: any change to the lowering that alters the
# steps, the control points or the state space shows up here (states: BFS, no reduction).
PINNED = {
    "ex_abba.toml": (10, [6, 6], 23, 26),
    "ex_lost_wakeup.toml": (7, [5, 3], 14, 17),
    "ex_lost_wakeup_fixed.toml": (11, [7, 5], 16, 16),
    "ex_peterson.toml": (12, [11], 58, 104),
    "ex_racy_counter.toml": (3, [4], 24, 34),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_example_sizes_are_pinned(name: str) -> None:
    steps, pcs, states, transitions = PINNED[name]
    m = load_model(ROOT / "models" / name)
    assert (len(m.system.steps), [c.npcs for c in m.system.codes]) == (steps, pcs)
    explore = pytest.importorskip("checker.explore.check")
    from checker.explore.options import ExploreOptions
    r = explore.check(m.system, ExploreOptions(symmetry=False, por=False), model_name=m.name,
                      properties=list(m.properties))
    assert (r.stats.states, r.stats.transitions) == (states, transitions)
