"""The race check's listing (--all-races) and its refinements (ghosts, execution contexts)."""

from __future__ import annotations

from checker import cli
from checker.explore import ExploreOptions, check
from checker.lang import load_text
from checker.results import Verdict

OPTS = ExploreOptions(progress=False)

TWO_RACES = """
var x: 0..3 = 0
var y: 0..3 = 0
thread a {
  x := 1
  y := 1
}
thread b {
  x := 2
  y := 2
}
"""


def reports(r):
    p = next(p for p in r.properties if p.name == "races")
    return p, [(i["kind"], i["location"]) for i in p.details.get("races", [])]


def test_all_races_lists_every_location_and_rule():
    s = load_text(TWO_RACES)
    _, first = reports(check(s, OPTS, model_name="t", properties=["races"]))
    assert first == [("race", "x")]           # the search stops once races is violated
    r = check(s, ExploreOptions(progress=False, all_races=True), model_name="t", properties=["races"])
    p, every = reports(r)
    assert r.stop.value == "finished" and p.verdict is Verdict.VIOLATED
    assert set(every) == {("race", "x"), ("race", "y"), ("lockset", "x"), ("lockset", "y")}
    acc = p.details["races"][0]["accesses"]
    assert acc == ["a: x := 1 (<text>.fk:5:3)", "b: x := 2 (<text>.fk:9:3)"]


def test_all_races_cli_prints_the_list(tmp_path, capsys):
    f = tmp_path / "two.fk"
    f.write_text(TWO_RACES)
    rc = cli.main(["check", str(f), "--all-races", "--no-trace"])
    out = capsys.readouterr().out
    assert rc == 0       # a bare spec: a violation is not unexpected
    assert "4 race reports (location x rule):" in out
    assert f"b: y := 2 ({f}:10:3)" in out


# ------------------------------------------------------------------ ghosts

GHOSTS = """
ghost var budget: 0..4 = 0
var x: 0..3 = 0
thread a {
  atomic { await budget < 2; budget := budget + 1 }
  x := 1
}
thread b {
  budget := budget + 1
  XB
}
"""


def test_ghost_accesses_are_not_races_and_can_be_checked_on_request():
    s = load_text(GHOSTS.replace("XB", "skip"))
    assert [g.name for g in s.globals if g.ghost] == ["budget"]
    p, rep = reports(check(s, OPTS, model_name="t", properties=["races"]))
    assert p.verdict is Verdict.HOLDS and rep == []
    p, rep = reports(check(s, ExploreOptions(progress=False, race_skip_ghosts=False, all_races=True),
                           model_name="t", properties=["races"]))
    assert p.verdict is Verdict.VIOLATED and {loc for _, loc in rep} == {"budget"}


def test_a_kernel_race_beside_a_ghost_is_still_reported():
    s = load_text(GHOSTS.replace("XB", "x := 2"))
    p, rep = reports(check(s, ExploreOptions(progress=False, all_races=True), model_name="t",
                           properties=["races"]))
    assert p.verdict is Verdict.VIOLATED and {loc for _, loc in rep} == {"x"}


# --------------------------------------------------------------- contexts

# Two CPUs run two processes in turn; each process bumps its own `mine` with no lock (as curproc
# reads its own fields), and moves between CPUs only through the `sched` lock.
CONTEXT = """
lock sched: spin
struct proc [2] {
  run: bool = false
  mine: 0..4 = 0
}
var shared: 0..4 = 0
var allp: list proc
thread cpu[i in 0..1] context p {
  var p: ref proc = null
  var n: 0..2 = 0
  while n < 2 {
    lock(sched)
    atomic {
      p := pick proc where !p.run
      p.run := true
      unlock(sched)
    }
    p.mine := p.mine + 1
    EXTRA
    atomic {
      lock(sched)
      p.run := false
      p := null
      unlock(sched)
    }
    n := n + 1
  }
}
PEEK
init {
  a := alloc proc
  b := alloc proc
  insert_head(allp, a)
  insert_head(allp, b)
}
"""

