"""parse_module remembers recent parses (verify loads the same spec files for every model)."""

from __future__ import annotations

import pytest

from checker.diagnostics import SpecError
from checker.lang import parser

SRC = "var x: 0..3 = 0\nthread t {\n  x := 1\n}\n"


def test_same_text_same_module_other_text_parsed_again() -> None:
    a = parser.parse_module(SRC, "a.fk")
    assert parser.parse_module(SRC, "a.fk") is a
    b = parser.parse_module(SRC.replace("x := 1", "x := 2"), "a.fk")
    assert b is not a and b != a
    c = parser.parse_module(SRC, "b.fk")            # another file: its own spans
    assert c is not a and c.file == "b.fk"


def test_errors_are_not_cached_and_the_cache_is_bounded() -> None:
    for _ in range(2):
        with pytest.raises(SpecError):
            parser.parse_module("thread {", "bad.fk")
    for i in range(parser._PARSED_MAX + 5):
        parser.parse_module(f"var v{i}: 0..1 = 0\n", f"m{i}.fk")
    assert len(parser._PARSED) <= parser._PARSED_MAX
