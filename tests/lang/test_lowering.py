"""The lowering to the IR: what each construct becomes, step by step."""

from __future__ import annotations

from pathlib import Path

import pytest

from checker import ir
from checker.diagnostics import SpecError
from checker.lang import load_text

K = ir.StepKind


def steps_of(s: ir.System, code: str) -> list[ir.Step]:
    return [st for st in s.steps if st.code == code]


def kinds(s: ir.System, code: str) -> list[str]:
    return [st.kind.value for st in steps_of(s, code)]


def test_racy_is_load_then_store_through_a_hidden_local() -> None:
    s = load_text("var n: 0..3 = 0\nthread t { racy n := n + 1 }")
    load, store = steps_of(s, "t")
    assert (load.kind, store.kind) == (K.LOAD, K.STORE)
    assert load.reads == {ir.Loc(None, "n")} and not load.writes
    assert store.writes == {ir.Loc(None, "n")} and not store.reads
    (tmp,) = s.code["t"].locals
    assert tmp.name.startswith("__")
    assert isinstance(load.effects[0].target, ir.LocalVarRef) and load.effects[0].target.name == tmp.name
    # the store also resets the hidden local, so it does not split states
    assert store.effects[1] == ir.Assign(ir.LocalVarRef(tmp.name, tmp.type), ir.Const(tmp.init, tmp.type))
    assert load.label == "n := n + 1 [load]"


def test_msleep_is_sleep_then_wake_reacquiring_the_interlock() -> None:
    s = load_text("lock m: mutex\nchan c\nthread t { lock(m)\n msleep(c, m)\n unlock(m) }")
    lock, sleep, wake, unlock = sorted(steps_of(s, "t"), key=lambda x: x.src)
    assert sleep.kind is K.SLEEP and isinstance(sleep.effects[0], ir.Sleep)
    assert sleep.effects[0].chan == ir.Const(1, ir.RefT("__chan__"))
    assert wake.kind is K.WAKE and isinstance(wake.guard, ir.Woken)
    assert wake.effects == (ir.Acquire(ir.GlobalVarRef("m", s.global_var["m"].type)),)
    assert sleep.locks == wake.locks == {"m"}
    assert s.chans == ("c",)


def test_pick_is_one_step_per_value() -> None:
    s = load_text("""
struct proc [3] { st: 0..2 = 0 }
var r: 0..5 = 0
var q: ref proc = null
thread t {
  r := pick 1..3
  q := pick proc where q.st == 1
}""")
    st = steps_of(s, "t")
    vals = [x.effects[0].value.value for x in st if x.src == 0]
    assert vals == [1, 2, 3] and all(x.guard is None for x in st if x.src == 0)
    picks = [x for x in st if x.src == 1]
    assert [x.effects[0].value.value for x in picks] == [1, 2, 3]
    g = picks[0].guard
    assert isinstance(g, ir.Binary) and g.left == ir.Alive(ir.Const(1, ir.RefT("proc")))
    assert g.right.left.obj == ir.Const(1, ir.RefT("proc"))  # q replaced by the candidate


def test_constant_if_and_fix_toggles_fold_away() -> None:
    src = """
fix FIX = false
var x: 0..3 = 0
thread t {
  if FIX { x := 1 } else { racy x := x + 2 }
  if FIX && x == 0 { x := 3 }
  if !FIX || x == 1 { x := 0 }
}"""
    off = load_text(src)
    assert kinds(off, "t") == ["load", "store", "assign"]
    on = load_text(src, overrides={"FIX": True})
    assert kinds(on, "t") == ["assign", "cond", "cond", "assign", "cond", "cond", "assign"]
    assert [c.value for c in on.constants] == [True] and on.constants[0].is_fix


def test_if_while_foreach_control_flow() -> None:
    s = load_text("""
struct proc [2] { pid: 0..3 = 0 }
var all: list proc
var n: 0..9 = 0
thread t {
  foreach p in all { n := n + p.pid }
  while n > 0 { n := n - 1 }
}""")
    st = steps_of(s, "t")
    first, head_ne, head_eq = st[0], st[1], st[2]
    assert isinstance(first.effects[0].value, ir.ListQuery) and first.effects[0].value.op is ir.ListOp.FIRST
    assert head_ne.kind is K.COND and head_ne.src == head_eq.src
    nxt = [x for x in st if isinstance(x.effects[0].value if x.effects else None, ir.ListQuery)
           and x.effects[0].value.op is ir.ListOp.NEXT]
    assert len(nxt) == 1 and nxt[0].dst == head_ne.src     # next() goes back to the test
    assert ir.Loc(None, "all") in first.reads
    code = s.code["t"]
    assert code.entry == 0 and code.exit == code.npcs - 1
    assert not code.steps_from[code.exit]


