"""Model files (`models/*.toml`): a spec, constants, what to check, what to expect.

    spec = "../spec/examples/racy_counter.fk"     # relative to the model file
    description = "two threads do count++"
    docs = ["../docs/tutorial.md#lost-updates"]

    [constants]            # overrides of `const` and `fix` values
    NTHREADS = 2

    [check]                # what to check (defaults below)
    invariants = ["both_counted"]
    races = false

    [expect]               # property -> holds | violated | unknown | proved
    both_counted = "violated"

Every problem is a ModelError at the file:line:col of the offending key or
value (tomllib gives no positions, so `_Locator` finds them in the text).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import ir
from .diagnostics import ModelError, Span

VERDICTS = ("holds", "violated", "unknown", "proved")
STRATEGIES = ("bfs", "dfs")
_TOP = {"spec", "name", "description", "docs", "constants", "check", "expect"}
# [check] keys: name -> (type, default, help)
_CHECK_BOOLS = {
    "deadlock": True, "witness": True, "lock_order": True, "races": True, "runtime": True,
    "liveness": True, "symmetry": True, "por": True,
}
_CHECK_INTS = ("max_states", "max_depth")


@dataclass(frozen=True)
class CheckOptions:
    invariants: tuple[str, ...] | None = None   # None: every invariant, lemma and assertion
    properties: tuple[str, ...] | None = None   # None: every leads-to property (when liveness);
                                                # may also name assertions and built-ins
    deadlock: bool = True
    witness: bool = True
    lock_order: bool = True
    races: bool = True
    runtime: bool = True
    liveness: bool = True
    symmetry: bool = True
    por: bool = True
    strategy: str = "bfs"
    max_states: int | None = None
    max_depth: int | None = None
    time_limit: float | None = None
    proofs: tuple[str, ...] | bool = False      # ask the prover too (true, or the properties to prove)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


@dataclass(frozen=True)
class Model:
    path: str
    name: str
    spec: str                                   # the spec file, resolved
    constants: dict[str, int | bool]
    system: ir.System
    check: CheckOptions
    expect: dict[str, str]
    docs: tuple[str, ...] = ()
    description: str = ""
    properties: tuple[str, ...] = field(default=())   # the properties this model checks

    def explore_options(self) -> Any:
        """The explorer's options for this model (imported lazily: lang does not need explore)."""
        from .explore.options import ExploreOptions, Strategy
        c = self.check
        return ExploreOptions(strategy=Strategy(c.strategy), max_states=c.max_states, max_depth=c.max_depth,
                              time_limit=c.time_limit, symmetry=c.symmetry, por=c.por)


class _Locator:
    """Positions of tables, keys and array items in a TOML text."""

    _HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"]+)\s*\]")
    _KEY = re.compile(r"^\s*(\"[^\"]*\"|[A-Za-z0-9_\-]+)\s*=")

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.lines = text.splitlines()

    def _table_range(self, table: str | None) -> tuple[int, int]:
        start, end, cur = 0, len(self.lines), None
        found = table is None
        for i, ln in enumerate(self.lines):
            m = self._HEADER.match(ln)
            if m:
                if found and cur == table:
                    return start, i
                cur = m.group(1).strip('"')
                if cur == table:
                    found, start = True, i
                elif table is None:
                    return 0, i
        return (start, end) if found else (0, 0)

    def table(self, table: str) -> Span:
        s, _ = self._table_range(table)
        ln = self.lines[s] if s < len(self.lines) else ""
        return Span(self.path, s + 1, ln.find("[") + 1, s + 1, len(ln.rstrip()) + 1)

    def key(self, table: str | None, key: str) -> Span:
        s, e = self._table_range(table)
        for i in range(s, e):
            m = self._KEY.match(self.lines[i])
            if m and m.group(1).strip('"') == key:
                col = m.start(1) + 1
                return Span(self.path, i + 1, col, i + 1, col + len(m.group(1)))
        return self.table(table) if table else Span(self.path, 1, 1)

    def value(self, table: str | None, key: str, item: str | None = None) -> Span:
        """The value of `key` (or the quoted `item` inside its array)."""
        k = self.key(table, key)
        off = sum(len(x) + 1 for x in self.lines[: k.line - 1]) + k.col - 1
        eq = self.text.find("=", off)
        if eq < 0:
            return k
        if item is not None:
            m = re.compile(r"([\"'])" + re.escape(item) + r"\1").search(self.text, eq)
            if m:
                return self._span_at(m.start(), m.end())
            return k
        m = re.compile(r"\S").search(self.text, eq + 1)
        if not m:
            return k
        end = self.text.find("\n", m.start())
        end = len(self.text) if end < 0 else end
        val = self.text[m.start():end].split("#")[0].rstrip()
        return self._span_at(m.start(), m.start() + max(1, len(val)))

    def _span_at(self, a: int, b: int) -> Span:
        line = self.text.count("\n", 0, a) + 1
        col = a - (self.text.rfind("\n", 0, a) + 1) + 1
        return Span(self.path, line, col, line, col + (b - a))


