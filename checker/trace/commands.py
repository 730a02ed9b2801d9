"""`forkcheck trace show FILE` (terminal lanes or --html OUT) and the `trace replay` slot."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import Any

from ..diagnostics import UsageError
from ..results import EXIT_OK
from .itf import Trace, write_atomic
from .seed import SeedSource, find_seed_dir
from .text import render
from .view import build_view

REPLAY_MODULE = "checker.trace.replay"


def cmd_show(args: argparse.Namespace) -> int:
    trace = Trace.read(args.file)
    seed = SeedSource(find_seed_dir(args.seed_dir))
    if args.html:
        from .html import render_html
        write_atomic(args.html, render_html(trace, seed))
        print(f"wrote {args.html}")
        return EXIT_OK
    view = build_view(trace, seed, full=args.full)
    color = {"auto": None, "always": True, "never": False}[args.color]
    text = render(view, stream=sys.stdout, width=args.width, color=color)
    if text is not None:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_replay_missing(args: argparse.Namespace) -> int:
    raise UsageError("trace replay needs the reference kernel (checker.trace.replay), "
                     "which is not in this build yet")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("trace", help="show (or replay) a counterexample trace (ITF JSON)")
    sub = p.add_subparsers(dest="trace_command", metavar="SUBCOMMAND", parser_class=type(p))
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    show = sub.add_parser("show", help="CPU swimlanes of a trace in the terminal, or one HTML page")
    show.add_argument("file", metavar="FILE", help="an .itf.json trace (counterexamples/<model>/<property>.itf.json)")
    show.add_argument("--full", action="store_true",
                      help="show every variable, not only those the steps change and the property reads")
    show.add_argument("--html", metavar="OUT", help="write a self-contained HTML page instead")
    show.add_argument("--seed-dir", metavar="DIR",
                      help="folder with the seed kern_fork.c (default: $FORKCHECK_SEED_DIR, then ../shared/seed)")
    show.add_argument("--width", type=int, metavar="N", help="terminal width (plain text default: 100)")
    show.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                      help="colours and a drawn table (auto: only on a terminal)")
    show.set_defaults(func=cmd_show)

    # The replay slot: the reference-kernel module registers its own arguments when it exists.
    if importlib.util.find_spec(REPLAY_MODULE) is not None:
        mod = importlib.import_module(REPLAY_MODULE)
        if hasattr(mod, "register"):
            mod.register(sub)
            return
    rp = sub.add_parser("replay", help="replay a trace on the reference kernel (not in this build yet)")
    rp.add_argument("file", metavar="FILE")
    rp.set_defaults(func=cmd_replay_missing)
