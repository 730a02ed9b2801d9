"""docs/tutorial.md: every lesson's and exercise's command gives what the tutorial says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.findings.docblocks import REPO, Block, blocks, params, run_block, scratch_repo

DOC = REPO / "docs" / "tutorial.md"
BLOCKS = blocks(DOC)


@pytest.mark.parametrize("block", params(DOC))
def test_tutorial_command(block: Block, tmp_path: Path) -> None:
    run_block(block, scratch_repo(tmp_path))


def test_every_exercise_is_checked() -> None:
    """Each `**Exercise N.**` is followed, before the next heading, by a checked command block."""
    text = DOC.read_text()
    parts = re.split(r"^\*\*Exercise (\d+)\.\*\*", text, flags=re.M)
    assert len(parts) >= 13, "the tutorial should have six exercises"
    for num, body in zip(parts[1::2], parts[2::2]):
        body = body.split("\n## ")[0]
        assert "# -> exit" in body, f"exercise {num} has no checked command"


def test_exercises_break_only_scratch_copies() -> None:
    """Exercises write my_* files; the repository ships none."""
    for b in BLOCKS:
        for c in b.commands:
            for target in re.findall(r">\s*(\S+)", c):
                assert Path(target).name.startswith("my_"), f"{b.id} writes {target}"
    assert not list((REPO / "models").glob("my_*")) and not list((REPO / "spec").rglob("my_*"))
