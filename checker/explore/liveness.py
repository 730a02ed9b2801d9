"""Leads-to (p ~> q) and `eventually q` under weak fairness per thread.

Decided on the reachable state graph kept by the search. For each binding of
the property's variables, p ~> q fails iff some reachable state satisfies
p and not q and, from it, a fair behaviour can stay in not-q forever:

- it reaches a state with no successor (every thread done or blocked):
  the behaviour stutters there, a lasso whose cycle is that state; or
- it reaches a fair strongly connected component C of the not-q subgraph
  (one with an edge): for every fair thread, C contains an edge of that
  thread, or a state where it is disabled. A cycle through all of C then
  never lets a thread stay enabled without moving (Lichtenstein-Pnueli).

`eventually q` (LeadsTo.eventually) is checked from the initial state
only; `true ~> q` from every reachable state. A runtime error while evaluating p counts as p false; while
evaluating q (the object it names was freed) as q true: the obligation
disappears with the object.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

import networkx as nx

from .. import ir
from ..results import PropertyResult, Verdict
from ..semantics import EvalError


def _truth(engine: Any, state: Any, e: ir.Expr, env: dict[str, int], on_error: bool) -> bool:
    try:
        return bool(engine.eval_in(state, e, env))
    except EvalError:
        return on_error


def check_leadsto(ex: Any, prop: ir.LeadsTo) -> PropertyResult:
    s = ex.search
    n = len(s.store)
    states = [s.store.get(i) for i in range(n)]
    fair = [i for i, t in enumerate(ex.system.threads) if t.fair]
    # enabled in the full graph: with POR a state's edges are only its ample set
    nt = len(ex.system.threads)
    enabled = [frozenset(t for t in range(nt) if m >> t & 1) for m in s.enabled]
    only_init = prop.eventually  # `true ~> q` is an obligation of every state, `eventually q` of the initial one
    ranges = [range(1, ex.system.pool[pool].size + 1) for _, pool in prop.binders]
    for combo in itertools.product(*ranges):
        env = {var: v for (var, _), v in zip(prop.binders, combo)}
        notq = [not _truth(ex.engine, states[i], prop.q, env, True) for i in range(n)]
        starts = [0] if only_init else [i for i in range(n) if notq[i] and _truth(ex.engine, states[i], prop.p, env, False)]
        starts = [i for i in starts if notq[i]]
        if not starts:
            continue
        lasso = _find_lasso(s, n, notq, starts, enabled, fair)
        if lasso is not None:
            trigger, stem_in, cycle = lasso
            return _result(ex, prop, env, trigger, stem_in, cycle)
    return PropertyResult(prop.name, "leadsto", Verdict.HOLDS)


def _find_lasso(s: Any, n: int, notq: list[bool], starts: list[int], enabled: list[frozenset[int]],
                fair: list[int]) -> tuple[int, list[tuple[int, int, int]], list[tuple[int, int, int]]] | None:
    """(trigger state, moves from trigger to the cycle entry, moves around the cycle) or None."""
    g = nx.DiGraph()
    g.add_nodes_from(i for i in range(n) if notq[i])
    for i in range(n):
        if notq[i]:
            for j, tid, sid in s.edges[i]:
                if notq[j]:
                    if not g.has_edge(i, j):
                        g.add_edge(i, j, moves=[(tid, sid)])
                    else:
                        g.edges[i, j]["moves"].append((tid, sid))
    bad: set[int] = set()           # states where a fair not-q behaviour can end up forever
    target_cycle: dict[int, list[tuple[int, int, int]]] = {}
    for comp in nx.strongly_connected_components(g):
        comp = set(comp)
        rep = min(comp)
        if len(comp) == 1 and not g.has_edge(rep, rep):
            if not s.edges[rep]:       # no successor at all: stutters here forever
                bad.add(rep)
                target_cycle[rep] = []
            continue
        taken = {m[0] for u in comp for v in g.successors(u) if v in comp for m in g.edges[u, v]["moves"]}
        if all(t in taken or any(t not in enabled[u] for u in comp) for t in fair):
            cyc = _fair_cycle(g, comp, enabled, fair)
            for u in comp:
                bad.add(u)
            target_cycle[cyc[0][0] if cyc else rep] = cyc
    if not bad:
        return None
    entries = set(target_cycle)
    # from each trigger, the shortest not-q path to an entry of a bad component
    for st in sorted(starts, key=lambda i: s.depth[i]):
        prev: dict[int, tuple[int, int, int] | None] = {st: None}
        dq = deque([st])
        while dq:
            u = dq.popleft()
            if u in entries:
                path = []
                w = u
                while prev[w] is not None:
                    a, tid, sid = prev[w]  # type: ignore[misc]
                    path.append((a, tid, sid))
                    w = a
                path.reverse()
                return st, path, target_cycle[u]
            for v in g.successors(u):
                if v not in prev:
                    tid, sid = g.edges[u, v]["moves"][0]
                    prev[v] = (u, tid, sid)
                    dq.append(v)
    return None


def _fair_cycle(g: "nx.DiGraph", comp: set[int], enabled: list[frozenset[int]],
                fair: list[int]) -> list[tuple[int, int, int]]:
    """A cycle in comp, from its least state, that takes or sees disabled every fair thread."""
    start = min(comp)
    sub = g.subgraph(comp)
    todo = []
    for t in fair:
        dis = [u for u in sorted(comp) if t not in enabled[u]]
        if dis:
            todo.append(("state", dis[0], t))
        else:
            e = next((u, v) for u in sorted(comp) for v in sorted(sub.successors(u))
                     if any(m[0] == t for m in sub.edges[u, v]["moves"]))
            todo.append(("edge", e, t))
    moves: list[tuple[int, int, int]] = []
    cur = start

    def go(to: int) -> None:
        nonlocal cur
        if to == cur:
            return
        p = nx.shortest_path(sub, cur, to)
        for a, b in zip(p, p[1:]):
            tid, sid = sub.edges[a, b]["moves"][0]
            moves.append((a, tid, sid))
        cur = to

    for kind, what, t in todo:
        if kind == "state":
            go(what)
        else:
            u, v = what
            go(u)
            mv = next(m for m in sub.edges[u, v]["moves"] if m[0] == t)
            moves.append((u, mv[0], mv[1]))
            cur = v
    if cur != start or not moves:
        if cur == start:       # need at least one edge: take any edge out of start inside comp and return
            v = min(sub.successors(start))
            tid, sid = sub.edges[start, v]["moves"][0]
            moves.append((start, tid, sid))
            cur = v
        go(start)
    return moves


def _result(ex: Any, prop: ir.LeadsTo, env: dict[str, int], trigger: int, stem_in: list[tuple[int, int, int]],
            cycle: list[tuple[int, int, int]]) -> PropertyResult:
    s = ex.search
    moves, targets = ex.path_to(trigger)
    seq = stem_in + cycle
    # targets for symmetric replay: the state each move leads to
    for k, (a, tid, sid) in enumerate(seq):
        nxt = seq[k + 1][0] if k + 1 < len(seq) else (cycle[0][0] if cycle else a)
        moves.append((tid, sid))
        targets.append(None)
    loop = len(moves) - len(cycle)
    binding = ", ".join(f"{k} = {ex.system.pool[p].name}#{env[k]}" for k, p in prop.binders)
    if cycle:
        msg = (f"{prop.name}: a fair cycle of {len(cycle)} steps never reaches the goal"
               + (f" (for {binding})" if binding else ""))
    else:
        msg = (f"{prop.name}: the run ends (every thread done or blocked) without reaching the goal"
               + (f" (for {binding})" if binding else ""))
    tr = ex.trace_for(moves, targets, prop=prop.name, kind="leadsto", message=msg, loop=loop,
                      extra={"strategy": ex.options.strategy.value, "stem": loop, "cycle": len(cycle),
                             "binding": {k: f"{p}#{env[k]}" for k, p in prop.binders}})
    return PropertyResult(prop.name, "leadsto", Verdict.VIOLATED, trace=tr, message=msg)