def test_thread_family_shares_one_code_and_uses_self_index() -> None:
    s = load_text("var x: 0..9 = 0\nthread cpu[i in 1..3] { x := i }")
    assert [t.name for t in s.threads] == ["cpu[1]", "cpu[2]", "cpu[3]"]
    assert {t.code for t in s.threads} == {"cpu"} and [t.index for t in s.threads] == [0, 1, 2]
    (st,) = s.steps
    v = st.effects[0].value
    assert isinstance(v, ir.Binary) and isinstance(v.left, ir.SelfIndex) and v.left.type == ir.IntT(0, 2)


def test_procedures_inline_per_call_site_with_unique_locals_reset_at_return() -> None:
    s = load_text("""
var g: 0..9 = 0
proc inc(k: 0..3) -> 0..9 {
  var t: 0..9 = 0
  t := g + k
  if t > 5 { return 5 }
  return t
}
thread th {
  g := inc(1)
  g := inc(2)
}""")
    code = s.code["th"]
    names = [v.name for v in code.locals]
    assert names == ["inc#1.k", "inc#1.t", "inc#2.k", "inc#2.t"]
    assert [v.display for v in code.locals] == ["k", "t", "k", "t"]
    calls = [x for x in code.steps if x.kind is K.CALL]
    rets = [x for x in code.steps if x.kind is K.RETURN]
    assert len(calls) == 2 and calls[0].frames == ("th",)
    assert all(r.frames == ("th", "inc") for r in rets)
    for r in rets:
        if r.label == "end of inc":
            continue
        assert r.effects[0].target == ir.GlobalVarRef("g", ir.IntT(0, 9))
        resets = {e.target.name for e in r.effects[1:]}
        assert resets in ({"inc#1.k", "inc#1.t"}, {"inc#2.k", "inc#2.t"})


def test_choose_branches_start_at_one_pc_and_steps_are_numbered() -> None:
    s = load_text("var x: 0..3 = 0\nthread t { loop { choose { x := 1 } or { x := 2 } or { break } } }")
    st = steps_of(s, "t")
    assert [x.id for x in s.steps] == list(range(len(s.steps)))
    at0 = [x for x in st if x.src == 0]
    assert sorted(x.label for x in at0) == ["skip", "x := 1", "x := 2"]
    # x := 1 and x := 2 return to the choice; break (a skip here: the end has no step) leaves the loop
    assert [x.dst for x in sorted(at0, key=lambda x: x.label)] == [s.code["t"].exit, 0, 0]


def test_atomic_is_one_step_and_may_start_with_pick_or_await() -> None:
    s = load_text("""
struct proc [2] { busy: bool = false }
var p: ref proc = null
var n: 0..3 = 0
thread t {
  atomic { p := pick proc where !p.busy; p.busy := true; n := n + 1 }
  atomic { await n > 0; if n == 1 { n := 0 } else { n := 1 } }
}""")
    st = steps_of(s, "t")
    picks = [x for x in st if x.src == 0]
    assert len(picks) == 2 and all(x.kind is K.ATOMIC and len(x.effects) == 3 for x in picks)
    (aw,) = [x for x in st if x.src == 1]
    assert aw.guard is not None and all(isinstance(e.value, ir.Ite) for e in aw.effects)


def test_init_allocates_statically_and_lists() -> None:
    s = load_text("""
struct proc [2] { pid: 0..9 = 0 }
var all: list proc
var initproc: ref proc = null
thread t { skip }
init {
  p := alloc proc
  p.pid := 1
  insert_head(all, p)
  initproc := alloc proc
}""")
    kinds_ = [type(e).__name__ for e in s.init]
    assert kinds_ == ["Alloc", "Assign", "ListUpdate", "Alloc", "Assign"]
    assert s.init[1].target.obj == ir.Const(1, ir.RefT("proc"))
    assert s.init[3].target == ir.GlobalVarRef("initproc", ir.RefT("proc"))
    assert "__init_proc" in s.global_var


def test_properties_lower_to_invariants_and_leadsto_with_binders() -> None:
    s = load_text("""
flags pf { A, B }
struct proc [2] { f: set pf = {} }
var n: 0..3 = 0
thread t { skip }
invariant small: n <= 2
lemma also: count p in proc: A in p.f <= 2
property drains: forall p in proc: A in p.f ~> A notin p.f
property boots: eventually n == 1
""")
    assert [i.name for i in s.invariants] == ["small", "also"]
    d, b = s.leadsto
    assert d.binders == (("p", "proc"),) and isinstance(d.p, ir.Binary) and d.p.op is ir.BinOp.IN
    assert isinstance(d.q, ir.Unary)
    assert b.binders == () and b.p == ir.Const(True, ir.BoolT())
    assert s.property_names["drains"] == "leadsto" and s.property_names["small"] == "invariant"


