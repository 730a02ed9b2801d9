"""Result objects every engine returns, and the exit codes (DESIGN.md)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

EXIT_OK = 0            # every verdict as the model expects
EXIT_UNEXPECTED = 1    # an unexpected verdict
EXIT_USAGE = 2         # usage or input error
EXIT_LIMIT = 3         # a limit stopped the run before a verdict
EXIT_CTI = 4           # a proof attempt ended in a counterexample to induction
EXIT_INTERRUPTED = 130


class StopReason(str, enum.Enum):
    FINISHED = "finished"
    VIOLATION = "violation"
    STATE_LIMIT = "state limit"
    DEPTH_LIMIT = "depth limit"
    TIME_LIMIT = "time limit"
    MEMORY_LIMIT = "memory limit"
    INTERRUPTED = "interrupted"

    @property
    def is_limit(self) -> bool:
        return self in (StopReason.STATE_LIMIT, StopReason.DEPTH_LIMIT,
                        StopReason.TIME_LIMIT, StopReason.MEMORY_LIMIT)


class Verdict(str, enum.Enum):
    HOLDS = "holds"          # exhaustive search finished without a violation
    VIOLATED = "violated"    # a concrete counterexample exists
    UNKNOWN = "unknown"      # a bound or limit was reached first
    PROVED = "proved"        # prover: inductive proof for all reachable states
    CTI = "cti"              # prover: a counterexample to induction (not a bug)

    def satisfies(self, expected: str) -> bool:
        """Whether this verdict meets a model file's expectation.

        A proof meets "holds"; "holds" from a bounded search does not meet
        "proved".
        """
        if expected == self.value:
            return True
        return expected == "holds" and self is Verdict.PROVED


@dataclass
class Stats:
    states: int = 0
    transitions: int = 0
    depth: int = 0
    seconds: float = 0.0
    peak_memory: int = 0          # bytes (ru_maxrss)
    store_bytes: int = 0          # bytes used by the visited-state store
    queue: int = 0

    @property
    def states_per_second(self) -> float:
        return self.states / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"states": self.states, "transitions": self.transitions, "depth": self.depth,
                "seconds": round(self.seconds, 3), "states_per_second": round(self.states_per_second),
                "peak_memory": self.peak_memory, "store_bytes": self.store_bytes}


@dataclass
class PropertyResult:
    name: str
    kind: str                      # invariant, assert, leadsto, deadlock, lock_order, race, witness, proof
    verdict: Verdict
    expected: str | None = None
    trace: Any = None              # checker.trace.itf.Trace, when violated
    trace_file: str | None = None
    message: str = ""              # one line: what was found / why unknown
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def as_expected(self) -> bool:
        return self.expected is None or self.verdict.satisfies(self.expected)

    @property
    def trace_length(self) -> int | None:
        return None if self.trace is None else len(self.trace.states) - 1

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "verdict": self.verdict.value,
                "expected": self.expected, "as_expected": self.as_expected,
                "trace_file": self.trace_file, "trace_length": self.trace_length,
                "message": self.message, "seconds": round(self.seconds, 3), **self.details}


@dataclass
class RunResult:
    model: str
    engine: str                    # explore, prove, simulate
    stop: StopReason
    properties: list[PropertyResult] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    notes: list[str] = field(default_factory=list)

    def exit_code(self) -> int:
        if self.stop is StopReason.INTERRUPTED:
            return EXIT_INTERRUPTED
        if any(not p.as_expected and p.verdict in (Verdict.HOLDS, Verdict.VIOLATED, Verdict.PROVED)
               for p in self.properties):
            return EXIT_UNEXPECTED
        if any(p.verdict is Verdict.CTI and not p.as_expected for p in self.properties):
            return EXIT_CTI
        if any(p.verdict is Verdict.UNKNOWN and not p.as_expected for p in self.properties):
            return EXIT_LIMIT
        # A bare spec has no expectations: a limit that left a property undecided is still exit 3.
        if self.stop.is_limit and any(p.verdict is Verdict.UNKNOWN and p.expected is None
                                      for p in self.properties):
            return EXIT_LIMIT
        return EXIT_OK

    def describe(self) -> str:
        lines = [f"{self.model}: {self.engine} stopped: {self.stop.value}"]
        for p in self.properties:
            exp = "" if p.expected is None else f" (expected {p.expected}{'' if p.as_expected else ' — UNEXPECTED'})"
            tl = "" if p.trace_length is None else f", trace {p.trace_length} steps"
            lines.append(f"  {p.kind:<10} {p.name:<28} {p.verdict.value}{exp}{tl}")
            if p.message:
                lines.append(f"             {p.message}")
        s = self.stats
        lines.append(f"  {s.states} states, {s.transitions} transitions, depth {s.depth}, "
                     f"{s.seconds:.2f}s, {s.states_per_second:,.0f} states/s, "
                     f"peak memory {s.peak_memory / 2**20:.1f} MiB")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "engine": self.engine, "stop_reason": self.stop.value,
                "properties": [p.to_json() for p in self.properties],
                "stats": self.stats.to_json(), "notes": self.notes}
