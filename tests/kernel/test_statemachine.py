"""Random syscall sequences on one CPU against the kernel's invariants."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from checker.kernel import RF, Call, Kernel, KernelConfig, SingleCpu
from checker.kernel.config import PStat
from checker.kernel.invariants import all_violations, fresh_pid_ok

USER_FLAGS = [RF.RFPROC, RF.RFFDG, RF.RFCFDG, RF.RFMEM, RF.RFSIGSHARE, RF.RFTHREAD, RF.RFNOWAIT,
              RF.RFLINUXTHPN, RF.RFPPWAIT, RF.RFHIGHPID, RF.RFSTOPPED]


class KernelMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Small pid space so the wrap and the skip over pgids/sids happen often.
        self.k = Kernel(KernelConfig(PID_MAX=16, PID_FLOOR=4, PID_HIGH_FLOOR=2, maxproc=9, maxprocperuid=6))
        self.r = SingleCpu(self.k)

    def idle(self) -> list:
        return [p for p in self.k.allproc if p.p_stat is not PStat.SIDL and not self.k.busy(p)]

    def pick(self, i: int):
        ps = self.idle()
        return ps[i % len(ps)]

    def _fork(self, call: Call, i: int, **args) -> None:
        p = self.pick(i)
        out = self.r.call(call, p, **args)
        assert self.k.panic is None
        if out.status == "done" and out.result.ret:
            child = self.k.pfind(out.result.ret) or self.k.zpfind(out.result.ret)
            assert child is not None and fresh_pid_ok(self.k, child)
        elif out.status == "blocked":
            child = self.k.pfind(self.k.lastpid)
            assert child is not None and fresh_pid_ok(self.k, child)

    @rule(i=st.integers(0, 50))
    def fork(self, i: int) -> None:
        self._fork(Call.FORK, i)

    @rule(i=st.integers(0, 50))
    def vfork(self, i: int) -> None:
        self._fork(Call.VFORK, i)

    @rule(i=st.integers(0, 50), flags=st.lists(st.sampled_from(USER_FLAGS), max_size=5))
    def rfork(self, i: int, flags: list) -> None:
        bits = RF(0)
        for f in flags:
            bits |= f
        self._fork(Call.RFORK, i, flags=bits)

    @precondition(lambda self: len(self.idle()) > 2)
    @rule(i=st.integers(0, 50), status=st.integers(0, 3))
    def exit(self, i: int, status: int) -> None:
        p = self.pick(i)
        if p is self.k.initproc or p is self.k.proc0:
            return
        leads = p.p_leader is p and p.p_peers is not None
        out = self.r.call(Call.EXIT, p, status=status)
        # a thread-group leader sleeps in exit1 until its peers have exited (their SIGKILL is left out)
        assert out.status == ("blocked" if leads else "done")

    @rule(i=st.integers(0, 50), named=st.booleans())
    def wait(self, i: int, named: bool) -> None:
        p = self.pick(i)
        zombies = [c for c in p.p_children if c.p_stat is PStat.SZOMB]
        if named and zombies:
            out = self.r.call(Call.WAIT, p, child=zombies[-1].p_pid)
            assert out.result.ret == zombies[-1].p_pid
        elif zombies:
            assert self.r.call(Call.WAIT, p).result.ret == zombies[0].p_pid
        elif not p.p_children:
            assert self.r.call(Call.WAIT, p).result.errno is not None

    @rule(i=st.integers(0, 50))
    def exec(self, i: int) -> None:
        self.r.call(Call.EXEC, self.pick(i))

    @rule(i=st.integers(0, 50))
    def setsid(self, i: int) -> None:
        self.r.call(Call.SETSID, self.pick(i))

    @rule(i=st.integers(0, 50), j=st.integers(0, 50))
    def setpgid(self, i: int, j: int) -> None:
        self.r.call(Call.SETPGID, self.pick(i), pgid=self.pick(j).p_pgrp.pg_id)

    @rule(i=st.integers(0, 50), uid=st.sampled_from([0, 100, 101]))
    def setuid(self, i: int, uid: int) -> None:
        p = self.pick(i)
        if p is not self.k.proc0:
            self.r.call(Call.SETUID, p, uid=uid)

    @rule(value=st.integers(-2, 20))
    def sysctl(self, value: int) -> None:
        self.r.call(Call.SYSCTL_RANDOMPID, None, value=value)

    @rule()
    def swapper(self) -> None:
        self.r.call(Call.SWAPPER, None)

    @invariant()
    def holds(self) -> None:
        assert self.k.panic is None, self.k.panic
        assert all_violations(self.k) == []
        asleep = sum(1 for c in self.k.cpus.values() if not c.done)
        assert all(not self.k.can_step(c) for c in self.k.cpus)   # one CPU: nothing left runnable
        assert asleep == len(self.r.slots)


TestKernelMachine = KernelMachine.TestCase
TestKernelMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
