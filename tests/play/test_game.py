"""The game engine: moves and keys, undo, the explorer's checks, the BFS hint, the ITF trace."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from checker.play import Game, HintOutcome, PlayError, ThreadStatus
from checker.trace.itf import Trace

from .conftest import DATA, REPO, game_of


def play_keys(g: Game, keys: str) -> None:
    for k in keys.split():
        g.play(g.resolve(k))


def test_racy_counter_lost_update_wins() -> None:
    g = game_of("models/ex_racy_counter.toml")
    assert [m.key for m in g.moves()] == ["0", "1"]
    play_keys(g, "0 1 0 1 0")
    assert g.win is None
    p = g.play(g.resolve("1"))
    assert p.win is not None and p.win.prop == "both_counted" and p.win.kind == "invariant"
    assert g.moves() == [] and g.over
    with pytest.raises(PlayError, match="won"):
        g.resolve("0")


def test_sequential_schedule_does_not_win() -> None:
    g = game_of("models/ex_racy_counter.toml")
    play_keys(g, "0 0 0 1 1 1")
    assert g.win is None and g.over
    assert all(t.status is ThreadStatus.DONE for t in g.threads())


def test_undo_restores_the_state_and_the_win() -> None:
    g = game_of("models/ex_abba.toml")
    s0 = g.state
    play_keys(g, "0 1")
    assert g.win is not None and g.win.prop == "deadlock"
    assert g.undo() and g.win is None and g.turn == 1
    assert g.undo() and g.state == s0
    assert not g.undo()


def test_blocked_thread_says_who_holds_the_lock() -> None:
    g = game_of("models/ex_abba.toml")
    play_keys(g, "0 1")
    t1, t2 = g.threads()
    assert t1.status is ThreadStatus.BLOCKED and "b held by t2" in t1.why
    assert t2.status is ThreadStatus.BLOCKED and "a held by t1" in t2.why


def test_keys_names_and_choices() -> None:
    g = game_of(DATA / "choice.fk")
    assert [m.key for m in g.moves()] == ["0a", "0b", "1"]
    with pytest.raises(PlayError, match="2 choices"):
        g.resolve("chooser")
    assert g.resolve("chooserb").step.label == "x := 2"
    assert g.resolve("other").key == "1"
    with pytest.raises(PlayError, match="no thread or move 'zz'"):
        g.resolve("zz")
    p = g.play(g.resolve("0b"))
    assert p.win is None
    assert g.play(g.resolve("0")).win.prop == "not_two"  # type: ignore[union-attr]


def test_family_names_with_and_without_brackets() -> None:
    g = game_of(DATA / "nprocs_race.fk")
    assert g.resolve("cpu[1]").tid == 1 and g.resolve("cpu1").tid == 1
    play_keys(g, "1")
    with pytest.raises(PlayError, match="no thread or move"):
        g.resolve("7")


def test_risks_come_from_the_footprint() -> None:
    g = game_of(DATA / "nprocs_race.fk")
    assert all(not g.risks(m) for m in g.moves())          # the 262 test writes nothing
    play_keys(g, "0 0")                                     # cpu[0] at the store
    store = g.resolve("0")
    assert [r.prop for r in g.risks(store)] == ["nprocs_bounded"]
    g2 = game_of("models/ex_abba.toml")
    play_keys(g2, "0")
    assert [r.prop for r in g2.risks(g2.resolve("0"))] == ["deadlock"]   # takes b holding a
    assert g2.risks(g2.resolve("1")) == []


# Shortest hints (BFS), and the states each search visits: pinned so a change in the
# explorer or the examples shows up here.
@pytest.mark.parametrize("model, keys, prop, states", [
    ("models/ex_racy_counter.toml", "0 1 1 1 0 0", "both_counted", 24),
    ("models/ex_abba.toml", "0 1", "deadlock", 8),
    ("tests/play/data/nprocs_race.fk", "0 1 1 1 0 0", "nprocs_bounded", 21),
])
def test_hint_is_a_shortest_winning_path(model: str, keys: str, prop: str, states: int) -> None:
    g = game_of(model)
    h = g.hint()
    assert h.outcome is HintOutcome.FOUND and h.win is not None and h.win.prop == prop
    assert " ".join(m.key for m in h.moves) == keys and h.states == states
    play_keys(g, keys)
    assert g.win is not None and g.win.prop == prop


def test_hint_from_the_middle_of_a_game() -> None:
    g = game_of("models/ex_racy_counter.toml")
    play_keys(g, "0 0")          # t[0] stored: the update can no longer be lost
    h = g.hint()
    assert h.outcome is HintOutcome.NONE


def test_peterson_cannot_be_won() -> None:
    g = game_of("models/ex_peterson.toml")
    h = g.hint()
    assert h.outcome is HintOutcome.NONE and h.states == 58
    play_keys(g, "0 0 0 1 1 1")
    assert g.hint().outcome is HintOutcome.NONE


def test_hint_limit_is_reported_as_such() -> None:
    g = game_of("models/ex_peterson.toml")
    h = g.hint(max_states=5)
    assert h.outcome is HintOutcome.LIMIT and h.stop.value == "state limit"


def test_won_game_is_an_itf_counterexample(tmp_path: Path) -> None:
    g = game_of("models/ex_racy_counter.toml")
    play_keys(g, "0 1 0 1 0 1")
    f = tmp_path / "g.itf.json"
    g.trace().write(f)
    raw = json.loads(f.read_text())
    schema = json.loads((REPO / "tests/data/schemas/itf.schema.json").read_text())
    jsonschema.validate(raw, schema)
    t = Trace.read(f)
    assert (t.property, t.kind, t.engine, len(t.steps)) == ("both_counted", "invariant", "play", 7)
    assert t.states[-1]["count"] == 1 and t.states[-1]["done"] == 2
    assert [s.thread for s in t.steps[1:]] == ["t[0]", "t[1]", "t[0]", "t[1]", "t[0]", "t[1]"]
    assert t.extra["moves"] == ["0", "1", "0", "1", "0", "1"]
    assert t.extra["focus"] == ["count", "done"]


def test_game_without_win_saves_a_play_trace() -> None:
    g = game_of("models/ex_peterson.toml")
    play_keys(g, "0 1")
    t = g.trace()
    assert t.kind == "play" and t.property == "" and len(t.states) == 3


def test_not_played_properties_are_listed() -> None:
    g = game_of("models/ex_peterson.toml")
    assert "mutual_exclusion" in g.played
    assert {"p0_enters", "p1_enters"} <= set(g.not_played)
