"""Reference counts of the spec's shared objects, for any number of processes.

For one arbitrary object o of each refcounted kind of the spec (every
`struct ... refcount FIELD`: ucred, plimit, procsig, pargs, filedesc,
vmspace, vnode in spec/fork1.fk) the state is a counter abstraction:
`refcnt`, `holders` (records, live or zombie, whose `ref K` field points to
o) and `freed`. What each syscall does to them is not written here: it is
derived from the spec's IR by refcount_ir.py, which runs the syscall's steps
symbolically from every quiescent state where counts equal holders, for
fork1 with every flag combination, exit1, wait, execve and the rest. Each
event's effect is a constant delta per case of o (free; held by the caller;
held by a zombie; count 1), whatever the number of other processes, so
proving

    Inv(o):  freed => holders == 0,   !freed => refcnt == holders (>= 1 for kinds freed at zero)

preserved by every derived (event, case, delta) proves it for every
process count. An object is freed only when its count drops to zero, so Inv
says it is freed exactly when its last holder lets go.

The 2001 increments the spec writes `racy` (a load and a store) are found in
the IR too; z3 interleaves a derived event of another CPU between the load
and the store and exhibits the lost update. refcount_replay.py then finds
that schedule in the explorer over a bounded model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import z3

from .encode import solve
from .pidscan import Obligation, Status, _valid
from .refcount_ir import DEFAULT_SPEC, Case, DeriveError, Delta, Derivation, KindIR, RacyStep, derive, kinds_of


LEMMA = "pointer lemma"


@dataclass
class Obj:
    refcnt: z3.ArithRef
    holders: z3.ArithRef
    freed: z3.BoolRef


def _fresh(tag: str) -> Obj:
    return Obj(z3.Int(f"refcnt{tag}"), z3.Int(f"holders{tag}"), z3.Bool(f"freed{tag}"))


def inv(o: Obj, freed_at_zero: bool = True) -> z3.BoolRef:
    return z3.If(o.freed, z3.And(o.holders == 0, o.refcnt == 0),
                 z3.And(o.refcnt == o.holders, o.holders >= (1 if freed_at_zero else 0)))


def guard(o: Obj, c: Case) -> z3.BoolRef:
    """The abstract states of a case: the caller and a zombie are distinct holders."""
    if c.freed:
        return o.freed
    need = int(c.actor) + int(c.zombie)
    return z3.And(z3.Not(o.freed), o.holders >= need, (o.refcnt == 1) if c.last else (o.refcnt != 1))


def apply(o: Obj, d: Delta) -> Obj:
    return Obj(o.refcnt + d.dr, o.holders + d.dh, z3.BoolVal(d.freed_after))


def prove_derived(der: Derivation, timeout_ms: int = 30_000) -> list[Obligation]:
    """Inv is established by the init block and preserved by every derived
    delta; every event gives back the pointer lemma its pre-state assumes."""
    out = []
    pf = der.facts
    for ev in der.events:
        st = {True: Status.PROVED, False: Status.FAILED, None: Status.UNKNOWN}[ev.lemma]
        out.append(Obligation(LEMMA, f"{ev.name}: afterwards a running process holds every counted pointer, "
                                     f"a zombie none that {pf.exit_event if pf else 'its exit'} releases", st, 0.0,
                              {"counterexample": ev.lemma_cex} if ev.lemma_cex else {}))
    for k in der.kinds:
        grp = f"{k.name}.{k.counter}"
        t0 = time.monotonic()
        ok = der.init_ok[k.name]
        out.append(Obligation(grp, "init block: every count equals its holders", Status.PROVED if ok else Status.FAILED,
                              time.monotonic() - t0, {} if ok else {"init": "a count differs from its holders"}))
        for ev in der.events:
            ds = ev.deltas[k.name]
            if not ds:
                out.append(Obligation(grp, f"{ev.name}: no run changes refcnt, holders or freed", Status.PROVED, 0.0))
            for d in ds:
                o = _fresh("")
                n = apply(o, d)
                name = f"{ev.name} [{d.case.describe()}]: {d.describe()}" + (f" (e.g. rflags {d.flags})"
                                                                           if d.flags else "")
                out.append(_valid(grp, name, z3.And(inv(o, k.freed_at_zero), guard(o, d.case)),
                                  inv(n, k.freed_at_zero), timeout_ms, _show(o, n)))
    return out


def _show(o: Obj, n: Obj) -> Callable[[z3.ModelRef], dict[str, object]]:
    def f(m: z3.ModelRef) -> dict[str, object]:
        v = lambda e: str(m.eval(e, model_completion=True))
        return {"before": {"refcnt": v(o.refcnt), "holders": v(o.holders), "freed": v(o.freed)},
                "after": {"refcnt": v(n.refcnt), "holders": v(n.holders), "freed": v(n.freed)}}
    return f


# --------------------------------------------------------- the racy increment


@dataclass
class LostUpdate:
    kind: str
    counter: str
    lines: str
    steps: list[str]
    final: dict[str, int | bool]
    consequence: str
    racy: RacyStep | None = None       # the load/store of the increment
    other: str = ""                    # the event interleaved: "release" or "fork"
    other_event: str = ""              # its name in the derivation
    replay: dict[str, Any] | None = None   # filled by refcount_replay

    def describe(self) -> str:
        at = self.racy.where if self.racy else self.lines
        out = [f"{self.kind}.{self.counter}: lost update (the increment at {at} is a load "
               f"and a store: `racy` in the spec)"]
        out += [f"  {i + 1}. {s}" for i, s in enumerate(self.steps)]
        out.append(f"  => {self.counter} = {self.final['refcnt']} with {self.final['holders']} holders: "
                   f"{self.consequence}")
        return "\n".join(out)


def find_lost_update(k: KindIR, r: RacyStep, other: Delta, other_event: str, how: str,
                     loader: str) -> LostUpdate | None:
    """A fork (`loader`) by a holder loads the count (racy step r), another CPU's event
    changes it by `other` (derived), then the fork stores load + 1 and its
    child holds o. z3 picks the smallest count for which Inv fails."""
    o = _fresh("@0")
    loaded = z3.Int("loaded")
    s = z3.Solver()
    # the loader holds o, and so does the other event's process
    s.add(inv(o, k.freed_at_zero), z3.Not(o.freed), o.holders >= 2, guard(o, other.case), loaded == o.refcnt)
    mid = apply(o, other)
    fin = Obj(loaded + r.delta, mid.holders + 1, mid.freed)
    s.add(z3.Not(mid.freed), z3.Not(inv(fin, k.freed_at_zero)))
    m = None
    for n in range(2, 8):
        s.push()
        s.add(o.refcnt == n)
        if solve(s) == z3.sat:
            m = s.model()
        s.pop()
        if m is not None:
            break
    if m is None:
        return None
    val = lambda e: m.eval(e, model_completion=True).as_long()
    r0, h0, ld = val(o.refcnt), val(o.holders), val(loaded)
    steps = [f"start: {k.counter} = {r0}, {h0} holders (the invariant holds)",
             f"cpu0, {loader} by a holder @{r.where}: load {k.counter} = {ld}  [{r.label} [load]]"]
    mr, mh = r0 + other.dr, h0 + other.dh
    steps.append(f"cpu1, {other_event} by another holder: {k.counter} {r0} -> {mr} ({mh} holders)")
    fr, fh = ld + r.delta, mh + 1
    steps.append(f"cpu0 stores {k.counter} = {ld} + 1 = {fr}; its child holds it ({fh} holders)")
    cons = ("too high: the object is never freed (a leak)" if fr > fh else
            f"too low: after {fr} releases it is freed while {fh - fr} holder(s) still use it (use after free)")
    return LostUpdate(k.name, k.counter, str(r.line or "?"), steps, {"refcnt": fr, "holders": fh}, cons,
                      r, how, other_event)


def lost_updates(der: Derivation) -> list[LostUpdate]:
    """For every racy increment in an event that gives the caller's object
    to a new holder (fork1): a release and a second such event by other
    holders, each taken from the derived events."""
    out = []
    for k in der.kinds:
        seen: set[int | None] = set()
        for r in k.racy:
            forks = {ev.name: ev.proc for ev in der.events if ev.proc and ev.proc in r.frames}
            if r.delta != 1 or not forks or r.line in seen:
                continue
            seen.add(r.line)
            rel = [(ev.name, d) for ev in der.events for d in ev.deltas[k.name]
                   if not d.case.freed and d.dr == -1 and d.dh == -1 and not d.freed_after
                   and ev.name not in forks]
            inc = [(ev.name, d) for ev in der.events for d in ev.deltas[k.name]
                   if ev.name in forks and d.case.actor and d.dr == 1 and d.dh == 1]
            for how, cands in (("release", rel), ("fork", inc)):
                # every derived event that does it: the explorer may use any of them
                names = " or ".join(dict.fromkeys(n for n, _ in cands))
                for _, d in cands:
                    u = find_lost_update(k, r, d, names, how, next(iter(forks.values())))
                    if u is not None:
                        out.append(u)
                        break
    return out


@dataclass
class RefcountReport:
    config: str                      # "fixed" (atomic) or "2001"
    spec: str
    obligations: list[Obligation]
    lost_updates: list[LostUpdate] = field(default_factory=list)
    derivation: Derivation | None = None
    seconds: float = 0.0

    @property
    def proved(self) -> bool:
        return all(o.status is Status.PROVED for o in self.obligations) and not self.lost_updates

    def to_json(self) -> dict[str, object]:
        d = self.derivation
        return {"proof": "refcounts", "config": self.config, "spec": self.spec,
                "verdict": "proved" if self.proved else "violated", "seconds": round(self.seconds, 3),
                "events": [{"event": ev.name, "seed_lines": list(ev.lines), "seconds": round(ev.seconds, 3),
                            "deltas": {k: [{"case": x.case.describe(), "refcnt": x.dr, "holders": x.dh,
                                            "freed_after": x.freed_after, "example_rflags": x.flags or None}
                                           for x in v] for k, v in ev.deltas.items()}}
                           for ev in (d.events if d else [])],
                "obligations": [o.to_json() for o in self.obligations],
                "lost_updates": [{"kind": u.kind, "counter": u.counter, "line": u.racy.line if u.racy else None,
                                  "other": u.other, "other_event": u.other_event, "steps": u.steps,
                                  "final": u.final, "consequence": u.consequence, "replay": u.replay}
                                 for u in self.lost_updates]}


FIX = "FIX_REFCOUNT_ATOMIC"     # the spec's toggle between the 2001 racy increments and atomic ones


def load_for(spec: str | Path | None, racy_2001: bool):  # noqa: ANN201 -- ir.System
    """The spec with its increments racy (2001) or atomic. A spec without the toggle is taken as
    written, unless the fixed configuration is asked of racy increments: that would be proved as
    if atomic (one CPU runs a load and its store back to back)."""
    from ..lang import load_spec
    from ..lang.build import OverrideError
    try:
        return load_spec(str(spec or DEFAULT_SPEC), {FIX: not racy_2001})
    except OverrideError as e:
        if e.name != FIX:
            raise
    system = load_spec(str(spec or DEFAULT_SPEC))
    racy = [r for k in kinds_of(system) for r in k.racy]
    if racy and not racy_2001:
        st = system.steps[racy[0].store]
        raise DeriveError(f"the count update at {racy[0].where} is `racy` and the spec has no `fix {FIX}` to make "
                          f"it atomic: the fixed configuration cannot be proved (--config 2001 takes it as written)",
                          st.span)
    return system


def refcount_report(racy_2001: bool, spec: str | Path | None = None, timeout_ms: int = 60_000,
                    only: frozenset[str] | None = None) -> RefcountReport:
    t0 = time.monotonic()
    path = str(spec or DEFAULT_SPEC)
    system = load_for(path, racy_2001)
    der = derive(system, path, timeout_ms=timeout_ms, only=only)
    obs = prove_derived(der, timeout_ms)
    lost = lost_updates(der) if racy_2001 else []
    return RefcountReport("2001" if racy_2001 else "fixed", path, obs, lost, der, time.monotonic() - t0)
