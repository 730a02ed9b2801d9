"""The one exception root and the `file:line:col` diagnostics every stage uses.

Every user-facing error is a ForkcheckError. The CLI catches exactly this type
and prints `render()`; anything else escaping is a bug in forkcheck.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Span:
    """A source position. Excluded from equality wherever it is embedded."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NO_SPAN = Span("<none>", 0, 0)


def source_line(file: str, line: int, text: str | None = None) -> str | None:
    """The 1-based `line` of `file` (or of `text` when given), or None."""
    if text is None:
        try:
            text = Path(file).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    lines = text.splitlines()
    if 1 <= line <= len(lines):
        return lines[line - 1]
    return None


@dataclass
class Note:
    span: Span
    message: str


class ForkcheckError(Exception):
    """Root of every error shown to a user. Exit code 2 unless stated."""

    exit_code = 2

    def __init__(self, message: str, span: Span | None = None,
                 notes: list[Note] | None = None, text: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.notes = notes or []
        self.text = text  # source text, when the file is not on disk

    def render(self) -> str:
        if self.span is None or self.span.line <= 0:
            return f"error: {self.message}"
        out = [f"{self.span}: error: {self.message}"]
        out += _excerpt(self.span, self.text)
        for n in self.notes:
            out.append(f"info {n.span}: {n.message}")
            out += _excerpt(n.span, self.text if n.span.file == self.span.file else None)
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()


def _excerpt(span: Span, text: str | None) -> list[str]:
    line = source_line(span.file, span.line, text)
    if line is None:
        return []
    line = line.expandtabs(1)  # caret alignment: one column per character
    width = 1
    if span.end_line == span.line and span.end_col > span.col:
        width = span.end_col - span.col
    return ["    " + line, "    " + " " * (span.col - 1) + "^" * max(1, min(width, len(line) - span.col + 1))]


class SpecError(ForkcheckError):
    """Syntax or type error in a .fk spec."""


class ModelError(ForkcheckError):
    """Error in a models/*.toml file."""


class UsageError(ForkcheckError):
    """Bad command-line use or a missing file."""
