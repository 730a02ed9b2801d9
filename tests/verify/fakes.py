"""A fake engine runner: verify is tested on hand-made RunResults, independent of the engines."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from checker import ir
from checker.diagnostics import ModelError, Span
from checker.results import PropertyResult, RunResult, Stats, StopReason, Verdict
from checker.verify import ModelRun, VerifyOptions

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "trace"))
from samples import lock_wait, nprocs_race, ppwait_lasso  # noqa: E402


def result(model: str, *props: PropertyResult, stop: StopReason = StopReason.FINISHED,
           engine: str = "explore") -> RunResult:
    return RunResult(model=model, engine=engine, stop=stop, properties=list(props),
                     stats=Stats(states=120, transitions=300, depth=9, seconds=0.5))


def prop(name: str, kind: str, verdict: Verdict, trace=None, message: str = "",
         seconds: float = 0.25) -> PropertyResult:
    return PropertyResult(name=name, kind=kind, verdict=verdict, trace=trace, message=message, seconds=seconds)


# Each scenario: model file stem -> (expect, results). Traces are built fresh on each call.
Scenario = dict[str, Callable[[], tuple[dict[str, str], list[RunResult]]]]


def standard() -> Scenario:
    return {
        "race": lambda: ({"nprocs_bounded": "violated", "pid_unique": "holds"}, [result(
            "race",
            prop("nprocs_bounded", "invariant", Verdict.VIOLATED, nprocs_race(), "nprocs = 3 exceeds maxproc = 2"),
            prop("pid_unique", "invariant", Verdict.HOLDS))]),
        "ppwait": lambda: ({"ppwait_ends": "violated", "deadlock": "holds"}, [result(
            "ppwait",
            prop("ppwait_ends", "leadsto", Verdict.VIOLATED, ppwait_lasso(), "P_PPWAIT stays set forever"),
            prop("deadlock", "deadlock", Verdict.HOLDS))]),
    }


def fake_system(spec: Path) -> SimpleNamespace:
    """Just what verify reads from an ir.System: property declarations with spans."""
    nprocs = ir.GlobalRead("nprocs", ir.IntT(0, 4))
    bounded = ir.Binary(ir.BinOp.LE, nprocs, ir.GlobalRead("maxproc", ir.IntT(0, 4)), ir.BoolT())
    invs = (ir.Invariant("nprocs_bounded", bounded, span=Span(str(spec), 12, 11)),)
    leads = (ir.LeadsTo("ppwait_ends", (), ir.Const(True, ir.BoolT()), ir.Const(True, ir.BoolT()),
                        span=Span(str(spec), 20, 10)),)
    return SimpleNamespace(invariants=invs, leadsto=leads, property_names={})


def runner(scenario: Scenario):
    def run(path: Path, opts: VerifyOptions) -> ModelRun:
        if path.stem not in scenario:
            raise ModelError("unknown constant MAXPROCS", Span(str(path), 3, 1))
        expect, results = scenario[path.stem]()
        for r in results:
            for p in r.properties:
                p.expected = expect.get(p.name)
        spec = path.parent.parent / "spec" / f"{path.stem}.fk"
        return ModelRun(name=path.stem, model_file=path, spec_file=str(spec), expect=expect, results=results,
                        system=fake_system(spec))
    return run


def model_files(root: Path, *names: str) -> list[Path]:
    (root / "models").mkdir(exist_ok=True)
    out = []
    for n in names:
        p = root / "models" / f"{n}.toml"
        p.write_text('spec = "../spec/x.fk"\n')
        out.append(p)
    return out


__all__ = ["lock_wait", "nprocs_race", "ppwait_lasso", "result", "prop", "runner", "standard", "model_files"]
