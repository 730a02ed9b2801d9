"""Reference-count bookkeeping of fork1's shared objects, for any number of processes.

For one arbitrary object o of each refcounted kind (ucred, plimit, procsig,
pargs, filedesc, vmspace, vnode) the state is a counter abstraction:
`refcnt`, `holders` (processes, live or zombie, whose pointer to o counts as
a reference) and `freed`. Every event of the kernel changes these by a known
amount -- fork with each flag combination (seed lines 412-563), rfork without
RFPROC (221-246), exit, reap (wait) and exec -- whatever the number of other
processes, so proving

    Inv(o):  freed => holders == 0,   !freed => refcnt == holders >= 1

preserved by every event proves it for every process count. An object is
freed only when its count drops to zero (`if (--refcnt == 0) free`), so
Inv says it is freed exactly when its last holder lets go.

With a racy increment (a load and a store, under p1's lock only, while the
other holders drop their references under their own locks), a bounded z3
search interleaves a second event between the load and the store and
exhibits the lost update.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field
from typing import Callable

import z3

from .encode import solve
from .pidscan import Obligation, Status, _valid


class Share(str, enum.Enum):
    SHARE = "share"      # child points to p1's object, count + 1
    NEW = "new"          # child gets a fresh object (count 1); o is untouched
    NONE = "none"        # no object of this kind involved


class Drop(str, enum.Enum):
    EXIT = "exit"        # released by exit1
    REAP = "reap"        # released by wait1 (the zombie still holds it)


@dataclass(frozen=True)
class Kind:
    name: str
    counter: str
    drop: Drop
    fork: Callable[[frozenset[str]], Share]      # fork1 with RFPROC, by flags
    self_unshare: Callable[[frozenset[str]], bool]   # rfork without RFPROC replaces p1's object
    exec_replaces: bool                             # exec drops the old object for a new one
    lines: str                                      # seed lines
    inc_line: int                                   # the increment fork1 does
    racy_2001: bool                                 # increment under p1's lock only in 2001


# Fork flags that change refcounts, and PL_SHAREMOD (a property of p1's plimit
# that decides limcopy vs share, line 481) treated as one more input.
FLAGS = ("RFPROC", "RFFDG", "RFCFDG", "RFMEM", "RFSIGSHARE", "PL_SHAREMOD")

KINDS: tuple[Kind, ...] = (
    Kind("ucred", "cr_ref", Drop.REAP, lambda f: Share.SHARE, lambda f: False, True, "412-413", 412, True),
    Kind("pargs", "ar_ref", Drop.REAP, lambda f: Share.SHARE, lambda f: False, True, "415-416", 416, True),
    Kind("procsig", "ps_refcnt", Drop.REAP,
         lambda f: Share.SHARE if "RFSIGSHARE" in f else Share.NEW, lambda f: False, False, "418-451", 420, True),
    Kind("vnode", "v_usecount", Drop.EXIT, lambda f: Share.SHARE, lambda f: False, True, "459-463", 463, False),
    Kind("filedesc", "fd_refcnt", Drop.EXIT,
         lambda f: Share.NEW if ("RFCFDG" in f or "RFFDG" in f) else Share.SHARE,
         lambda f: "RFCFDG" in f or "RFFDG" in f, True, "229-246, 465-472", 470, True),
    Kind("plimit", "p_refcnt", Drop.EXIT,
         lambda f: Share.NEW if "PL_SHAREMOD" in f else Share.SHARE, lambda f: False, False, "480-486", 485, True),
    Kind("vmspace", "vm_refcnt", Drop.EXIT,
         lambda f: Share.SHARE if "RFMEM" in f else Share.NEW, lambda f: "RFMEM" not in f, True, "222, 563", 563, False),
)


@dataclass
class Obj:
    refcnt: z3.ArithRef
    holders: z3.ArithRef
    zombies: z3.ArithRef    # holders that have exited (kinds dropped at reap)
    freed: z3.BoolRef


def _fresh(tag: str) -> Obj:
    return Obj(z3.Int(f"refcnt{tag}"), z3.Int(f"holders{tag}"), z3.Int(f"zombie_holders{tag}"),
               z3.Bool(f"freed{tag}"))


def inv(o: Obj) -> z3.BoolRef:
    return z3.And(0 <= o.zombies, o.zombies <= o.holders,
                  z3.If(o.freed, o.holders == 0, z3.And(o.refcnt == o.holders, o.holders >= 1)))


def _drop(o: Obj, zombie: bool = False) -> Obj:
    """`if (--o->refcnt == 0) free(o)` by one holder."""
    n = o.refcnt - 1
    return Obj(n, o.holders - 1, o.zombies - (1 if zombie else 0), z3.Or(o.freed, n == 0))


def _hold(o: Obj) -> Obj:
    return Obj(o.refcnt + 1, o.holders + 1, o.zombies, o.freed)


def _events(k: Kind, hold: Callable[[Obj], Obj] | None = None) -> list[tuple[str, Callable[[Obj], tuple[z3.BoolRef, Obj]]]]:
    """(name, o -> (guard, o')) for every event that touches o. `hold` is
    the fork's share step (tests replace it to check the proof can fail)."""
    hold_ = hold or _hold
    live = lambda o: z3.And(z3.Not(o.freed), o.holders - o.zombies >= 1)   # some live process holds o
    out: list[tuple[str, Callable[[Obj], tuple[z3.BoolRef, Obj]]]] = []
    out.append(("allocation (fresh object, count 1)",
                lambda o: (o.freed, Obj(z3.IntVal(1), z3.IntVal(1), z3.IntVal(0), z3.BoolVal(False)))))
    for bits in itertools.product((False, True), repeat=len(FLAGS)):
        f = frozenset(n for n, b in zip(FLAGS, bits) if b)
        if {"RFFDG", "RFCFDG"} <= f:
            continue    # EINVAL at line 213: nothing happens
        label = "|".join(sorted(f)) or "0"
        if "RFPROC" in f:
            sh = k.fork(f)
            if sh is Share.SHARE:
                out.append((f"fork1({label}) by a holder", lambda o: (live(o), hold_(o))))
        elif k.self_unshare(f):
            out.append((f"rfork({label}) without RFPROC by a holder: unshare",
                        lambda o: (z3.And(live(o), o.refcnt > 1), _drop(o))))
    if k.drop is Drop.EXIT:
        out.append(("exit1 by a holder", lambda o: (live(o), _drop(o))))
    else:
        out.append(("exit1 by a holder (keeps it as a zombie)",
                    lambda o: (live(o), Obj(o.refcnt, o.holders, o.zombies + 1, o.freed))))
        out.append(("wait1 reaps a zombie holder", lambda o: (z3.And(z3.Not(o.freed), o.zombies >= 1),
                                                            _drop(o, zombie=True))))
    if k.exec_replaces:
        out.append(("execve by a holder: old object released", lambda o: (live(o), _drop(o))))
    return out


def prove_refcounts(kinds: tuple[Kind, ...] = KINDS, timeout_ms: int = 30_000,
                    hold: Callable[[Obj], Obj] | None = None) -> list[Obligation]:
    """Inv is preserved by every event of every kind (atomic increments)."""
    out = []
    for k in kinds:
        for name, ev in _events(k, hold):
            o = _fresh("")
            g, n = ev(o)
            out.append(_valid(f"{k.name}.{k.counter}", name, z3.And(inv(o), g), inv(n), timeout_ms,
                              _show(o, n)))
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

    def describe(self) -> str:
        out = [f"{self.kind}.{self.counter}: lost update (the increment at kern_fork.c:{self.lines} is a load "
               f"and a store under p1's lock only)"]
        out += [f"  {i + 1}. {s}" for i, s in enumerate(self.steps)]
        out.append(f"  => {self.counter} = {self.final['refcnt']} with {self.final['holders']} holders: "
                   f"{self.consequence}")
        return "\n".join(out)


def find_lost_update(k: Kind, other: int) -> LostUpdate | None:
    """p1's fork loads the count, another event runs (other = 0: a second
    fork by a holder, its own load and store; 1: another holder releases
    it), then the fork stores load + 1. z3 picks the smallest count for
    which Inv fails afterwards."""
    o = _fresh("@0")
    loaded = z3.Int("loaded")
    s = z3.Solver()
    s.add(inv(o), z3.Not(o.freed), o.holders - o.zombies >= 2, loaded == o.refcnt)
    if other == 1 and k.drop is Drop.REAP:
        s.add(o.zombies >= 1)
    mid_h = o.holders + 1 if other == 0 else o.holders - 1
    fin = Obj(loaded + 1, mid_h + 1, o.zombies, z3.BoolVal(False))
    s.add(z3.Not(inv(fin)))
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
    line = f"kern_fork.c:{k.inc_line}"
    steps = [f"start: {k.counter} = {r0}, {h0} holders (the invariant holds)",
             f"cpu0, fork1 by a holder @{line}: load {k.counter} = {ld}"]
    if other == 0:
        steps.append(f"cpu1, fork1 by another holder @{line}: {k.counter} {r0} -> {r0 + 1}, its child holds it "
                     f"({h0 + 1} holders)")
    else:
        who = "wait1 reaps a zombie holder" if k.drop is Drop.REAP else "another holder exits"
        steps.append(f"cpu1, {who} and releases it: {k.counter} {r0} -> {r0 - 1} ({h0 - 1} holders)")
    fr, fh = ld + 1, val(mid_h) + 1
    steps.append(f"cpu0 stores {k.counter} = {ld} + 1 = {fr}; its child holds it ({fh} holders)")
    cons = ("too high: the object is never freed (a leak)" if fr > fh else
            f"too low: after {fr} releases it is freed while {fh - fr} holder(s) still use it (use after free)")
    return LostUpdate(k.name, k.counter, str(k.inc_line), steps, {"refcnt": fr, "holders": fh}, cons)


@dataclass
class RefcountReport:
    config: str                      # "fixed" (atomic) or "2001"
    obligations: list[Obligation]
    lost_updates: list[LostUpdate] = field(default_factory=list)

    @property
    def proved(self) -> bool:
        return all(o.status is Status.PROVED for o in self.obligations) and not self.lost_updates

    def to_json(self) -> dict[str, object]:
        return {"proof": "refcounts", "config": self.config, "verdict": "proved" if self.proved else "violated",
                "obligations": [o.to_json() for o in self.obligations],
                "lost_updates": [{"kind": u.kind, "counter": u.counter, "steps": u.steps, "final": u.final,
                                  "consequence": u.consequence} for u in self.lost_updates]}


def refcount_report(racy_2001: bool) -> RefcountReport:
    obs = prove_refcounts()
    lost = [u for k in KINDS if racy_2001 and k.racy_2001 for other in (0, 1)
            for u in [find_lost_update(k, other)] if u is not None]
    return RefcountReport("2001" if racy_2001 else "fixed", obs, lost)
