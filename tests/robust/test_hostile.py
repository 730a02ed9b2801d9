"""Hostile specs: nothing in a spec is ever executed as code.

The explorer compiles each step to Python (checker/explore/compiled.py). These tests
plant canaries — names like `os`, `exec`, `eval`, `G` (the generator's own globals),
strings that close a quote and call `os._exit(9)` — and show that (a) the vocabulary
of every generated function is a fixed set that no spec can extend, (b) no string
literal is ever generated, (c) exploring the spec in this process and through the CLI
leaves the canaries untouched, and (d) what the grammar does not allow (dunder names,
look-alike letters, control characters) is refused with file:line:col.
"""

from __future__ import annotations

import builtins
import io
import json
import keyword
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checker import ir
from checker.diagnostics import ForkcheckError
from checker.explore.compiled import HELPERS, compile_system
from checker.lang import load_text

PAYLOAD = '\\"); __import__(\\"builtins\\").FORKCHECK_PWNED = 1 #'
EXIT_PAYLOAD = '\\"); import os; os._exit(9) #'

# Python keywords, builtins and runtime names spelled differently in every spec: G P T L
# are the generator's own globals/pools/threads/locals tables.
CANARY_SPEC = f'''
source "kern_fork.c{PAYLOAD}"
const os = 2
fix exec = false "{EXIT_PAYLOAD}\\n\\\\"
flags import_ {{ eval, compile, _builtins }}
enum open {{ getattr, globals }}
lock system: mutex class "{EXIT_PAYLOAD}"
lock popen: sx
lock_order "{EXIT_PAYLOAD}" < popen
chan lambda_
struct subclasses [2] refcount _dict {{
  _dict: 0..3 = 0
  _code: set import_ = {{}}
  globals_: open = getattr
  mro: ref subclasses = null
}}
var G: 0..os = 0
var P: ref subclasses = null
var K: bool = false
var tid: set import_ = {{}}
var _Rt: list subclasses
abstract 1..2 "{EXIT_PAYLOAD}"
proc init_(self_: 0..os) -> 0..os {{ return self_ }}
thread state[f in 0..1] {{
  var L: 0..os = 0
  lock(system)
  racy G := G + 1
  L := init_(f)
  unlock(system)
  P := alloc subclasses
  P._code := P._code | {{eval}}
  tid := tid | {{compile}}
  assert getattribute: G <= os
  if exec {{ K := true }}
}}
invariant reduce: G <= os && (count SPIN in subclasses: SPIN._dict >= 0) <= 2
'''

# Every name generated code may use, fixed in advance: runtime tables, helpers, locals of
# the generated function, and the few builtins the generator emits.
ALLOWED = set(HELPERS) | set(keyword.kwlist) | {
    "f", "state", "tid", "EV", "G", "P", "T", "L", "K", "IDX", "NT", "SPIN", "g0", "P0", "T0", "pc",
    "_W", "_v", "_r", "_o", "_s", "_i", "_c", "_k", "_key",
    "tuple", "list", "bool", "all", "any", "sum", "len", "range", "ValueError", "index", "append"}
BOUND = re.compile(r"b\d+")


def _generated_sources(system: ir.System) -> list[str]:
    cs = compile_system(system, tracking=True)
    out = [cs.step_source(s, tracked) for s in system.steps for tracked in (False, True)]
    for inv in system.invariants:
        out.append(cs.gen.x(inv.expr, None, {}))
    return out


def _check_vocabulary(src: str) -> None:
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.NAME:
            assert tok.string in ALLOWED or BOUND.fullmatch(tok.string), \
                f"generated code uses a name no generator emits: {tok.string!r}\n{src}"
        assert tok.type != tokenize.STRING, f"generated code holds a string literal: {tok.string}\n{src}"


def _spec_strings(text: str) -> list[str]:
    return [m for m in re.findall(r'"((?:[^"\\\n]|\\.)*)"', text) if len(m) > 3]


def test_canary_spec_is_accepted_as_data() -> None:
    system = load_text(CANARY_SPEC, "canary.fk")
    # the strings are kept verbatim, as data
    assert "FORKCHECK_PWNED" in system.source_file
    assert any("os._exit(9)" in o.first for o in system.lock_orders)
    assert any("os._exit(9)" in a.reason for a in system.abstracted)


def test_generated_code_never_carries_spec_text() -> None:
    system = load_text(CANARY_SPEC, "canary.fk")
    sources = _generated_sources(system)
    assert len(sources) > 2 * len(system.steps) - 1
    strings = _spec_strings(CANARY_SPEC)
    for src in sources:
        _check_vocabulary(src)
        for s in strings:
            assert s not in src


def test_exploring_the_canary_spec_executes_nothing() -> None:
    from checker.explore import ExploreOptions, check
    system = load_text(CANARY_SPEC, "canary.fk")
    res = check(system, ExploreOptions(max_states=3000, progress=False), model_name="canary")
    assert not hasattr(builtins, "FORKCHECK_PWNED")
    assert res.stats.states > 1
    # the hostile texts reach reports as data
    text = json.dumps(res.to_json())
    assert "getattribute" in text


