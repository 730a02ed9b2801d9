"""A trace as CPU swimlanes in the terminal: rich on a TTY, plain text elsewhere.

Both back ends draw the same cells (`_cells`): one column per thread; the
acting thread's cell has the seed line and its text, the step's own label,
what changed, and its locks; a waiting thread's cell says what it waits for.
The plain form is deterministic for a given width (golden-file tested).
"""

from __future__ import annotations

import textwrap
from typing import Sequence

from .view import StepView, TraceView, lanes as _lanes

# Styles of cell lines; the plain renderer marks changes with "*" instead of colour.
SOURCE, LABEL, CHANGE, LOCK, WAIT, NOTE = "source", "label", "change", "lock", "wait", "note"

RICH_STYLES = {SOURCE: "bold", LABEL: "dim", CHANGE: "bold yellow", LOCK: "cyan", WAIT: "magenta",
               NOTE: "dim italic"}

Line = tuple[str, str]  # (style, text)


def _ref_prefix(view: TraceView, st: StepView) -> str:
    if st.line is None:
        return ""
    one_file = len({s.file for s in view.steps if s.file}) <= 1
    return f"{st.line}" if one_file else f"{st.file}:{st.line}"


def _cells(view: TraceView, st: StepView) -> dict[str, list[Line]]:
    cells: dict[str, list[Line]] = {t: [] for t in view.threads}
    cell = cells.setdefault(st.thread, [])
    ref = _ref_prefix(view, st)
    if st.source is not None:
        cell.append((SOURCE, f"{ref} {st.source.strip()}"))
        cell.append((LABEL, f"  {st.label}"))
    else:
        cell.append((SOURCE, f"{ref} {st.label}".strip()))
    own = st.thread + "."
    # In a thread's own lane its locals need no "cpu[0]." prefix.
    cell.extend((CHANGE, "  " + (str(c)[len(own):] if c.path.startswith(own) else str(c))) for c in st.changes)
    if st.hidden_changes and view.hidden_paths:
        cell.append((NOTE, f"  (+{st.hidden_changes} hidden)"))
    for t, text in st.locks:
        cells.setdefault(t, []).append((LOCK, f"  {text}" if t == st.thread else text))
    for t, text in st.waits:
        cells.setdefault(t, []).append((WAIT, text))
    return cells


def _header(view: TraceView) -> list[str]:
    n = view.length
    out = [f"model {view.model or '?'}   property {view.property} ({view.kind})   "
           f"{n} step{'s' if n != 1 else ''}   engine {view.engine}"
           + ("" if view.loop is None else f"   lasso: cycle from state {view.loop}")]
    idle = _lanes(view)[1]
    if idle and view.steps:
        out.append(f"threads that take no step (no lane): {', '.join(idle)}")
    return out


def _state_lines(view: TraceView, i: int) -> list[str]:
    s = view.states[i]
    return [f"  {p} = {s[p]}" for p in view.paths if p in s] or ["  (nothing to show)"]


def _footer(view: TraceView) -> list[str]:
    if view.property:
        out = [f"VIOLATED {view.property} ({view.kind})" + (f": {view.message}" if view.message else "")]
    else:  # a saved game or walk that reached no violation
        out = [f"no violation reached ({view.kind})" + (f": {view.message}" if view.message else "")]
    if view.hidden_paths and view.property:
        n = view.hidden_paths
        out.append(f"({n} path{'s' if n != 1 else ''} that neither change nor matter to {view.property} "
                   f"{'are' if n != 1 else 'is'} hidden; --full shows {'them' if n != 1 else 'it'})")
    return out


def _wrap(text: str, width: int) -> list[str]:
    """Wrap a cell line to the lane, continuation lines indented two more."""
    body = text.lstrip(" ")
    ind = " " * (len(text) - len(body))
    return textwrap.wrap(body, width, initial_indent=ind, subsequent_indent=ind + "  ",
                         break_on_hyphens=False) or [""]


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(0, width - 1)] + "…"


