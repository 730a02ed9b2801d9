"""`forkcheck` command line.

Each stage contributes its own subcommands through a `commands` module with
`register(subparsers)`; each registered parser sets `func(args) -> int`.
This file owns only the entry point, error handling and exit codes.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import signal
import socket
import sys
import threading
import time

from . import __version__, interrupt
from .diagnostics import ForkcheckError
from .results import EXIT_INTERRUPTED, EXIT_USAGE

# Stages that add subcommands, in help order. A module that does not exist
# yet is skipped; one that exists but fails to import is a bug and raises.
COMMAND_MODULES = (
    "checker.lang.commands",      # parse, fmt
    "checker.explore.commands",   # check, lockorder, simulate, graph
    "checker.prove.commands",     # prove
    "checker.kernel.commands",    # kernel run
    "checker.trace.commands",     # trace show/replay
    "checker.verify",             # verify
    "checker.play",               # play
)


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with the valid choices, never a traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="forkcheck", description=(
        "Model checking and proofs for FreeBSD's fork1() (2001 SMPng kern_fork.c)."))
    parser.add_argument("--version", action="version", version=f"forkcheck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        # A folder being written (namespace package, no register yet) adds nothing.
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    t0 = time.monotonic()
    try:
        return int(args.func(args))
    except ForkcheckError as e:
        print(e.render(), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        # the engines report their own interrupts with the stats so far; this is one outside them
        # (loading a model, writing the report): what there is to say is when
        print(f"forkcheck {args.command}: stopped: interrupted after {time.monotonic() - t0:.2f}s, "
              f"before any result", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0


_wakeup: tuple[socket.socket, socket.socket] | None = None


def interrupt_z3_on_signal() -> None:
    """Make Ctrl-C reach a z3 call in progress.

    Python runs a signal handler only between bytecodes, so a Ctrl-C during a long
    `solver.check()` would wait for z3 to finish. The C-level handler also writes the
    signal number to a wakeup fd; a thread reading it records the interrupt
    (checker/interrupt.py) and, as long as it stands, asks z3 to stop every 50 ms
    (z3 calls release the GIL; an interrupt only stops the call running at that moment,
    so one request can fall between two calls). The call returns `unknown`, which the
    prover reads as the interrupt because the flag is set. z3 must not catch SIGINT
    itself (checker/prove sets its `ctrl_c` parameter off): it would swallow the signal.
    z3 is never imported here: only a run that uses it can be in it.
    """
    global _wakeup
    r, w = socket.socketpair()
    w.setblocking(False)
    try:
        signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
    except ValueError:          # not the main thread
        return
    _wakeup = (r, w)            # both ends live as long as the process (a closed end ends the thread)

    def stop_z3() -> None:
        z3 = sys.modules.get("z3")
        if z3 is not None:
            try:
                z3.main_ctx().interrupt()
            except Exception:   # z3 being torn down: the flag still stops the run
                pass

    def watch() -> None:
        while True:
            data = r.recv(64)
            if not data:
                return
            if signal.SIGINT in data or signal.SIGTERM in data:
                interrupt.request()
                while interrupt.requested():
                    stop_z3()
                    time.sleep(0.05)

    threading.Thread(target=watch, name="forkcheck-signal-watch", daemon=True).start()


def _unraisable(u: "sys.UnraisableHookArgs") -> None:
    # A KeyboardInterrupt raised in a finalizer is dropped with "Exception ignored ...": the
    # interrupt flag holds it and the run stops at its next check, so that is noise.
    if isinstance(u.exc_value, KeyboardInterrupt) and interrupt.requested():
        return
    sys.__unraisablehook__(u)


def run() -> None:
    # SIGTERM behaves as Ctrl-C so long runs stop cleanly with their stats; both also set
    # the interrupt flag the long loops look at.
    signal.signal(signal.SIGINT, interrupt.handler)
    signal.signal(signal.SIGTERM, interrupt.handler)
    sys.unraisablehook = _unraisable
    interrupt_z3_on_signal()
    try:
        code = main()
    except KeyboardInterrupt:
        # before a command started (imports, argument parsing): nothing to report but the reason
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    sys.exit(code)


if __name__ == "__main__":
    run()