PEEK = """thread peek {
  var q: ref proc = null
  var v: 0..4 = 0
  q := pick proc where q in allp
  v := q.mine
  q := null
}"""


def ctx_spec(extra="skip", peek=""):
    return load_text(CONTEXT.replace("EXTRA", extra).replace("PEEK", peek))


def race_run(s, **kw):
    return reports(check(s, ExploreOptions(progress=False, all_races=True, **kw), model_name="t",
                         properties=["races"]))


def test_context_is_declared_on_the_thread():
    s = ctx_spec()
    assert [t.context for t in s.threads] == ["p", "p"]


def test_a_process_on_two_cpus_is_one_lockset_thread():
    for sym in (True, False):
        p, rep = race_run(ctx_spec(), symmetry=sym)
        assert p.verdict is Verdict.HOLDS, rep
        # per CPU (the old rule, --race-by-thread) the hand-over between CPUs is a lockset race
        p, rep = race_run(ctx_spec(), symmetry=sym, race_contexts=False)
        assert rep == [("lockset", "proc.mine")]


def test_contexts_still_catch_real_races():
    # two processes on a global with no lock: both rules
    _, rep = race_run(ctx_spec(extra="shared := shared + 1"))
    assert set(rep) == {("race", "shared"), ("lockset", "shared")}
    # another thread reading a process's own field with no lock
    _, rep = race_run(ctx_spec(peek=PEEK))
    assert set(rep) == {("race", "proc.mine"), ("lockset", "proc.mine")}


def test_a_context_in_a_symmetric_pool_is_not_used():
    from checker.explore.races import RaceObserver
    from checker.semantics import Semantics
    s = ctx_spec()
    assert RaceObserver(s, Semantics(s)).ctx_local[0] == (0, "proc")
    assert RaceObserver(s, Semantics(s), sym_pools={"proc"}).ctx_local == [None, None]


def test_context_must_name_a_ref_local():
    from checker.diagnostics import SpecError
    for bad in ("context n", "context nope"):
        src = CONTEXT.replace("context p", bad).replace("EXTRA", "skip").replace("PEEK", "")
        try:
            load_text(src, "cx.fk")
        except SpecError as e:
            assert "cx.fk:9:1" in str(e) and "has no local" in str(e) and "of a `ref` type" in str(e)
        else:
            raise AssertionError(bad)


def test_one_cpu_running_two_processes_is_still_one_thread():
    # contexts only add orderings: one CPU's steps stay program-ordered whatever it runs for
    s = load_text(CONTEXT.replace("cpu[i in 0..1]", "cpu[i in 0..0]").replace(
        "EXTRA", "shared := shared + 1").replace("PEEK", ""))
    p, rep = race_run(s)
    assert p.verdict is Verdict.HOLDS, rep


# ------------------------------------------- co-enabled rule: initialisation

PRIVATE = """
struct obj [2] {
  f: 0..2 = 0
}
var l: list obj
thread maker {
  var o: ref obj = null
  o := alloc obj
  PUBLISH
  o.f := 1
  o := null
}
thread scanner {
  var n: 0..2 = 0
  n := count x in obj: x.f == 1
}
"""


def test_coenabled_rule_skips_an_object_only_one_thread_reaches():
    # the scanner meets the new object only through its pool quantifier: initialisation, no race
    p, rep = race_run(load_text(PRIVATE.replace("PUBLISH", "skip")))
    assert p.verdict is Verdict.HOLDS, rep
    # once on a list, the same two accesses race
    _, rep = race_run(load_text(PRIVATE.replace("PUBLISH", "insert_head(l, o)")))
    assert ("race", "obj.f") in rep


# ------------------------------------------------ hand-over (`context p new E`)

