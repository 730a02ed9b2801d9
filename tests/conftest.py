"""Shared fixtures. The seed lives beside the repo in ../shared/seed (CI copies it there too)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent
SEED_DIR = Path(os.environ.get("FORKCHECK_SEED_DIR", REPO.parent / "shared" / "seed"))

# Hypothesis budgets: "ci" is the default fixed budget; FORKCHECK_HYPOTHESIS=slow for a longer soak.
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("slow", max_examples=600, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("FORKCHECK_HYPOTHESIS", "ci"))


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def seed_file() -> Path:
    p = SEED_DIR / "kern_fork.c"
    if not p.exists():
        pytest.skip(f"seed not found at {p}")
    return p


@pytest.fixture
def dump_dom():
    """Headless Chromium's DOM of a page after its script ran; skips without Chromium
    (.ci/install-browser.sh installs Debian's package)."""
    import shutil
    import subprocess

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not installed (.ci/install-browser.sh installs it)")

    def dump(page: Path, fragment: str, profile: Path) -> str:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--dump-dom", page.as_uri() + fragment]
        # The timeout only keeps a hung browser from hanging the suite; pass/fail never depends on time.
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    return dump
