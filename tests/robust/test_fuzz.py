"""Fuzzing: mutated bundled specs and models, malformed traces and scenarios.

The only outcomes allowed are a result (an IR System, a Trace, a kernel run) or a
ForkcheckError that renders — with file:line:col where the input is a file — never
another exception and never a hang. tests/lang/test_robust.py fuzzes the grammar with
generated modules; this file starts from the real specs and mutates them, and also runs
what loads through a short exploration.

Budgets come from the hypothesis profile (tests/conftest.py): "ci" by default,
FORKCHECK_HYPOTHESIS=slow for a long soak. A failure found here goes, shrunk, into
tests/data/fuzz_corpus/ with its expected outcome.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from checker.diagnostics import ForkcheckError
from checker.lang import load_text

REPO = Path(__file__).resolve().parent.parent.parent
SPECS = sorted((REPO / "spec" / "examples").glob("*.fk")) + [REPO / "tests" / "lang" / "data" / "kitchen_sink.fk"]
MODELS = sorted((REPO / "models").glob("ex_*.toml"))
SCENARIOS = sorted((REPO / "scenarios").glob("*.json"))

def _budget(fraction: float) -> int:
    """A share of the profile's example budget, for the costlier tests ("slow" scales them too)."""
    return max(10, int(settings.default.max_examples * fraction))


# A backstop against hangs: any single input taking this long fails the test with its
# input (a hang is a bug), instead of stalling the suite. Far above any real case.
HANG_SECONDS = 60


class Hang(Exception):
    pass


@contextlib.contextmanager
def watchdog(seconds: int = HANG_SECONDS) -> Iterator[None]:
    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"no result after {seconds} s")
    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _positioned(e: ForkcheckError, filename: str) -> None:
    text = e.render()
    assert "Traceback" not in text
    if e.span is not None and e.span.line > 0:
        assert text.startswith(f"{e.span.file}:{e.span.line}:"), text


# ----------------------------------------------------------- spec mutations

TOKENS = ["{", "}", "(", ")", ";", "\n", ":=", "==", "..", "@270", "@kern_fork.c:99", '"', '"x"', "null",
          "self", "racy", "atomic", "choose", "or", "alloc", "free", "lock(", "unlock(", "msleep(", "forall",
          "count", "~>", "eventually", "!", "-", "0", "1", "99999999999999999999", "-5", "__x", "\u0445",
          "\x00", "//", "/*", "*/", "x", "proc", "thread", "var", "const", "struct", "import \"nope.fk\"",
          "import \"kitchen_sink.fk\""]


@st.composite
def mutated(draw: Any) -> tuple[Path, str]:
    path = draw(st.sampled_from(SPECS))
    text = path.read_text(encoding="utf-8")
    for _ in range(draw(st.integers(1, 3))):
        n = len(text)
        i = draw(st.integers(0, n))
        op = draw(st.sampled_from(["delete", "duplicate", "insert", "number", "swap_lines"]))
        if op == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 30)):]
        elif op == "duplicate":
            j = min(n, i + draw(st.integers(1, 60)))
            text = text[:j] + text[i:j] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(TOKENS)) + text[i:]
        elif op == "number":
            digits = [k for k, c in enumerate(text) if c.isdigit()]
            if digits:
                k = draw(st.sampled_from(digits))
                text = text[:k] + str(draw(st.integers(-2**70, 2**70))) + text[k + 1:]
        else:
            lines = text.split("\n")
            a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
    return path, text


def _load(path: Path, text: str) -> Any:
    try:
        with watchdog():
            return load_text(text, str(path))
    except ForkcheckError as e:
        _positioned(e, str(path))
        return None


def test_bundled_specs_load() -> None:
    # the mutations start from specs that load: otherwise every mutant is just an error
    for p in SPECS:
        assert load_text(p.read_text(encoding="utf-8"), str(p)) is not None


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(mutated())
def test_mutated_specs(case: tuple[Path, str]) -> None:
    _load(*case)