# A maker allocates a process, fills `mine` with no lock while it has not run (st == 0), then
# makes it runnable under `sched`; a CPU picks it (reading st under `sched`) and uses `mine`.
HANDOFF = """
lock sched: spin
struct proc [2] {
  st: 0..2 = 0
  mine: 0..3 = 0
}
var allp: list proc
thread maker {
  var o: ref proc = null
  o := alloc proc
  insert_head(allp, o)
  o.mine := 1
  START
  AFTER
  o := null
}
STARTER
thread cpu[i in 0..1] context p new p.st == 0 {
  var p: ref proc = null
  lock(sched)
  atomic {
    p := pick proc where p.st == 1
    p.st := 2
    unlock(sched)
  }
  p.mine := p.mine + 1
  p := null
}
"""
_START = "lock(sched)\n  o.st := 1\n  unlock(sched)"
_STARTER = """thread starter {
  var q: ref proc = null
  q := pick proc where q in allp
  lock(sched)
  q.st := 1
  unlock(sched)
  q := null
}"""


def handoff_spec(after="skip", start=_START, starter=""):
    return load_text(HANDOFF.replace("START\n", start + "\n").replace("AFTER", after).replace(
        "STARTER", starter))


def test_handoff_orders_the_creators_initialisation_before_the_run():
    s = handoff_spec()
    assert s.threads[-1].context_new is not None
    p, rep = race_run(s)
    assert p.verdict is Verdict.HOLDS, rep
    # without the declaration (or with --race-no-handoff) the maker's write and the run race
    p, rep = race_run(s, race_handoff=False)
    assert rep == [("lockset", "proc.mine")]
    p, rep = race_run(load_text(HANDOFF.replace(" new p.st == 0", "").replace("START\n", _START + "\n")
                                .replace("AFTER", "skip").replace("STARTER", "")))
    assert rep == [("lockset", "proc.mine")]


def test_handoff_still_catches_a_creator_writing_after_the_start():
    _, rep = race_run(handoff_spec(after="o.mine := 3"))
    assert ("lockset", "proc.mine") in rep or ("race", "proc.mine") in rep


def test_handoff_breach_when_another_thread_starts_the_object():
    p, rep = race_run(handoff_spec(start="skip", starter=_STARTER))
    assert p.verdict is Verdict.VIOLATED and ("context", "proc.context") in rep
    msg = next(i["message"] for i in p.details["races"] if i["kind"] == "context")
    assert "starter ends `new` without having allocated it" in msg


def test_handoff_creator_locals_are_only_allocation_derived():
    from checker.explore.races import RaceObserver
    from checker.semantics import Semantics
    s = handoff_spec(start="skip", starter=_STARTER)
    ro = RaceObserver(s, Semantics(s))
    names = [t.name for t in s.threads]
    code = lambda n: Semantics(s).thread_code[names.index(n)]
    assert [code("maker").locals[i].name for i in ro.creators[names.index("maker")]["proc"]] == ["o"]
    assert ro.creators[names.index("starter")]["proc"] == []        # q comes from a pick
    assert ro.creators[names.index("cpu[0]")]["proc"] == []         # p too


def test_context_declarations_format_back_and_bad_new_is_a_spec_error():
    from checker.diagnostics import SpecError
    from checker.lang import parse_text
    from checker.lang.fmt import format_module
    src = HANDOFF.replace("START\n", _START + "\n").replace("AFTER", "skip").replace("STARTER", "")
    out = format_module(parse_text(src, "h.fk"))
    assert "thread cpu[i in 0..1] context p new p.st == 0 {" in out
    assert format_module(parse_text(out, "h.fk")) == out
    try:
        load_text(src.replace("new p.st == 0", "new p.nosuch == 0"), "h.fk")
    except SpecError as e:
        assert "h.fk:20:" in str(e) and "nosuch" in str(e)
    else:
        raise AssertionError("no error")


# ------------------------------------- a slot freed before the step is not shared

STALE = """
struct obj [1] {
  f: 0..2 = 0
}
var l: list obj
var flag: bool = false
thread b {
  var x: ref obj = null
  x := alloc obj
  insert_head(l, x)
  x.f := 2
  remove(l, x)
  free x
  atomic { flag := true }
  skip
}
thread a {
  var o: ref obj = null
  atomic { await flag }
  INIT
  o := null
}
"""


