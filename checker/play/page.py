"""The scheduler game as one self-contained HTML page (checker/trace/play.html).

The page carries the whole reachable state graph of a small model: per
state the shown values, and per thread its status and its moves (each an
edge to another state, or to a win). Clicking a move follows its edge;
nothing is computed in the browser but the walk. Per state it also carries
the distance to the nearest violation (a reverse BFS over the same graph),
which is the page's hint.
"""

from __future__ import annotations

import html
import json
from collections import deque
from importlib import resources
from typing import Any

from ..diagnostics import ForkcheckError
from ..semantics import State
from ..trace.values import flatten, fmt, natural_key
from .game import Game, ThreadStatus

TEMPLATE = "play.html"


class TooManyStates(ForkcheckError):
    """The model is too large to embed in one page."""


def graph_data(game: Game, *, limit: int, model_arg: str | None = None) -> dict[str, Any]:
    """The page's data; `model_arg` is the MODEL argument the page's replay command line shows."""
    sem = game.sem
    init = game.states[0]
    index: dict[State, int] = {init: 0}
    order: list[State] = [init]
    rows: list[dict[str, Any]] = []
    flats: list[dict[str, Any]] = []
    sources: dict[str, str] = {}
    i = 0
    while i < len(order):
        st = order[i]
        win = game.state_violation(st)
        threads = []
        by_tid: dict[int, list[dict[str, Any]]] = {}
        if win is None:
            for m in game.moves_in(st):
                w = game.step_violation(m.transition)
                dst = -1
                if w is None:
                    j = index.get(m.transition.state)
                    if j is None:
                        if len(order) >= limit:
                            raise TooManyStates(
                                f"{game.model_name} has more than {limit:,} reachable states; the HTML game "
                                f"embeds them all. Play it in the terminal (forkcheck play without --html), "
                                f"or raise --limit")
                        j = index[m.transition.state] = len(order)
                        order.append(m.transition.state)
                    dst = j
                line, text = game.source_of(m.step)
                if line is not None and text is not None:
                    sources[str(line)] = text
                by_tid.setdefault(m.tid, []).append({
                    "key": m.key, "label": m.step.label, "line": line, "dst": dst,
                    "win": None if w is None else {"prop": w.prop, "kind": w.kind, "message": w.message},
                    "risks": [f"{r.prop}: {r.why}" for r in game.risks(m, st)]})
        for tid, name in enumerate(sem.thread_names):
            status = ThreadStatus(sem.thread_status(st, tid))
            why = sem.blocked_reason(st, tid) if status in (ThreadStatus.BLOCKED, ThreadStatus.SLEEPING) else ""
            threads.append({"status": status.value, "why": why, "pc": game.pc_label(st, tid),
                            "moves": by_tid.get(tid, [])})
        flats.append(flatten(sem.valuation(st)))
        rows.append({"threads": threads,
                     "win": None if win is None else {"prop": win.prop, "kind": win.kind, "message": win.message}})
        i += 1
    paths = sorted({p for f in flats for p in f}, key=natural_key)
    for row, f in zip(rows, flats):
        row["vals"] = [fmt(f[p]) if p in f else "-" for p in paths]
    dist = _distances(rows)
    for row, d in zip(rows, dist):
        row["dist"] = d
    return {"model": game.model_name, "model_arg": model_arg or game.model_name, "threads": list(sem.thread_names), "played": game.played,
            "not_played": game.not_played, "paths": paths, "states": rows, "sources": sources,
            "source_file": game.system.source_file}


def _distances(rows: list[dict[str, Any]]) -> list[int | None]:
    """Moves from each state to the nearest win (None: no win reachable), by BFS on reversed edges."""
    n = len(rows)
    preds: list[list[int]] = [[] for _ in range(n)]
    dist: list[int | None] = [None] * n
    q: deque[int] = deque()
    for i, row in enumerate(rows):
        if row["win"] is not None:
            dist[i] = 0
        for th in row["threads"]:
            for mv in th["moves"]:
                if mv["dst"] >= 0:
                    preds[mv["dst"]].append(i)
                elif dist[i] != 0:
                    dist[i] = 1
    # Seed the queue by distance so the BFS stays level-ordered.
    q.extend(i for i in range(n) if dist[i] == 0)
    q.extend(i for i in range(n) if dist[i] == 1)
    while q:
        j = q.popleft()
        d = dist[j]
        assert d is not None
        for i in preds[j]:
            if dist[i] is None:
                dist[i] = d + 1
                q.append(i)
    return dist


def render_page(game: Game, *, limit: int, model_arg: str | None = None) -> str:
    data = json.dumps(graph_data(game, limit=limit, model_arg=model_arg), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    # "</" inside a <script> would end it early.
    data = data.replace("</", "<\\/")
    template = resources.files("checker.trace").joinpath(TEMPLATE).read_text(encoding="utf-8")
    title = html.escape(f"{game.model_name} — forkcheck play")
    return template.replace("{{TITLE}}", title).replace("{{DATA}}", data)
