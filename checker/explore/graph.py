"""`forkcheck graph`: the reachable state graph of a small model, in Graphviz dot or SVG."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .. import ir
from ..diagnostics import ForkcheckError
from ..semantics import Semantics
from ..trace.itf import write_atomic


class GraphTooLarge(ForkcheckError):
    pass


@dataclass
class StateGraph:
    texts: list[str]                            # per state, its valuation (state 0 is the initial one)
    depth: list[int]                            # per state, its BFS depth
    edges: list[tuple[int, int, str, bool]]     # (from, to or -1 for a violation, label, violation)


def state_graph(system: ir.System, *, limit: int) -> StateGraph:
    """Every reachable state (BFS), refusing more than `limit` of them."""
    sem = Semantics(system)
    init = sem.initial_state()
    index = {init: 0}
    order = [init]
    depth = [0]
    edges: list[tuple[int, int, str, bool]] = []
    i = 0
    while i < len(order):
        s = order[i]
        for t in sem.successors(s):
            lab = f"{system.threads[t.thread].name}: {t.step.label}"
            if t.violations:
                edges.append((i, -1, lab + " [" + t.violations[0].prop + "]", True))
                continue
            j = index.get(t.state)
            if j is None:
                if len(order) >= limit:
                    raise GraphTooLarge(f"the model has more than {limit} states; `graph` is for small models "
                                        f"(raise --limit, or use `check` and `lockorder`)")
                j = index[t.state] = len(order)
                order.append(t.state)
                depth.append(depth[i] + 1)
            edges.append((i, j, lab, False))
        i += 1
    texts = []
    for s in order:
        v = sem.valuation(s)
        th = v.pop("#threads")
        text = "\n".join(f"{n}: {val}" for n, val in v.items())
        text += "\n" + "\n".join(f"{n} @ {d['pc']} ({d['status']})" for n, d in th.items())
        texts.append(text)
    return StateGraph(texts, depth, edges)


def to_dot(g: StateGraph) -> str:
    lines = ["digraph states {", "  node [shape=box fontsize=9]; edge [fontsize=8];"]
    for k, text in enumerate(g.texts):
        extra = " style=bold" if k == 0 else ""
        lines.append(f"  s{k} [label={json.dumps(text)}{extra}];")
    if any(j < 0 for _, j, _, _ in g.edges):
        lines.append('  err [label="violation" color=red shape=octagon];')
    for a, b, lab, bad in g.edges:
        dst = "err" if b < 0 else f"s{b}"
        lines.append(f"  s{a} -> {dst} [label={json.dumps(lab)}{' color=red' if bad else ''}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(g: StateGraph, title: str = "") -> str:
    from . import svg
    # keys sort in state order (s00007 < s00012), so the layout follows the BFS numbering
    w = len(str(len(g.texts)))
    key = [f"s{k:0{w}d}" for k in range(len(g.texts))]
    nodes = [svg.Node(key[k], (f"s{k}",) + tuple(t.strip("\n").split("\n")), bold=k == 0)
             for k, t in enumerate(g.texts)]
    rank = {key[k]: d for k, d in enumerate(g.depth)}
    bad = [a for a, b, _, v in g.edges if b < 0]
    if bad:
        # one violation box, a column right of the deepest state that steps into it
        nodes.append(svg.Node("~err", ("violation",), red=True))
        rank["~err"] = max(g.depth[a] for a in bad) + 1
    edges = [svg.Edge(key[a], "~err" if b < 0 else key[b], lab, v) for a, b, lab, v in g.edges]
    return svg.render(nodes, edges, title=title, rank=rank)


def write_state_graph(system: ir.System, path: str | None, *, limit: int, svg_path: str | None = None) -> int:
    g = state_graph(system, limit=limit)
    if path:
        write_atomic(path, to_dot(g))
    if svg_path:
        write_atomic(svg_path, to_svg(g, f"{system.name}: {len(g.texts)} states, {len(g.edges)} transitions"))
    return len(g.texts)
