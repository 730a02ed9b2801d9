"""Sleep mutexes, spin mutexes and sx locks with owner tracking, and the
WITNESS-style checks the 2001 kernel made (or should have made).

Owners are kernel thread slots (`cpu` numbers of the scheduler). A hard error
(unlock of a lock not held, recursion on a non-recursive lock, sleeping or
taking a sleepable lock with a spin lock held, a failed mtx_assert) panics as
WITNESS/INVARIANTS did: `WitnessViolation`. A lock-order reversal or a second
lock of one class is a warning, logged and not fatal, as WITNESS printed it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class KernelPanic(Exception):
    """The kernel panicked at a seed line (or in a function outside the seed)."""

    def __init__(self, message: str, line: int | None = None, file: str = "kern_fork.c"):
        super().__init__(message)
        self.message = message
        self.line = line
        self.file = file

    def where(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"

    def to_json(self) -> dict[str, object]:
        return {"panic": self.message, "file": self.file, "line": self.line}


class WitnessViolation(KernelPanic):
    """A lock rule broken: WITNESS or INVARIANTS would have panicked."""


class LockKind(str, enum.Enum):
    MUTEX = "mutex"
    SPIN = "spin"
    SX = "sx"


class Mode(str, enum.Enum):
    EXCLUSIVE = "x"
    SHARED = "s"


@dataclass(eq=False)
class Lock:
    name: str                 # "Giant", "allproc_lock", "proc#3.p_mtx"
    kind: LockKind
    cls: str                  # lock class for order checking ("process lock")
    recursive: bool = False
    owner: int | None = None  # mutex/spin owner, sx exclusive owner
    depth: int = 0            # recursion depth of a mutex
    shared: set[int] = field(default_factory=set)  # sx shared holders

    @property
    def sleepable(self) -> bool:
        return self.kind is not LockKind.SPIN

    def available(self, cpu: int, mode: Mode) -> bool:
        """Can `cpu` take it now without waiting? Self-recursion counts as
        available so the acquire step happens and the check then fires."""
        if self.kind is LockKind.SX:
            if mode is Mode.SHARED:
                return self.owner is None
            return (self.owner is None and not (self.shared - {cpu})) or self.owner == cpu
        return self.owner is None or self.owner == cpu

    def holders(self) -> list[int]:
        if self.owner is not None:
            return [self.owner]
        return sorted(self.shared)

    def to_json(self) -> dict[str, object]:
        if self.kind is LockKind.SX:
            return {"kind": "sx", "xowner": self.owner, "shared": sorted(self.shared)}
        return {"kind": self.kind.value, "owner": self.owner, "depth": self.depth}


@dataclass(frozen=True)
class WitnessWarning:
    kind: str                 # "lock order reversal", "duplicate lock"
    message: str
    cpu: int
    file: str
    line: int | None

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "message": self.message, "cpu": self.cpu,
                "file": self.file, "line": self.line}


class Witness:
    """Lock-order graph over lock classes and the per-thread held lists."""

    def __init__(self) -> None:
        self.order: dict[str, set[str]] = {}   # class -> classes taken while holding it
        self.warnings: list[WitnessWarning] = []
        self.held: dict[int, list[tuple[Lock, Mode]]] = {}

    def held_by(self, cpu: int) -> list[tuple[Lock, Mode]]:
        return self.held.setdefault(cpu, [])

    def holds_spin(self, cpu: int) -> Lock | None:
        for lk, _ in self.held_by(cpu):
            if lk.kind is LockKind.SPIN:
                return lk
        return None

    def _reaches(self, a: str, b: str) -> bool:
        seen, todo = set(), [a]
        while todo:
            x = todo.pop()
            if x == b:
                return True
            if x not in seen:
                seen.add(x)
                todo.extend(self.order.get(x, ()))
        return False

    def acquire(self, cpu: int, lk: Lock, mode: Mode, file: str, line: int | None) -> None:
        held = self.held_by(cpu)
        spin = self.holds_spin(cpu)
        if lk.sleepable and spin is not None:
            raise WitnessViolation(f"acquiring sleepable {lk.name} with spin lock {spin.name} held", line, file)
        if lk.kind is LockKind.SX:
            if lk.owner == cpu or cpu in lk.shared:
                raise WitnessViolation(f"recursed on sx lock {lk.name}", line, file)
        elif lk.owner == cpu:
            if not lk.recursive:
                raise WitnessViolation(f"recursed on non-recursive mutex {lk.name}", line, file)
            lk.depth += 1
            return  # recursion adds no order edge
        for other, _ in held:
            if other.cls == lk.cls:
                self._warn(WitnessWarning("duplicate lock", f"acquiring duplicate lock of same type: {lk.cls!r}",
                                          cpu, file, line))
                continue
            if other.name == "Giant":
                continue  # WITNESS exempts Giant from order checks
            if self._reaches(lk.cls, other.cls):
                self._warn(WitnessWarning(
                    "lock order reversal", f"{lk.cls!r} after {other.cls!r}, established order is the reverse",
                    cpu, file, line))
            self.order.setdefault(other.cls, set()).add(lk.cls)
        if lk.kind is LockKind.SX and mode is Mode.SHARED:
            lk.shared.add(cpu)
        else:
            lk.owner = cpu
            lk.depth = 1
        held.append((lk, mode))

    def _warn(self, w: WitnessWarning) -> None:
        # Reported once per (kind, message, place), as WITNESS reports a reversal once.
        if not any((x.kind, x.message, x.file, x.line) == (w.kind, w.message, w.file, w.line)
                   for x in self.warnings):
            self.warnings.append(w)

    def release(self, cpu: int, lk: Lock, mode: Mode, file: str, line: int | None) -> None:
        held = self.held_by(cpu)
        if lk.kind is LockKind.SX and mode is Mode.SHARED:
            if cpu not in lk.shared:
                raise WitnessViolation(f"sx_sunlock of {lk.name} not held shared", line, file)
            lk.shared.discard(cpu)
        else:
            if lk.owner != cpu:
                raise WitnessViolation(f"unlock of {lk.name} not owned (owner {lk.owner})", line, file)
            if lk.depth > 1:
                lk.depth -= 1
                return
            lk.owner, lk.depth = None, 0
        for i in range(len(held) - 1, -1, -1):
            if held[i][0] is lk:
                del held[i]
                break

    def release_all(self, cpu: int, lk: Lock) -> int:
        """Drop a recursive mutex completely (DROP_GIANT); returns the depth."""
        depth = lk.depth if lk.owner == cpu else 0
        if depth:
            lk.depth = 1
            self.release(cpu, lk, Mode.EXCLUSIVE, "kern_synch.c", None)
        return depth

    def reacquire(self, cpu: int, lk: Lock, depth: int) -> None:
        """PICKUP_GIANT: take it back at the saved depth (no new order edges)."""
        if depth:
            lk.owner, lk.depth = cpu, depth
            self.held_by(cpu).insert(0, (lk, Mode.EXCLUSIVE))