def _tname(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "a table"
    return type(v).__name__


def load_model(path: str | Path) -> Model:
    """Read, validate and load a model file and its spec (with the overrides applied)."""
    from .lang import load_spec
    from .lang.build import OverrideError
    from .lang.elab import did_you_mean

    p = Path(path)
    ps = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ModelError(f"cannot read {ps}: {e.strerror}") from None
    loc = _Locator(ps, text)

    def fail(msg: str, span: Span) -> ModelError:
        return ModelError(msg, span, text=text)

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
        sp = Span(ps, int(m.group(1)), int(m.group(2))) if m else Span(ps, 1, 1)
        raise fail(f"invalid TOML: {msg}", sp) from None

    for k in data:
        if k not in _TOP:
            raise fail(f"unknown key `{k}` (expected one of: {', '.join(sorted(_TOP))})", loc.key(None, k))
    if "spec" not in data:
        raise fail("missing `spec = \"path/to/spec.fk\"`", Span(ps, 1, 1))
    for k in ("spec", "name", "description"):
        if k in data and not isinstance(data[k], str):
            raise fail(f"`{k}` must be a string, not {_tname(data[k])}", loc.value(None, k))
    docs = data.get("docs", ())
    if isinstance(docs, str):
        docs = (docs,)
    if not isinstance(docs, (list, tuple)) or not all(isinstance(d, str) for d in docs):
        raise fail("`docs` must be a string or an array of strings", loc.value(None, "docs"))
    for t in ("constants", "check", "expect"):
        if t in data and not isinstance(data[t], dict):
            raise fail(f"`{t}` must be a table", loc.key(None, t))

    spec_path = Path(os.path.normpath(p.parent / data["spec"]))
    if not spec_path.is_file():
        raise fail(f"no such spec file `{data['spec']}` (a path relative to the model file)",
                   loc.value(None, "spec"))

    consts: dict[str, int | bool] = {}
    for k, v in data.get("constants", {}).items():
        if isinstance(v, bool) or (isinstance(v, int)):
            consts[k] = v
        else:
            raise fail(f"constant `{k}` must be an integer or a boolean, not {_tname(v)}",
                       loc.value("constants", k))
    try:
        system = load_spec(spec_path, consts)
    except OverrideError as e:
        raise fail(e.message, loc.key("constants", e.name)) from None
    # (did-you-mean for constants is in the OverrideError message)

    check = _check(data.get("check", {}), system, loc, fail)
    selected = _selected(system, check)
    expect: dict[str, str] = {}
    for k, v in data.get("expect", {}).items():
        if k not in system.property_names:
            raise fail(f"unknown property `{k}`{did_you_mean(k, system.property_names)}; this spec has: "
                       f"{', '.join(sorted(system.property_names))}",
                       loc.key("expect", k))
        if not isinstance(v, str) or v not in VERDICTS:
            raise fail(f"expected verdict of `{k}` must be one of {', '.join(map(repr, VERDICTS))}",
                       loc.value("expect", k))
        if k not in selected:
            raise fail(f"`{k}` has an expected verdict but the [check] table does not check it",
                       loc.key("expect", k))
        expect[k] = v
    name = data.get("name") or p.stem
    return Model(ps, name, str(spec_path), consts, system, check, expect, tuple(docs),
                 data.get("description", ""), selected)


def _check(tbl: dict[str, Any], system: ir.System, loc: _Locator, fail: Any) -> CheckOptions:
    from .lang.elab import did_you_mean
    kw: dict[str, Any] = {}
    names = system.property_names
    for k, v in tbl.items():
        sp = loc.value("check", k)
        if k in _CHECK_BOOLS:
            if not isinstance(v, bool):
                raise fail(f"`{k}` must be true or false, not {_tname(v)}", sp)
            kw[k] = v
        elif k in _CHECK_INTS:
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise fail(f"`{k}` must be a positive integer", sp)
            kw[k] = v
        elif k == "time_limit":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise fail("`time_limit` must be a positive number of seconds", sp)
            kw[k] = float(v)
        elif k == "strategy":
            if v not in STRATEGIES:
                raise fail(f"`strategy` must be one of {', '.join(map(repr, STRATEGIES))}", sp)
            kw[k] = v
        elif k in ("invariants", "properties"):
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise fail(f"`{k}` must be an array of property names", sp)
            for x in v:
                if x not in names:
                    raise fail(f"unknown property `{x}`{did_you_mean(x, names)}; this spec has: "
                               f"{', '.join(sorted(names))}",
                               loc.value("check", k, x))
                kind = names[x]
                if k == "invariants" and kind not in ("invariant", "assert"):
                    hint = (f"switch it with `{x} = true`" if x in ir.BUILTIN_PROPERTIES
                            else "list it under `properties`")
                    raise fail(f"`{x}` is not a state property ({kind}): {hint}", loc.value("check", k, x))
                if k == "properties" and kind == "invariant":
                    raise fail(f"`{x}` is an invariant: list it under `invariants`", loc.value("check", k, x))
                if x in ir.BUILTIN_PROPERTIES and tbl.get(x) is False:
                    raise fail(f"`{x}` is listed but switched off with `{x} = false`", loc.value("check", k, x))
            kw[k] = tuple(v)
        elif k == "proofs":
            if isinstance(v, bool):
                kw[k] = v
            elif isinstance(v, list) and all(isinstance(x, str) for x in v):
                for x in v:
                    if x not in names:
                        raise fail(f"unknown property `{x}`", loc.value("check", k, x))
                kw[k] = tuple(v)
            else:
                raise fail("`proofs` must be true/false or an array of property names", sp)
        else:
            known = sorted(set(_CHECK_BOOLS) | set(_CHECK_INTS) |
                           {"time_limit", "strategy", "invariants", "properties", "proofs"})
            raise fail(f"unknown [check] key `{k}` (expected one of: {', '.join(known)})", loc.key("check", k))
    return CheckOptions(**kw)


def _selected(system: ir.System, c: CheckOptions) -> tuple[str, ...]:
    out = [b for b, on in (("deadlock", c.deadlock), ("witness", c.witness), ("lock_order", c.lock_order),
                           ("races", c.races), ("runtime", c.runtime)) if on]
    names = system.property_names
    if c.invariants is None:
        out += [n for n, k in names.items() if k in ("invariant", "assert")]
    else:
        out += list(c.invariants)
    if c.properties is None:
        if c.liveness:
            out += [n for n, k in names.items() if k == "leadsto"]
    else:
        # leads-to names (when liveness is on), assertions and built-ins may be listed here
        out += [n for n in c.properties if names[n] != "leadsto" or c.liveness]
    return tuple(dict.fromkeys(out))
