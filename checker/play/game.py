"""The scheduler game's engine: a state, the moves the scheduler may make, undo, and the win check.

A *move* is one enabled transition of one thread (see checker/ir.py: one
atomic step). A thread with several enabled steps at its pc (a `choose`, a
`pick`) offers one move per step; their keys are the thread number plus a
letter ("1a", "1b"), otherwise the number alone ("1").

The win check is the explorer's: a step that reports a violation (runtime,
witness, a failed `assert`), an invariant false (or not evaluable) in the new
state, or a deadlock. The hint runs the explorer's own BFS (checker.explore
.search.Search) from the current state, so its path is a shortest one.
Leads-to, lock order and races are whole-graph properties: a single play
cannot decide them, so they are listed as not played.
"""

from __future__ import annotations

import dataclasses
import enum
import string
from dataclasses import dataclass
from typing import Any, Iterator

from .. import ir
from ..explore.check import STEP_KINDS, select_properties
from ..explore.options import ExploreOptions, Strategy
from ..explore.search import Search
from ..explore.traces import build_trace
from ..results import StopReason
from ..semantics import EvalError, Semantics, State, Transition
from ..trace.itf import Trace
from ..trace.seed import SeedSource, parse_ref
from ..trace.shrink import FOCUS_KEY, focus_from_system
from ..trace.values import Change, diff, flatten

# Property kinds one play can win on (a finite path shows the violation).
PLAYABLE_KINDS = STEP_KINDS + ("invariant", "deadlock")

# A hint searches at most this many states: enough for every example and the
# small fork1 models, and it keeps one keypress from hanging a classroom laptop.
HINT_MAX_STATES = 200_000

# A fast-forward (`3+`) stops after this many moves: fork1 has loops a thread alone can spin in.
RUN_MAX_MOVES = 500

_LETTERS = string.ascii_lowercase


class ThreadStatus(str, enum.Enum):
    RUNNING = "running"    # has at least one enabled step
    BLOCKED = "blocked"    # no enabled step (a lock, an await, a full pool)
    SLEEPING = "sleeping"  # in msleep, waiting for a wakeup
    DONE = "done"          # at the end of its body


@dataclass(frozen=True)
class Move:
    key: str                   # what the player types: "1" or "1a"
    tid: int
    thread: str
    transition: Transition

    @property
    def step(self) -> ir.Step:
        return self.transition.step


@dataclass(frozen=True)
class ThreadView:
    tid: int
    name: str
    status: ThreadStatus
    why: str                   # why it cannot move ("" when it can)
    pc: str                    # the statement it is about to run
    moves: tuple[Move, ...]


@dataclass(frozen=True)
class Win:
    """A violation reached: the game is won."""
    prop: str
    kind: str
    message: str


@dataclass(frozen=True)
class Risk:
    """A playable property that a move could break, and why it is at risk."""
    prop: str
    why: str


@dataclass(frozen=True)
class Played:
    """What one move did."""
    move: Move
    changes: tuple[Change, ...]
    win: Win | None


class HintOutcome(str, enum.Enum):
    FOUND = "found"            # a shortest path to a violation
    NONE = "none"              # the search finished: no violation is reachable from here
    LIMIT = "limit"            # the search stopped (state limit, Ctrl-C) without finding one


@dataclass(frozen=True)
class Hint:
    outcome: HintOutcome
    moves: tuple[Move, ...]    # the path, each move keyed as it would be typed at its turn
    win: Win | None
    states: int                # states the search visited
    stop: StopReason = StopReason.FINISHED


class PlayError(Exception):
    """A command the game cannot carry out (a bad key); the message is for the player."""


