"""CLI: `forkcheck check | lockorder | simulate | graph`."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import ir
from ..diagnostics import ForkcheckError, UsageError
from ..results import EXIT_OK, RunResult
from .options import ExploreOptions, Strategy
from ..cliargs import positive_int as _positive, seconds as _seconds


@dataclass
class Target:
    name: str
    system: ir.System
    expect: dict[str, str]
    properties: list[str] | None
    options: ExploreOptions | None


def load_target(path: str) -> Target:
    """A model file (.toml) through checker.model, or a bare spec (.fk) through checker.lang."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"no such file: {path}")
    if p.suffix == ".fk":
        lang = _require("checker.lang", "the spec loader")
        system = lang.load_spec(str(p), {})
        return Target(p.stem, system, {}, None, None)
    mod = _require("checker.model", "the model loader")
    model = mod.load_model(str(p))
    opts = None
    for attr in ("explore_options", "options"):
        v = getattr(model, attr, None)
        v = v() if callable(v) else v
        if isinstance(v, ExploreOptions):
            opts = v
            break
    return Target(getattr(model, "name", None) or p.stem, model.system, dict(getattr(model, "expect", {}) or {}),
                  getattr(model, "properties", None), opts)


def _require(module: str, what: str) -> Any:
    if importlib.util.find_spec(module) is None:
        raise UsageError(f"{what} ({module}) is not available in this build of forkcheck")
    return importlib.import_module(module)


def _add_limits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-states", type=_positive, metavar="N", help="stop after N distinct states")
    p.add_argument("--max-depth", type=_positive, metavar="D", help="do not explore beyond depth D")
    p.add_argument("--time-limit", type=_seconds, metavar="S", help="stop after S seconds")
    p.add_argument("--max-memory", type=_positive, metavar="MIB",
                   help="stop cleanly once resident memory reaches MIB mebibytes (stop reason: memory limit)")


def register(sub: Any) -> None:
    p = sub.add_parser("check", help="explore every reachable state and check the model's properties",
                       description="Explicit-state model checking of a model (.toml) or spec (.fk).")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--property", action="append", metavar="NAME", dest="properties",
                   help="check only this property (repeatable); default: the model's list, else all")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bfs", dest="strategy", action="store_const", const=Strategy.BFS,
                   help="breadth-first: shortest counterexamples (default)")
    g.add_argument("--dfs", dest="strategy", action="store_const", const=Strategy.DFS, help="depth-first")
    p.add_argument("--no-symmetry", action="store_true", help="do not reduce by thread/slot symmetry")
    p.add_argument("--no-por", action="store_true", help="no partial-order reduction")
    p.add_argument("--fingerprint", action="store_true",
                   help="store 64-bit fingerprints (less memory; reports the chance a collision hid a state)")
    p.add_argument("--dict-store", action="store_true",
                   help="keep states as Python objects (faster on small models, ~10x the memory)")
    p.add_argument("--workers", type=_positive, default=1, metavar="N", help="worker processes")
    p.add_argument("--stop-first", action="store_true", help="stop at the first violation")
    p.add_argument("--all-races", action="store_true",
                   help="races: go on after the first report and list every location and rule (slower: "
                        "the search no longer stops once races is violated)")
    p.add_argument("--race-by-thread", action="store_true",
                   help="races: the lockset rule's thread is the model thread (CPU), ignoring `context` "
                        "declarations (default: the process a CPU runs)")
    p.add_argument("--race-no-handoff", action="store_true",
                   help="races: ignore `context p new E` and `dead D` (a creator's accesses to an object that "
                        "has not run yet, and others' to one that never runs again, are not ordered with the "
                        "object's own)")
    p.add_argument("--race-ghosts", action="store_true",
                   help="races: check `ghost var`s as kernel variables too (default: ignored)")
    p.add_argument("--no-shorten", action="store_true",
                   help="keep DFS (and BFS with POR) counterexamples as found; default: re-search for a "
                        "shortest one")
    p.add_argument("--interpreted", action="store_true", help="use the reference interpreter (slow; for cross-checks)")
    p.add_argument("--trace-dir", metavar="DIR", help="write each counterexample as DIR/<property>.itf.json")
    p.add_argument("--no-trace", action="store_true", help="do not print counterexample traces")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    _add_limits(p)
    p.set_defaults(func=cmd_check, strategy=None)

    p = sub.add_parser("lockorder", help="the lock-order graph (WITNESS) over all reachable states")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--dot", metavar="FILE", help="write the graph in Graphviz dot")
    p.add_argument("--svg", metavar="FILE", help="write the graph as SVG (reversals in red; no Graphviz needed)")
    p.add_argument("--json", action="store_true")
    _add_limits(p)
    p.set_defaults(func=cmd_lockorder)

    p = sub.add_parser("simulate", help="random walks through the model")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--runs", type=_positive, default=100, metavar="N")
    p.add_argument("--depth", type=_positive, default=200, metavar="D")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="random seed (printed; default: random)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("graph", help="write the reachable state graph of a small model")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--dot", metavar="FILE", help="write the graph in Graphviz dot")
    p.add_argument("--svg", metavar="FILE", help="write the graph as SVG (no Graphviz needed)")
    p.add_argument("--limit", type=_positive, default=2000, metavar="N",
                   help="refuse models with more than N states (default 2000)")
    p.set_defaults(func=cmd_graph)