def test_cli_on_the_canary_spec(tmp_path: Path) -> None:
    spec = tmp_path / "canary.fk"
    spec.write_text(CANARY_SPEC, encoding="utf-8")
    tr = tmp_path / "traces"
    p = subprocess.run([sys.executable, "-m", "checker.cli", "check", str(spec), "--json", "--max-states", "3000",
                        "--trace-dir", str(tr)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert p.returncode in (0, 1, 3), p.stderr          # 9 would be the payload's os._exit(9)
    out = json.loads(p.stdout)
    assert out["model"] == "canary"
    for f in tr.glob("*.itf.json"):                      # traces keep the strings as JSON data
        json.loads(f.read_text(encoding="utf-8"))


@pytest.mark.parametrize("text, where, words", [
    ("var __import__: 0..1 = 0\nthread t { skip }\n", "1:5", "reserved"),
    ("var x: 0..1 = 0\nthread __class__ { x := 1 }\n", "2:8", "reserved"),
    ("var x: 0..1 = 0\nthread t { var __racy0: 0..1 = 0\n racy x := x + 1 }\n", "2:16", "reserved"),
    ("var \u0445: 0..1 = 0\nthread t { skip }\n", "1:5", "unexpected character"),        # Cyrillic x
    ("var \uff58: 0..1 = 0\nthread t { skip }\n", "1:5", "unexpected character"),        # fullwidth x
    ("var x\u200b: 0..1 = 0\nthread t { skip }\n", "1:6", "unexpected character"),       # zero-width space
    ("var x: 0..1 = 0\nthread t { x\u202e := 1 }\n", "2:13", "unexpected character"),   # bidi override
    ("var x: 0..1 = 0\x07\nthread t { skip }\n", "1:16", "\\x07"),
    ('source "a\nb"\nthread t { skip }\n', "1:8", "unterminated string"),
])
def test_refused_with_a_position(text: str, where: str, words: str) -> None:
    with pytest.raises(ForkcheckError) as ei:
        load_text(text, "hostile.fk")
    first = ei.value.render().splitlines()[0]
    assert first.startswith(f"hostile.fk:{where}:"), first
    assert words in first


def test_a_very_long_name_is_data() -> None:
    name = "x" * 100_000
    system = load_text(f"var {name}: 0..1 = 0\nthread t {{ {name} := 1 }}\ninvariant i: {name} <= 1\n", "long.fk")
    for src in _generated_sources(system):
        assert name[:100] not in src


# Names: any identifier the grammar allows, Python keywords and builtins included.
_DSL_WORDS = {"source", "import", "const", "fix", "type", "enum", "flags", "lock", "chan", "struct", "refcount",
              "guarded_by", "var", "lock_order", "abstract", "proc", "unfair", "env", "thread", "init", "invariant",
              "lemma", "property", "bool", "set", "ref", "list", "mutex", "spin", "sx", "recursive", "class",
              "alloc", "nowait", "pick", "where", "racy", "free", "await", "assert", "return", "break", "continue",
              "skip", "if", "else", "while", "loop", "foreach", "in", "choose", "or", "atomic", "notin", "true",
              "false", "null", "self", "forall", "exists", "eventually", "count", "live", "first", "next", "len",
              "empty", "owned", "held", "xowned", "unlock", "msleep", "wakeup", "wakeup_one", "mtx_assert",
              "upgrade", "insert_head", "insert_tail", "insert_after", "remove", "clear", "contains"}
names = st.one_of(
    st.sampled_from(sorted(set(keyword.kwlist) | {"os", "sys", "exec", "eval", "open", "compile", "globals",
                                                   "G", "P", "T", "L", "K", "f", "tid", "state", "EV", "SPIN",
                                                   "_Rt", "_Off", "_VIOL", "_deref", "b0", "b1"})),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True),
).filter(lambda n: n not in _DSL_WORDS and not n.startswith("__"))
strings = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\\n\r'), max_size=40)


@settings(max_examples=40)
@given(st.lists(names, min_size=6, max_size=6, unique=True), strings)
def test_random_names_never_reach_generated_code(ns: list[str], s: str) -> None:
    v, pool, fld, loc, th, inv = ns
    text = f'''
lock m: mutex class "{s}"
struct {pool} [2] {{ {fld}: 0..2 = 0 }}
var {v}: ref {pool} = null
thread {th}[k in 0..1] {{
  var {loc}: 0..2 = 0
  lock(m)
  {v} := alloc {pool}
  {loc} := {v}.{fld} + 1
  unlock(m)
}}
invariant {inv}: (count q in {pool}: q.{fld} >= 0) <= 2
'''
    try:
        system = load_text(text, "names.fk")
    except ForkcheckError as e:
        assert e.span is not None and e.span.line >= 1, e.render()
        return
    for src in _generated_sources(system):
        _check_vocabulary(src)