class Game:
    def __init__(self, system: ir.System, *, model_name: str, properties: list[str] | None = None,
                 seed: SeedSource | None = None):
        self.system = system
        self.model_name = model_name
        self.sem = Semantics(system)
        self.seed = seed or SeedSource(None)
        self.kinds = system.property_names
        selected = select_properties(system, properties)
        self.played = [p for p in selected if self.kinds[p] in PLAYABLE_KINDS]
        self.not_played = [p for p in selected if self.kinds[p] not in PLAYABLE_KINDS]
        self.invariants = [i for i in system.invariants if i.name in self.played]
        self.step_props = {p for p in self.played if self.kinds[p] in STEP_KINDS}
        self.check_deadlock = "deadlock" in self.played
        self._reads = {i.name: set(focus_from_system(system, i.name)) for i in self.invariants}
        self._quant_pools = {i.name: _quant_pools(i.expr) for i in self.invariants}
        self.states: list[State] = [self.sem.initial_state()]
        self.path: list[Transition] = []
        self.wins: list[Win | None] = [self.state_violation(self.states[0])]
        self._flat: list[dict[str, Any]] = [flatten(self.sem.valuation(self.states[0]))]

    # ------------------------------------------------------------ state

    @property
    def state(self) -> State:
        return self.states[-1]

    @property
    def win(self) -> Win | None:
        return self.wins[-1]

    @property
    def over(self) -> bool:
        """Won, or nothing can move any more."""
        return self.win is not None or not self.moves()

    @property
    def turn(self) -> int:
        return len(self.path)

    def thread_names(self) -> list[str]:
        return list(self.sem.thread_names)

    # ------------------------------------------------------------ moves

    def moves_in(self, state: State) -> list[Move]:
        out: list[Move] = []
        for tid, name in enumerate(self.sem.thread_names):
            # A step that breaks a property not played is one the explorer does not follow either.
            ts = [t for t in self.sem.thread_successors(state, tid)
                  if not t.violations or any(v.prop in self.step_props for v in t.violations)]
            for k, t in enumerate(ts):
                key = str(tid) if len(ts) == 1 else f"{tid}{_letter(k)}"
                out.append(Move(key, tid, name, t))
        return out

    def moves(self) -> list[Move]:
        if self.win is not None:
            return []
        return self.moves_in(self.state)

    def threads(self) -> list[ThreadView]:
        st = self.state
        by_tid: dict[int, list[Move]] = {}
        for m in self.moves():
            by_tid.setdefault(m.tid, []).append(m)
        out = []
        for tid, name in enumerate(self.sem.thread_names):
            status = ThreadStatus(self.sem.thread_status(st, tid))
            why = ""
            if status in (ThreadStatus.BLOCKED, ThreadStatus.SLEEPING):
                why = self.sem.blocked_reason(st, tid)
            out.append(ThreadView(tid, name, status, why, self.pc_label(st, tid), tuple(by_tid.get(tid, ()))))
        return out

    def pc_label(self, state: State, tid: int) -> str:
        code = self.sem.thread_code[tid]
        pc = state[2][tid][0]
        if pc == code.exit:
            return "end"
        if pc < len(code.pc_labels) and code.pc_labels[pc]:
            return code.pc_labels[pc]
        return f"pc {pc}"

    def resolve(self, text: str) -> Move:
        """The move a player's word names: "1", "1a", "cpu[1]", "cpu1", "cpu[1]a", "t2"."""
        word = text.strip()
        moves = self.moves()
        if self.win is not None:
            raise PlayError("the game is won; `u` undoes the last move, `q` quits")
        if not moves:
            raise PlayError("no thread can move; `u` undoes the last move, `q` quits")
        for m in moves:
            if word == m.key:
                return m
        tid, letter = self._thread_word(word)
        if tid is None:
            raise PlayError(f"no thread or move {word!r}; moves here: {', '.join(m.key for m in moves)}")
        mine = [m for m in moves if m.tid == tid]
        name = self.sem.thread_names[tid]
        if not mine:
            tv = self.threads()[tid]
            why = f": {tv.why}" if tv.why else ""
            raise PlayError(f"{name} cannot move ({tv.status.value}{why})")
        if letter:
            for m in mine:
                if m.key == f"{tid}{letter}":
                    return m
            raise PlayError(f"{name} has no choice {letter!r}; its moves: {', '.join(m.key for m in mine)}")
        if len(mine) > 1:
            opts = "; ".join(f"{m.key} {m.step.label}" for m in mine)
            raise PlayError(f"{name} has {len(mine)} choices, say which: {opts}")
        return mine[0]

    def _thread_word(self, word: str) -> tuple[int | None, str]:
        names = self.sem.thread_names
        tries = [(word, "")]
        if len(word) > 1 and word[-1] in _LETTERS:
            tries.append((word[:-1], word[-1]))
        for cand, letter in tries:
            if cand.isdigit() and int(cand) < len(names):
                return int(cand), letter
            for tid, n in enumerate(names):
                if cand == n or cand == n.replace("[", "").replace("]", ""):
                    return tid, letter
        return None, ""

    # ------------------------------------------------------------- play

    def play(self, move: Move) -> Played:
        if self.win is not None:
            raise PlayError("the game is won; `u` undoes the last move")
        t = move.transition
        self.path.append(t)
        self.states.append(t.state)
        win = self.step_violation(t) or self.state_violation(t.state)
        self.wins.append(win)
        self._flat.append(flatten(self.sem.valuation(t.state)))
        return Played(move, tuple(diff(self._flat[-2], self._flat[-1])), win)

    def run_thread(self, tid: int, *, until_line: int | None = None, first: Move | None = None,
                   max_moves: int = RUN_MAX_MOVES) -> list[Played]:
        """Fast-forward one thread: move it while it has exactly one move and no win.

        Stops before a choice, and before a move that puts a property at risk (the player decides
        those) or, with `until_line`, instead before the step citing that seed line. The first
        move is always made (if there is one): `first` when given (a choice the player named)."""
        out: list[Played] = [] if first is None else [self.play(first)]
        while len(out) < max_moves and self.win is None:
            mine = [m for m in self.moves() if m.tid == tid]
            if len(mine) != 1:
                break
            m = mine[0]
            if out and (self.source_of(m.step)[0] == until_line if until_line is not None else self.risks(m)):
                break
            out.append(self.play(m))
        return out

    def changes_since(self, turn: int) -> tuple[Change, ...]:
        """The net change from the state after `turn` moves to the current one."""
        return tuple(diff(self._flat[turn], self._flat[-1]))

    def undo(self) -> bool:
        if not self.path:
            return False
        self.path.pop()
        self.states.pop()
        self.wins.pop()
        self._flat.pop()
        return True

    # -------------------------------------------------------- the checks

    def step_violation(self, t: Transition) -> Win | None:
        for v in t.violations:
            if v.prop in self.step_props:
                return Win(v.prop, self.kinds[v.prop], v.message)
        return None

    def state_violation(self, state: State) -> Win | None:
        """The explorer's state checks (Search._check_state, Search._expand's deadlock)."""
        for inv in self.invariants:
            try:
                ok = self.sem.eval_in(state, inv.expr)
                msg = f"invariant {inv.name} is false"
            except EvalError as e:
                ok, msg = False, f"invariant {inv.name} cannot be evaluated: {e}"
            if not ok:
                return Win(inv.name, "invariant", msg)
        if self.check_deadlock and self._deadlocked(state):
            return Win("deadlock", "deadlock", "deadlock: no thread can move and not all are done")
        return None

    def _deadlocked(self, state: State) -> bool:
        n = len(self.system.threads)
        if any(self.sem.enabled(state, t) for t in range(n)):
            return False
        return not all(self.sem.is_terminated(state, t) for t in range(n))

    def risks(self, move: Move, state: State | None = None) -> list[Risk]:
        """Played properties this move's step could break (from its footprint, not by peeking).

        `state` is the state the move is made from (default: the current one)."""
        step = move.step
        out: list[Risk] = []
        writes = {str(l) for l in step.writes}
        pools = {e.pool for e in step.effects if isinstance(e, ir.Alloc)}
        pools |= {e.obj.type.pool for e in step.effects
                  if isinstance(e, ir.Free) and isinstance(e.obj.type, ir.RefT)}
        for inv in self.invariants:
            hit = sorted(writes & self._reads[inv.name])
            if hit:
                out.append(Risk(inv.name, f"writes {', '.join(hit)}"))
            elif pools & self._quant_pools[inv.name]:
                out.append(Risk(inv.name, f"allocates or frees {', '.join(sorted(pools))}"))
        for e in step.effects:
            if isinstance(e, ir.Assert) and e.name in self.step_props:
                out.append(Risk(e.name, "asserts it"))
        if self.check_deadlock and any(isinstance(e, ir.Acquire) for e in step.effects):
            held = [h[0] for h in self.sem.locks_of(self.state if state is None else state, move.tid)]
            if held:
                out.append(Risk("deadlock", f"takes a lock while holding {', '.join(held)}"))
        return out

    # ------------------------------------------------------------- hint

    def hint(self, max_states: int = HINT_MAX_STATES) -> Hint:
        """The explorer's BFS from the current state to the nearest played violation."""
        if self.win is not None:
            return Hint(HintOutcome.FOUND, (), self.win, 0)
        # No reductions: the path must be a shortest one in the real interleavings.
        opts = ExploreOptions(strategy=Strategy.BFS, max_states=max_states, symmetry=False, por=False,
                              stop_first=True, progress=None, compiled=False)
        search = Search(_From(self.sem, self.state), self.system, opts, self.invariants, self.step_props,
                        self.check_deadlock)
        search.run()
        if not search.found:
            outcome = HintOutcome.NONE if search.stop is StopReason.FINISHED else HintOutcome.LIMIT
            return Hint(outcome, (), None, len(search.parent), search.stop)
        # Among the nearest violations, report a state one (invariant/deadlock) or step one alike:
        # BFS stops at the first level where any was found, so all found are equally near.
        f = min(search.found.values(), key=lambda f: (len(search.path(f.target)) + (f.tid >= 0), f.prop))
        steps = search.path(f.target)
        if f.tid >= 0:
            steps.append((f.tid, f.step_id))
        moves = []
        state = self.state
        for tid, sid in steps:
            m = next(m for m in self.moves_in(state) if m.tid == tid and m.step.id == sid)
            moves.append(m)
            state = m.transition.state
        return Hint(HintOutcome.FOUND, tuple(moves), Win(f.prop, self.kinds[f.prop], f.message), len(search.parent))

    # ----------------------------------------------------------- traces

    def trace(self) -> Trace:
        """The game so far as an ITF trace (a won game is a counterexample like the explorer's)."""
        win = self.win
        if win is not None:
            prop, kind, msg = win.prop, win.kind, win.message
        else:
            prop, kind, msg = "", "play", "a game of forkcheck play that reached no violation"
        extra: dict[str, Any] = {"strategy": "play", "moves": [self._key_at(i) for i in range(len(self.path))]}
        if win is not None and win.kind == "invariant":
            extra[FOCUS_KEY] = focus_from_system(self.system, win.prop)
        tr = build_trace(self.sem, self.path, model=self.model_name, prop=prop, kind=kind, message=msg,
                         extra=extra)
        tr.engine = "play"
        return tr

    def _key_at(self, i: int) -> str:
        t = self.path[i]
        for m in self.moves_in(self.states[i]):
            if m.tid == t.thread and m.step.id == t.step.id:
                return m.key
        return str(t.thread)

    def keys(self) -> list[str]:
        return [self._key_at(i) for i in range(len(self.path))]

    def source_of(self, step: ir.Step) -> tuple[int | None, str | None]:
        """(seed line number, its text) of a step, when the spec cites one and the seed is found."""
        pr = parse_ref(str(step.ref)) if step.ref else None
        if pr is None:
            return None, None
        return pr[1], self.seed.line(pr[0], pr[1])


class _From:
    """The explorer's Engine protocol, started at a given state instead of the initial one."""

    def __init__(self, sem: Semantics, start: State):
        self._sem = sem
        self._start = start

    def initial_state(self) -> State:
        return self._start

    def successors(self, state: State) -> Iterator[Transition]:
        return self._sem.successors(state)

    def is_terminated(self, state: State, tid: int) -> bool:
        return self._sem.is_terminated(state, tid)

    def eval_in(self, state: State, expr: ir.Expr, env: dict[str, int] | None = None, tid: int = -1) -> Any:
        return self._sem.eval_in(state, expr, env, tid)


def _letter(k: int) -> str:
    return _LETTERS[k] if k < len(_LETTERS) else f"_{k}"


def _quant_pools(e: Any) -> set[str]:
    """Pools a property quantifies over: an alloc or free there can change it."""
    out: set[str] = set()

    def walk(x: Any) -> None:
        if isinstance(x, ir.Quant):
            out.add(x.pool)
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            for f in dataclasses.fields(x):
                if f.name not in ("span", "type"):
                    walk(getattr(x, f.name))
        elif isinstance(x, (tuple, list)):
            for y in x:
                walk(y)

    walk(e)
    return out
