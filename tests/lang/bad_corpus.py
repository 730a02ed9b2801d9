"""Render the first line of the error each file in tests/data/bad/ gives (shared by the test and
by `python tests/lang/bad_corpus.py` which prints the table to review before updating it)."""

from __future__ import annotations

from pathlib import Path

from checker.diagnostics import ForkcheckError

BAD = Path(__file__).resolve().parent.parent / "data" / "bad"
TABLE = BAD / "EXPECTED.txt"
HELPERS = {"import_cycle_b.fk"}          # imported by another case, not a case itself


def cases() -> list[Path]:
    return sorted(p for p in BAD.iterdir() if p.suffix in (".fk", ".toml") and p.name not in HELPERS)


def render(path: Path) -> str:
    """The full error text for a bad file (paths shown relative to tests/data/bad)."""
    from checker.lang import load_spec
    from checker.model import load_model
    try:
        if path.suffix == ".toml":
            load_model(path)
        else:
            load_spec(path)
    except ForkcheckError as e:
        return e.render().replace(str(BAD) + "/", "")
    raise AssertionError(f"{path.name} loaded without error")


def expected() -> dict[str, str]:
    out = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, first = line.partition(" => ")
            out[name] = first
    return out


if __name__ == "__main__":
    for p in cases():
        print(f"{p.name} => {render(p).splitlines()[0]}")
