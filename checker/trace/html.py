"""A trace as one self-contained HTML page: lanes, state and source, stepped with the keyboard.

No network: the page carries its data (the same view model as the text
renderer) as JSON, its script and its style inline. Keys: Right/j/n next,
Left/k/p back, Home/End. `#step=N` opens at step N; `#keys=ArrowRight,...`
replays key presses on load (used by the headless-browser test).
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

from .itf import Trace
from .seed import SeedSource
from .values import fmt
from .view import build_view, lanes as view_lanes

CONTEXT_LINES = 4   # seed lines shown around the current one


def page_data(trace: Trace, seed: SeedSource | None = None) -> dict[str, Any]:
    seed = seed or SeedSource(None)
    full = build_view(trace, seed, full=True)
    short = build_view(trace, seed, full=False)
    sources: dict[str, dict[str, str]] = {}
    for st in full.steps:
        if st.file is None or st.line is None:
            continue
        lines = seed.lines(st.file)
        if lines is None:
            continue
        out = sources.setdefault(st.file, {})
        for n in range(max(1, st.line - CONTEXT_LINES), min(len(lines), st.line + CONTEXT_LINES) + 1):
            out[str(n)] = lines[n - 1]
    lanes, idle = view_lanes(full)
    return {
        "model": trace.model, "property": trace.property, "kind": trace.kind, "engine": trace.engine,
        "message": trace.message, "loop": trace.loop, "threads": lanes, "idle": idle,
        "shown": list(short.paths), "paths": list(full.paths),
        "states": [dict(s) for s in full.states],
        "steps": [{"index": st.index, "thread": st.thread, "label": st.label, "ref": st.ref, "file": st.file,
                   "line": st.line, "source": st.source,
                   "changes": [[c.path, fmt(c.old), fmt(c.new)] for c in st.changes],
                   "locks": [list(x) for x in st.locks], "waits": [list(x) for x in st.waits]}
                  for st in full.steps],
        "holders": [{t: list(v) for t, v in h.items()} for h in full.holders],
        "waiting": [dict(w) for w in full.waiting],
        "sources": sources,
    }


def render_html(trace: Trace, seed: SeedSource | None = None) -> str:
    data = json.dumps(page_data(trace, seed), ensure_ascii=False, sort_keys=True)
    # "</" inside a <script> would end it early.
    data = data.replace("</", "<\\/")
    template = resources.files("checker.trace").joinpath("trace.html").read_text(encoding="utf-8")
    title = html.escape(f"{trace.model} / {trace.property} — forkcheck trace")
    return template.replace("{{TITLE}}", title).replace("{{DATA}}", data)
