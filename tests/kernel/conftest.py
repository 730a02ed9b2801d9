from __future__ import annotations

import pytest

from checker.kernel import Kernel, KernelConfig, SingleCpu

# The scaled constants: floor < PID_MAX and high floor < floor, as in the seed.
SMALL = dict(PID_MAX=30, PID_FLOOR=5, PID_HIGH_FLOOR=3, maxproc=20, maxprocperuid=20)


def make(**kw: object) -> tuple[Kernel, SingleCpu]:
    cfg = dict(SMALL)
    cfg.update(kw)
    k = Kernel(KernelConfig(**cfg))  # type: ignore[arg-type]
    return k, SingleCpu(k)


@pytest.fixture
def kr() -> tuple[Kernel, SingleCpu]:
    return make()