def test_locks_classes_and_orders() -> None:
    s = load_text("""
lock allproc_lock: sx
struct proc [2] { p_mtx: mutex class "process lock" }
var p: ref proc = null
lock_order allproc_lock < "process lock"
thread t { slock(allproc_lock)
  lock(p.p_mtx)
  unlock(p.p_mtx)
  sunlock(allproc_lock) }""")
    st = steps_of(s, "t")
    assert st[0].effects[0].mode is ir.LockMode.SHARED and st[0].locks == {"allproc_lock"}
    assert st[1].locks == {"process lock"}
    assert s.lock_orders == (ir.LockOrder("allproc_lock", "process lock"),)


def test_imports_are_relative_and_overrides_apply(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "base.fk").write_text("const N = 2\nconst M = N + 1\nvar x: 0..M = 0\n")
    main = tmp_path / "main.fk"
    main.write_text('import "lib/base.fk"\nthread t { x := M }\n')
    from checker.lang import load_spec
    s = load_spec(main, {"N": 4})
    assert s.constant == {"N": 4, "M": 5} and s.global_var["x"].type == ir.IntT(0, 5)
    with pytest.raises(SpecError, match="no constant `Q`"):
        load_spec(main, {"Q": 1})


def test_step_metadata_refs_and_frames() -> None:
    s = load_text('source "kern_fork.c"\nvar x: 0..3 = 0\nthread t { x := 1 @270\n x := 2 @other.c:5 }')
    a, b = s.steps
    assert a.ref == ir.SrcRef("kern_fork.c", 270) and b.ref == ir.SrcRef("other.c", 5)
    assert s.source_file == "kern_fork.c"
    assert a.span.line == 3 and a.frames == ("t",)


KITCHEN_SINK = Path(__file__).parent / "data" / "kitchen_sink.fk"


def test_kitchen_sink_uses_every_step_kind_and_explores() -> None:
    from checker.lang import load_spec
    s = load_spec(KITCHEN_SINK)
    assert {st.kind for st in s.steps} == set(K)
    assert len(s.steps) == 71
    explore = pytest.importorskip("checker.explore.check")
    from checker.explore.options import ExploreOptions
    r = explore.check(s, ExploreOptions(por=False, symmetry=False), model_name="kitchen_sink")
    assert [(p.name, p.verdict.value) for p in r.properties if p.verdict.value != "holds"] == []
    assert (r.stats.states, r.stats.transitions) == (10896, 30890)


# ------------------------------------------------------------------ ghosts

_GHOST_HEAD = "ghost var g: 0..3 = 0\nvar x: 0..3 = 0\nstruct s [2] {\n  f: 0..3 = 0\n}\n"


@pytest.mark.parametrize("body, where", [
    ("if g > 0 {\n    x := 1\n  }", "in an `if` condition"),
    ("while g > 0 {\n    x := 1\n  }", "in a `while` condition"),
    ("x := g", "in a value assigned to kernel state"),
    ("x := g > 0 ? 1 : 0", "in a value assigned to kernel state"),
    ("x := pick 0..g", "in a range picked for kernel state"),
    ("wakeup_x(g)", "as an argument of `wakeup_x`"),
])
def test_ghost_read_that_could_change_kernel_state_is_an_error(body, where):
    from checker.lang import load_text
    from checker.diagnostics import SpecError
    src = _GHOST_HEAD + "proc wakeup_x(n: 0..3) {\n  x := n\n}\nthread t {\n  " + body + "\n}\n"
    with pytest.raises(SpecError) as ei:
        load_text(src, "gh.fk")
    msg = str(ei.value)
    assert "ghost `g` read " + where in msg and "gh.fk:" in msg


def test_ghost_reads_allowed_in_guards_filters_ghosts_and_shadowed_names():
    from checker.lang import load_text
    src = _GHOST_HEAD + (
        "var r: ref s = null\n"
        "thread t {\n"
        "  var o: ref s = null\n"
        "  atomic { await g < 3; g := g + x }\n"
        "  o := pick s where g < 3\n"
        "  assert small: g < 3\n"
        "}\n"
        "proc h(g: 0..3) {\n  x := g\n}\n"       # a parameter named like the ghost is not the ghost
        "invariant gi: g <= 3\n")
    s = load_text(src, "gh.fk")
    assert [v.name for v in s.globals if v.ghost] == ["g"]


def test_ghost_with_a_lock_is_an_error():
    from checker.lang import load_text
    from checker.diagnostics import SpecError
    with pytest.raises(SpecError, match=r"ghost `g` is model bookkeeping.*no lock"):
        load_text("lock m: mutex\nghost var g: 0..3 = 0 guarded_by m\n", "gh.fk")
