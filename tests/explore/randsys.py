"""Hypothesis strategy: small random IR systems (threads, shared ints, locks)."""

from __future__ import annotations

from hypothesis import strategies as st

from checker import ir
from irbuild import SysBuilder, bin, c, g, gv, loc, lv, mutex

V = ir.IntT(0, 2)


@st.composite
def systems(draw, max_threads: int = 3, family: bool | None = None, local_loops: bool = False) -> ir.System:
    """local_loops adds thread-local steps and loops (what POR reduces) and a leads-to `lt`."""
    nvars = draw(st.integers(1, 2))
    nlocks = draw(st.integers(0, 2))
    b = SysBuilder("rand")
    for i in range(nvars):
        b.glob(f"v{i}", V, draw(st.integers(0, 2)))
    locks = [b.glob(f"m{i}", mutex(f"class{i}")) for i in range(nlocks)]
    ncodes = 1 if (family if family is not None else draw(st.booleans())) else draw(st.integers(1, 2))
    nthreads = draw(st.integers(1, max_threads))
    for ci in range(ncodes):
        nsteps = draw(st.integers(1, 4))
        cb = b.code(f"c{ci}", exit=nsteps)
        cb.local("t", V, 0)
        for s in range(nsteps):
            kinds = ["load", "store", "inc", "lock", "unlock", "assert", "await", "branch"]
            if local_loops:
                kinds += ["local", "localloop", "spin", "choice"]
            kind = draw(st.sampled_from(kinds))
            var = f"v{draw(st.integers(0, nvars - 1))}"
            if kind == "load":
                cb.step(s, s + 1, ir.Assign(lv("t", V), g(var, V)), label=f"t := {var}")
            elif kind == "store":
                cb.step(s, s + 1, ir.Assign(gv(var, V), loc("t", V)), label=f"{var} := t")
            elif kind == "inc":
                cb.step(s, s + 1, ir.Assign(gv(var, V), bin(ir.BinOp.ADD, g(var, V), c(1))), label=f"{var}++")
            elif kind in ("lock", "unlock") and locks:
                lk = draw(st.sampled_from(locks))
                eff = ir.Acquire(lk) if kind == "lock" else ir.Release(lk)
                cb.step(s, s + 1, eff, kind=ir.StepKind.LOCK if kind == "lock" else ir.StepKind.UNLOCK,
                        label=f"{kind}({lk.name})")
            elif kind == "assert":
                cb.step(s, s + 1, ir.Assert(bin(ir.BinOp.LE, g(var, V), c(draw(st.integers(0, 2)))), "a"),
                        kind=ir.StepKind.ASSERT, label="assert a")
            elif kind == "await":
                cb.step(s, s + 1, guard=bin(ir.BinOp.GE, g(var, V), c(1)), kind=ir.StepKind.AWAIT,
                        label=f"await {var} >= 1")
            elif kind == "branch" and s > 0:
                cb.step(s, s - 1, guard=bin(ir.BinOp.EQ, g(var, V), c(0)), kind=ir.StepKind.COND, label="loop")
                cb.step(s, s + 1, guard=bin(ir.BinOp.NE, g(var, V), c(0)), kind=ir.StepKind.COND, label="exit")
            elif kind == "local":
                cb.step(s, s + 1, ir.Assign(lv("t", V), bin(ir.BinOp.MOD, bin(ir.BinOp.ADD, loc("t", V), c(1)), c(3))),
                        label="t := (t + 1) % 3")
            elif kind == "localloop" and s > 0:
                cb.step(s, s - 1, guard=bin(ir.BinOp.EQ, loc("t", V), c(0)), kind=ir.StepKind.COND, label="t == 0")
                cb.step(s, s + 1, guard=bin(ir.BinOp.NE, loc("t", V), c(0)), kind=ir.StepKind.COND, label="t != 0")
            elif kind == "choice":
                # two local steps enabled at once: an ample set of more than one step
                cb.step(s, s + 1, ir.Assign(lv("t", V), c(1)), label="t := 1")
                cb.step(s, s + 1, ir.Assign(lv("t", V), c(2)), label="t := 2")
            elif kind == "spin":
                cb.step(s, s, kind=ir.StepKind.SKIP, label="spin")
                cb.step(s, s + 1, kind=ir.StepKind.SKIP, label="go on")
            else:
                cb.step(s, s + 1, kind=ir.StepKind.SKIP, label="skip")
    if ncodes == 1:
        b.family("cpu", "c0", nthreads)
    else:
        for i in range(nthreads):
            b.thread(f"th{i}", f"c{i % ncodes}")
    b.invariant("inv", bin(ir.BinOp.LE, g("v0", V), c(draw(st.integers(0, 2)))))
    b.eventually("ev", bin(ir.BinOp.EQ, g("v0", V), c(2)))
    if local_loops:
        b.eventually("lt", bin(ir.BinOp.GE, g(f"v{nvars - 1}", V), c(1)), p=bin(ir.BinOp.EQ, g("v0", V), c(1)))
    return b.build()
