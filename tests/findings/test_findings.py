"""docs/findings.md: every finding's command gives the verdict the doc states, and the doc,
the models and the committed counterexamples cite one another."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .docblocks import REPO, Block, DocFormatError, blocks, params, parse_expect, run_block, scratch_repo
from .refresh_doc import PASTE, render

DOC = REPO / "docs" / "findings.md"


@pytest.mark.parametrize("block", params(DOC))
def test_command_gives_stated_verdict(block: Block, tmp_path: Path) -> None:
    run_block(block, scratch_repo(tmp_path))


def test_every_section_has_a_command() -> None:
    text = DOC.read_text()
    sections = re.split(r"^### ", text, flags=re.M)[1:]
    assert sections, "findings.md has no ### sections"
    for s in sections:
        title = s.splitlines()[0]
        assert "# -> exit" in s, f"section `{title}` has no reproducing command"


def test_cited_models_exist_and_are_verified() -> None:
    cited = set(re.findall(r"models/([A-Za-z0-9_]+)\.toml", DOC.read_text()))
    assert cited
    for m in cited:
        assert (REPO / "models" / f"{m}.toml").exists(), f"findings.md cites missing models/{m}.toml"


def test_every_committed_counterexample_is_an_expected_violation() -> None:
    """counterexamples/ holds the traces of the models' expected violations (verify writes and
    checks them), and nothing else: no stale file of a model or property that is gone."""
    import tomllib

    files = sorted((REPO / "counterexamples").glob("*/*.itf.json"))
    assert files
    for f in files:
        model = REPO / "models" / f"{f.parent.name}.toml"
        rel = f.relative_to(REPO).as_posix()
        assert model.exists(), f"{rel}: no models/{model.name}"
        expect = tomllib.loads(model.read_text()).get("expect", {})
        prop = f.name.removesuffix(".itf.json")
        assert expect.get(prop) == "violated", f"{rel}: models/{model.name} does not expect {prop} violated"


def test_every_counterexample_the_findings_cite_exists() -> None:
    cited = set(re.findall(r"counterexamples/[A-Za-z0-9_]+/[A-Za-z0-9_]+\.itf\.json", DOC.read_text()))
    assert cited
    for rel in cited:
        assert (REPO / rel).is_file(), f"findings.md cites {rel}, which is not committed"


def test_every_q_model_is_cited() -> None:
    text = DOC.read_text()
    for f in sorted((REPO / "models").glob("q_*.toml")):
        assert f"models/{f.name}" in text, f"models/{f.name} is not cited by findings.md"


def test_pasted_swimlanes_match_the_committed_traces() -> None:
    """Each pasted `forkcheck trace show FILE` output is what the command prints today."""
    text = DOC.read_text()
    pasted = PASTE.findall(text)
    assert pasted, "findings.md pastes no rendered trace"
    for cmd, body in pasted:
        assert render(cmd) == "\n".join(ln.rstrip() for ln in body.strip().splitlines()), (
            f"the pasted output of `{cmd}` is stale: python -m tests.findings.refresh_doc")


# The parser itself: a malformed expectation is an error, not a silently skipped command.
def test_parse_expect_rejects_malformed() -> None:
    assert parse_expect("exit 0 · a holds · slow", "x").slow
    with pytest.raises(DocFormatError):
        parse_expect("exit zero", "x")
    with pytest.raises(DocFormatError):
        parse_expect("exit 0 · a maybe", "x")


def test_blocks_parse(tmp_path: Path) -> None:
    doc = tmp_path / "d.md"
    doc.write_text("x\n```console\n$ echo hi\n# -> exit 0 · \"hi\"\n```\n```console\nshown only\n```\n")
    (b,) = blocks(doc)
    assert b.commands == ("echo hi",) and b.line == 3 and b.expect.texts == ("hi",)
    run_block(b, tmp_path)
    bad = Block(b.doc, b.line, b.commands, parse_expect('exit 0 · "bye"', "x"))
    with pytest.raises(AssertionError):
        run_block(bad, tmp_path)
