"""Every input that once crashed, hung or exhausted memory: now a result or a positioned error."""

from __future__ import annotations

from pathlib import Path

import pytest

from checker.diagnostics import ForkcheckError

CORPUS = Path(__file__).resolve().parent.parent / "data" / "fuzz_corpus"
CASES = sorted(p for p in CORPUS.glob("*/*") if p.suffix != ".expect" and p.with_name(p.name + ".expect").exists())


def _run(stage: str, path: Path) -> None:
    if stage == "spec":
        from checker.lang import load_text
        load_text(path.read_bytes().decode("utf-8"), str(path))
    elif stage == "itf":
        from checker.trace.itf import Trace
        Trace.read(path)
    elif stage == "scenario":
        from checker.kernel import scenario
        scenario.run(scenario.load(str(path)))
    else:
        raise AssertionError(f"unknown corpus folder {stage}")


def test_corpus_is_complete() -> None:
    # an input without its .expect would be silently skipped
    inputs = [p for p in CORPUS.glob("*/*") if p.suffix != ".expect"]
    assert inputs and len(inputs) == len(CASES)


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_corpus_input(path: Path) -> None:
    expect = path.with_name(path.name + ".expect").read_text(encoding="utf-8").strip()
    try:
        _run(path.parent.name, path)
    except ForkcheckError as e:
        text = e.render()
        assert expect.startswith("error:"), f"expected {expect!r}, got the error:\n{text}"
        want = expect[len("error:"):].strip()
        assert want in text, f"expected an error containing {want!r}, got:\n{text}"
        if e.span is not None and e.span.line > 0:
            assert str(path) in text.splitlines()[0]     # file:line:col points into the input
        return
    assert expect == "ok", f"expected {expect!r}, but it was accepted"
