"""Lock-order analysis, as FreeBSD WITNESS does it, over the explored state space.

Every acquisition of lock class B while holding a lock of class A adds the
edge A -> B to a graph over lock classes (networkx). The first transition
that creates an edge is kept (in BFS it is at the least depth, so its trace
is shortest). Declared `lock_order` pairs are edges too. Every cycle that
uses an observed edge is a lock-order reversal; a self-edge A -> A (two
locks of one class, p2's then p1's process lock) is WITNESS's "duplicate
lock of same type" unless declared. A reversal is then classified: a
reachable deadlock (some explored deadlock has threads waiting for locks of
the cycle's classes) or not reachable within the model, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from .. import ir
from ..semantics import Semantics, Transition


@dataclass
class EdgeWitness:
    first: str                  # class held
    second: str                 # class acquired
    held_lock: str              # instance held ("proc#1.p_mtx")
    acquired_lock: str
    state: int                  # state index where the acquiring step starts
    tid: int
    step_id: int
    depth: int
    held_all: tuple[str, ...]   # every lock instance held at the acquisition


@dataclass
class Reversal:
    classes: tuple[str, ...]             # the cycle, in order
    edges: list[EdgeWitness]
    duplicate: bool = False              # a self-edge: same class twice
    deadlock_state: int | None = None    # a deadlock state caused by it, if reachable
    reason: str = ""                     # why it is (not) a reachable deadlock


class LockOrderObserver:
    def __init__(self, system: ir.System, sem: Semantics):
        self.system = system
        self.sem = sem
        self.declared = {(o.first, o.second) for o in system.lock_orders}
        self.edges: dict[tuple[str, str], EdgeWitness] = {}
        self.deadlocks: list[tuple[int, list[tuple[int, str, str]]]] = []   # (state, [(tid, lock, class)])
        self._seen_dead_classes: set[frozenset[str]] = set()

    def on_state(self, search: Any, idx: int, state: Any, trans: list[Transition]) -> None:
        for t in trans:
            for a in t.acquisitions:
                for hname, hcls in a.held:
                    key = (hcls, a.cls)
                    if key not in self.edges:
                        self.edges[key] = EdgeWitness(hcls, a.cls, hname, a.lock, idx, t.thread, t.step.id,
                                                      search.depth[idx], tuple(h for h, _ in a.held))

    def on_deadlock(self, search: Any, idx: int, state: Any) -> None:
        waits = []
        for tid in range(len(self.system.threads)):
            for lock, cls in self.sem.waiting_for(state, tid):
                waits.append((tid, lock, cls))
        key = frozenset(c for _, _, c in waits)
        if len(waits) >= 2 and key not in self._seen_dead_classes:
            self._seen_dead_classes.add(key)
            self.deadlocks.append((idx, waits))

    def on_end(self, search: Any) -> None:
        pass

    def decided(self) -> set[str]:
        """Never early: classifying a reversal (reachable deadlock or not) needs the whole space."""
        return set()

    def graph(self) -> "nx.DiGraph":
        g = nx.DiGraph()
        for (a, b), w in self.edges.items():
            g.add_edge(a, b, witness=w, declared=(a, b) in self.declared)
        for a, b in sorted(self.declared):
            if not g.has_edge(a, b):
                g.add_edge(a, b, witness=None, declared=True)
        return g

    def reversals(self, exhausted: bool = True) -> list[Reversal]:
        g = self.graph()
        out: list[Reversal] = []
        for (a, b), w in sorted(self.edges.items()):
            if a == b and (a, a) not in self.declared:
                out.append(Reversal((a,), [w], duplicate=True))
        gg = nx.DiGraph([(u, v) for u, v in g.edges if u != v])
        # simple_cycles starts each cycle at a node that depends on set order (string hashes):
        # rotate it to start at its least class so reports are the same in every run.
        cycles = [c[c.index(min(c)):] + c[:c.index(min(c))] for c in nx.simple_cycles(gg)]
        for cyc in sorted(cycles, key=lambda c: (len(c), c)):
            ring = list(zip(cyc, cyc[1:] + cyc[:1]))
            ws = [g.edges[u, v]["witness"] for u, v in ring]
            if all(w is None for w in ws):
                continue        # only declared edges: the declaration itself is inconsistent (lang reports it)
            if any(w is None for w in ws) and all(g.edges[u, v]["declared"] for u, v in ring if
                                                   g.edges[u, v]["witness"] is not None):
                continue
            out.append(Reversal(tuple(cyc), [w for w in ws if w is not None]))
        for r in out:
            self._classify(r, exhausted)
        return out

    def _classify(self, r: Reversal, exhausted: bool = True) -> None:
        classes = set(r.classes)
        for idx, waits in self.deadlocks:
            if sum(1 for _, _, c in waits if c in classes) >= 2 or (r.duplicate and
                                                                    sum(1 for _, _, c in waits if c in classes) >= 2):
                r.deadlock_state = idx
                who = ", ".join(f"{self.system.threads[t].name} waits for {l}" for t, l, _ in waits)
                r.reason = f"reachable deadlock: {who}"
                return
        if not exhausted:
            r.reason = "no deadlock from it found before the search stopped"
            return
        # Not reachable: say what prevents it.
        common = set.intersection(*[set(w.held_all) - {w.held_lock} for w in r.edges]) if r.edges else set()
        if common and len(r.edges) >= 2:
            r.reason = f"not reachable within the model: every order is taken with {', '.join(sorted(common))} held"
        elif r.duplicate:
            w = r.edges[0]
            r.reason = (f"not reachable within the model: {w.held_lock} then {w.acquired_lock} is never met by the "
                        f"opposite order on the same two locks")
        elif len({w.tid for w in r.edges}) == 1 and len(r.edges) >= 2:
            r.reason = f"not reachable within the model: both orders are taken only by {self.system.threads[r.edges[0].tid].name}"
        else:
            r.reason = "not reachable within the model: the orders are never taken concurrently on the same locks"

    def describe(self, r: Reversal) -> str:
        if r.duplicate:
            w = r.edges[0]
            return (f"duplicate lock of same type \"{w.first}\": {w.acquired_lock} acquired with "
                    f"{w.held_lock} held ({r.reason})")
        order = " -> ".join(f'"{c}"' for c in r.classes + (r.classes[0],))
        return f"lock order reversal {order} ({r.reason})"