# CLI switch (argparse dest) -> the ExploreOptions field it sets, and to what
_SWITCHES = (
    ("no_symmetry", "symmetry", False), ("no_por", "por", False), ("fingerprint", "fingerprint", True),
    ("dict_store", "compact", False), ("stop_first", "stop_first", True), ("no_shorten", "shorten", False),
    ("all_races", "all_races", True), ("race_by_thread", "race_contexts", False),
    ("race_no_handoff", "race_handoff", False), ("race_ghosts", "race_skip_ghosts", False),
    ("interpreted", "compiled", False), ("json", "progress", False),
)


def options_from_args(args: argparse.Namespace, base: ExploreOptions | None) -> ExploreOptions:
    import dataclasses
    o = base or ExploreOptions()
    ch: dict[str, Any] = {}
    if getattr(args, "strategy", None) is not None:
        ch["strategy"] = args.strategy
    for a in ("max_states", "max_depth", "time_limit", "max_memory"):
        if getattr(args, a, None) is not None:
            ch[a] = getattr(args, a)
    for flag, option, value in _SWITCHES:
        if getattr(args, flag, False):
            ch[option] = value
    if getattr(args, "workers", 1) != 1:
        ch["workers"] = args.workers
    return dataclasses.replace(o, **ch)


def _print_trace(trace: Any) -> None:
    try:
        from ..trace.text import render
        from ..trace.view import build_view
        out = render(build_view(trace))
        if out is not None:
            print(out)
        return
    except ForkcheckError:
        raise
    except Exception:   # the renderer is another stage's: fall back to one line per step
        pass
    for i, st in enumerate(trace.steps[1:], 1):
        ref = f" @{st.ref}" if st.ref else ""
        print(f"  {i:>3}. {st.thread:<10} {st.label}{ref}")


def _print_race_list(res: RunResult) -> None:
    """--all-races: every race report (location x rule) with the accesses behind it."""
    for p in res.properties:
        items = p.details.get("races") or []
        if p.name != "races" or not items:
            continue
        print(f"\n{len(items)} race reports (location x rule):")
        for it in items:
            print(f"  {it['kind']:<10} {it['location']}: {it['message']}")
            for a in it.get("accesses", []):
                print(f"      {a}")


def cmd_check(args: argparse.Namespace) -> int:
    from .check import check
    tgt = load_target(args.model)
    opts = options_from_args(args, tgt.options)
    props = args.properties or tgt.properties
    res = check(tgt.system, opts, model_name=tgt.name, expect=tgt.expect, properties=props)
    if args.trace_dir:
        for p in res.properties:
            if p.trace is not None:
                f = Path(args.trace_dir) / f"{p.name}.itf.json"
                p.trace.write(f)
                p.trace_file = str(f)
    if args.json:
        print(json.dumps(res.to_json(), indent=1))
    else:
        print(res.describe())
        if opts.all_races:
            _print_race_list(res)
        if not args.no_trace:
            for p in res.properties:
                if p.trace is not None:
                    print(f"\ncounterexample for {p.name} ({p.kind}): {p.message}")
                    _print_trace(p.trace)
    return res.exit_code()


