"""Ctrl-C and SIGTERM as a process-wide flag.

The CLI's handler records the signal here and raises KeyboardInterrupt. The exception
alone does not stop a run reliably: raised inside a finalizer it is dropped (z3's
objects have `__del__`; in z3's Python layer the handler therefore only records), and
a z3 call only returns when asked to. So the long loops also call `check()` after each
solver call or batch of steps, a solver's answer while the flag is set is the interrupt
(never `unknown` or a time-out), and the CLI's watcher thread keeps asking z3 to stop
while the flag is set (checker/cli.py).

The flag is set only by a signal (or `request()`), never cleared by forkcheck: one
CLI run is one process. In-process users (tests) call `reset()`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

_flag = threading.Event()
_defer = 0          # > 0: the handler records the signal but does not raise (bookkeeping)


def request() -> None:
    """Record an interrupt (the signal handler, the CLI's watcher thread)."""
    _flag.set()


def requested() -> bool:
    return _flag.is_set()


def reset() -> None:
    _flag.clear()


def check() -> None:
    """Raise KeyboardInterrupt if an interrupt was recorded (even if its exception was lost)."""
    if _flag.is_set():
        raise KeyboardInterrupt


def handler(signum: int, frame: Any) -> None:
    """The CLI's SIGINT/SIGTERM handler: record, then raise unless deferred or inside z3."""
    _flag.set()
    if _defer or _in_z3(frame):
        return
    raise KeyboardInterrupt


def _in_z3(frame: Any) -> bool:
    # Raised in z3's Python layer the exception is dropped (a `__del__`) or becomes a ctypes
    # ArgumentError (converting an argument): leave it to the flag, which the caller of z3
    # looks at as soon as the call returns (checker/prove/encode.py `solve`).
    return frame is not None and "z3" in frame.f_code.co_filename.replace("\\", "/").split("/")


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A signal only records the interrupt while this block runs (short bookkeeping that
    must not be cut in half); the caller looks at `requested()` after it."""
    global _defer
    _defer += 1
    try:
        yield
    finally:
        _defer -= 1
