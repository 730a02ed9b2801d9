"""The outcome of `forkcheck verify`: one row per (model, property), and its JSON.

The JUnit (junit.py) and SARIF (sarif.py) writers and the terminal table
read this; verify.py fills it. A row's status is how it compares with the
model's [expect], and decides the exit code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..results import EXIT_CTI, EXIT_INTERRUPTED, EXIT_LIMIT, EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, Verdict
from .itf import Trace


class Status(str, enum.Enum):
    OK = "ok"                   # verdict as expected
    UNEXPECTED = "unexpected"   # a verdict the model does not expect, or a changed counterexample
    LIMIT = "limit"             # a limit stopped the run before a verdict
    CTI = "cti"                 # a proof attempt ended in a counterexample to induction
    ERROR = "error"             # the model could not be loaded or run

    @property
    def exit_code(self) -> int:
        return _EXIT[self]


_EXIT = {Status.OK: EXIT_OK, Status.UNEXPECTED: EXIT_UNEXPECTED, Status.LIMIT: EXIT_LIMIT,
         Status.CTI: EXIT_CTI, Status.ERROR: EXIT_USAGE}
# When rows disagree, the process exit code is the first of these present: broken input
# first (nothing else can be trusted), then wrong verdicts, then inconclusive ones.
_EXIT_PRIORITY = (Status.ERROR, Status.UNEXPECTED, Status.CTI, Status.LIMIT)


@dataclass(frozen=True)
class Location:
    """A place in a file: the property's declaration in the spec, a seed line."""
    file: str                 # as the user knows it: "spec/fork1.fk", "kern_fork.c"
    line: int
    col: int = 0
    base: str = "SRCROOT"     # SARIF uriBaseId: SRCROOT (the repo) or SEEDROOT (the seed folder)


@dataclass
class Row:
    model: str
    property: str
    kind: str
    verdict: Verdict | None          # None when the model could not be run
    expected: str | None
    status: Status
    seconds: float = 0.0
    engines: tuple[str, ...] = ()
    message: str = ""                # the engine's one line
    notes: list[str] = field(default_factory=list)  # what verify concluded (regression, files)
    trace: Trace | None = None
    trace_file: str | None = None    # relative to the repo root
    spec_location: Location | None = None

    @property
    def trace_length(self) -> int | None:
        return None if self.trace is None else len(self.trace.states) - 1

    @property
    def is_violation(self) -> bool:
        return self.verdict is Verdict.VIOLATED

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "name": self.property, "kind": self.kind,
                "verdict": None if self.verdict is None else self.verdict.value,
                "expected": self.expected, "status": self.status.value,
                "as_expected": self.status is Status.OK, "engines": list(self.engines),
                "trace_file": self.trace_file, "trace_length": self.trace_length,
                "loop": None if self.trace is None else self.trace.loop,
                "seconds": round(self.seconds, 3), "message": self.message, "notes": list(self.notes)}


@dataclass
class ModelReport:
    name: str
    model_file: str                   # relative to the repo root when inside it
    spec_file: str | None = None
    rows: list[Row] = field(default_factory=list)
    error: str | None = None          # rendered ForkcheckError when the model could not be loaded/run
    stop: list[str] = field(default_factory=list)   # "explore: finished"
    stats: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def status(self) -> Status:
        if self.error is not None:
            return Status.ERROR
        for s in _EXIT_PRIORITY:
            if any(r.status is s for r in self.rows):
                return s
        return Status.OK

    def to_json(self) -> dict[str, Any]:
        return {"model": self.name, "model_file": self.model_file, "spec_file": self.spec_file,
                "status": self.status.value, "error": self.error, "stop_reasons": self.stop,
                "properties": [r.to_json() for r in self.rows], "stats": self.stats,
                "seconds": round(self.seconds, 3)}


@dataclass
class VerifyReport:
    models: list[ModelReport]
    seconds: float = 0.0
    interrupted: bool = False         # Ctrl-C or SIGTERM: the models so far, then stop (exit 130)
    not_run: list[str] = field(default_factory=list)   # models an interrupt left out

    @property
    def rows(self) -> list[Row]:
        return [r for m in self.models for r in m.rows]

    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        statuses = {m.status for m in self.models}
        for s in _EXIT_PRIORITY:
            if s in statuses:
                return s.exit_code
        return EXIT_OK

    def counts(self) -> dict[Status, int]:
        out = {s: 0 for s in Status}
        for r in self.rows:
            out[r.status] += 1
        out[Status.ERROR] += sum(1 for m in self.models if m.error is not None)
        return out

    def summary(self) -> str:
        c = self.counts()
        n = len(self.rows)
        parts = [f"{c[Status.OK]} as expected"]
        words = {Status.UNEXPECTED: "unexpected", Status.LIMIT: "stopped by a limit",
                 Status.CTI: "ended in a counterexample to induction", Status.ERROR: "could not be run"}
        parts += [f"{c[s]} {w}" for s, w in words.items() if c[s]]
        verdict = {EXIT_OK: "OK", EXIT_INTERRUPTED: "INTERRUPTED"}.get(self.exit_code(), "FAILED")
        tail = ""
        if self.interrupted:
            tail = f"; stopped: interrupted{f', {len(self.not_run)} not run' if self.not_run else ''}"
        return (f"verify {verdict}: {len(self.models)} model{'s' if len(self.models) != 1 else ''}, "
                f"{n} propert{'ies' if n != 1 else 'y'}: " + ", ".join(parts) + f" ({self.seconds:.2f}s{tail})")

    def to_json(self) -> dict[str, Any]:
        c = self.counts()
        return {"tool": "forkcheck", "command": "verify", "exit_code": self.exit_code(),
                "summary": {s.value: c[s] for s in Status} | {"models": len(self.models),
                                                              "properties": len(self.rows)},
                "seconds": round(self.seconds, 3),
                "stop_reason": "interrupted" if self.interrupted else "finished", "not_run": list(self.not_run),
                "models": [m.to_json() for m in self.models]}