def test_initialising_in_the_allocating_step_is_not_shared_through_a_stale_pointer():
    # b's local still names the freed slot; a allocates it again and sets it up in the same step
    p, rep = race_run(load_text(STALE.replace("INIT", "atomic { o := alloc obj; o.f := 1 }")))
    assert p.verdict is Verdict.HOLDS, rep
    # in a later step the stale pointer makes the new object look shared: reported (conservative)
    _, rep = race_run(load_text(STALE.replace("INIT", "o := alloc obj\n  o.f := 1")))
    assert rep == [("lockset", "obj.f")]


def test_cli_switches_turn_each_refinement_off():
    import argparse
    from checker.explore.commands import options_from_args
    ns = argparse.Namespace(all_races=True, race_by_thread=True, race_no_handoff=True, race_ghosts=True)
    o = options_from_args(ns, None)
    assert (o.all_races, o.race_contexts, o.race_handoff, o.race_skip_ghosts) == (True, False, False, False)
    d = options_from_args(argparse.Namespace(), None)
    assert (d.all_races, d.race_contexts, d.race_handoff, d.race_skip_ghosts) == (False, True, True, True)


# ------------------------------------------- end of a context (`context p dead D`)

# A CPU runs the one process: it bumps `mine` with no lock, makes it a zombie (st 1) and switches
# away under `sched`; a reaper that sees it dead and off the CPU under `sched` clears `mine`.
DEAD = """
lock sched: spin
struct proc [1] {
  st: 0..2 = 0
  on: bool = false
  mine: 0..3 = 0
}
var allp: list proc
thread cpu context p dead DECL {
  var p: ref proc = null
  lock(sched)
  atomic {
    p := pick proc where p.st == 0 && !p.on
    p.on := true
    unlock(sched)
  }
  p.mine := p.mine + 1
  lock(sched)
  p.st := 1
  unlock(sched)
  atomic {
    lock(sched)
    p.on := false
    p := null
    unlock(sched)
  }
}
thread reaper {
  var q: ref proc = null
  var z: bool = false
  q := pick proc where q in allp
  atomic {
    lock(sched)
    z := TEST
    unlock(sched)
  }
  if z {
    q.mine := 0
  }
  q := null
}
OTHER
init {
  a := alloc proc
  insert_head(allp, a)
}
"""
_DEAD = "p.st == 1 && !p.on"
_TEST = "q.st == 1 && !q.on"


def dead_spec(decl=_DEAD, test=_TEST, other=""):
    return load_text(DEAD.replace("DECL", decl).replace("TEST", test).replace("OTHER", other))


def context_breaches(p):
    return [i["message"] for i in p.details.get("races", []) if i["kind"] == "context"]


def test_dead_orders_the_reapers_access_after_the_process_ran():
    s = dead_spec()
    assert s.threads[0].context_dead is not None and s.threads[0].context_new is None
    p, rep = race_run(s)
    assert p.verdict is Verdict.HOLDS, rep
    # without the declaration, or with --race-no-handoff, the reaper's write and the run race
    p, rep = race_run(s, race_handoff=False)
    assert rep == [("lockset", "proc.mine")]
    p, rep = race_run(load_text(DEAD.replace(" dead DECL", "").replace("TEST", _TEST).replace("OTHER", "")))
    assert rep == [("lockset", "proc.mine")]


def test_dead_still_catches_a_reaper_that_does_not_wait_for_the_switch():
    # a zombie still on its CPU may yet run: the reaper's access is an ordinary one, and races
    for test in ("q.st == 1", "true"):
        p, rep = race_run(dead_spec(test=test))
        assert p.verdict is Verdict.VIOLATED and ("lockset", "proc.mine") in rep, (test, rep)
        assert context_breaches(p) == [], test


