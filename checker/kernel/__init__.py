"""The executable reference kernel: FreeBSD's process management at the seed's
revision, written directly in Python and independently of spec/fork1.fk.

Each kernel function is a generator that yields before every atomic step with
the seed line it cites; `Kernel.step(cpu)` interleaves CPUs one step at a time.
"""

from .config import FIXES, RF, Errno, KernelConfig, PFlag, PSFlag, PStat
from .kern_fork import SysResult
from .kernel import At, Kernel, StepInfo, StepStatus
from .locks import KernelPanic, WitnessViolation
from .runner import SingleCpu
from .syscalls import Call, start

__all__ = ["FIXES", "RF", "Errno", "KernelConfig", "PFlag", "PSFlag", "PStat", "SysResult", "At", "Kernel",
           "StepInfo", "StepStatus", "KernelPanic", "WitnessViolation", "SingleCpu", "Call", "start"]