def render_plain(view: TraceView, width: int = 100) -> str:
    out = _header(view)
    if view.message:
        out.append(f"violated: {view.message}")
    out += ["", "initial state"] + _state_lines(view, 0) + [""]
    threads = _lanes(view)[0]
    lane = max(20, (width - 6) // max(1, len(threads)) - 2)
    out.append("step  " + "  ".join(t.ljust(lane) for t in threads).rstrip())
    out.append("----  " + "  ".join("-" * lane for _ in threads))
    for st in view.steps:
        if st.loop_start:
            out.append(_fit(f"====  cycle starts here: steps {st.index}..{view.length} repeat forever ", width)
                       .ljust(width, "="))
        cells = {t: [ln for _, text in c for ln in _wrap(text, lane)] for t, c in _cells(view, st).items()}
        height = max(len(c) for c in cells.values())
        for r in range(height):
            cols = []
            for t in threads:
                c = cells.get(t, [])
                cols.append(c[r].ljust(lane) if r < len(c) else " " * lane)
            lead = f"{st.index:>4}  " if r == 0 else "      "
            out.append((lead + "  ".join(cols)).rstrip())
    if view.loop is not None:
        out.append(f"====  back to state {view.loop} ".ljust(width, "="))
    out += ["", f"final state (after step {view.length})"] + _state_lines(view, len(view.states) - 1)
    out += [""] + _footer(view)
    return "\n".join(out) + "\n"


def render_rich(view: TraceView, console: "object") -> None:
    """Print to a rich Console (colours, a real table); same content as render_plain."""
    from rich.table import Table
    from rich.text import Text
    from rich import box

    con = console  # rich.console.Console
    title = Text("\n".join(_header(view)), style="bold")
    con.print(title)  # type: ignore[attr-defined]
    if view.message:
        con.print(Text(f"violated: {view.message}", style="red"))  # type: ignore[attr-defined]
    con.print(Text("initial state", style="bold"))  # type: ignore[attr-defined]
    con.print(Text("\n".join(_state_lines(view, 0))))  # type: ignore[attr-defined]
    table = Table(box=box.SIMPLE_HEAD, show_lines=False, pad_edge=False, expand=True)
    table.add_column("step", justify="right", style="dim", no_wrap=True)
    threads = _lanes(view)[0]
    for t in threads:
        table.add_column(t, overflow="fold", ratio=1)
    for st in view.steps:
        if st.loop_start:
            table.add_row("⟲", *[Text(f"cycle starts here: steps {st.index}..{view.length} repeat", style="bold red")
                                 if j == 0 else "" for j, _ in enumerate(threads)])
        cells = _cells(view, st)
        row = []
        for t in threads:
            txt = Text()
            for k, (style, s) in enumerate(cells.get(t, [])):
                if k:
                    txt.append("\n")
                txt.append(s, style=RICH_STYLES[style])
            row.append(txt)
        table.add_row(str(st.index), *row)
    if view.loop is not None:
        table.add_row("⟲", *[Text(f"back to state {view.loop}", style="bold red") if j == 0 else ""
                             for j, _ in enumerate(threads)])
    con.print(table)  # type: ignore[attr-defined]
    con.print(Text(f"final state (after step {view.length})", style="bold"))  # type: ignore[attr-defined]
    con.print(Text("\n".join(_state_lines(view, len(view.states) - 1))))  # type: ignore[attr-defined]
    foot = _footer(view)
    con.print(Text(foot[0], style="bold red"))  # type: ignore[attr-defined]
    for f in foot[1:]:
        con.print(Text(f, style="dim"))  # type: ignore[attr-defined]


def render(view: TraceView, *, stream: "object | None" = None, width: int | None = None,
           color: bool | None = None) -> str | None:
    """Rich on a terminal, plain text otherwise. Returns the plain text when it did not print."""
    import sys
    from rich.console import Console

    stream = stream or sys.stdout
    tty = bool(getattr(stream, "isatty", lambda: False)())
    if color is None:
        color = tty
    if not color:
        return render_plain(view, width or 100)
    con = Console(file=stream, width=width, highlight=False)  # type: ignore[arg-type]
    render_rich(view, con)
    return None


def lines_for_failure(view: TraceView) -> Sequence[str]:
    """The plain rendering as lines (for JUnit failure bodies)."""
    return render_plain(view).splitlines()
