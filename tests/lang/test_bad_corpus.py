"""Every bad spec and model gives its exact message at its exact line:col, with a caret, never a traceback."""

from __future__ import annotations

import re

import pytest

from checker.cli import main

from .bad_corpus import BAD, cases, expected, render

EXPECTED = expected()


def test_corpus_is_large_and_complete() -> None:
    names = {p.name for p in cases()}
    assert len(names) >= 30
    assert names == set(EXPECTED), "tests/data/bad/EXPECTED.txt and the files differ"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input(name: str) -> None:
    text = render(BAD / name)
    lines = text.splitlines()
    assert lines[0] == EXPECTED[name]
    m = re.match(r"^[^:]+:(\d+):(\d+): error: ", lines[0])
    assert m, "every error in a file has a file:line:col"
    # the source line, then a caret under the column
    assert len(lines) >= 3, text
    assert lines[2].lstrip().startswith("^")
    assert lines[2].index("^") - 4 == int(m.group(2)) - 1


@pytest.mark.parametrize("name", ["assign_eq.fk", "model_unknown_const.toml", "deep_not.fk", "unclosed_brace.fk"])
def test_cli_exit_2_without_traceback(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(BAD / name)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.replace(str(BAD) + "/", "").splitlines()[0] == EXPECTED[name]
