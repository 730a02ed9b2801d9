"""Self-contained SVG pictures of small directed graphs (lock order, state graphs): no Graphviz.

Layout: layers left to right. Without given ranks a node's layer is the longest path to it
over the graph's strongly connected components (networkx condensation), so the members of a
cycle share a column and every other edge points right; within a layer nodes are ordered by
name, then by one barycenter sweep. Edges are quadratic curves bent to their left, so the two
edges of a reversal (a -> b, b -> a) bend apart; self-edges are loops over their box. Every
number is printed rounded and every order is sorted: one graph gives the same bytes each run.
Names come from specs (untrusted): they appear only as escaped XML character data, never in
attributes or ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.sax.saxutils import escape

import networkx as nx

CHAR_W = 7.4            # monospace advance at FONT_SIZE, roughly
LINE_H = 15.0
FONT_SIZE = 12
LABEL_SIZE = 10
LABEL_CHAR_W = 6.0
PAD = 8.0
LAYER_GAP = 90.0        # at least, between columns (more when edge labels need it)
NODE_GAP = 48.0         # between boxes in a column
MARGIN = 20.0
WAYPOINT_H = 14.0       # the slot a skipping edge takes in a column it passes
BEND = 34.0             # how far an edge sharing its ends with another (or its column) bends
MAX_LABEL = 80          # characters; longer labels are cut with an ellipsis
RED = "#d62728"

# XML 1.0 forbids most control characters and lone surrogates even escaped.
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def text(s: str) -> str:
    """A string as XML character data."""
    return escape(_BAD_XML.sub("\ufffd", s))


@dataclass(frozen=True)
class Node:
    key: str                        # unique; only used for layout, never written out
    lines: tuple[str, ...]          # the box's text
    bold: bool = False
    red: bool = False


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    label: str = ""
    red: bool = False


def _cut(s: str, n: int = MAX_LABEL) -> str:
    return s if len(s) <= n else s[:n - 1] + "\u2026"


def _f(x: float) -> str:
    """Coordinates with one decimal, no '-0.0': the same bytes on every run and platform."""
    s = f"{x:.1f}"
    return "0.0" if s == "-0.0" else s


def layers(nodes: list[Node], edges: list[Edge], rank: dict[str, int] | None = None) -> list[list[str]]:
    """Columns of node keys, left to right."""
    keys = sorted(n.key for n in nodes)
    if rank is None:
        g = nx.DiGraph()
        g.add_nodes_from(keys)
        g.add_edges_from((e.src, e.dst) for e in edges if e.src != e.dst)
        c = nx.condensation(g)
        level: dict[int, int] = {}
        # lexicographic order: the same topological order whatever the set order inside networkx
        members = c.graph["mapping"]
        first = {i: min(c.nodes[i]["members"]) for i in c.nodes}
        for i in nx.lexicographical_topological_sort(c, key=lambda i: first[i]):
            level[i] = max((level[p] + 1 for p in c.predecessors(i)), default=0)
        rank = {k: level[members[k]] for k in keys}
    cols: list[list[str]] = [[] for _ in range(max(rank.values(), default=-1) + 1)]
    for k in keys:
        cols[rank[k]].append(k)
    # one barycenter sweep: a node sits near the average row of its predecessors
    preds: dict[str, list[str]] = {k: [] for k in keys}
    for e in edges:
        if e.src != e.dst:
            preds[e.dst].append(e.src)
    row: dict[str, int] = {}
    for col in cols:
        def bary(k: str) -> tuple[float, str]:
            ps = [row[p] for p in preds[k] if p in row]
            return (sum(ps) / len(ps) if ps else -1.0, k)
        col.sort(key=bary)
        for i, k in enumerate(col):
            row[k] = i
    return cols


def _box(n: Node) -> tuple[float, float]:
    w = max((len(s) for s in n.lines), default=1) * CHAR_W + 2 * PAD
    return max(w, 40.0), len(n.lines) * LINE_H + 2 * PAD - 4


def _clip(cx: float, cy: float, w: float, h: float, tx: float, ty: float) -> tuple[float, float]:
    """Where the ray from a box's centre towards (tx, ty) leaves the box."""
    dx, dy = tx - cx, ty - cy
    if dx == 0 and dy == 0:
        return cx, cy
    s = min((w / 2) / abs(dx) if dx else float("inf"), (h / 2) / abs(dy) if dy else float("inf"))
    return cx + dx * s, cy + dy * s


