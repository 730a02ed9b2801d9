"""The kernel's seed-line list (replay's rule 1) and the may-sleep points that drop Giant."""

from __future__ import annotations

from checker.kernel import Call, Kernel, KernelConfig, StepStatus, start
from checker.kernel.lines import kernel_seed_lines

from .conftest import SMALL


def lines_yielded(fixes: dict[str, bool], call: Call, **args: object) -> set[int]:
    k = Kernel(KernelConfig(**SMALL, fixes=fixes))  # type: ignore[arg-type]
    k.spawn(0, start(k, 0, call, k.initproc, **args), k.initproc)
    out: set[int] = set()
    for _ in range(10_000):
        c = k.cpus[0]
        if c.pending is not None and c.pending.line is not None and c.pending.file == "kern_fork.c":
            out.add(c.pending.line)
        if k.step(0).status is not StepStatus.STEPPED:
            break
    return out


def test_every_line_the_kernel_yields_is_in_the_list() -> None:
    listed = kernel_seed_lines()
    seen: set[int] = set()
    for fixes in ({}, {"GIANT_PUSHED_DOWN": True, "FIX_NPROCS_LOCKED": True, "FIX_INIT_BEFORE_PUBLISH": True}):
        seen |= lines_yielded(fixes, Call.FORK)
        seen |= lines_yielded(fixes, Call.VFORK)
        seen |= lines_yielded(fixes, Call.RFORK, flags=(1 << 4) | (1 << 13) | (1 << 14) | (1 << 5))
        seen |= lines_yielded(fixes, Call.RFORK, flags=1 << 12)
        seen |= lines_yielded(fixes, Call.SYSCTL_RANDOMPID, value=50)
        seen |= lines_yielded(fixes, Call.AT_FORK, fn="f")
    assert seen and seen <= listed, sorted(seen - listed)
    # lines the kernel folds into a neighbour are not listed (rule 1 of the replay)
    assert 333 not in listed and 361 not in listed and 122 not in listed


def test_may_sleep_points_drop_giant_only_while_it_is_held() -> None:
    def labels(fixes: dict[str, bool]) -> list[str]:
        k = Kernel(KernelConfig(**SMALL, fixes=fixes))  # type: ignore[arg-type]
        k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
        out = []
        while k.cpus[0].pending is not None:
            out.append(k.cpus[0].pending.label)
            assert k.step(0).status in (StepStatus.STEPPED, StepStatus.DONE)
        return out

    with_giant = labels({})
    drops = [x for x in with_giant if x.endswith("[drop Giant]")]
    assert [d.split(" may sleep")[0] for d in drops] == [
        "zalloc(proc_zone)", "MALLOC(p2->p_procsig, M_WAITOK)", "fdcopy(p1)", "vm_fork(p1, p2, flags)"]
    assert len([x for x in with_giant if x.endswith("[pick up Giant]")]) == 4
    assert not [x for x in labels({"GIANT_PUSHED_DOWN": True}) if "Giant" in x]


def test_a_fork_sleeping_in_zalloc_lets_another_cpu_take_giant() -> None:
    k = Kernel(KernelConfig(**SMALL))  # type: ignore[arg-type]
    k.spawn(0, start(k, 0, Call.FORK, k.initproc), k.initproc)
    while not k.cpus[0].pending.label.endswith("[pick up Giant]"):  # type: ignore[union-attr]
        k.step(0)
    assert k.Giant.owner is None
    k.spawn(1, start(k, 1, Call.SYSCTL_RANDOMPID, None, value=0))
    k.step(1)                                     # cpu 1 takes Giant while cpu 0 sleeps
    assert k.Giant.owner == 1
    assert k.step(0).status is StepStatus.BLOCKED  # cpu 0 cannot pick Giant up again
    k.run(1)
    assert k.run(0).status is StepStatus.DONE
