"""The browser game: the embedded state graph, and (in headless Chromium) clicks, keys and undo."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from checker.cli import main
from checker.play.page import TooManyStates, graph_data, render_page

from .conftest import DATA, REPO, game_of


def _data(page: str) -> dict:
    m = re.search(r'<script id="play-data" type="application/json">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))


# Reachable states of each example without reductions, and moves from the initial state to the
# nearest win (None: none); pinned so a change in the examples or the semantics shows up.
@pytest.mark.parametrize("model, states, dist", [
    ("models/ex_racy_counter.toml", 24, 6),
    ("models/ex_abba.toml", 23, 2),
    ("models/ex_peterson.toml", 58, None),
])
def test_graph_and_distances(model: str, states: int, dist: int | None) -> None:
    d = graph_data(game_of(model), limit=1000)
    assert len(d["states"]) == states and d["states"][0]["dist"] == dist
    for s in d["states"]:
        for th in s["threads"]:
            for mv in th["moves"]:
                # a step towards a win is exactly one closer (or is the winning step)
                if s["dist"] is not None and mv["dst"] >= 0 and d["states"][mv["dst"]]["dist"] is not None:
                    assert d["states"][mv["dst"]]["dist"] >= s["dist"] - 1


def test_page_is_self_contained_and_safe(seed_dir: Path) -> None:
    page = render_page(game_of(DATA / "nprocs_race.fk", seed_dir), limit=1000)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert page.count("</script>") == 2
    d = _data(page)
    assert d["sources"]["270"].strip() == "nprocs++;"
    assert d["threads"] == ["cpu[0]", "cpu[1]"]


def test_too_large_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(TooManyStates, match="more than 5 reachable states"):
        graph_data(game_of("models/ex_peterson.toml"), limit=5)
    out = tmp_path / "p.html"
    assert main(["play", str(REPO / "models/ex_peterson.toml"), "--html", str(out), "--limit", "5"]) == 2
    assert "Play it in the terminal" in capsys.readouterr().err and not out.exists()


def test_html_command(tmp_path: Path) -> None:
    out = tmp_path / "abba.html"
    assert main(["play", str(REPO / "models/ex_abba.toml"), "--html", str(out)]) == 0
    d = _data(out.read_text())
    assert d["model"] == "ex_abba" and d["model_arg"] == str(REPO / "models/ex_abba.toml")




@pytest.mark.browser
def test_clicks_keys_undo_and_hint_in_chromium(tmp_path: Path, dump_dom) -> None:
    page = tmp_path / "abba.html"
    page.write_text(render_page(game_of("models/ex_abba.toml"), limit=1000), encoding="utf-8")

    dom = dump_dom(page, "", tmp_path / "p0")
    assert 'data-turn="0" data-won=""' in dom
    assert len(re.findall(r'<button class="move" data-key="\d">', dom)) == 2
    assert '<td class="lane" data-thread="t1">' in dom

    # Click t1's lane, then t2's move button: the ABBA deadlock.
    dom = dump_dom(page, "#click=t1,1", tmp_path / "p1")
    assert 'data-turn="2" data-won="deadlock"' in dom
    assert "You win in 2 moves: deadlock (deadlock) violated" in dom
    assert "waiting for lock b held by t2" in dom
    assert "forkcheck play ex_abba --moves 0,1" in dom   # render_page without model_arg: the name
    lanes = dom.split('id="lanes"')[1].split("</table>")[0]
    assert 'class="move' not in lanes        # a deadlock: nothing left to click

    # Keys: 0, 1 (win), Backspace (undo), h (hint): one move from the win, t2's lock(b) highlighted.
    dom = dump_dom(page, "#keys=0,1,Backspace,h", tmp_path / "p2")
    assert 'data-turn="1" data-won=""' in dom
    assert '<button class="move hint" data-key="1">' in dom
    assert "hint: a violation is 1 move away" in dom
    assert re.search(r'<tr class="changed" data-path="a"><td>a</td><td>t1</td>', dom)


@pytest.mark.browser
def test_peterson_page_hint_says_no_win(tmp_path: Path, dump_dom) -> None:
    page = tmp_path / "peterson.html"
    page.write_text(render_page(game_of("models/ex_peterson.toml"), limit=1000), encoding="utf-8")
    dom = dump_dom(page, "#keys=0,1,0,h", tmp_path / "p")
    assert 'data-turn="3" data-won=""' in dom
    assert "hint: no violation is reachable from here" in dom


@pytest.mark.browser
def test_step_win_and_choices_in_chromium(tmp_path: Path, dump_dom) -> None:
    page = tmp_path / "choice.html"
    page.write_text(render_page(game_of(DATA / "choice.fk"), limit=1000), encoding="utf-8")
    # Clicking a lane with two choices does nothing; the 0b button and then the assert win.
    dom = dump_dom(page, "#click=chooser,0b,0", tmp_path / "p")
    assert 'data-turn="2" data-won="not_two"' in dom
    assert "assertion not_two failed" in dom
    assert re.search(r'<button class="move" data-key="0" disabled', dom)     # the game is over
    dom = dump_dom(page, "#keys=0,b,0,Backspace", tmp_path / "q")
    assert 'data-turn="1" data-won=""' in dom