def test_dead_breach_when_a_cpu_runs_a_dead_object():
    # D does not say "off the CPU": it holds while the CPU still runs the zombie
    p, rep = race_run(dead_spec(decl="p.st == 1"))
    assert p.verdict is Verdict.VIOLATED
    assert any("cpu runs an object of which `dead` holds" in m for m in context_breaches(p)), rep


_REVIVER = """thread reviver {
  var r: ref proc = null
  r := pick proc where r in allp
  lock(sched)
  atomic { await r.st == 1 && !r.on; r.st := 0 }
  unlock(sched)
  r := null
}"""

_KILLER = _STARTER.replace("thread starter", "thread killer")   # sets st := 1 on a pick, as the starter


def test_dead_breach_when_dead_ends_for_a_live_object():
    p, rep = race_run(dead_spec(other=_REVIVER))
    assert p.verdict is Verdict.VIOLATED
    assert any("reviver makes `dead` false of a live object" in m for m in context_breaches(p)), rep


def test_dead_breach_when_another_thread_makes_the_object_dead():
    p, rep = race_run(dead_spec(other=_KILLER))
    assert p.verdict is Verdict.VIOLATED
    assert any("killer makes `dead` hold of an object it does not run" in m for m in context_breaches(p)), rep


def test_dead_tags_do_not_order_two_other_threads():
    # two reapers of the same zombie: each comes after the process, not after the other
    second = _TEST.join(DEAD.split("thread reaper {", 1)[1].split("OTHER", 1)[0].split("TEST"))
    p, rep = race_run(dead_spec(other="thread reaper2 {" + second))
    assert p.verdict is Verdict.VIOLATED and ("lockset", "proc.mine") in rep, rep
    assert context_breaches(p) == []


def test_context_new_and_dead_format_back_and_bad_dead_is_a_spec_error():
    from checker.diagnostics import SpecError
    from checker.lang import parse_text
    from checker.lang.fmt import format_module
    src = DEAD.replace("DECL", _DEAD).replace("TEST", _TEST).replace("OTHER", "")
    both = src.replace(" dead ", " new p.st == 2 dead ")
    for text, line in ((src, "thread cpu context p dead p.st == 1 && !p.on {"),
                       (both, "thread cpu context p new p.st == 2 dead p.st == 1 && !p.on {")):
        out = format_module(parse_text(text, "d.fk"))
        assert line in out
        assert format_module(parse_text(out, "d.fk")) == out
    s = load_text(both)
    assert s.threads[0].context_new is not None and s.threads[0].context_dead is not None
    try:
        load_text(src.replace("dead p.st == 1", "dead p.nosuch == 1"), "d.fk")
    except SpecError as e:
        assert "d.fk:9:" in str(e) and "nosuch" in str(e)
    else:
        raise AssertionError("no error")


def test_dead_removes_fork1_fixeds_zombie_reaper_report():
    # models/fork1_fixed.toml with fork, exit and wait only (27k states, exhaustive): the CPUs'
    # `dead` orders wait1's drop of a zombie's p_ucred after the zombie's own read (fork1 261)
    import dataclasses
    import tomllib
    from pathlib import Path

    from checker.lang import load_spec
    repo = Path(__file__).resolve().parents[2]
    consts = tomllib.loads((repo / "models" / "fork1_fixed.toml").read_text())["constants"]
    consts.update({k: False for k in ("SYS_VFORK", "SYS_RFORK", "SYS_EXEC", "SYS_SETSID", "SYS_SETPGID")})
    s = load_spec(str(repo / "spec" / "fork1.fk"), consts)
    assert all(t.context_dead is not None for t in s.threads if t.name.startswith("cpu"))
    p, rep = race_run(s)
    assert p.verdict is Verdict.HOLDS, rep
    undeclared = dataclasses.replace(s, threads=[dataclasses.replace(t, context_dead=None) for t in s.threads])
    _, rep = race_run(undeclared)
    assert rep == [("lockset", "proc.p_ucred")]
