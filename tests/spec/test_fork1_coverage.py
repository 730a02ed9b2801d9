"""spec/fork1.fk against the seed: every shared-state or lock line of fork1
(197-631) in the hand classification is cited by a step or abstracted.

Two views of the same question: the AST (always available) and the IR's
step refs and System.abstracted (once `checker.lang.load_spec` exists)."""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

import pytest

from checker.lang import ast as A
from checker.lang.parser import parse_module

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "spec" / "fork1.fk"
SPEC_FILES = ("fork1.fk", "kern_env.fk", "kern_proc.fk")
SHARED_LINES = REPO / "tests" / "data" / "fork1_shared_lines.txt"
FORK1_LO, FORK1_HI = 197, 631


def shared_lines() -> dict[int, str]:
    out: dict[int, str] = {}
    for raw in SHARED_LINES.read_text().splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        m = re.match(r"(\d+)\s+(\S.*)$", raw)
        assert m, f"bad row in {SHARED_LINES.name}: {raw!r}"
        n = int(m.group(1))
        assert n not in out, f"line {n} listed twice"
        out[n] = m.group(2)
    return out


def _walk(x: object, refs: list[A.SrcRefA], abstracts: list[A.AbstractD]) -> None:
    if isinstance(x, A.SrcRefA):
        refs.append(x)
    elif isinstance(x, A.AbstractD):
        abstracts.append(x)
    elif dataclasses.is_dataclass(x) and not isinstance(x, type):
        for f in dataclasses.fields(x):
            _walk(getattr(x, f.name), refs, abstracts)
    elif isinstance(x, (tuple, list)):
        for y in x:
            _walk(y, refs, abstracts)


def ast_view(path: Path = SPEC) -> tuple[set[int], list[tuple[int, int, str]]]:
    mod = parse_module(path.read_text(), str(path))
    refs: list[A.SrcRefA] = []
    abstracts: list[A.AbstractD] = []
    _walk(mod, refs, abstracts)
    cited = {r.line for r in refs if r.file in (None, "kern_fork.c")}
    return cited, [(a.lo, a.hi, a.reason) for a in abstracts]


def uncovered(cited: set[int], abstracted: list[tuple[int, int, str]]) -> list[int]:
    return sorted(n for n in shared_lines()
                  if n not in cited and not any(lo <= n <= hi for lo, hi, _ in abstracted))


def test_classification_is_within_fork1_and_nontrivial() -> None:
    lines = shared_lines()
    # fork1 has well over a hundred such lines; a truncated file must fail.
    assert len(lines) > 120
    assert all(FORK1_LO <= n <= FORK1_HI for n in lines)


def test_classified_lines_are_code_in_the_seed(seed_file: Path) -> None:
    seed = seed_file.read_text().splitlines()
    for n, what in shared_lines().items():
        text = seed[n - 1].strip()
        comment = text.startswith(("/*", "//")) or (text.startswith("*") and not text.endswith(";"))
        assert text and not comment, f"seed line {n} ({what}) is not code: {text!r}"


def test_every_shared_line_is_cited_or_abstracted_ast() -> None:
    cited, abstracted = ast_view()
    assert uncovered(cited, abstracted) == []


def test_abstractions_have_reasons_and_do_not_hide_cited_lines() -> None:
    cited, abstracted = ast_view()
    for lo, hi, why in abstracted:
        assert lo <= hi and len(why) > 15, (lo, hi, why)
        assert not any(lo <= n <= hi for n in cited), f"abstract {lo}..{hi} also cited"


def test_the_check_can_fail(tmp_path: Path) -> None:
    # Dropping the step that cites 270 (nprocs++) must be reported.
    text = SPEC.read_text().replace("@270", "")
    p = tmp_path / "fork1.fk"
    p.write_text(text)
    cited, abstracted = ast_view(p)
    assert uncovered(cited, abstracted) == [270]


@pytest.mark.parametrize("name", SPEC_FILES)
def test_spec_files_parse(name: str) -> None:
    parse_module((REPO / "spec" / name).read_text(), name)


def test_fix_toggles_are_named_and_explained() -> None:
    for name in SPEC_FILES:
        mod = parse_module((REPO / "spec" / name).read_text(), name)
        for d in mod.decls:
            if isinstance(d, A.FixD):
                assert d.name.startswith("FIX_") or d.name == "GIANT_PUSHED_DOWN", d.name
                assert d.doc and "FreeBSD" in d.doc, f"{d.name}: say what later FreeBSD did"


def _load_spec():  # type: ignore[no-untyped-def]
    try:
        mod = importlib.import_module("checker.lang")
    except ImportError:
        return None
    return getattr(mod, "load_spec", None)


def test_every_shared_line_is_cited_or_abstracted_ir() -> None:
    load_spec = _load_spec()
    if load_spec is None:
        pytest.skip("checker.lang.load_spec not available yet")
    system = load_spec(SPEC, {})
    cited = {s.ref.line for s in system.steps if s.ref is not None and s.ref.file == "kern_fork.c"}
    abstracted = [(a.lo, a.hi, a.reason) for a in system.abstracted]
    assert uncovered(cited, abstracted) == []
