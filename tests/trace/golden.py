"""Golden-file comparison; FORKCHECK_UPDATE_GOLDEN=1 rewrites the files instead."""

from __future__ import annotations

import os
from pathlib import Path


def check_golden(path: Path, actual: str) -> None:
    if os.environ.get("FORKCHECK_UPDATE_GOLDEN") == "1" or not path.exists():
        if os.environ.get("CI") and not path.exists():
            raise AssertionError(f"golden file missing: {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{path} differs (FORKCHECK_UPDATE_GOLDEN=1 to accept):\n{actual}"