# Fewer examples: each mutant that still loads is also explored (compiled, every analysis).
@settings(max_examples=_budget(0.4), suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(mutated())
def test_mutated_specs_explore(case: tuple[Path, str]) -> None:
    system = _load(*case)
    assume(system is not None)
    from checker.explore import ExploreOptions, check
    with watchdog():
        try:
            res = check(system, ExploreOptions(max_states=300, progress=False), model_name="fuzz")
        except ForkcheckError as e:
            _positioned(e, str(case[0]))
            return
    assert res.stats.states >= 1
    json.dumps(res.to_json())
    for p in res.properties:
        if p.trace is not None:
            p.trace.dumps()


# ------------------------------------------------------------ model files

@st.composite
def mutated_model(draw: Any) -> tuple[Path, str]:
    path = draw(st.sampled_from(MODELS))
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    k = draw(st.integers(0, len(lines)))
    extra = draw(st.sampled_from([
        "NTHREADS = 99999999999999999999", "NTHREADS = -1", "NTHREADS = true", "NTHREADS = 1.5",
        'NTHREADS = "2"', "[constants]", "[check]", "[expect]", "max_states = 0", 'strategy = "sideways"',
        'invariants = ["nope"]', 'both_counted = "perhaps"', 'spec = "../nope.fk"', "spec = 5", "x = [",
        "= 1", '"\\u0000" = 1', "__import__ = 1", "time_limit = -1", "proofs = 7", "[constants.sub]",
        "docs = 3", "deadlock = \"violated\"", "[[expect]]"]))
    if draw(st.booleans()):
        lines.insert(k, extra)
    elif lines:
        del lines[min(k, len(lines) - 1)]
    return path, "\n".join(lines)


@settings(max_examples=_budget(0.7), suppress_health_check=[HealthCheck.too_slow])
@given(mutated_model())
def test_mutated_models(tmp_path_factory: pytest.TempPathFactory, case: tuple[Path, str]) -> None:
    from checker.model import load_model
    src, text = case
    d = tmp_path_factory.mktemp("m")
    (d / "models").mkdir()
    (d / "spec").symlink_to(REPO / "spec")
    m = d / "models" / src.name
    m.write_text(text, encoding="utf-8")
    try:
        with watchdog():
            model = load_model(m)
    except ForkcheckError as e:
        _positioned(e, str(m))
        return
    assert model.system is not None


# ------------------------------------------------------------------ ITF

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.sampled_from(["#meta", "#bigint", "#set", "#tup", "#map", "states", "vars", "loop", "thread", "step",
                         "frames", "locks_held", "blocked", "extra", "label", "ref", "x", "proc"]) | st.text(max_size=5),
        kids, max_size=5),
    max_leaves=20)


def _read_trace(d: Any) -> None:
    from checker.trace.itf import Trace, TraceError
    try:
        with watchdog():
            t = Trace.from_itf(d, "fuzz.itf.json")
    except TraceError as e:
        _positioned(e, "fuzz.itf.json")
        return
    t.dumps()


@given(json_values)
def test_random_itf(d: Any) -> None:
    _read_trace(d)


@functools.lru_cache(maxsize=1)
def _seed_traces() -> tuple[str, ...]:
    """Counterexamples of two examples, made here (the committed ones change with the specs)."""
    from checker.explore import ExploreOptions, check
    out = []
    for name in ("racy_counter", "abba"):
        system = load_text((REPO / "spec" / "examples" / f"{name}.fk").read_text(), f"{name}.fk")
        res = check(system, ExploreOptions(progress=False), model_name=name)
        out += [p.trace.dumps() for p in res.properties if p.trace is not None]
    assert out
    return tuple(out)


@st.composite
def mutated_trace(draw: Any) -> Any:
    d = json.loads(draw(st.sampled_from(_seed_traces())))
    for _ in range(draw(st.integers(1, 3))):
        # walk to a random container and replace, drop or retype one of its entries
        node = d
        for _ in range(draw(st.integers(0, 4))):
            kids = list(node.values()) if isinstance(node, dict) else node
            kids = [k for k in kids if isinstance(k, (dict, list)) and k]
            if not kids:
                break
            node = draw(st.sampled_from(kids))
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            if draw(st.booleans()):
                node[key] = draw(json_values)
            else:
                del node[key]
        elif isinstance(node, list) and node:
            node[draw(st.integers(0, len(node) - 1))] = draw(json_values)
    return d


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(mutated_trace())
def test_mutated_itf(d: Any) -> None:
    _read_trace(d)


@given(st.binary(max_size=200))
def test_itf_bytes(tmp_path_factory: pytest.TempPathFactory, b: bytes) -> None:
    from checker.trace.itf import Trace, TraceError
    f = tmp_path_factory.mktemp("itf") / "t.itf.json"
    f.write_bytes(b)
    with pytest.raises(TraceError):
        Trace.read(f)


# ------------------------------------------------------------- scenarios

@st.composite
def scenario_text(draw: Any) -> str:
    if draw(st.booleans()):
        return json.dumps(draw(json_values))
    d = json.loads(draw(st.sampled_from(SCENARIOS)).read_text(encoding="utf-8"))
    ops = d.get("ops", [])
    if ops and draw(st.booleans()):
        op = draw(st.sampled_from(ops))
        if op:
            key = draw(st.sampled_from(sorted(op)))
            op[key] = draw(st.one_of(json_values, st.integers(-2**65, 2**65)))
    if draw(st.booleans()):
        cfg = d.setdefault("config", {})
        key = draw(st.sampled_from(["PID_MAX", "PID_FLOOR", "PID_HIGH_FLOOR", "RANDOMPID_MIN", "maxproc",
                                    "maxprocperuid", "randompid", "PIDHASH_SIZE", "seed", "fixes"]))
        cfg[key] = draw(st.one_of(st.integers(-10, 2**40), json_values))
    if draw(st.booleans()):
        ops.insert(draw(st.integers(0, len(ops))), {"op": draw(st.sampled_from(
            ["fork", "vfork", "rfork", "fork1", "exit", "wait", "exec", "setsid", "setpgid", "setuid",
             "setrlimit", "sysctl_randompid", "at_fork", "rm_at_fork", "swapper"])),
            "pid": draw(st.integers(-2, 12))})
    return json.dumps(d)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(scenario_text())
def test_scenarios(text: str) -> None:
    from checker.kernel import scenario
    try:
        with watchdog():
            sc = scenario.parse(text, "fuzz.json")
            scenario.result_json(scenario.run(sc))
    except ForkcheckError as e:
        _positioned(e, "fuzz.json")