def render(nodes: list[Node], edges: list[Edge], *, title: str = "",
           rank: dict[str, int] | None = None) -> str:
    """The picture as an SVG document (a string)."""
    by = {n.key: n for n in nodes}
    for e in edges:
        if e.src not in by or e.dst not in by:
            raise ValueError(f"edge to an unknown node: {e.src!r} -> {e.dst!r}")
    cols = layers(nodes, edges, rank)
    col_of = {k: i for i, col in enumerate(cols) for k in col}
    # An edge that skips columns runs through a thin waypoint in each column between, so it
    # goes around the boxes there; the waypoints take part in the ordering like nodes.
    via: dict[int, list[str]] = {}
    chain: list[Edge] = []
    for i, e in enumerate(edges):
        a, b = col_of[e.src], col_of[e.dst]
        if abs(b - a) > 1:
            step = 1 if b > a else -1
            ks = [f"\x00{i}.{c}" for c in range(a + step, b, step)]
            via[i] = ks
            path = [e.src] + ks + [e.dst]
            chain += [Edge(u, v) if step > 0 else Edge(v, u) for u, v in zip(path, path[1:])]
        else:
            chain.append(e)
    if via:
        rank2 = {k: c for k, c in col_of.items()}
        for ks in via.values():
            for k in ks:
                rank2[k] = int(k.rsplit(".", 1)[1])
        waypoints = [Node(k, ()) for ks in via.values() for k in ks]
        cols = layers(nodes + waypoints, chain, rank2)
        col_of = {k: i for i, col in enumerate(cols) for k in col}
    size = {k: _box(by[k]) if k in by else (0.0, WAYPOINT_H) for col in cols for k in col}
    # a gap wide enough for the labels of the edges that cross it (a skipping edge's label
    # sits in its first gap)
    gaps = [LAYER_GAP] * max(len(cols) - 1, 0)
    for i, e in enumerate(edges):
        a, b = col_of[e.src], col_of[e.dst]
        if a != b and e.label:
            nxt = col_of[via[i][0]] if i in via else b
            need = len(_cut(e.label)) * LABEL_CHAR_W + 24
            gaps[min(a, nxt)] = max(gaps[min(a, nxt)], need)
        elif a == b and e.src != e.dst:
            # an edge within a column bends out of it, its label beside the bend
            need = BEND + len(_cut(e.label)) * LABEL_CHAR_W + 24
            for i in (a - 1, a):
                if 0 <= i < len(gaps):
                    gaps[i] = max(gaps[i], need + LAYER_GAP / 2)
    heights = [sum(size[k][1] for k in col) + NODE_GAP * (len(col) - 1) for col in cols]
    top = MARGIN + (LINE_H + 10 if title else 0)
    total_h = max(heights, default=0.0)
    pos: dict[str, tuple[float, float]] = {}
    x = MARGIN
    for i, col in enumerate(cols):
        cw = max((size[k][0] for k in col), default=0.0)
        y = top + (total_h - heights[i]) / 2
        for k in col:
            w, h = size[k]
            pos[k] = (x + cw / 2, y + h / 2)
            y += h + NODE_GAP
        x += cw + (gaps[i] if i < len(gaps) else 0.0)
    # the picture's extent, grown by everything drawn (labels and loops stick out of the columns)
    inf = float("inf")
    box = [inf, inf, -inf, -inf]

    def grow(x0: float, y0: float, x1: float, y1: float) -> None:
        box[0], box[1] = min(box[0], x0), min(box[1], y0)
        box[2], box[3] = max(box[2], x1), max(box[3], y1)

    for k, (cx, cy) in pos.items():
        if k not in by:
            continue
        grow(cx - size[k][0] / 2, cy - size[k][1] / 2, cx + size[k][0] / 2, cy + size[k][1] / 2)
    body: list[str] = []
    if title:
        body.append(f'<text x="{_f(MARGIN)}" y="{_f(MARGIN + LINE_H - 3)}" font-size="{FONT_SIZE + 1}" '
                    f'font-weight="bold">{text(title)}</text>')
        grow(MARGIN, MARGIN, MARGIN + len(title) * (CHAR_W + 1), MARGIN + LINE_H)

    pairs = {(e.src, e.dst) for e in edges}
    body.append('<g class="edges" fill="none">')
    labels: list[str] = []
    for i, e in sorted(enumerate(edges), key=lambda ie: (ie[1].src, ie[1].dst, ie[1].label)):
        color = RED if e.red else "#333333"
        marker = "arrow-red" if e.red else "arrow"
        (x1, y1), (x2, y2) = pos[e.src], pos[e.dst]
        lab = _cut(e.label)
        if i in via:
            # through the waypoints: straight to the first, rounded corners at each, straight in
            pts = [pos[k] for k in via[i]]
            sx, sy = _clip(x1, y1, *size[e.src], *pts[0])
            tx, ty = _clip(x2, y2, *size[e.dst], *pts[-1])
            pts = [(sx, sy)] + pts + [(tx, ty)]
            d = f"M{_f(sx)},{_f(sy)}"
            for (ax, ay), (bx, by_), (cx_, cy_) in zip(pts, pts[1:], pts[2:]):
                m1 = ((ax + bx) / 2, (ay + by_) / 2)
                m2 = ((bx + cx_) / 2, (by_ + cy_) / 2)
                d += f" L{_f(m1[0])},{_f(m1[1])} Q{_f(bx)},{_f(by_)} {_f(m2[0])},{_f(m2[1])}"
            d += f" L{_f(tx)},{_f(ty)}"
            for px, py in pts:
                grow(px, py, px, py)
            (ax, ay), (bx, by_) = pts[0], pts[1]
            lx, ly, anchor = (ax + bx) / 2, (ay + by_) / 2 - 4, "middle"
        elif e.src == e.dst:
            # a loop over the top of the box, its label above it (right of a box are other edges)
            w, h = size[e.src]
            t = y1 - h / 2
            d = (f"M{_f(x1 - 8)},{_f(t)} C{_f(x1 - 34)},{_f(t - 38)} {_f(x1 + 34)},{_f(t - 38)} "
                 f"{_f(x1 + 8)},{_f(t)}")
            grow(x1 - 34, t - 38, x1 + 34, t)
            lx, ly, anchor = x1, t - 32, "middle"
        else:
            dx, dy = x2 - x1, y2 - y1
            length = (dx * dx + dy * dy) ** 0.5
            bend = BEND if (e.dst, e.src) in pairs or col_of[e.src] == col_of[e.dst] else 0.0
            # bend to the left of the direction of travel: a -> b and b -> a part ways
            mx, my = (x1 + x2) / 2 + bend * dy / length, (y1 + y2) / 2 - bend * dx / length
            sx, sy = _clip(x1, y1, *size[e.src], mx, my)
            tx, ty = _clip(x2, y2, *size[e.dst], mx, my)
            d = f"M{_f(sx)},{_f(sy)} Q{_f(mx)},{_f(my)} {_f(tx)},{_f(ty)}"
            grow(min(sx, mx, tx), min(sy, my, ty), max(sx, mx, tx), max(sy, my, ty))
            lx, ly = 0.25 * sx + 0.5 * mx + 0.25 * tx, 0.25 * sy + 0.5 * my + 0.25 * ty
            if abs(dy) > abs(dx):
                # a steep edge: its label beside the curve, on the side it bends to
                right = mx >= (x1 + x2) / 2
                lx, ly, anchor = lx + (4 if right else -4), ly + 4, "start" if right else "end"
            else:
                ly, anchor = ly - 4, "middle"
        cls = "edge red" if e.red else "edge"
        body.append(f'<path class="{cls}" d="{d}" stroke="{color}" stroke-width="{2 if e.red else 1.2}" '
                    f'marker-end="url(#{marker})"/>')
        if lab:
            tw = len(lab) * LABEL_CHAR_W
            x0 = {"start": lx, "end": lx - tw, "middle": lx - tw / 2}[anchor]
            grow(x0, ly - LABEL_SIZE, x0 + tw, ly + 3)
            labels.append(f'<text x="{_f(lx)}" y="{_f(ly)}" text-anchor="{anchor}" font-size="{LABEL_SIZE}" '
                          f'fill="{color}" stroke="white" stroke-width="3" paint-order="stroke">{text(lab)}</text>')
    body.append("</g>")
    body.append('<g class="nodes">')
    for k in sorted(by):
        n = by[k]
        (cx, cy), (w, h) = pos[k], size[k]
        stroke = RED if n.red else "#333333"
        body.append(f'<g class="node"><rect x="{_f(cx - w / 2)}" y="{_f(cy - h / 2)}" width="{_f(w)}" '
                    f'height="{_f(h)}" rx="4" fill="#f7f7f7" stroke="{stroke}" '
                    f'stroke-width="{2.5 if n.bold else 1.2}"/>')
        y0 = cy - h / 2 + PAD + LINE_H - 4
        for i, ln in enumerate(n.lines):
            body.append(f'<text x="{_f(cx - w / 2 + PAD)}" y="{_f(y0 + i * LINE_H)}" font-size="{FONT_SIZE}" '
                        f'xml:space="preserve">{text(ln)}</text>')
        body.append("</g>")
    body.append("</g>")
    body.append('<g class="labels">')
    body += labels
    body.append("</g>")

    x0, y0, x1, y1 = box[0] - MARGIN, box[1] - MARGIN, box[2] + MARGIN, box[3] + MARGIN
    w, h = x1 - x0, y1 - y0
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<svg xmlns="http://www.w3.org/2000/svg" width="{_f(w)}" height="{_f(h)}" '
           f'viewBox="{_f(x0)} {_f(y0)} {_f(w)} {_f(h)}" font-family="monospace">', "<defs>"]
    for mid, color in (("arrow", "#333333"), ("arrow-red", RED)):
        out.append(f'<marker id="{mid}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" '
                   f'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto">'
                   f'<path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>')
    out.append("</defs>")
    out.append(f'<rect x="{_f(x0)}" y="{_f(y0)}" width="{_f(w)}" height="{_f(h)}" fill="white"/>')
    return "\n".join(out + body + ["</svg>"]) + "\n"
