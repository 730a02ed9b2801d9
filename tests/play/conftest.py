"""Helpers of the play tests: load a model or spec, and run a scripted game."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from checker.explore.commands import load_target
from checker.play import Game
from checker.play.terminal import run
from checker.trace.seed import SeedSource

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"


def game_of(path: str | Path, seed_dir: Path | None = None, properties: list[str] | None = None) -> Game:
    p = Path(path)
    tgt = load_target(str(p if p.is_absolute() else REPO / p))
    return Game(tgt.system, model_name=tgt.name, properties=properties or tgt.properties,
                seed=SeedSource(seed_dir))


def script(game: Game, commands: str, **kw: object) -> str:
    """Play `commands` (one per line) on stdin; the plain transcript."""
    out = io.StringIO()
    assert run(game, inp=io.StringIO(commands), out=out, color=False, **kw) == 0  # type: ignore[arg-type]
    return out.getvalue()


@pytest.fixture
def seed_dir(seed_file: Path) -> Path:
    return seed_file.parent
