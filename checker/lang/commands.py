"""CLI: `forkcheck parse` (check a spec or model, summarise it) and `forkcheck fmt`."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from .. import ir
from ..diagnostics import UsageError
from ..results import EXIT_OK, EXIT_UNEXPECTED
from . import load_spec, parse_file
from .fmt import format_module


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parse", help="check a spec (.fk) or model (.toml) and summarise it",
                       description="Parse and type-check each spec (.fk) or model file (.toml) and print "
                                   "a summary: constants and fixes, types, pools, threads, steps, "
                                   "properties. Exit 0 when every file is fine, 2 at the first error.")
    p.add_argument("files", nargs="+", metavar="FILE", help="a .fk spec or a .toml model")
    p.add_argument("--steps", action="store_true", help="list every step with its seed line and label")
    p.add_argument("-D", "--define", action="append", default=[], metavar="NAME=VALUE",
                   help="override a constant of a spec (repeatable), e.g. -D MAXPROC=3 -D FIX_NPROCS=true")
    p.set_defaults(func=_parse_cmd)

    f = sub.add_parser("fmt", help="rewrite specs in canonical form (--check: only report)",
                       description="Rewrite each spec in canonical form (idempotent; comments kept). "
                                   "With --check, change nothing and exit 1 if a file is not canonical.")
    f.add_argument("files", nargs="+", metavar="FILE", help="a .fk spec")
    g = f.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="only report files that would change (exit 1)")
    g.add_argument("--stdout", action="store_true", help="print the canonical text instead of rewriting")
    f.set_defaults(func=_fmt_cmd)


def _defines(items: list[str]) -> dict[str, int | bool]:
    out: dict[str, int | bool] = {}
    for it in items:
        name, eq, val = it.partition("=")
        if not eq or not name:
            raise UsageError(f"-D needs NAME=VALUE, not {it!r}")
        v = val.strip().lower()
        if v in ("true", "false"):
            out[name.strip()] = v == "true"
        else:
            try:
                out[name.strip()] = int(v)
            except ValueError:
                raise UsageError(f"-D {name}: {val!r} is neither an integer nor true/false") from None
    return out


def _parse_cmd(args: argparse.Namespace) -> int:
    defines = _defines(args.define)
    for i, f in enumerate(args.files):
        p = Path(f)
        if not p.is_file():
            raise UsageError(f"no such file: {f}")
        if i:
            print()
        if p.suffix == ".toml":
            from ..model import load_model
            m = load_model(p)
            print(f"{p}: model ok")
            print(f"  spec        {m.spec}")
            if m.description:
                print(f"  about       {m.description}")
            if m.constants:
                _line("overrides", [f"{k} = {_v(v)}" for k, v in m.constants.items()])
            _line("checks", list(m.properties))
            if m.expect:
                _line("expects", [f"{k}: {v}" for k, v in m.expect.items()])
            _summary(m.system, args.steps)
        elif p.suffix == ".fk":
            system = load_spec(p, defines or None)
            print(f"{p}: spec ok")
            _summary(system, args.steps)
        else:
            raise UsageError(f"{f}: expected a .fk spec or a .toml model")
    return EXIT_OK


def _line(label: str, items: list[str]) -> None:
    """`  label       a, b, c` wrapped under itself at 100 columns."""
    glued = [i.replace(" ", "\0") for i in items]  # never break inside one item
    print(textwrap.fill(", ".join(glued), width=100, initial_indent=f"  {label:<11} ",
                        subsequent_indent=" " * 14, break_on_hyphens=False,
                        break_long_words=False).replace("\0", " "))


def _v(v: object) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _summary(s: ir.System, steps: bool) -> None:
    consts = [c for c in s.constants if not c.is_fix]
    fixes = [c for c in s.constants if c.is_fix]
    if s.source_file:
        print(f"  source      {s.source_file}")
    if consts:
        _line("constants", [f"{c.name} = {_v(c.value)}" for c in consts])
    for c in fixes:
        print(f"  fix         {c.name} = {_v(c.value)}" + (f"  ({c.doc})" if c.doc else ""))
    for e in s.enums:
        print(f"  type        {e.name} {{{', '.join(e.members)}}}")
    for p in s.pools:
        rc = f", refcount {p.refcount_field}" if p.refcount_field else ""
        print(f"  pool        {p.name}[{p.size}]: {len(p.fields)} field(s){rc}")
    locks = [g for g in s.globals if isinstance(g.type, ir.LockT)]
    vars_ = [g for g in s.globals if not isinstance(g.type, ir.LockT) and not g.name.startswith("__")]
    if locks:
        _line("locks", [f"{g.name} ({g.type.kind.value})" for g in locks])  # type: ignore[union-attr]
    if vars_:
        _line("globals", [g.name for g in vars_])
    for c in s.codes:
        ts = [t for t in s.threads if t.code == c.name]
        flags = []
        if ts and ts[0].environment:
            flags.append("env")
        if ts and not ts[0].fair:
            flags.append("unfair")
        fl = f" [{', '.join(flags)}]" if flags else ""
        print(f"  thread      {', '.join(t.name for t in ts)}{fl}: {len(c.steps)} steps, {c.npcs} pcs, "
              f"{len(c.locals)} locals")
    print(f"  steps       {len(s.steps)}")
    kinds = s.property_names
    for kind in ("invariant", "assert", "leadsto"):
        names = [n for n, k in kinds.items() if k == kind]
        if names:
            _line(kind, names)
    _line("built-in", list(ir.BUILTIN_PROPERTIES))
    if s.lock_orders:
        _line("lock order", [f"{o.first!r} < {o.second!r}" for o in s.lock_orders])
    if s.abstracted:
        print(f"  abstracted  {len(s.abstracted)} seed range(s)")
    if steps:
        print("  steps:")
        for st in s.steps:
            ref = f"@{st.ref}" if st.ref else ""
            fr = " > ".join(st.frames)
            print(f"    {st.id:>4}  {st.code}:{st.src}->{st.dst}  {st.kind.value:<7} {ref:<18} {st.label}"
                  f"   [{fr}]")


def _fmt_cmd(args: argparse.Namespace) -> int:
    changed = 0
    for f in args.files:
        p = Path(f)
        if not p.is_file():
            raise UsageError(f"no such file: {f}")
        text = p.read_text(encoding="utf-8")
        out = format_module(parse_file(p))
        if args.stdout:
            sys.stdout.write(out)
        elif out != text:
            changed += 1
            if args.check:
                print(f"would reformat {p}")
            else:
                p.write_text(out, encoding="utf-8")
                print(f"reformatted {p}")
    if args.check and changed:
        return EXIT_UNEXPECTED
    return EXIT_OK
