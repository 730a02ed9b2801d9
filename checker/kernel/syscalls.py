"""System call entry: Giant around each call (2001) unless GIANT_PUSHED_DOWN,
and the table of calls a scenario or a test can start on a cpu."""

from __future__ import annotations

import enum
from typing import Any

from . import kern_exec, kern_exit, kern_fork, kern_proc, vm_glue
from .config import RF
from .kern_fork import SysResult
from .kernel import Gen, Kernel
from .locks import WitnessViolation
from .objects import Proc


class Call(str, enum.Enum):
    FORK = "fork"
    VFORK = "vfork"
    RFORK = "rfork"
    FORK1 = "fork1"              # in-kernel fork1 with any flags (kthread_create, boot)
    EXIT = "exit"
    WAIT = "wait"
    EXEC = "exec"
    SETSID = "setsid"
    SETPGID = "setpgid"
    SETUID = "setuid"
    SETRLIMIT = "setrlimit"
    SYSCTL_RANDOMPID = "sysctl_randompid"
    AT_FORK = "at_fork"
    RM_AT_FORK = "rm_at_fork"
    SWAPPER = "swapper"


# Calls made by a process; the others run in a kernel context with no curproc.
PROCESS_CALLS = frozenset({Call.FORK, Call.VFORK, Call.RFORK, Call.FORK1, Call.EXIT, Call.WAIT, Call.EXEC,
                           Call.SETSID, Call.SETPGID, Call.SETUID, Call.SETRLIMIT})


def with_giant(k: Kernel, cpu: int, name: str, body: Gen[SysResult]) -> Gen[SysResult]:
    giant = not k.fix("GIANT_PUSHED_DOWN")
    if giant:
        yield from k.lock(cpu, k.Giant, None, "syscall", "trap.c", f"mtx_lock(&Giant) [{name}]")
    result = yield from body
    if giant:
        yield from k.unlock(cpu, k.Giant, None, "syscall", "trap.c", f"mtx_unlock(&Giant) [{name}]")
    left = k.locks_held(cpu)
    if left:
        raise WitnessViolation(f"{name} returns to user mode with {', '.join(left)} held", None, "trap.c")
    return result


def start(k: Kernel, cpu: int, call: Call, proc: Proc | None, **args: Any) -> Gen[SysResult]:
    """The generator of one system call; `k.spawn(cpu, start(...), proc)` runs it."""
    body: Gen[SysResult]
    if call in PROCESS_CALLS and proc is None:
        raise ValueError(f"{call.value} needs a process")
    p: Proc = proc  # type: ignore[assignment]
    if call is Call.FORK:
        body = kern_fork.fork(k, cpu, p)
    elif call is Call.VFORK:
        body = kern_fork.vfork(k, cpu, p)
    elif call is Call.RFORK:
        body = kern_fork.rfork(k, cpu, p, RF(args["flags"]))
    elif call is Call.FORK1:
        body = kern_fork.kthread_fork(k, cpu, p, RF(args["flags"]))
    elif call is Call.EXIT:
        body = kern_exit.exit1(k, cpu, p, int(args.get("status", 0)))
    elif call is Call.WAIT:
        body = kern_exit.wait1(k, cpu, p, args.get("child"))
    elif call is Call.EXEC:
        body = kern_exec.execve(k, cpu, p, str(args.get("path", "/bin/sh")))
    elif call is Call.SETSID:
        body = kern_proc.setsid(k, cpu, p)
    elif call is Call.SETPGID:
        body = kern_proc.setpgid(k, cpu, p, int(args.get("target", 0)), int(args["pgid"]))
    elif call is Call.SETUID:
        body = kern_proc.setuid(k, cpu, p, int(args["uid"]))
    elif call is Call.SETRLIMIT:
        body = kern_proc.setrlimit(k, cpu, p, args.get("nproc"), args.get("sharemod"))
    elif call is Call.SYSCTL_RANDOMPID:
        body = kern_fork.sysctl_kern_randompid(k, cpu, int(args["value"]))
    elif call is Call.AT_FORK:
        body = kern_fork.at_fork(k, cpu, str(args["fn"]))
    elif call is Call.RM_AT_FORK:
        body = kern_fork.rm_at_fork_call(k, cpu, str(args["fn"]))
    elif call is Call.SWAPPER:
        body = vm_glue.swapout_procs(k, cpu)
    else:  # pragma: no cover - the enum is exhaustive
        raise AssertionError(call)
    return with_giant(k, cpu, call.value, body)
