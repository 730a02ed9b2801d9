"""`forkcheck play MODEL`: be the scheduler (as in The Deadlock Empire).

Each turn shows every thread's next step with its seed line, who is blocked
and why, and the properties at risk; the player picks which thread moves and
wins by reaching a violation. `--html OUT` writes the same game as one page
over the model's reachable state graph.

    game.py      the engine: moves, undo, the explorer's checks, the BFS hint, the ITF trace
    terminal.py  the stdin/stdout game
    page.py      the browser game (state graph + checker/trace/play.html)
"""

from __future__ import annotations

import argparse
from typing import Any

from ..diagnostics import UsageError
from ..results import EXIT_OK
from .game import Game, Hint, HintOutcome, Move, PlayError, ThreadStatus, Win
from ..cliargs import positive_int as _positive

__all__ = ["register", "Game", "Hint", "HintOutcome", "Move", "PlayError", "ThreadStatus", "Win"]

# Default --limit of the HTML page: every state is embedded, and a page past a
# few thousand states is slow to open and no fun to click through.
HTML_STATE_LIMIT = 5000


def register(sub: Any) -> None:
    p = sub.add_parser("play", help="be the scheduler: interleave the CPUs until a property breaks",
                       description="The scheduler game: at each turn pick which CPU moves; win by reaching a "
                                   "violation. Commands come from stdin (a number, u, h, s FILE, q, ?).")
    p.add_argument("model", metavar="MODEL", help="a model (.toml) or a spec (.fk)")
    p.add_argument("--property", action="append", metavar="NAME", dest="properties",
                   help="play for this property only (repeatable); default: the model's list, else all")
    p.add_argument("--hint", action="store_true",
                   help="show the shortest remaining path to a violation at every turn")
    p.add_argument("--hint-limit", type=_positive, metavar="N",
                   help="states a hint may search (default 200000)")
    p.add_argument("--save", metavar="FILE", help="save the finished game as an ITF trace")
    p.add_argument("--moves", metavar="KEYS",
                   help="play these moves first (comma separated, as typed: 0,1,1a), then read stdin")
    p.add_argument("--html", metavar="OUT",
                   help="write the game as one self-contained HTML page (small models only) and exit")
    p.add_argument("--limit", type=_positive, default=HTML_STATE_LIMIT, metavar="N",
                   help=f"with --html: refuse models with more than N states (default {HTML_STATE_LIMIT})")
    p.add_argument("--seed-dir", metavar="DIR",
                   help="folder with the seed kern_fork.c (default: $FORKCHECK_SEED_DIR, then ../shared/seed)")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colours (auto: only on a terminal)")
    p.set_defaults(func=cmd_play)


def cmd_play(args: argparse.Namespace) -> int:
    from ..explore.commands import load_target
    from ..trace.seed import SeedSource, find_seed_dir

    tgt = load_target(args.model)
    seed = SeedSource(find_seed_dir(args.seed_dir))
    game = Game(tgt.system, model_name=tgt.name, properties=args.properties or tgt.properties, seed=seed)
    if args.html:
        from ..trace.itf import write_atomic
        from .page import render_page
        write_atomic(args.html, render_page(game, limit=args.limit, model_arg=args.model))
        print(f"wrote {args.html}")
        return EXIT_OK
    from .terminal import run
    moves = [m for m in (args.moves or "").replace(" ", ",").split(",") if m]
    if args.moves is not None and not moves:
        raise UsageError("--moves needs at least one move (e.g. --moves 0,1,1)")
    color = {"auto": None, "always": True, "never": False}[args.color]
    return run(game, color=color, hint_each=args.hint, save=args.save, moves=moves,
               hint_limit=args.hint_limit)
