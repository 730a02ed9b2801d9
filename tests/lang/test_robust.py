"""Any input gives a System or a ForkcheckError with a position: never a Python exception."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.diagnostics import ForkcheckError
from checker.lang import load_text
from checker.lang.fmt import format_module

from .test_fmt import bodies, exprs, modules

PRELUDE = """
source "kern_fork.c"
struct ucred [1] { cr: 0..1 = 0 }
struct pgrp [1] { pg: 0..3 = 0 }
const N = 2
fix F = false
flags pf { P_A, P_B }
enum pstat { SIDL, SRUN }
lock m: mutex
lock s: sx
chan c
struct proc [2] refcount r { r: 0..3 = 0
  mm: mutex
  f: set pf = {} guarded_by mm
  st: pstat = SIDL
  kids: list proc
  up: ref proc = null }
var x: 0..5 = 0
var y: bool = false
var p: ref proc = null
var q: ref proc = null
var n: 0..9 = 0
var count: 0..3 = 0
var flag: set pf = {}
var all: list proc
proc f(a: 0..5) -> 0..5 { return a }
"""


def _load(text: str) -> None:
    try:
        load_text(text, "fuzz.fk")
    except ForkcheckError as e:
        assert e.span is None or e.span.line >= 1
        e.render()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules)
def test_random_specs_never_crash(m) -> None:  # type: ignore[no-untyped-def]
    _load(PRELUDE + format_module(m))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="{}()[];:=.<>!&|+-*/%@\"x1 \n", max_size=60))
def test_random_text_never_crashes(t: str) -> None:
    _load(t)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies, exprs, st.booleans())
def test_random_bodies_never_crash(body, inv, in_proc) -> None:  # type: ignore[no-untyped-def]
    from checker.lang import ast as A
    decls: list = []
    if in_proc:
        decls.append(A.ProcD("g", (A.Param("k", A.TRange(A.IntLit(0), A.IntLit(3))),), None, body))
        decls.append(A.ThreadD("t", None, None, None, False, False, (A.CallS("g", (A.IntLit(1),)),)))
    else:
        decls.append(A.ThreadD("t", "i", A.IntLit(0), A.IntLit(1), False, False, body))
    decls.append(A.InvariantD("inv", inv))
    _load(PRELUDE + format_module(A.Module("fuzz.fk", tuple(decls))))
