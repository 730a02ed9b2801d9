"""Counterexample traces as data, and their ITF (Informal Trace Format) form.

A `Trace` is what every engine produces (explorer, prover BMC, kernel
replay) and what every renderer consumes. Its states are *valuations*:
plain JSON-able dicts in the naming convention below, so a trace can be
compared with a reference-kernel snapshot on the variables both have.

Valuation naming (one key per top-level variable):
- a global `nprocs` -> its value; enum -> member name (str); flag set ->
  sorted list of member names; ref -> "proc#2" or None; list -> list of refs;
  mutex/spin -> {"owner": thread name or None, "depth": n};
  sx -> {"xowner": thread name or None, "shared": [thread names]}.
- a pool `proc` -> {"proc#1": {field: value, ...}, ...} for allocated slots.
- "#threads" -> {"cpu[0]": {"pc": "<label of next statement>", "locals":
  {display name: value}, "wchan": channel or None, "status": "running" |
  "blocked" | "sleeping" | "done"}}.

ITF encoding (https://apalache-mc.org/docs/adr/015adr-trace.html): ints as
JSON numbers (ITF `{"#bigint": "..."}` when outside 53 bits), sets as
`{"#set": [...]}`, records as objects; a null ref is JSON null. Per state
`#meta` says which thread took which step, its seed line and the locks held.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..diagnostics import ForkcheckError, UsageError

ITF_FORMAT = "ITF"
FORMAT_DESCRIPTION = "https://apalache-mc.org/docs/adr/015adr-trace.html"


class TraceError(ForkcheckError):
    """A malformed trace file."""


@dataclass(frozen=True)
class TraceStep:
    """The step that led into a state."""
    thread: str                         # "cpu[0]"
    step_id: int                        # ir.Step.id (-1 when not from the IR, e.g. kernel-only)
    label: str                          # "nprocs := nprocs + 1 [load]"
    ref: str | None = None              # "kern_fork.c:270"
    frames: tuple[str, ...] = ()        # ("cpu", "fork1")
    locks_held: dict[str, list[str]] = field(default_factory=dict, compare=False)  # thread -> lock names after the step
    blocked: dict[str, str] = field(default_factory=dict, compare=False)           # thread -> why, after the step

    def to_json(self) -> dict[str, Any]:
        return {"thread": self.thread, "step": self.step_id, "label": self.label, "ref": self.ref,
                "frames": list(self.frames), "locks_held": self.locks_held, "blocked": self.blocked}

    @staticmethod
    def from_json(d: dict[str, Any]) -> "TraceStep":
        return TraceStep(thread=str(d["thread"]), step_id=int(d.get("step", -1)), label=str(d.get("label", "")),
                         ref=d.get("ref"), frames=tuple(d.get("frames", ())),
                         locks_held={k: list(v) for k, v in (d.get("locks_held") or {}).items()},
                         blocked=dict(d.get("blocked") or {}))


@dataclass
class Trace:
    model: str
    property: str
    kind: str                                  # invariant, assert, deadlock, leadsto, race, ...
    states: list[dict[str, Any]]               # valuations; states[0] is initial
    steps: list[TraceStep | None]              # steps[i] led into states[i]; steps[0] is None
    loop: int | None = None                    # lasso: index of the state where the cycle starts
    message: str = ""                          # what is violated, in the domain's terms
    engine: str = "explore"
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. {"preemptions": 1, "shortest_count": 3}

    def __len__(self) -> int:
        return len(self.states)

    @property
    def vars(self) -> list[str]:
        return sorted(self.states[0].keys()) if self.states else []

    # ------------------------------------------------------------------ ITF

    def to_itf(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"format": ITF_FORMAT, "format-description": FORMAT_DESCRIPTION,
                                "source": self.model, "description": self.message,
                                "property": self.property, "kind": self.kind, "engine": self.engine,
                                **({"extra": self.extra} if self.extra else {})}
        if self.loop is not None:
            meta["loop"] = self.loop
        states = []
        for i, (s, st) in enumerate(zip(self.states, self.steps)):
            m: dict[str, Any] = {"index": i}
            if st is not None:
                m.update(st.to_json())
            states.append({"#meta": m, **{k: _to_itf(v) for k, v in s.items()}})
        out = {"#meta": meta, "vars": self.vars, "states": states}
        if self.loop is not None:
            out["loop"] = self.loop
        return out

    @staticmethod
    def from_itf(d: Any, source: str = "<trace>") -> "Trace":
        """The trace in an ITF object; a malformed one is a TraceError, never another exception."""
        try:
            return Trace._from_itf(d, source)
        except TraceError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise TraceError(f"{source}: malformed trace ({type(e).__name__}: {e})") from None
        except RecursionError:
            raise TraceError(f"{source}: values nested too deeply") from None

    @staticmethod
    def _from_itf(d: Any, source: str) -> "Trace":
        if not isinstance(d, dict) or not isinstance(d.get("states"), list) or not d["states"]:
            raise TraceError(f"{source}: not an ITF trace (needs a non-empty 'states' list)")
        meta = d.get("#meta") or {}
        if not isinstance(meta, dict):
            raise TraceError(f"{source}: '#meta' must be an object")
        states, steps = [], []
        for i, raw in enumerate(d["states"]):
            if not isinstance(raw, dict):
                raise TraceError(f"{source}: state {i} is not an object")
            m = raw.get("#meta") or {}
            try:
                steps.append(TraceStep.from_json(m) if i > 0 and "thread" in m else None)
                states.append({k: _from_itf(v) for k, v in raw.items() if k != "#meta"})
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
                raise TraceError(f"{source}: state {i}: malformed value ({e})") from None
        loop = d.get("loop", meta.get("loop"))
        if loop is not None and (not isinstance(loop, int) or not 0 <= loop < len(states)):
            raise TraceError(f"{source}: 'loop' must be a state index")
        return Trace(model=str(meta.get("source", "")), property=str(meta.get("property", "")),
                     kind=str(meta.get("kind", "")), states=states, steps=steps, loop=loop,
                     message=str(meta.get("description", "")), engine=str(meta.get("engine", "explore")),
                     extra=dict(meta.get("extra") or {}))

    def dumps(self) -> str:
        """Deterministic text: byte-identical for identical traces."""
        return json.dumps(self.to_itf(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"

    def write(self, path: str | os.PathLike[str]) -> None:
        write_atomic(path, self.dumps())

    @staticmethod
    def read(path: str | os.PathLike[str]) -> "Trace":
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TraceError(f"no such trace file: {p}") from None
        except OSError as e:
            raise TraceError(f"cannot read {p}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise TraceError(f"{p}: not UTF-8 text (byte {e.start})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise TraceError(f"{p}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
        except RecursionError:
            raise TraceError(f"{p}: JSON nested too deeply") from None
        return Trace.from_itf(data, str(p))


def _to_itf(v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v if abs(v) < 2**53 else {"#bigint": str(v)}
    if isinstance(v, (set, frozenset)):
        return {"#set": sorted((_to_itf(x) for x in v), key=repr)}
    if isinstance(v, (list, tuple)):
        return [_to_itf(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _to_itf(x) for k, x in v.items()}
    raise TypeError(f"not a trace value: {v!r}")


def _from_itf(v: Any) -> Any:
    if isinstance(v, float):
        raise ValueError(f"{v} is not an ITF value (numbers are integers)")
    if isinstance(v, dict):
        if "#bigint" in v:
            return int(v["#bigint"])
        if "#set" in v:
            return sorted((_from_itf(x) for x in v["#set"]), key=repr)
        if "#tup" in v:
            return [_from_itf(x) for x in v["#tup"]]
        if "#map" in v:
            return {str(_from_itf(k)): _from_itf(x) for k, x in v["#map"]}
        return {k: _from_itf(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_from_itf(x) for x in v]
    return v


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write via a temporary file and rename, so no reader sees half a file."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(p))
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:        # every output file of every command: a named error, not a traceback
        raise UsageError(f"cannot write {p}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, p)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise UsageError(f"cannot write {p}: {e.strerror or e}") from None
        raise
