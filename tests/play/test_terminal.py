"""Scripted games on stdin: what the player sees, and the CLI around it."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from checker.cli import main
from checker.play import HintOutcome
from checker.trace.itf import Trace

from .conftest import DATA, REPO, game_of, script


def test_racy_counter_game_transcript(tmp_path: Path) -> None:
    save = tmp_path / "won.itf.json"
    out = script(game_of("models/ex_racy_counter.toml"), "0\n1\n0\n1\n0\n1\n", save=str(save))
    assert "win by breaking one of: deadlock, witness, runtime, both_counted" in out
    assert "turn 0\n  0  t[0]  count := count + 1 [load]\n  1  t[1]  count := count + 1 [load]\n" in out
    # The lost update: t[1]'s store changes nothing.
    # (only its hidden loaded copy is reset; the shared count stays 1)
    assert "t[1] ran: count := count + 1 [store]\n  t[1].count (loaded): 1 -> 0\n\n" in out
    assert "at risk: both_counted (0 writes done, 1 writes done)" in out
    assert "YOU WIN in 6 moves: both_counted (invariant) violated" in out
    assert "moves: 0 1 0 1 0 1" in out
    assert f"saved {save} (6 steps" in out
    assert out.rstrip().endswith("game over after 6 moves: won: both_counted violated")
    assert Trace.read(save).property == "both_counted"


def test_abba_deadlock_shows_who_waits_for_whom() -> None:
    out = script(game_of("models/ex_abba.toml"), "0\n1\n")
    assert "at risk: deadlock (0 takes a lock while holding a)" in out
    assert "YOU WIN in 2 moves: deadlock (deadlock) violated" in out
    assert "  t1  blocked: waiting for lock b held by t2" in out
    assert "  t2  blocked: waiting for lock a held by t1" in out


def test_peterson_hint_says_no_win() -> None:
    out = script(game_of("models/ex_peterson.toml"), "h\n0 1 0\nh\nq\n")
    assert out.count("hint: no violation is reachable from here") == 2
    assert "all 58 states searched" in out
    assert "not played (a single run cannot show them): lock_order, p0_enters, p1_enters" in out
    assert "game over after 3 moves: no violation reached" in out


def test_hint_lists_the_shortest_path() -> None:
    out = script(game_of("models/ex_abba.toml"), "h\n")
    assert ("hint: a shortest way to break deadlock (deadlock) takes 2 moves:\n"
            "  0  t1: lock(a)\n  1  t2: lock(b)\n") in out


def test_hint_each_turn() -> None:
    out = script(game_of("models/ex_racy_counter.toml"), "0\n0\n", hint_each=True)
    assert "hint: both_counted in 6 moves: 0 1 1 1 0 0" in out
    assert "hint: both_counted in 5 moves: 1 1 1 0 0" in out   # after t[0] loads
    assert out.count("hint: no violation is reachable from here") == 1   # after t[0] stores


def test_undo_and_errors_do_not_end_the_game() -> None:
    out = script(game_of("models/ex_abba.toml"), "u\n9\nfoo\n0\n1\n1\nu\nu\n1\n")
    assert "nothing to undo" in out
    assert "no thread or move '9'; moves here: 0, 1" in out
    assert "no thread or move 'foo'" in out
    assert "the game is won; `u` undoes the last move" in out
    assert "undone: t2 lock(b)" in out and "undone: t1 lock(a)" in out
    assert out.rstrip().endswith("game over after 1 move: no violation reached")


def test_blocked_thread_cannot_be_moved() -> None:
    out = script(game_of("models/ex_abba.toml"), "0\n0\n1\n")
    assert "t2 cannot move (blocked: waiting for lock b held by t1)" in out


def test_choices_are_lettered() -> None:
    out = script(game_of(DATA / "choice.fk"), "0\n0b\n0\n")
    assert "  0a  chooser  x := 1\n  0b           x := 2\n  1   other    x := 3\n" in out
    assert "chooser has 2 choices, say which: 0a x := 1; 0b x := 2" in out
    assert "YOU WIN in 2 moves: not_two (assert) violated — assertion not_two failed" in out


def test_seed_lines_are_shown(seed_dir: Path) -> None:
    out = script(game_of(DATA / "nprocs_race.fk", seed_dir), "0 1 0 0 1 1\n")
    assert "  0  cpu[0]  262  if ((nprocs >= maxproc - 1 && uid != 0) || nprocs >= maxproc) {" in out
    assert "cpu[0] ran 270: nprocs++;   (nprocs := nprocs + 1 [load])" in out
    assert "YOU WIN in 6 moves: nprocs_bounded (invariant) violated" in out


def test_save_command_and_state_view(tmp_path: Path) -> None:
    f = tmp_path / "mid.itf.json"
    out = script(game_of("models/ex_racy_counter.toml"), f"0\nv\ns {f}\ns\n")
    assert "  count = 0\n" in out and "  t[0].count (loaded) = 1\n" in out
    assert f"saved {f} (1 steps" in out
    assert "save where? s FILE" in out
    assert len(Trace.read(f).steps) == 2


def test_cli_play_with_moves_and_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "abba.itf.json"
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    rc = main(["play", str(REPO / "models/ex_abba.toml"), "--moves", "0,1", "--save", str(f), "--color", "never"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "> 0\n" in out and "> 1\n" in out and "YOU WIN in 2 moves: deadlock" in out
    t = Trace.read(f)
    assert t.kind == "deadlock" and t.steps[-1] is not None and set(t.steps[-1].blocked) == {"t1", "t2"}


def test_cli_input_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["play", str(tmp_path / "nope.toml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["play", str(REPO / "models/ex_abba.toml"), "--property", "nosuch"]) == 2
    assert "unknown property 'nosuch'" in capsys.readouterr().err
    assert main(["play", str(REPO / "models/ex_abba.toml"), "--moves", ","]) == 2


def test_rich_output_on_request() -> None:
    out = io.StringIO()
    from checker.play.terminal import run
    run(game_of("models/ex_abba.toml"), inp=io.StringIO("0\n1\n"), out=out, color=True)
    text = out.getvalue()
    assert "\x1b[" in text and "YOU WIN" in text


def test_real_fork1_spec_plays(seed_dir: Path) -> None:
    g = game_of(DATA / "fork1_fork_only.toml", seed_dir)
    out = script(g, "3\n")
    assert "     swapper           done" in out.split("turn 1")[0]      # switched off: done from the start
    assert "cpu[0] ran: lock(sched_lock)" in out
    assert "  4  cpu[1]            lock(sched_lock)" in out.split("turn 1")[0]
    assert "cpu[1]            blocked: waiting for lock sched_lock held by cpu[0]" in out


NPROCS_MODELS = sorted((REPO / "models").glob("fork1_nprocs*.toml"))


@pytest.mark.slow
@pytest.mark.skipif(not NPROCS_MODELS, reason="models/fork1_nprocs*.toml has not landed yet")
@pytest.mark.parametrize("model", NPROCS_MODELS, ids=lambda p: p.stem)
def test_fork1_nprocs_race_by_the_hint(model: Path) -> None:
    """The buggy model is won by following the hint; the fixed one cannot be won."""
    from checker.explore.commands import load_target
    expect = load_target(str(model)).expect.get("nprocs_bounded")
    g = game_of(model)
    h = g.hint()
    if expect == "holds":
        # Unreduced, the fixed model outgrows the hint's default budget: "none found" is what it can say.
        assert h.outcome in (HintOutcome.NONE, HintOutcome.LIMIT) and h.win is None
        return
    assert expect == "violated" and h.win is not None and h.win.prop.startswith("nprocs_")
    out = script(g, " ".join(m.key for m in h.moves) + "\n")
    assert f"YOU WIN in {len(h.moves)} moves: {h.win.prop}" in out


def test_fast_forward_to_a_seed_line(seed_dir: Path) -> None:
    out = script(game_of("models/fork1_nprocs.toml", seed_dir), "3+\n3a@270\n")
    assert "cpu[0] ran: lock(sched_lock)\n" in out           # 3+ stops at the pick (a choice)
    assert "cpu[0] ran 9 moves:\n  3a        atomic { p := pick proc where " in out
    assert "  3    262  if nprocs >= maxproc - 1 && uid != 0 || nprocs >= maxproc [else]\n" in out
    assert "  proc#1.p_oncpu: false -> true\n" in out           # the net change of the run
    assert "turn 10\n" in out
    assert "  3  cpu[0]            270  nprocs++;   nprocs := nprocs + 1 [load]\n" in out


def test_fast_forward_stops_before_a_risk() -> None:
    g = game_of(DATA / "nprocs_race.fk")
    out = script(g, "0+\n")
    # the 262 test and the load are safe; the store writes nprocs, which nprocs_bounded reads
    assert "cpu[0] ran 2 moves:" in out and g.turn == 2
    assert g.resolve("0").step.label == "nprocs := nprocs + 1 [store]"


def test_fast_forward_errors() -> None:
    out = script(game_of(DATA / "nprocs_race.fk"), "0+5\n0@x\n9+\n")
    assert "'0+5': write 0+ (run until something matters) or 0@LINE" in out
    assert "'0@x': @ needs a seed line number (0@270)" in out
    assert "no thread or move '9'" in out


def test_ctrl_c_ends_the_game_and_still_saves(tmp_path: Path) -> None:
    class CtrlC(io.StringIO):
        def readline(self, *a: object) -> str:  # type: ignore[override]
            raise KeyboardInterrupt

    from checker.play.terminal import run
    f = tmp_path / "g.itf.json"
    out = io.StringIO()
    assert run(game_of("models/ex_abba.toml"), inp=CtrlC(), out=out, color=False, moves=["0"], save=str(f)) == 130
    assert "game over after 1 move" in out.getvalue() and len(Trace.read(f).steps) == 2
