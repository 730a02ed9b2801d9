"""`forkcheck graph`: the reachable state graph of a small model, in Graphviz dot."""

from __future__ import annotations

import json

from .. import ir
from ..diagnostics import ForkcheckError
from ..semantics import Semantics
from ..trace.itf import write_atomic


class GraphTooLarge(ForkcheckError):
    pass


def write_state_graph(system: ir.System, path: str, *, limit: int) -> int:
    sem = Semantics(system)
    init = sem.initial_state()
    index = {init: 0}
    order = [init]
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
            edges.append((i, j, lab, False))
        i += 1
    lines = ["digraph states {", "  node [shape=box fontsize=9]; edge [fontsize=8];"]
    for k, s in enumerate(order):
        v = sem.valuation(s)
        th = v.pop("#threads")
        text = "\n".join(f"{n}: {val}" for n, val in v.items())
        text += "\n" + "\n".join(f"{n} @ {d['pc']} ({d['status']})" for n, d in th.items())
        extra = " style=bold" if k == 0 else ""
        lines.append(f"  s{k} [label={json.dumps(text)}{extra}];")
    if any(j < 0 for _, j, _, _ in edges):
        lines.append('  err [label="violation" color=red shape=octagon];')
    for a, b, lab, bad in edges:
        dst = "err" if b < 0 else f"s{b}"
        lines.append(f"  s{a} -> {dst} [label={json.dumps(lab)}{' color=red' if bad else ''}];")
    lines.append("}")
    write_atomic(path, "\n".join(lines) + "\n")
    return len(order)
