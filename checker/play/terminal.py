"""The scheduler game in the terminal: commands on stdin, one screen per turn.

Off a terminal (a pipe, a test) the input is read line by line and echoed
after the prompt, so a scripted game's output reads as a transcript. On a
terminal the output is coloured with rich and the input has line editing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Iterable, TextIO

from ..results import EXIT_INTERRUPTED, EXIT_OK
from .game import Game, Hint, HintOutcome, Move, Played, PlayError, ThreadStatus, Win

HELP = """\
commands:
  0, 1, ...     move that CPU (thread number or name: cpu[1], cpu1); with choices 1a, 1b, ...
  0 1 1         several moves in one line
  3+            run thread 3 until it has a choice, blocks, ends, or its next step puts a property at risk
  3@270         run thread 3 until its next step is seed line 270 (or it has a choice, blocks, ends)
  u             undo the last move
  h             hint: the shortest path from here to a violation (the explorer's BFS)
  v             the whole current state
  s FILE        save the game so far as an ITF trace (forkcheck trace show FILE)
  ?             this help
  q             quit
Goal: as the scheduler, interleave the CPUs until a property breaks."""

# Styles of output segments; plain text ignores them.
S_TITLE, S_KEY, S_THREAD, S_SRC, S_LABEL, S_RISK, S_BLOCK, S_DONE, S_CHANGE, S_WIN, S_NOTE, S_ERR = (
    "bold", "bold cyan", "bold", "", "dim", "yellow", "magenta", "dim", "bold yellow", "bold red", "dim", "red")

Seg = tuple[str, str]   # (style, text)


class Screen:
    """Lines of styled segments, to rich on a terminal or as plain text."""

    def __init__(self, stream: TextIO, color: bool):
        self.stream = stream
        self.console = None
        if color:
            from rich.console import Console
            self.console = Console(file=stream, highlight=False, soft_wrap=True, force_terminal=True)

    def line(self, *segs: Seg | str) -> None:
        parts = [(("", s) if isinstance(s, str) else s) for s in segs]
        if self.console is not None:
            from rich.text import Text
            t = Text()
            for style, text in parts:
                t.append(text, style=style or None)
            self.console.print(t)
        else:
            self.stream.write("".join(text for _, text in parts).rstrip() + "\n")
        self.stream.flush()


@dataclass
class Session:
    game: Game
    screen: Screen
    hint_each: bool = False
    save: str | None = None
    hint_limit: int | None = None
    saved_at: int | None = None     # the turn the --save file was last written at

    # ---------------------------------------------------------- screens

    def intro(self) -> None:
        g = self.game
        sc = self.screen
        sc.line((S_TITLE, f"forkcheck play {g.model_name}"), " — you are the scheduler")
        sc.line(f"threads: {', '.join(f'{i} {n}' for i, n in enumerate(g.thread_names()))}")
        sc.line(f"win by breaking one of: {', '.join(g.played) or '(nothing to break)'}")
        if g.not_played:
            sc.line((S_NOTE, f"not played (a single run cannot show them): {', '.join(g.not_played)}"))
        sc.line((S_NOTE, "type ? for help"))

    def show_turn(self) -> None:
        g = self.game
        sc = self.screen
        sc.line("")
        sc.line((S_TITLE, f"turn {g.turn}"))
        width = max(len(n) for n in g.thread_names())
        key_w = max([len(m.key) for m in g.moves()] + [1])
        for tv in g.threads():
            name = tv.name.ljust(width)
            if not tv.moves:
                if tv.status is ThreadStatus.DONE:
                    sc.line("  ", " " * key_w, "  ", (S_THREAD, name), "  ", (S_DONE, "done"))
                elif tv.status is ThreadStatus.RUNNING:
                    sc.line("  ", " " * key_w, "  ", (S_THREAD, name), "  ",
                            (S_BLOCK, "its only steps break a property not played here"))
                else:
                    sc.line("  ", " " * key_w, "  ", (S_THREAD, name), "  ",
                            (S_BLOCK, f"{tv.status.value}: {tv.why}" if tv.why else tv.status.value))
                continue
            for k, m in enumerate(tv.moves):
                head = name if k == 0 else " " * width
                sc.line("  ", (S_KEY, m.key.ljust(key_w)), "  ", (S_THREAD, head), "  ", *self._move_segs(m))
        risks = self._risk_summary()
        if risks:
            sc.line((S_RISK, f"at risk: {risks}"))
        if self.hint_each:
            self.show_hint(short=True)

    def _move_segs(self, m: Move) -> list[Seg]:
        line, text = self.game.source_of(m.step)
        segs: list[Seg] = []
        if text is not None:
            segs.append((S_SRC, f"{line}  {text.strip()}"))
            segs.append((S_LABEL, f"   {m.step.label}"))
        elif line is not None:
            segs.append((S_SRC, f"{line}  {m.step.label}"))
        else:
            segs.append((S_SRC, m.step.label))
        risks = self.game.risks(m)
        if risks:
            segs.append((S_RISK, "   ! " + ", ".join(r.prop for r in risks)))
        return segs

    def _risk_summary(self) -> str:
        by_prop: dict[str, list[str]] = {}
        for m in self.game.moves():
            for r in self.game.risks(m):
                by_prop.setdefault(r.prop, []).append(f"{m.key} {r.why}")
        return "; ".join(f"{p} ({', '.join(ws)})" for p, ws in by_prop.items())

    def show_played(self, p: Played) -> None:
        sc = self.screen
        m = p.move
        line, text = self.game.source_of(m.step)
        where = f" {line}" if line is not None else ""
        what = text.strip() if text is not None else m.step.label
        sc.line((S_THREAD, m.thread), f" ran{where}: {what}", (S_LABEL, f"   ({m.step.label})" if text else ""))
        for c in p.changes:
            sc.line("  ", (S_CHANGE, str(c)))
        if not p.changes:
            sc.line("  ", (S_NOTE, "(nothing changed)"))
        if p.win is not None:
            self.show_win(p.win)

    def show_run(self, played: list[Played]) -> None:
        """A fast-forward: one line per move, then the net change (the middle of a run rarely matters)."""
        sc = self.screen
        kw = max(len(p.move.key) for p in played)
        for p in played:
            line, text = self.game.source_of(p.move.step)
            where = f"{line:>4}  " if line is not None else "      "
            sc.line("  ", (S_KEY, p.move.key.ljust(kw)), "  ", (S_LABEL, where), p.move.step.label)
        for c in self.game.changes_since(self.game.turn - len(played)):
            sc.line("  ", (S_CHANGE, str(c)))
        if played[-1].win is not None:
            self.show_win(played[-1].win)

    def show_win(self, w: Win) -> None:
        g = self.game
        self.screen.line("")
        self.screen.line((S_WIN, f"YOU WIN in {g.turn} move{'s' if g.turn != 1 else ''}: {w.prop} ({w.kind}) "
                                 f"violated — {w.message}"))
        for tv in g.threads():
            if tv.status in (ThreadStatus.BLOCKED, ThreadStatus.SLEEPING):
                self.screen.line("  ", (S_THREAD, tv.name), "  ", (S_BLOCK, f"{tv.status.value}: {tv.why}"))
        self.screen.line(f"moves: {' '.join(g.keys()) or '(none)'}")
        if self.save:
            self.save_to(self.save)
        self.screen.line((S_NOTE, "u undoes the last move, q quits"))

    def show_hint(self, short: bool = False) -> None:
        g = self.game
        h: Hint = g.hint(self.hint_limit) if self.hint_limit else g.hint()
        sc = self.screen
        if h.outcome is HintOutcome.NONE:
            sc.line((S_NOTE, f"hint: no violation is reachable from here (all {h.states:,} states searched)"))
            return
        if h.outcome is HintOutcome.LIMIT:
            sc.line((S_NOTE, f"hint: no violation within {h.states:,} states of here (the search stopped: "
                             f"{h.stop.value}; --hint-limit N searches further)"))
            return
        assert h.win is not None
        n = len(h.moves)
        if short:
            sc.line((S_NOTE, f"hint: {h.win.prop} in {n} move{'s' if n != 1 else ''}: {' '.join(m.key for m in h.moves)}"))
            return
        sc.line((S_NOTE, f"hint: a shortest way to break {h.win.prop} ({h.win.kind}) takes {n} "
                         f"move{'s' if n != 1 else ''}:"))
        for m in h.moves:
            line, _ = g.source_of(m.step)
            sc.line("  ", (S_KEY, m.key), f"  {m.thread}: {m.step.label}" + (f"  @{line}" if line else ""))
        sc.line((S_NOTE, f"  then: {h.win.message}"))

    def show_state(self) -> None:
        from ..trace.values import flatten, fmt
        flat = flatten(self.game.sem.valuation(self.game.state))
        for path, v in flat.items():
            self.screen.line(f"  {path} = {fmt(v)}")

    def save_to(self, path: str) -> None:
        self.game.trace().write(path)
        self.saved_at = self.game.turn
        self.screen.line((S_NOTE, f"saved {path} ({self.game.turn} steps; forkcheck trace show {path})"))

    # ------------------------------------------------------------ input

    def command(self, line: str) -> bool:
        """Run one command line; False when the player quits."""
        g = self.game
        word = line.strip()
        if not word:
            return True
        head, _, rest = word.partition(" ")
        if head in ("q", "quit", "exit"):
            return False
        if head in ("?", "help"):
            self.screen.line(HELP)
            return True
        if head in ("u", "undo"):
            last = g.path[-1] if g.path else None
            if g.undo():
                assert last is not None
                self.screen.line((S_NOTE, f"undone: {g.sem.thread_names[last.thread]} {last.step.label}"))
                self.show_turn()
            else:
                self.screen.line((S_ERR, "nothing to undo"))
            return True
        if head in ("h", "hint"):
            self.show_hint()
            return True
        if head in ("v", "state"):
            self.show_state()
            return True
        if head in ("s", "save"):
            if not rest.strip():
                self.screen.line((S_ERR, "save where? s FILE"))
                return True
            try:
                self.save_to(rest.strip())
            except OSError as e:
                self.screen.line((S_ERR, f"cannot save {rest.strip()}: {e.strerror}"))
            return True
        for tok in word.replace(",", " ").split():
            try:
                if "+" in tok or "@" in tok:
                    played = self._fast_forward(tok)
                else:
                    played = [g.play(g.resolve(tok))]
            except PlayError as e:
                self.screen.line((S_ERR, str(e)))
                return True
            if len(played) == 1:
                self.show_played(played[0])
            else:
                self.show_run(played)
            if played and played[-1].win is not None:
                return True
        if not g.moves():
            self.screen.line((S_NOTE, "every thread is done: no violation this time (u undoes, q quits)"))
        self.show_turn()
        return True

    def _fast_forward(self, tok: str) -> list[Played]:
        """`3+`: run thread 3 until a choice, a block or a risk; `3@270`: until it reaches seed line 270."""
        g = self.game
        who, sep, line = tok.partition("@") if "@" in tok else tok.partition("+")
        if sep == "+" and line:
            raise PlayError(f"{tok!r}: write {who}+ (run until something matters) or {who}@LINE")
        until = None
        if sep == "@":
            if not line.isdigit():
                raise PlayError(f"{tok!r}: @ needs a seed line number ({who}@270)")
            until = int(line)
        first = g.resolve(who)   # errors (blocked, a choice, unknown) as for a single move
        played = g.run_thread(first.tid, until_line=until, first=first)
        if len(played) > 1:
            self.screen.line((S_NOTE, f"{first.thread} ran {len(played)} moves:"))
        return played

    def finish(self) -> None:
        g = self.game
        if self.save and self.saved_at != g.turn:
            self.save_to(self.save)
        verdict = f"won: {g.win.prop} violated" if g.win else "no violation reached"
        self.screen.line(f"game over after {g.turn} move{'s' if g.turn != 1 else ''}: {verdict}")


def _lines(inp: TextIO, out: TextIO, interactive: bool) -> Iterable[str]:
    while True:
        if interactive:
            try:
                yield input("> ")
            except EOFError:
                out.write("\n")
                return
            continue
        out.write("> ")
        line = inp.readline()
        if not line:
            out.write("\n")
            return
        out.write(line if line.endswith("\n") else line + "\n")
        yield line


def run(game: Game, *, inp: TextIO | None = None, out: TextIO | None = None, color: bool | None = None,
        hint_each: bool = False, save: str | None = None, moves: list[str] | None = None,
        hint_limit: int | None = None) -> int:
    inp = inp or sys.stdin
    out = out or sys.stdout
    tty_out = bool(getattr(out, "isatty", lambda: False)())
    interactive = inp is sys.stdin and out is sys.stdout and sys.stdin.isatty() and tty_out
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
    s = Session(game, Screen(out, tty_out if color is None else color), hint_each=hint_each, save=save,
                hint_limit=hint_limit)
    s.intro()
    if game.win is not None:
        s.show_win(game.win)
    if game.win is None:
        s.show_turn()
    for mv in moves or ():
        if game.win is not None:
            break
        out.write(f"> {mv}\n")
        s.command(mv)
    try:
        for line in _lines(inp, out, interactive):
            if not s.command(line):
                break
    except KeyboardInterrupt:
        # Ctrl-C ends the game as `q` does: the --save file is still written.
        out.write("\n")
        s.finish()
        return EXIT_INTERRUPTED
    s.finish()
    return EXIT_OK


