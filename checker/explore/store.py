"""Visited-state stores behind one small interface.

- `DictStore`: a Python dict of states (fastest for small models; ~200+ bytes/state).
- `CompactStore`: every state packed by a generated fixed-width codec into one
  bytearray arena, found through an open-addressing table of int32 indices
  (linear probing, load <= 1/2): the width of a packed state plus at most 8
  bytes per state, and no Python object per state.
- `FingerprintStore`: only a 64-bit fingerprint per state (blake2b of the
  packed state) in an open-addressing table kept between 1/2 and 3/4 full:
  at most 16 bytes per state (past the first 4096-slot table). States whose fingerprints collide are silently merged, so a
  run reports the probability that a collision hid a state (as TLC does).

The codec is generated per system (like the compiled steps: indices and
struct codes only, no spec text) and is exact: decode(encode(s)) == s.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from array import array
from typing import Any, Callable

from .. import ir
from ..diagnostics import ForkcheckError

# Tables start with this many slots; they double when half full.
INITIAL_SLOTS = 1 << 12


class StoreError(ForkcheckError):
    """A state cannot be packed (a value outside its declared type)."""


def _int_code(lo: int, hi: int) -> str:
    if 0 <= lo and hi <= 255:
        return "B"
    if -128 <= lo and hi <= 127:
        return "b"
    if 0 <= lo and hi <= 65535:
        return "H"
    if -32768 <= lo and hi <= 32767:
        return "h"
    if -2**31 <= lo and hi < 2**31:
        return "i"
    return "q"


class StateCodec:
    """Fixed-width packing of the semantics' nested-tuple states."""

    def __init__(self, system: ir.System):
        from ..semantics import Semantics
        sem = Semantics(system)
        self.system = system
        nthreads = len(system.threads)
        fmt: list[str] = ["<"]
        enc: list[str] = []      # expressions producing the flat values, in order
        dec: list[str] = []      # statements rebuilding the state from flat tuple `v` and cursor
        counter = [0]

        def take(n: int = 1) -> str:
            i = counter[0]
            counter[0] += n
            return f"v[{i}]" if n == 1 else f"v[{i}:{i + n}]"

        def value(t: ir.Type, src: str) -> tuple[list[str], list[str], str]:
            """(struct codes, encode exprs, decode expr) for one value at `src`."""
            if isinstance(t, ir.BoolT):
                return ["B"], [f"(1 if {src} else 0)"], f"bool({take()})"
            if isinstance(t, ir.IntT):
                return [_int_code(t.lo, t.hi)], [src], take()
            if isinstance(t, ir.EnumT):
                return [_int_code(0, max(1, len(t.members)))], [src], take()
            if isinstance(t, ir.SetT):
                return [_int_code(0, 2 ** len(t.enum.members))], [src], take()
            if isinstance(t, ir.RefT):
                size = len(system.chans) if t.pool == "__chan__" and t.pool not in system.pool else system.pool[t.pool].size
                return [_int_code(0, size)], [src], take()
            if isinstance(t, ir.ListT):
                n = system.pool[t.pool].size
                c = _int_code(0, n)
                codes = [c] * (n + 1)
                exprs = [f"len({src})"] + [f"({src} + PAD)[{k}]" for k in range(n)]
                i = counter[0]
                counter[0] += n + 1
                return codes, exprs, f"v[{i + 1}:{i + 1} + v[{i}]]"
            if isinstance(t, ir.LockT):
                second = _int_code(0, 2 ** nthreads) if t.kind is ir.LockKind.SX else "H"
                return ["b", second], [f"{src}[0]", f"{src}[1]"], f"({take()}, {take()})"
            raise TypeError(f"cannot pack {t}")

        gparts = []
        for i, gv in enumerate(system.globals):
            c, e, d = value(gv.type, f"g[{i}]")
            fmt += c
            enc += e
            gparts.append(d)
        dec.append(f"g = ({', '.join(gparts)}{',' if len(gparts) == 1 else ''})")
        for pi, p in enumerate(system.pools):
            defaults = []
            for f in p.fields:
                if isinstance(f.type, ir.LockT):
                    defaults.append((-1, 0))
                elif isinstance(f.type, ir.ListT):
                    defaults.append(())
                else:
                    defaults.append(0)
            slot_parts = []
            for k in range(p.size):
                src = f"P[{pi}][{k}]"
                fmt.append("B")
                enc.append(f"(0 if {src} is None else 1)")
                flag = take()
                fparts = []
                for fi, f in enumerate(p.fields):
                    c, e, d = value(f.type, f"({src} or DEF{pi})[{fi}]")
                    fmt += c
                    enc += e
                    fparts.append(d)
                slot_parts.append(f"(({', '.join(fparts)}{',' if len(fparts) == 1 else ''}) if {flag} else None)")
            dec.append(f"p{pi} = ({', '.join(slot_parts)}{',' if len(slot_parts) == 1 else ''})")
            self_defaults = tuple(defaults)
            setattr(self, f"_def{pi}", self_defaults)
        tparts = []
        maxchan = max(1, sum(sem.pool_sizes))
        for tid, t in enumerate(system.threads):
            code = system.code[t.code]
            fmt.append(_int_code(0, code.npcs))
            enc.append(f"T[{tid}][0]")
            pc = take()
            lparts = []
            for li, lvar in enumerate(code.locals):
                c, e, d = value(lvar.type, f"T[{tid}][1][{li}]")
                fmt += c
                enc += e
                lparts.append(d)
            fmt.append(_int_code(0, maxchan))
            enc.append(f"T[{tid}][2]")
            w = take()
            tparts.append(f"({pc}, ({', '.join(lparts)}{',' if len(lparts) == 1 else ''}), {w})")
        pools = ", ".join(f"p{pi}" for pi in range(len(system.pools))) + ("," if len(system.pools) == 1 else "")
        dec.append(f"return (g, ({pools}), ({', '.join(tparts)}{',' if len(tparts) == 1 else ''}))")
        self.struct = struct.Struct("".join(fmt))
        self.width = self.struct.size
        ns: dict[str, Any] = {"PACK": self.struct.pack, "UNPACK": self.struct.unpack,
                              "PAD": (0,) * max([p.size for p in system.pools] + [0])}
        for pi in range(len(system.pools)):
            ns[f"DEF{pi}"] = getattr(self, f"_def{pi}")
        src = ("def encode(s):\n    g, P, T = s\n    return PACK(" + ", ".join(enc) + ")\n"
               "def decode(b):\n    v = UNPACK(b)\n" + "".join(f"    {d}\n" for d in dec))
        exec(compile(src, "<forkcheck codec>", "exec"), ns)
        self._encode: Callable[[Any], bytes] = ns["encode"]
        self.decode: Callable[[bytes], Any] = ns["decode"]

    def encode(self, state: Any) -> bytes:
        try:
            return self._encode(state)
        except struct.error as e:
            raise StoreError(f"a state cannot be packed ({e}); a value is outside its declared type") from None


