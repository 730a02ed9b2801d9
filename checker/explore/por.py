"""Partial-order reduction: ample sets of thread-local steps, with the cycle proviso.

At a state, a thread whose every step from its current pc is local (touches
no shared location, no lock, no wait channel, no pool: `Step.is_local`) can
run first: its steps commute with every step of every other thread and no
other thread can enable or disable them (C1), they change nothing any
invariant, race or lock analysis observes (C2), and the state is fully
expanded when one of them would close a cycle, i.e. reach a stored state
(C3, the proviso). A step that ends in a violation is never an ample set on
its own, so the other threads' violations stay reachable.

Liveness (p ~> q, eventually q under weak fairness per thread) is decided on
the reduced graph in the same pass. It stays sound because an ample step is
invisible to every property (p and q read globals and objects, never a
thread's pc or locals), it cannot be disabled by another thread (a thread at a
local pc stays enabled until it moves), and every cycle of the reduced graph
has a fully expanded state (an ample step always reaches a state new at that
point, so ample steps alone never close a cycle). A fair not-q path of the full
graph can then be reordered, one postponed local step at a time, into a fair
not-q path of the reduced graph: weak fairness forces the ample thread to take
that local step anyway. The fairness test itself must see the full graph's
enabled threads (a reduced state has fewer outgoing edges, not fewer enabled
threads): the search records them per state (`Search.enabled`).
tests/explore/test_liveness.py checks the verdicts and lassos on and off.
"""

from __future__ import annotations

from typing import Any

from .. import ir
from ..semantics import Transition


class Por:
    def __init__(self, system: ir.System, selected: list[str]):
        self.system = system
        self.note = ""
        # The race analysis asks whether an object is reachable from another thread's
        # locals (initialisation is not a race): with races checked, a step that writes a
        # ref or list local is visible to it, so it is not an ample set on its own.
        races = "races" in selected
        # per thread: pcs whose every outgoing step is local
        self.local_pc: list[tuple[bool, ...]] = []
        for t in system.threads:
            code = system.code[t.code]
            self.local_pc.append(tuple(bool(code.steps_from[pc]) and all(
                s.is_local and not (races and _writes_ref_local(s)) for s in code.steps_from[pc])
                for pc in range(code.npcs)))
        # Liveness keeps the reduction (see the module docstring): the search records, per
        # state, every thread that is enabled in the full graph, for the fairness test.
        self.active = any(any(x) for x in self.local_pc)

    def ample(self, search: Any, state: Any, trans: list[Transition]) -> list[Transition]:
        threads = state[2]
        by: dict[int, list[Transition]] = {}
        for t in trans:
            by.setdefault(t.thread, []).append(t)
        if len(by) < 2:
            return trans
        canon_perm = search.canon_perm
        store = search.store
        seen = search.looked_up      # the search reuses these lookups when it adds the states
        for tid, ts in by.items():
            if not self.local_pc[tid][threads[tid][0]]:
                continue
            ok = True
            for t in ts:
                if t.violations:
                    ok = False
                    break
                nxt, perm = (t.state, None) if canon_perm is None else canon_perm(t.state)
                key = store.key(nxt)
                seen[id(t)] = (nxt, perm, key)
                if store.has_key(key):      # C3: could close a cycle; expand fully
                    ok = False
                    break
            if ok:
                return ts
        return trans


def _writes_ref_local(step: ir.Step) -> bool:
    """A step that changes which objects a thread's locals reach (a ref or list local assigned,
    or an element put into or taken out of a local list): the race analysis reads that."""
    return any((isinstance(e, ir.Assign) and isinstance(e.target, ir.LocalVarRef)
                and isinstance(e.target.type, (ir.RefT, ir.ListT)))
               or (isinstance(e, ir.ListUpdate) and isinstance(e.lst, ir.LocalVarRef))
               for e in step.effects)
