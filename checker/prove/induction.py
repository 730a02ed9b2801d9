"""k-induction on the IR, with lemmas and counterexamples to induction.

For the candidate set C (the invariants asked for, the lemmas, and the
safety properties as state predicates):

- base: no candidate fails within k-1 steps of the initial state (BMC);
- step: from any k consecutive states (s0 -> ... -> s(k-1), each in the
  type domain, each satisfying all of C, pairwise distinct) no transition
  leads to a state violating a candidate (or raises a step property).

Candidates whose step fails are dropped and the rest re-checked with fewer
assumptions (Houdini), so the survivors are exactly a jointly inductive
set: each is PROVED. A dropped candidate is a CTI -- the pre- and
post-state of a step that breaks it, which need not be reachable; it is a
reason the proof failed, not a bug -- unless the base case found a real
violation (VIOLATED, with a trace).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import z3

from .. import interrupt, ir
from ..semantics import Semantics
from .bmc import STEP_KINDS, bmc
from .encode import Z3_STOPPED, Encoder, StepEnc, SymState, make_solver, decode, solve


@dataclass
class CtiStep:
    thread: str
    label: str
    ref: str | None


@dataclass
class Cti:
    """A counterexample to induction: states[-2] --step--> states[-1]."""
    prop: str
    k: int
    states: list[dict[str, Any]]        # valuations, in the trace format's naming
    steps: list[CtiStep]                # steps[i] leads from states[i] to states[i+1]
    message: str
    assumed: list[str]                  # the candidates the pre-states satisfy

    def changed(self) -> dict[str, tuple[Any, Any]]:
        a, b = self.states[-2], self.states[-1]
        out = {}
        for key in sorted(set(a) | set(b)):
            if key == "#threads":
                for t in sorted(set(a[key]) | set(b[key])):
                    ta, tb = a[key].get(t, {}), b[key].get(t, {})
                    for f in ("pc", "locals", "wchan"):
                        if ta.get(f) != tb.get(f):
                            out[f"{t}.{f}"] = (ta.get(f), tb.get(f))
            elif a.get(key) != b.get(key):
                out[key] = (a.get(key), b.get(key))
        return out

    def describe(self) -> str:
        st = self.steps[-1]
        ref = f" @{st.ref}" if st.ref else ""
        lines = [f"CTI for {self.prop} (counterexample to induction, k={self.k}: NOT a reachable bug "
                 f"as far as this shows; the invariant is too weak to prove by induction)",
                 f"  pre-state satisfies: {', '.join(self.assumed) or '(type domain only)'}"]
        pre = self.states[-2]
        lines.append("  pre-state:")
        for key, v in pre.items():
            if key == "#threads":
                for t, tv in v.items():
                    lines.append(f"    {t}: at {tv['pc']!r}, locals {tv['locals']}"
                                 + (f", sleeping on {tv['wchan']}" if tv.get("wchan") else ""))
            else:
                lines.append(f"    {key} = {v}")
        lines.append(f"  step: {st.thread}: {st.label}{ref}")
        lines.append("  post-state (changed):")
        for key, (x, y) in self.changed().items():
            lines.append(f"    {key}: {x} -> {y}")
        lines.append(f"  {self.message}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "pre": self.states[-2], "post": self.states[-1],
                "step": {"thread": self.steps[-1].thread, "label": self.steps[-1].label, "ref": self.steps[-1].ref},
                "changed": {k: [a, b] for k, (a, b) in self.changed().items()}, "assumed": self.assumed,
                "message": self.message}


class Outcome(str):
    PROVED = "proved"
    CTI = "cti"
    UNKNOWN = "unknown"


@dataclass
class InductionResult:
    proved: list[str] = field(default_factory=list)
    ctis: dict[str, Cti] = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)
    violated: dict[str, Any] = field(default_factory=dict)     # prop -> BmcFinding (base case)
    interrupted: bool = False          # Ctrl-C/SIGTERM: violations and CTIs so far, nothing proved
    seconds: float = 0.0


def _state_pred(enc: Encoder, s: SymState, name: str, kind: str, invs: dict[str, ir.Invariant],
                encs: list[StepEnc] | None) -> z3.BoolRef:
    """A candidate as a predicate of one state; step properties: no enabled
    transition from s raises them."""
    if kind == "invariant":
        return enc.invariant(s, invs[name])
    if kind == "deadlock":
        return z3.Not(enc.deadlock(s, encs))
    assert encs is not None
    bad = [z3.And(e.enabled, z3.Or(cs)) for e in encs
           for cs in [[c for p, c, _ in e.violations if p == name]] if cs]
    return z3.Not(z3.Or(bad)) if bad else z3.BoolVal(True)


def k_induction(system: ir.System, targets: list[str], lemmas: list[str], k: int = 1,
                timeout_s: float | None = None, progress: Callable[[str], None] | None = None) -> InductionResult:
    t0 = time.monotonic()
    enc = Encoder(system)
    kinds = system.property_names
    invs = {i.name: i for i in system.invariants}
    res = InductionResult()
    supported = ("invariant", "deadlock") + STEP_KINDS
    cands = [c for c in dict.fromkeys(targets + lemmas) if kinds.get(c) in supported]

    # base case: a real violation within k-1 steps
    if progress:
        progress(f"base case: {k - 1} steps")
    base = bmc(system, cands, max(0, k - 1), timeout_s, enc=enc) if cands else None
    if base is not None:
        for p, f in base.found.items():
            res.violated[p] = f
        for p, why in base.unknown.items():
            res.unknown[p] = why
        if base.interrupted:
            res.interrupted = True
            res.seconds = time.monotonic() - t0
            return res
    alive = [c for c in cands if c not in res.violated and c not in res.unknown]
    try:
        _houdini(enc, system, res, alive, k, timeout_s, t0, progress)
    except KeyboardInterrupt:
        res.interrupted = True
    except Z3_STOPPED:
        if not interrupt.requested():
            raise
        res.interrupted = True      # a z3 call other than check() stopped by the watcher
    # the survivors are proved only once no candidate falls any more
    res.proved = [] if res.interrupted else [c for c in cands if c in alive]
    res.seconds = time.monotonic() - t0
    return res


def _houdini(enc: Encoder, system: ir.System, res: InductionResult, alive: list[str], k: int,
             timeout_s: float | None, t0: float, progress: Callable[[str], None] | None) -> None:
    """The step case: drop the candidates whose step fails (into res.ctis / res.unknown)
    until the rest are jointly inductive; `alive` is left holding them."""
    kinds = system.property_names
    invs = {i.name: i for i in system.invariants}

    # step case, Houdini over the candidates
    states = [enc.fresh_state(f"i{j}") for j in range(k + 1)]
    encs = [enc.steps(s) for s in states]
    sels = [z3.Int(f"sel@i{j}") for j in range(k)]
    frame: list[z3.BoolRef] = [enc.type_ok(s) for s in states]
    for j in range(k - 1):
        frame.append(enc.next_formula(states[j], states[j + 1], sels[j], encs[j]))
    if k > 1:   # simple path: the k pre-states are distinct
        for a in range(k):
            for b in range(a + 1, k):
                frame.append(z3.Not(enc.equal(states[a], states[b])))
    last_move = enc.next_formula(states[k - 1], states[k], sels[k - 1], encs[k - 1])
    preds = {c: [_state_pred(enc, s, c, kinds[c], invs, encs[j]) for j, s in enumerate(states)] for c in alive}

    changed = True
    while changed and alive:
        changed = False
        for c in list(alive):
            if progress:
                progress(f"step case: {c}")
            slv = make_solver(None if timeout_s is None else
                              int((timeout_s - (time.monotonic() - t0)) * 1000))
            slv.add(frame)
            for a in alive:
                slv.add(z3.And(preds[a][:k]))
            if kinds[c] in STEP_KINDS:
                # "no step from here raises c" is the state predicate: assumed
                # of s0..s(k-1), to show of sk
                bad_sel = z3.Int("bad_sel")
                alts = []
                for i, e in enumerate(encs[k]):
                    cs = [cc for p, cc, _ in e.violations if p == c]
                    if cs:
                        alts.append(z3.And(bad_sel == i, e.enabled, z3.Or(cs)))
                slv.add(last_move, z3.Or(alts) if alts else z3.BoolVal(False))
            else:
                slv.add(last_move, z3.Not(preds[c][k]))
            r = solve(slv)
            if r == z3.unsat:
                continue
            alive.remove(c)
            changed = True
            if r == z3.unknown:
                res.unknown[c] = slv.reason_unknown()
                continue
            m = slv.model()
            if kinds[c] in STEP_KINDS:
                i = m.eval(bad_sel, model_completion=True).as_long()
                moves = [enc.transitions[m.eval(x, model_completion=True).as_long()] for x in sels]
                moves.append(enc.transitions[i])
                msg = next((mm for p, cc, mm in encs[k][i].violations
                            if p == c and z3.is_true(m.eval(cc, model_completion=True))), c) + \
                    f" (in a state one step after a state where no step raises {c})"
                shown = states
                post = None
            else:
                moves = [enc.transitions[m.eval(x, model_completion=True).as_long()] for x in sels]
                msg = ("no deadlock before the step, a deadlock after it" if kinds[c] == "deadlock" else
                       f"{kinds[c]} {c} holds before the step and is false after it")
                shown = states
                post = True
            res.ctis[c] = _make_cti(enc, m, c, k, shown, moves, msg, [a for a in alive] + [c], post is None)


def _make_cti(enc: Encoder, m: z3.ModelRef, prop: str, k: int, states: list[SymState],
              moves: list[tuple[int, ir.Step]], msg: str, assumed: list[str], step_prop: bool) -> Cti:
    sem = Semantics(enc.system)
    concrete = [decode(enc, s, m) for s in states]
    if step_prop:
        # the violating step's after-state, from the interpreter (the step is terminal)
        t, st = moves[-1]
        tr = sem.run_step(concrete[-1], t, st)
        concrete.append(tr.state if tr is not None else concrete[-1])
    vals = [sem.valuation(s) for s in concrete]
    steps = [CtiStep(enc.system.threads[t].name, st.label, str(st.ref) if st.ref else None) for t, st in moves]
    return Cti(prop, k, vals, steps, msg, sorted(set(assumed) - {prop}) + [prop])