def fingerprint(b: bytes) -> int:
    """64-bit fingerprint, the same in every process (unlike hash())."""
    return int.from_bytes(hashlib.blake2b(b, digest_size=8).digest(), "little") or 1


class DictStore:
    kind = "dict"

    def __init__(self) -> None:
        self.index: dict[Any, int] = {}
        self.states: list[Any] = []

    def add(self, state: Any) -> tuple[int, bool]:
        idx = self.index.get(state)
        if idx is not None:
            return idx, False
        idx = len(self.states)
        self.index[state] = idx
        self.states.append(state)
        return idx, True

    def __contains__(self, state: Any) -> bool:
        return state in self.index

    def get(self, idx: int) -> Any:
        return self.states[idx]

    def __len__(self) -> int:
        return len(self.states)

    def nbytes(self) -> int:
        """Containers plus the last state's tuples times the count (an estimate: small ints are shared)."""
        if not self.states:
            return 0
        return sys.getsizeof(self.index) + sys.getsizeof(self.states) + _deep(self.states[-1]) * len(self.states)


def _deep(x: Any) -> int:
    if isinstance(x, tuple):
        return sys.getsizeof(x) + sum(_deep(y) for y in x)
    return 0        # ints, bools and None are mostly shared singletons


class CompactStore:
    kind = "compact"

    def __init__(self, codec: StateCodec):
        self.codec = codec
        self.w = codec.width
        self.arena = bytearray()
        self.n = 0
        self.mask = INITIAL_SLOTS - 1
        self.table = array("i", [-1]) * INITIAL_SLOTS

    def _find(self, key: bytes) -> tuple[int, int]:
        """(slot, idx) for key; idx -1 when absent (slot is then where it goes)."""
        table, mask, w, arena = self.table, self.mask, self.w, self.arena
        h = hash(key) & mask
        while True:
            i = table[h]
            if i < 0:
                return h, -1
            if arena[i * w:(i + 1) * w] == key:
                return h, i
            h = (h + 1) & mask

    def add(self, state: Any) -> tuple[int, bool]:
        key = self.codec.encode(state)
        h, i = self._find(key)
        if i >= 0:
            return i, False
        i = self.n
        self.table[h] = i
        self.arena += key
        self.n += 1
        if self.n * 2 > self.mask + 1:
            self._grow()
        return i, True

    def __contains__(self, state: Any) -> bool:
        return self._find(self.codec.encode(state))[1] >= 0

    def get(self, idx: int) -> Any:
        return self.codec.decode(bytes(self.arena[idx * self.w:(idx + 1) * self.w]))

    def _grow(self) -> None:
        size = (self.mask + 1) * 2
        self.mask = size - 1
        self.table = array("i", [-1]) * size
        w, arena, table, mask = self.w, self.arena, self.table, self.mask
        for i in range(self.n):
            h = hash(bytes(arena[i * w:(i + 1) * w])) & mask
            while table[h] >= 0:
                h = (h + 1) & mask
            table[h] = i

    def __len__(self) -> int:
        return self.n

    def nbytes(self) -> int:
        return len(self.arena) + self.table.itemsize * len(self.table)


