"""Generated specs for the robustness tests: models whose state space no test finishes."""

from __future__ import annotations

from pathlib import Path

# Six counters 0..15 stepped by two threads: 16^6 valuations times the thread pcs, so every
# run here ends by a limit or a signal, never by finishing. The invariant is violated only
# deep (sum >= 90), which BFS does not reach in these tests; a data race on `a` is found at
# once, so an interrupted run has a counterexample file to write.
BIG_SPEC = """\
var a: 0..15 = 0
var b: 0..15 = 0
var c: 0..15 = 0
var d: 0..15 = 0
var e: 0..15 = 0
var f: 0..15 = 0
thread t[i in 0..1] {
  loop {
    choose { a := (a + 1) % 16 } or { b := (b + 1) % 16 } or { c := (c + 1) % 16 }
    or { d := (d + 1) % 16 } or { e := (e + 1) % 16 } or { f := (f + 1) % 16 }
  }
}
invariant small: a + b + c + d + e + f < 90
"""

BIG_MODEL = """\
spec = "big.fk"
description = "robustness tests: a state space no test run finishes"

[expect]
races = "violated"
"""


def write_big(tmp: Path) -> tuple[Path, Path]:
    spec = tmp / "big.fk"
    spec.write_text(BIG_SPEC, encoding="utf-8")
    model = tmp / "big.toml"
    model.write_text(BIG_MODEL, encoding="utf-8")
    return spec, model
