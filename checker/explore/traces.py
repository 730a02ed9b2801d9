"""Turning a path in the search into a checker.trace.itf.Trace.

Paths are replayed on the reference interpreter from the real initial state,
so traces are valuations of un-permuted states even when the search stored
canonical (symmetry-reduced) representatives: at each step the replay picks
the successor whose canonical form is the next stored state.
"""

from __future__ import annotations

from typing import Any, Callable

from ..semantics import Semantics, State, Transition
from ..trace.itf import Trace, TraceStep


def trace_step(sem: Semantics, t: Transition) -> TraceStep:
    st = t.step
    after = t.state
    locks = {}
    blocked = {}
    for tid, name in enumerate(sem.thread_names):
        held = [h[0] for h in sem.locks_of(after, tid)]
        if held:
            locks[name] = held
        if not sem.is_terminated(after, tid) and not sem.enabled(after, tid):
            blocked[name] = sem.blocked_reason(after, tid)
    return TraceStep(thread=sem.thread_names[t.thread], step_id=st.id, label=st.label,
                     ref=str(st.ref) if st.ref else None, frames=st.frames, locks_held=locks, blocked=blocked)


def replay(sem: Semantics, moves: list[tuple[int, int]], targets: list[Any] | None = None,
           canon_perm: Callable[[Any], tuple[Any, tuple[int, ...]]] | None = None) -> list[Transition]:
    """Re-run moves (thread, step id) from the initial state; returns the transitions.

    With symmetry (`canon_perm(state) -> (representative, perm)`, perm[thread] =
    its number in the representative) a move's thread is relative to the stored
    representative. The replay steps the representative alongside the real
    state and composes the thread permutations, so it never relies on the
    representative being unique per orbit.
    """
    state: State = sem.initial_state()
    out: list[Transition] = []
    rep = pi = None
    if canon_perm is not None:
        rep, p0 = canon_perm(state)
        pi = list(p0)                      # pi[real thread] = thread in rep
    for i, (tid, sid) in enumerate(moves):
        step = sem.system.steps[sid]
        actual = tid if pi is None else pi.index(tid)
        t = sem.run_step(state, actual, step)
        if t is None:
            raise RuntimeError(f"trace replay diverged at step {i} (thread {actual}, step {sid})")
        out.append(t)
        state = t.state
        if canon_perm is not None and pi is not None and i + 1 < len(moves):
            ts = sem.run_step(rep, tid, step)
            assert ts is not None
            rep, rho = canon_perm(ts.state)
            pi = [rho[x] for x in pi]
    return out


def build_trace(sem: Semantics, transitions: list[Transition], *, model: str, prop: str, kind: str,
                message: str, loop: int | None = None, extra: dict[str, Any] | None = None) -> Trace:
    init = sem.initial_state()
    states = [sem.valuation(init)]
    steps: list[TraceStep | None] = [None]
    for t in transitions:
        states.append(sem.valuation(t.state))
        steps.append(trace_step(sem, t))
    return Trace(model=model, property=prop, kind=kind, states=states, steps=steps, loop=loop,
                 message=message, engine="explore", extra=dict(extra or {}))
