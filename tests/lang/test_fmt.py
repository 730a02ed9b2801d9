"""`forkcheck fmt`: canonical, idempotent, comment-preserving, and meaning-preserving."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.lang import ast as A
from checker.lang import load_spec, load_text, parse_text
from checker.lang.fmt import format_module

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "spec").rglob("*.fk"))

# ------------------------------------------------------------ random ASTs

NAMES = ["x", "y", "p", "q", "n", "count", "flag", "P_A", "SIDL"]
ident = st.sampled_from(NAMES)
pools = st.sampled_from(["proc", "ucred", "pgrp"])
lits = st.one_of(st.integers(-50, 50).map(A.IntLit), st.booleans().map(A.BoolLit),
                 st.just(A.NullLit()), st.just(A.SelfLit()), ident.map(A.Name),
                 st.lists(ident, max_size=3).map(lambda m: A.SetLit(tuple(m))))


def _extend(sub: st.SearchStrategy) -> st.SearchStrategy:
    non_lit = sub.filter(lambda e: not isinstance(e, A.IntLit))
    return st.one_of(
        st.builds(A.Binary, st.sampled_from(list(A.Op)), sub, sub),
        st.builds(A.Unary, st.just(A.UOp.NOT), sub),
        st.builds(A.Unary, st.just(A.UOp.NEG), non_lit),
        st.builds(A.CondE, sub, sub, sub),
        st.builds(A.FieldAcc, sub, ident),
        st.builds(A.Call, st.sampled_from(["alive", "first", "f"]), st.lists(sub, max_size=2).map(tuple)),
        st.builds(A.QuantE, st.sampled_from(list(A.QKind)), ident, pools, sub),
        st.builds(A.Eventually, sub),
    )


exprs = st.recursive(lits, _extend, max_leaves=12)
lvalues = st.recursive(ident.map(A.Name), lambda s: st.builds(A.FieldAcc, s, ident), max_leaves=3)
refs = st.one_of(st.none(), st.builds(A.SrcRefA, st.sampled_from([None, "kern_fork.c"]), st.integers(1, 800)))
small_int = st.integers(0, 9).map(A.IntLit)
types = st.one_of(st.just(A.TBool()), st.builds(A.TRange, small_int, exprs), ident.map(A.TName),
                  pools.map(A.TRef), pools.map(A.TList), ident.map(A.TSet),
                  st.builds(A.TLock, st.sampled_from(["mutex", "spin", "sx"]), st.booleans(),
                            st.one_of(st.none(), st.just("process lock"))))

simple = st.one_of(
    st.builds(A.Assign, lvalues, exprs, refs),
    st.builds(A.Racy, lvalues, exprs, refs),
    st.builds(A.AllocS, lvalues, pools, st.booleans(), refs),
    st.builds(A.PickRange, lvalues, exprs, exprs, refs),
    st.builds(A.PickPool, lvalues, pools, st.one_of(st.none(), exprs), refs),
    st.builds(A.CallS, st.sampled_from(["lock", "unlock", "msleep", "fork1", "insert_head"]),
              st.lists(exprs, max_size=3).map(tuple), refs),
    st.builds(A.FreeS, exprs, refs), st.builds(A.AwaitS, exprs, refs),
    st.builds(A.AssertS, ident, exprs, refs), st.builds(A.ReturnS, st.one_of(st.none(), exprs), refs),
    st.builds(A.BreakS, refs), st.builds(A.ContinueS, refs), st.builds(A.SkipS, refs),
    st.builds(A.VarS, ident, types, st.one_of(st.none(), exprs), refs),
)


def _compound(sub: st.SearchStrategy) -> st.SearchStrategy:
    body = st.lists(sub, max_size=3).map(tuple)
    cb = st.builds(A.CondBlock, exprs, refs, body)
    return st.one_of(
        st.builds(A.IfS, st.lists(cb, min_size=1, max_size=3).map(tuple), st.one_of(st.none(), body)),
        st.builds(A.WhileS, exprs, refs, body), st.builds(A.LoopS, refs, body),
        st.builds(A.ForeachS, ident, exprs, refs, body),
        st.builds(A.ChooseS, st.lists(body, min_size=2, max_size=3).map(tuple)),
        st.builds(A.AtomicS, refs, body),
    )


stmts = st.recursive(simple, _compound, max_leaves=8)
bodies = st.lists(stmts, max_size=4).map(tuple)
decls = st.one_of(
    st.builds(A.ConstD, ident, exprs), st.builds(A.FixD, ident, exprs, st.sampled_from(["", "a fix"])),
    st.builds(A.TypeD, ident, types),
    st.builds(A.EnumD, ident, st.lists(ident, min_size=1, max_size=3).map(tuple), st.booleans()),
    st.builds(A.LockD, ident, st.builds(A.TLock, st.sampled_from(["mutex", "sx"]))),
    st.builds(A.ChanD, st.lists(ident, min_size=1, max_size=2).map(tuple)),
    st.builds(A.StructD, pools, small_int, st.one_of(st.none(), ident),
              st.lists(st.builds(A.FieldD, ident, types, st.one_of(st.none(), exprs),
                                 st.lists(ident, max_size=2).map(tuple)), max_size=3).map(tuple)),
    st.builds(A.VarD, ident, types, st.one_of(st.none(), exprs), st.lists(ident, max_size=2).map(tuple)),
    st.builds(A.LockOrderD, st.lists(st.tuples(ident, st.booleans()), min_size=2, max_size=3).map(tuple)),
    st.builds(A.ProcD, ident, st.lists(st.builds(A.Param, ident, types), max_size=2).map(tuple),
              st.one_of(st.none(), types), bodies),
    st.builds(A.ThreadD, ident, st.none(), st.none(), st.none(), st.booleans(), st.booleans(), bodies),
    st.builds(A.ThreadD, ident, ident, small_int, exprs, st.booleans(), st.booleans(), bodies),
    st.builds(A.InitD, bodies),
    st.builds(A.InvariantD, ident, exprs, st.booleans()), st.builds(A.PropertyD, ident, exprs),
)
modules = st.lists(decls, max_size=5).map(lambda ds: A.Module("<gen>", tuple(ds)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules)
def test_format_then_parse_gives_the_same_ast(m: A.Module) -> None:
    text = format_module(m)
    back = parse_text(text, "<gen>")
    assert back == m, text
    assert format_module(back) == text  # idempotent


# --------------------------------------------- meaning: same IR after fmt

int_vars = st.sampled_from(["a", "b"])
bool_vars = st.sampled_from(["c", "d"])


def _ints(depth: int) -> st.SearchStrategy[str]:
    base = st.one_of(st.integers(0, 5).map(str), int_vars)
    if depth == 0:
        return base
    sub = _ints(depth - 1)
    return st.one_of(base, st.tuples(sub, st.sampled_from(["+", "-", "*"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
                     st.tuples(_bools(depth - 1), sub, sub).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"))


def _bools(depth: int) -> st.SearchStrategy[str]:
    base = st.one_of(st.sampled_from(["true", "false", "FIX"]), bool_vars)
    if depth == 0:
        return base
    sub, isub = _bools(depth - 1), _ints(depth - 1)
    return st.one_of(
        base, sub.map(lambda s: f"(!{s})"),
        st.tuples(sub, st.sampled_from(["&&", "||", "=>"]), sub).map(lambda t: f"({t[0]}\n {t[1]} {t[2]})"),
        st.tuples(isub, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), isub).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"))


@settings(max_examples=100, deadline=None)
@given(_bools(3), _ints(3), _bools(2))
def test_fmt_keeps_the_ir(cond: str, val: str, inv: str) -> None:
    # x is written fully parenthesised with odd line breaks; fmt(x) must lower to the same IR
    text = (f"fix FIX = false\nvar a: 0..5 = 0\nvar b: 0..5 = 1\nvar c: bool = false\nvar d: bool = true\n"
            f"var r: -1000..1000 = 0\n"
            f"thread t {{\n  if {cond} {{ r := {val} }} else {{ c := {cond} ; skip }}\n"
            f"  while {cond} {{ d := !d\n break }}\n}}\ninvariant i: {inv}\n")
    x = load_text(text, "x.fk")
    y = load_text(format_module(parse_text(text, "x.fk")), "x.fk")
    assert x == y


def test_fmt_keeps_every_repo_spec_and_its_comments() -> None:
    assert SPECS
    for p in SPECS:
        text = p.read_text(encoding="utf-8")
        m = parse_text(text, str(p))
        out = format_module(m)
        m2 = parse_text(out, str(p))
        assert m2 == m, p
        assert format_module(m2) == out, p
        assert len(m2.comments) == len(m.comments), p
        assert [c.text for c in m2.comments] == [c.text for c in m.comments], p


def test_fmt_keeps_the_ir_of_the_specs() -> None:
    for p in [*sorted((ROOT / "spec" / "examples").glob("*.fk")), ROOT / "spec" / "fork1.fk"]:
        if not p.exists():
            continue
        out = format_module(parse_text(p.read_text(encoding="utf-8"), str(p)))
        assert load_text(out, str(p)) == load_spec(p), p


def test_examples_are_canonical() -> None:
    for p in sorted((ROOT / "spec" / "examples").glob("*.fk")):
        text = p.read_text(encoding="utf-8")
        assert format_module(parse_text(text, str(p))) == text, f"run: forkcheck fmt {p}"


def test_comments_blank_lines_and_alignment() -> None:
    src = ("// head\n\nconst N = 2   // two\nvar x: 0..N = 0 // x\n\n\n// a thread\nthread t {\n"
           "  x := 1\n  // mid\n  x:=2;x := 0\n}\n")
    out = format_module(parse_text(src, "c.fk"))
    assert out == ("// head\n\nconst N = 2      // two\nvar x: 0..N = 0  // x\n\n// a thread\nthread t {\n"
                   "  x := 1\n  // mid\n  x := 2\n  x := 0\n}\n")
