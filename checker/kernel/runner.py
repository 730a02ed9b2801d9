"""Run system calls one at a time on one CPU, as a uniprocessor would: a
call runs until it returns or sleeps; after each call, calls it woke run on
to completion (or their next sleep) in wakeup order, before the next call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .kernel import Kernel, StepInfo, StepStatus
from .locks import KernelPanic
from .objects import Proc
from .syscalls import Call, start

# A pid scan with every pid in use loops forever in the real kernel (maxproc
# normally prevents it). A step budget per call turns that hang into a result.
MAX_STEPS_PER_CALL = 200_000


@dataclass
class Outcome:
    """The result of one call so far: done (result), asleep, hung or panicked."""
    call: Call
    pid: int | None
    status: str = "running"          # done, blocked, hung, panic
    result: Any = None               # SysResult when done
    wmesg: str | None = None
    completed_after: int | None = None   # index of the op after which a woken call finished
    panic: KernelPanic | None = None
    last: StepInfo | None = None

    def to_json(self) -> dict[str, Any]:
        if self.status == "done":
            out = dict(self.result.to_json())
            if self.completed_after is not None:
                out["completed_after_op"] = self.completed_after
            return out
        if self.status == "blocked":
            return {"blocked": self.wmesg}
        if self.status == "hung":
            line = None if self.last is None else self.last.seed_line
            return {"hung": f"no result after {MAX_STEPS_PER_CALL} steps", "line": line}
        assert self.panic is not None
        return self.panic.to_json()


@dataclass
class SingleCpu:
    kernel: Kernel
    slots: dict[int, Outcome] = field(default_factory=dict)   # cpu slot -> its call, while asleep
    op_index: int = -1

    def _slot(self) -> int:
        i = 0
        while i in self.kernel.cpus and not self.kernel.cpus[i].done:
            i += 1
        return i

    def _run(self, slot: int, out: Outcome) -> None:
        k = self.kernel
        info = k.run(slot, MAX_STEPS_PER_CALL)
        out.last = info
        if info.status is StepStatus.DONE:
            out.status, out.result = "done", info.result
            self.slots.pop(slot, None)
        elif info.status is StepStatus.BLOCKED:
            out.status, out.wmesg = "blocked", k.cpus[slot].wmesg or info.blocked_on
            self.slots[slot] = out
        elif info.status is StepStatus.PANIC:
            out.status, out.panic = "panic", info.panic
            self.slots.pop(slot, None)
        else:
            out.status = "hung"
            self.slots[slot] = out

    def call(self, call: Call, proc: Proc | None, **args: Any) -> Outcome:
        """Run one call (and then whatever it woke). The caller checks that
        `proc` is a live process not already in a call."""
        self.op_index += 1
        slot = self._slot()
        out = Outcome(call, None if proc is None else proc.p_pid)
        self.kernel.spawn(slot, start(self.kernel, slot, call, proc, **args), proc, call.value)
        self._run(slot, out)
        self._run_woken()
        return out

    def _run_woken(self) -> None:
        progress = True
        while progress and self.kernel.panic is None:
            progress = False
            for slot in sorted(self.slots):
                out = self.slots[slot]
                if out.status == "blocked" and self.kernel.can_step(slot):
                    self._run(slot, out)
                    if out.status == "done":
                        out.completed_after = self.op_index
                    progress = True
                    break