class FingerprintStore:
    kind = "fingerprint"

    # Load stays within [1/2, 3/4] once past the first table: the table grows by
    # half when 3/4 full, so a fingerprint costs 8 / load <= 16 bytes.
    MAX_LOAD = 0.75
    GROWTH = 1.5

    def __init__(self, codec: StateCodec):
        self.codec = codec
        self.n = 0
        self.size = INITIAL_SLOTS
        self.table = array("Q", [0]) * self.size

    def _slot(self, fp: int) -> tuple[int, bool]:
        table, size = self.table, self.size
        h = fp % size
        while True:
            x = table[h]
            if x == 0:
                return h, False
            if x == fp:
                return h, True
            h += 1
            if h == size:
                h = 0

    def add(self, state: Any) -> tuple[int, bool]:
        fp = fingerprint(self.codec.encode(state))
        h, hit = self._slot(fp)
        if hit:
            return -1, False             # seen; its index is not kept (no per-state index in this mode)
        self.table[h] = fp
        i = self.n
        self.n += 1
        if self.n > self.size * self.MAX_LOAD:
            self._grow()
        return i, True

    def __contains__(self, state: Any) -> bool:
        return self._slot(fingerprint(self.codec.encode(state)))[1]

    def get(self, idx: int) -> Any:
        raise ForkcheckError("fingerprint mode keeps no states (liveness and the state graph need the full store)")

    def _grow(self) -> None:
        old = self.table
        self.size = int(self.size * self.GROWTH)
        self.table = array("Q", [0]) * self.size
        for fp in old:
            if fp:
                h, _ = self._slot(fp)
                self.table[h] = fp

    def __len__(self) -> int:
        return self.n

    def nbytes(self) -> int:
        return self.table.itemsize * len(self.table)

    def collision_probability(self) -> float:
        """Chance that two distinct states shared a fingerprint (optimistic birthday bound, as TLC)."""
        n = self.n
        return min(1.0, n * (n - 1) / 2 / 2.0 ** 64)