def cmd_lockorder(args: argparse.Namespace) -> int:
    from .check import Explorer
    tgt = load_target(args.model)
    opts = options_from_args(args, tgt.options)
    import dataclasses
    opts = dataclasses.replace(opts, por=False, stop_first=False)
    ex = Explorer(tgt.system, opts, ["lock_order"], tgt.name)
    res = ex.run()
    lo = ex.lockorder
    assert lo is not None
    g = lo.graph()
    revs = lo.reversals()
    bad = reversal_edges(revs)
    if args.dot or args.svg:
        from ..trace.itf import write_atomic
        if args.dot:
            lines = ["digraph lockorder {", "  rankdir=LR; node [shape=box];"]
            for u, v, d in sorted(g.edges(data=True)):
                color = ' color="red"' if (u, v) in bad else ""
                lines.append(f"  {json.dumps(u)} -> {json.dumps(v)} "
                             f"[label={json.dumps(_order_label(tgt.system, d['witness']))}{color}];")
            lines.append("}")
            write_atomic(args.dot, "\n".join(lines) + "\n")
        if args.svg:
            from . import svg
            nodes = [svg.Node(n, (n,)) for n in g.nodes]
            edges = [svg.Edge(u, v, _order_label(tgt.system, d["witness"]), (u, v) in bad)
                     for u, v, d in g.edges(data=True)]
            title = (f"{tgt.name}: lock order, {g.number_of_nodes()} classes, {g.number_of_edges()} edges, "
                     f"{len(revs)} reversal{'' if len(revs) == 1 else 's'} (red)")
            write_atomic(args.svg, svg.render(nodes, edges, title=title))
    if args.json:
        print(json.dumps({"edges": [{"first": u, "second": v, "declared": d["declared"],
                                     "observed": d["witness"] is not None} for u, v, d in sorted(g.edges(data=True))],
                          "reversals": [lo.describe(r) for r in revs], "stop_reason": res.stop.value}, indent=1))
    else:
        print(f"{tgt.name}: {g.number_of_nodes()} lock classes, {g.number_of_edges()} order edges "
              f"({res.stats.states:,} states, stopped: {res.stop.value})")
        for u, v, d in sorted(g.edges(data=True)):
            w = d["witness"]
            how = "declared" if w is None else (f"{w.held_lock} then {w.acquired_lock} by "
                                                 f"{tgt.system.threads[w.tid].name} at `{tgt.system.steps[w.step_id].label}`")
            print(f"  \"{u}\" -> \"{v}\": {how}")
        for r in revs:
            print(f"  {lo.describe(r)}")
        if not revs:
            print("  no lock-order reversal")
    res.properties[0].expected = tgt.expect.get("lock_order")
    return res.exit_code()


def reversal_edges(revs: list[Any]) -> set[tuple[str, str]]:
    """The edges of the reported reversals: each cycle's ring, a duplicate's self-edge."""
    return {(r.classes[i], r.classes[(i + 1) % len(r.classes)]) for r in revs for i in range(len(r.classes))}


def _order_label(system: ir.System, w: Any) -> str:
    """Who first took the order, at which step and seed line."""
    if w is None:
        return "declared"
    step = system.steps[w.step_id]
    return f"{system.threads[w.tid].name}: {step.label}" + (f" @{step.ref}" if step.ref else "")


def cmd_simulate(args: argparse.Namespace) -> int:
    from .simulate import simulate
    tgt = load_target(args.model)
    res = simulate(tgt.system, runs=args.runs, depth=args.depth, seed=args.seed, model_name=tgt.name,
                   expect=tgt.expect, properties=args.__dict__.get("properties") or tgt.properties)
    if args.json:
        print(json.dumps(res.to_json(), indent=1))
    else:
        print(res.describe())
        for p in res.properties:
            if p.trace is not None:
                print(f"\ncounterexample for {p.name} ({p.kind}): {p.message}")
                _print_trace(p.trace)
    return res.exit_code()


def cmd_graph(args: argparse.Namespace) -> int:
    from .graph import write_state_graph
    if not (args.dot or args.svg):
        raise UsageError("graph: say where to write it: --dot FILE and/or --svg FILE")
    tgt = load_target(args.model)
    n = write_state_graph(tgt.system, args.dot, limit=args.limit, svg_path=args.svg)
    print(f"{tgt.name}: {n} states written to {' and '.join(f for f in (args.dot, args.svg) if f)}")
    return EXIT_OK
