"""Runs of a fork1 model under a chosen schedule, as traces: the material the
cross-checks replay on the reference kernel. A schedule is either a script
(run this thread until that step) or a random choice among enabled steps."""

from __future__ import annotations

import random
from pathlib import Path
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

from checker import ir
from checker.explore.traces import build_trace
from checker.lang import load_spec
from checker.semantics import Semantics, State, Transition
from checker.trace.itf import Trace

REPO = Path(__file__).resolve().parents[2]
SPEC = str(REPO / "spec" / "fork1.fk")
# Everything off: each test turns on the calls and environment threads it needs.
ALL_OFF: dict[str, int | bool] = dict(
    SYS_FORK=False, SYS_VFORK=False, SYS_RFORK=False, SYS_KTHREAD=False, SYS_EXIT=False, SYS_WAIT=False,
    SYS_EXEC=False, SYS_SETSID=False, SYS_SETPGID=False, ENV_SWAPPER=False, ENV_RANDOMPID=False,
    ENV_ATFORK=False)


def system(**on: int | bool) -> ir.System:
    return _system(tuple(sorted(on.items())))


@lru_cache(maxsize=32)
def _system(on: tuple[tuple[str, int | bool], ...]) -> ir.System:
    ov = dict(ALL_OFF)
    ov.update(dict(on))
    return load_spec(SPEC, ov)


@dataclass
class Run:
    """A run being built step by step on the IR."""
    sem: Semantics
    state: State
    steps: list[Transition] = field(default_factory=list)
    violation: str | None = None

    @staticmethod
    def start(sys_: ir.System) -> "Run":
        sem = Semantics(sys_)
        return Run(sem, sem.initial_state())

    def tid(self, name: str) -> int:
        return self.sem.thread_names.index(name)

    def take(self, t: Transition) -> None:
        self.steps.append(t)
        self.state = t.state
        if t.violations:
            self.violation = t.violations[0].prop

    def until(self, thread: str, done: Callable[[Transition], bool], prefer: tuple[str, ...] = (),
              limit: int = 2000) -> "Run":
        """Step `thread` until a step satisfies `done` (that step included). Among
        several enabled steps (a pick, a choose) the first whose label contains one of
        `prefer` wins, else the first."""
        tid = self.tid(thread)
        for _ in range(limit):
            ts = list(self.sem.thread_successors(self.state, tid))
            if not ts:
                raise AssertionError(f"{thread} cannot move (blocked or done); last step: "
                                     f"{self.steps[-1].step.label if self.steps else '-'}")
            pick = next((t for p in prefer for t in ts if p in t.step.label), ts[0])
            self.take(pick)
            if self.violation or done(pick):
                return self
        raise AssertionError(f"{thread} did not reach the step within {limit} steps")

    def to_line(self, thread: str, line: int, prefer: tuple[str, ...] = ()) -> "Run":
        return self.until(thread, lambda t: t.step.ref is not None and t.step.ref.line == line, prefer)

    def to_label(self, thread: str, text: str, prefer: tuple[str, ...] = ()) -> "Run":
        return self.until(thread, lambda t: text in t.step.label, prefer)

    def trace(self, prop: str = "", kind: str = "") -> Trace:
        return build_trace(self.sem, self.steps, model="cross", prop=prop, kind=kind, message="")


def random_run(sys_: ir.System, seed: int, max_steps: int) -> Run:
    """A random schedule: at each step a random enabled transition; stops at a violation."""
    rng = random.Random(seed)
    run = Run.start(sys_)
    for _ in range(max_steps):
        ts = list(run.sem.successors(run.state))
        if not ts:
            break
        run.take(rng.choice(ts))
        if run.violation:
            break
    return run
