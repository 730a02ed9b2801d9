"""Finding the seed source (kern_fork.c) that step references cite.

The seed is never copied into the repo: traces show its lines when the file
can be found, and only the line number otherwise.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

SEED_DIR_ENV = "FORKCHECK_SEED_DIR"

_REF = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+)$")


def repo_root() -> Path:
    """The checkout this package runs from (the folder above `checker/`)."""
    return Path(__file__).resolve().parent.parent.parent


def find_seed_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """--seed-dir, then $FORKCHECK_SEED_DIR, then ../shared/seed beside the repo root."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    env = os.environ.get(SEED_DIR_ENV)
    if env:
        candidates.append(Path(env))
    candidates.append(repo_root().parent / "shared" / "seed")
    for c in candidates:
        if c.is_dir():
            return c
    return None


def parse_ref(ref: str | None) -> tuple[str, int] | None:
    """"kern_fork.c:270" -> ("kern_fork.c", 270); None for anything else."""
    if not ref:
        return None
    m = _REF.match(ref.strip())
    return (m["file"], int(m["line"])) if m else None


@dataclass
class SeedSource:
    """Lines of seed files, read lazily; a missing file gives None, never an error."""
    directory: Path | None
    _cache: dict[str, list[str] | None] = field(default_factory=dict)

    def lines(self, file: str) -> list[str] | None:
        if file not in self._cache:
            text: list[str] | None = None
            if self.directory is not None:
                try:
                    # Only the base name: a ref never reaches outside the seed folder.
                    raw = (self.directory / Path(file).name).read_text(encoding="utf-8", errors="replace")
                    text = raw.splitlines()
                except OSError:
                    text = None
            self._cache[file] = text
        return self._cache[file]

    def line(self, file: str, n: int) -> str | None:
        lines = self.lines(file)
        if lines is None or not 1 <= n <= len(lines):
            return None
        return lines[n - 1]

    def path(self, file: str) -> Path | None:
        if self.directory is None:
            return None
        p = self.directory / Path(file).name
        return p if p.is_file() else None
