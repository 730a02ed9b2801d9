"""Visited-state stores behind one small interface.

- `DictStore`: a Python dict of states (fastest for small models; ~200+ bytes/state).
- `CompactStore`: every state packed to a fixed-width vector of component
  ids in one bytearray arena, found through an open-addressing table of int32 indices
  (linear probing, load <= 1/2): the width of a packed state plus at most 8
  bytes per state, and no Python object per state.
- `FingerprintStore`: only a 64-bit fingerprint per state (blake2b of the
  state's value key, see fingerprint.StateHasher) in an open-addressing table
  kept between 1/2 and 3/4 full: at most 16 bytes per state (past the first
  4096-slot table), and no component table. States whose fingerprints collide
  are silently merged, so a run reports the probability that a collision hid
  a state (as TLC does).

The first two pack a state with collapse compression (StateCodec): a few int32
component ids per state, the components themselves interned once.
"""

from __future__ import annotations

import hashlib
import re
import struct
import sys
import textwrap
from array import array
from typing import Any, Callable

from .. import ir
from ..diagnostics import ForkcheckError

# Tables start with this many slots; they double when half full.
INITIAL_SLOTS = 1 << 12


class StateCodec:
    """Collapse compression (as SPIN's -DCOLLAPSE): a state is the vector of the
    ids of its components (the globals tuple, each pool, each thread), each
    component interned once in a table. Successors share the unchanged
    components of their parent as the same objects, so most lookups hit an
    identity cache before hashing anything. Exact: decode(encode(s)) == s.
    """

    def __init__(self, system: ir.System):
        self.npools = len(system.pools)
        self.nthreads = len(system.threads)
        self.k = 1 + self.npools + self.nthreads
        self.struct = struct.Struct(f"<{self.k}I")
        self.width = self.struct.size
        self.shared_width = 4 * (1 + self.npools)   # the globals' and pools' ids: what invariants read
        self.ids: dict[Any, int] = {}          # component -> id (ids start at 1: 0 is falsy)
        self.byid: dict[int, int] = {}         # id(object) -> id, only for objects kept in `comps`
        self.comps: list[Any] = [None]         # id -> component (keeps the objects alive)
        # encode() unrolled for this system's shape. Successive calls mostly encode the successors
        # of one state, which share most components with it as the very same objects (compiled
        # steps copy on write), so each component position remembers the last object seen there
        # and its id: a hit is one `is` test, no call. The slot holds the object, so `is` cannot
        # be fooled by a reused id(). A miss probes the identity map, then hashes.
        ids, byid, comps = self.ids, self.byid, self.comps

        def cid_new(x: Any) -> int:
            """_cid after a failed identity probe (a closure, not a method: the generated code
            must not refer back to the codec, or the codec would wait for a full collection)."""
            c = ids.get(x)
            if c is None:
                c = len(comps)
                comps.append(x)
                ids[x] = c
                byid[id(x)] = c
            return c

        ns: dict[str, Any] = {"PACK": self.struct.pack, "UNPACK": self.struct.unpack, "B": byid.get, "I": ids.get,
                              "C": cid_new}
        gnames = [f"L{i}" for i in range(self.k)] + [f"V{i}" for i in range(self.k)] + ["LP"]
        for nm in gnames:
            ns[nm] = 0 if nm.startswith("V") else None
        pools = "".join(f"        x = P[{i}]\n"
                        f"        if x is not L{1 + i}:\n"
                        f"            L{1 + i} = x\n"
                        f"            V{1 + i} = B(id(x)) or I(x) or C(x)\n" for i in range(self.npools))
        thr = "".join(f"    x = T[{i}]\n"
                      f"    if x is not L{1 + self.npools + i}:\n"
                      f"        L{1 + self.npools + i} = x\n"
                      f"        V{1 + self.npools + i} = B(id(x)) or I(x) or C(x)\n" for i in range(self.nthreads))
        body = (f"    global {', '.join(gnames)}\n"
               "    g, P, T = s\n"
               "    if g is not L0:\n"
               "        L0 = g\n"
               "        V0 = B(id(g)) or I(g) or C(g)\n"
               "    if P is not LP:\n"
               "        LP = P\n"
               + (pools or "        pass\n") +
               thr +
               f"    key = PACK({', '.join(f'V{i}' for i in range(self.k))})\n")
        exec(compile(f"def encode(s):\n{body}    return key\n", "<forkcheck collapse codec>", "exec"), ns)
        self._encode = ns["encode"]
        self._encode_body, self._encode_ns = body, ns
        # decode() unrolled likewise
        n = 1 + self.npools
        ps = "".join(f"c[v[{i}]], " for i in range(1, n))
        ts = "".join(f"c[v[{i}]], " for i in range(n, self.k))
        dns: dict[str, Any] = {"UNPACK": self.struct.unpack, "c": self.comps}
        exec(compile(f"def decode(b):\n    v = UNPACK(b)\n    return (c[v[0]], ({ps}), ({ts}))\n",
                     "<forkcheck collapse decode>", "exec"), dns)
        self.decode = dns["decode"]     # type: ignore[method-assign]

    def with_encode(self, name: str, tail: str, **names: Any) -> Any:
        """A function `name(s)` that encodes s into `key` as encode() does (sharing its caches)
        then runs `tail` (source indented by 4): a store's add without a call to encode."""
        loc: dict[str, Any] = {}
        src = (f"def make({', '.join(names)}):\n"
               f"    def {name}(s):\n" + textwrap.indent(self._encode_body + tail, "    ") +
               f"    return {name}\n")
        exec(compile(src, f"<forkcheck collapse codec: {name}>", "exec"), self._encode_ns, loc)
        return loc["make"](**names)

    def fn_with_encode(self, src: str, name: str, **names: Any) -> Any:
        """Compile `src`, the text of `def {name}(...)`, in encode()'s namespace (sharing its
        caches), the line `#ENCODE` in it replaced by the encoding of `s` into `key` at that
        line's indentation: a caller's loop over successors packs each without a call."""
        return self.fn_with_parts(src, name, {"ENCODE": textwrap.dedent(self._encode_body)}, **names)

    def relative_encode(self, moved: bool) -> dict[str, str]:
        """Parts for fn_with_parts that pack successors against their parent rather than through
        encode()'s caches: `#PARENT` reads the parent state `state` and its packed key `pkey`
        into locals once, then `#RELATIVE` packs `s` into `key`, a component that is the parent's
        object at its position costing one `is` test and no lookup. A component that is not is
        new, so its identity is not looked up unless `moved` (symmetry may move the parent's
        components to other positions)."""
        npos = 1 + self.npools
        setup = ["_g, _P, _T = state", f"{''.join(f'Q{i}, ' for i in range(self.k))}= UNPACK(pkey)"]
        setup += [f"O{1 + i} = _P[{i}]" for i in range(self.npools)]
        setup += [f"O{npos + i} = _T[{i}]" for i in range(self.nthreads)]
        look = "B(id({0})) or I({0}) or C({0})" if moved else "I({0}) or C({0})"
        enc = ["g, P, T = s", f"U0 = Q0 if g is _g else {look.format('g')}", "if P is _P:"]
        enc += [f"    U{1 + i} = Q{1 + i}" for i in range(self.npools)] or ["    pass"]
        enc += ["else:"]
        enc += [f"    x = P[{i}]\n    U{1 + i} = Q{1 + i} if x is O{1 + i} else {look.format('x')}"
                for i in range(self.npools)]
        enc += ["    pass"] if not self.npools else []
        enc += [f"x = T[{i}]\nU{npos + i} = Q{npos + i} if x is O{npos + i} else {look.format('x')}"
                for i in range(self.nthreads)]
        enc += [f"key = PACK({', '.join(f'U{i}' for i in range(self.k))})"]
        return {"PARENT": "\n".join(setup) + "\n", "RELATIVE": "\n".join(enc) + "\n"}

    def fn_with_parts(self, src: str, name: str, parts: dict[str, str], **names: Any) -> Any:
        """Compile `src`, the text of `def {name}(...)`, in encode()'s namespace, each line `#NAME`
        replaced by parts[NAME] (unindented source) at that line's indentation."""
        return compile_with_parts(src, name, parts, self._encode_ns, f"<forkcheck collapse codec: {name}>", names)

    def _cid(self, x: Any) -> int:
        c = self.byid.get(id(x))
        if c is not None:
            return c
        c = self.ids.get(x)
        if c is None:
            c = len(self.comps)
            self.comps.append(x)
            self.ids[x] = c
            self.byid[id(x)] = c
        return c

    def encode(self, state: Any) -> bytes:
        return self._encode(state)

    def intern(self, b: bytes) -> Any:
        """The state of an encoding, built from the interned component objects. The search
        expands this copy, so its successors share those objects and hit the identity cache."""
        return self.decode(b)

    def decode(self, b: bytes) -> Any:
        v = self.struct.unpack(b)
        c = self.comps
        n = 1 + self.npools
        return (c[v[0]], tuple(c[i] for i in v[1:n]), tuple(c[i] for i in v[n:]))

    def nbytes(self) -> int:
        """The component tables (shared by all states)."""
        return (sys.getsizeof(self.ids) + sys.getsizeof(self.byid) + sys.getsizeof(self.comps)
                + _deep_distinct(self.comps[1:]))


def compile_with_parts(src: str, name: str, parts: dict[str, str], ns: dict[str, Any], label: str,
                       names: dict[str, Any]) -> Any:
    """Compile `src`, the text of `def {name}(...)`, in the namespace `ns` (a codec's or hasher's
    generated globals), each line `#PART` replaced by parts[PART] (unindented source) at that
    line's indentation; `names` become the enclosing closure's variables."""
    for part, text in parts.items():
        m = re.search(rf"^( *)#{part}\n", src, re.M)
        if m is None:
            raise ValueError(f"no #{part} line")
        src = src[:m.start()] + textwrap.indent(text, m.group(1)) + src[m.end():]
    loc: dict[str, Any] = {}
    make = f"def make({', '.join(names)}):\n" + textwrap.indent(src, "    ") + f"    return {name}\n"
    exec(compile(make, label, "exec"), ns, loc)
    return loc["make"](**names)


_blake2b = hashlib.blake2b


def fingerprint(b: bytes) -> int:
    """64-bit fingerprint, the same in every process (unlike hash())."""
    return int.from_bytes(_blake2b(b, digest_size=8).digest(), "little") or 1


class DictStore:
    kind = "dict"
    interned_by_key = True      # add_key(key) is add(state): nothing to rebuild

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
        self.last_state = state
        return idx, True

    # key/has_key/add_key: look a state up once and add it later without packing it again
    def key(self, state: Any) -> Any:
        return state

    add_key = add

    def has_key(self, key: Any) -> bool:
        return key in self.index

    def __contains__(self, state: Any) -> bool:
        return state in self.index

    def shared_key(self) -> tuple[int, ...]:
        """Identities of the globals and pools of the state just added: it stays in the store, so
        those objects live as long as the run and their ids are not reused."""
        g, P, _ = self.last_state
        return (id(g), *map(id, P))

    def get(self, idx: int) -> Any:
        return self.states[idx]

    def __len__(self) -> int:
        return len(self.states)

    def nbytes(self) -> int:
        """Containers plus the last state's tuples times the count (an estimate: small ints are shared)."""
        if not self.states:
            return 0
        return sys.getsizeof(self.index) + sys.getsizeof(self.states) + _deep(self.states[-1]) * len(self.states)


def _deep_distinct(xs: list[Any]) -> int:
    """Bytes of the tuples reachable from xs, each object counted once: components share
    their unchanged parts (a step copies only the tuples on the path to what it writes)."""
    seen: set[int] = set()
    total = 0
    todo = list(xs)
    while todo:
        x = todo.pop()
        if isinstance(x, tuple) and id(x) not in seen:
            seen.add(id(x))
            total += sys.getsizeof(x)
            todo.extend(x)
    return total


def _deep(x: Any) -> int:
    if isinstance(x, tuple):
        return sys.getsizeof(x) + sum(_deep(y) for y in x)
    return 0        # ints, bools and None are mostly shared singletons


class _Hot:
    """A store's mutable table state. The store's generated add() closes over this, not over
    the store: a function kept on the instance that refers back to it would make a cycle, and
    a finished run's store would then wait for a full garbage collection to be freed."""
    __slots__ = ("table", "mask", "size", "arena", "n", "last_key")


def _via_hot(name: str) -> Any:
    return property(lambda s: getattr(s.h, name), lambda s, v: setattr(s.h, name, v))


def _grow_compact(h: _Hot, w: int) -> None:
    size = (h.mask + 1) * 2
    h.mask = mask = size - 1
    h.table = table = array("i", [-1]) * size
    # iter_unpack slices the arena into bytes in C: one object per state, not two
    for i, (key,) in enumerate(struct.iter_unpack(f"{w}s", h.arena)):
        p = hash(key) & mask
        while table[p] >= 0:
            p = (p + 1) & mask
        table[p] = i


def _key_fn(tail: str, **names: Any) -> Callable[[bytes], tuple[int, bool]]:
    """add_key(key): a store's generated add without the encode, from the same source, so the
    two cannot drift apart."""
    loc: dict[str, Any] = {}
    src = (f"def make({', '.join(names)}):\n    def add_key(key):\n" + textwrap.indent(tail, "    ") +
           "    return add_key\n")
    exec(compile(src, "<forkcheck store: add_key>", "exec"), {}, loc)
    return loc["make"](**names)


class CompactStore:
    kind = "compact"
    interned_by_key = True      # interned() decodes the key last added, however it was computed
    table, mask, arena, n, last_key = (_via_hot(x) for x in ("table", "mask", "arena", "n", "last_key"))

    def __init__(self, codec: StateCodec):
        self.codec = codec
        self.w = codec.width
        self._encode, self._decode = codec._encode, codec.decode
        self.h = _Hot()
        self.arena = bytearray()
        self.n = 0
        self.mask = INITIAL_SLOTS - 1
        self.table = array("i", [-1]) * INITIAL_SLOTS
        self.last_key = b""
        names = dict(S=self.h, W=self.w, GROW=_grow_compact)
        self.add = codec.with_encode("add", self._ADD, **names)      # type: ignore[method-assign]
        self.add_key = _key_fn(self._ADD, **names)                   # type: ignore[method-assign]

    def _find(self, key: bytes) -> tuple[int, int]:
        """(slot, idx) for key; idx -1 when absent (slot is then where it goes)."""
        table, mask, w, arena = self.table, self.mask, self.w, self.arena
        h = hash(key) & mask
        while True:
            i = table[h]
            if i < 0:
                return h, -1
            if arena.startswith(key, i * w):
                return h, i
            h = (h + 1) & mask

    # add(state): add_key(codec.encode(state)) in one generated function (see StateCodec.with_encode):
    # it runs once per transition, and a call costs as much as the probe. In three parts, which
    # the search's generated expand (search.py) also inlines in its loop over successors:
    # _LOAD the table state; _PROBE for `key` (then i >= 0: its index; else h: its free slot);
    # _INSERT it there (i: the new index; a growth reloads table and mask).
    _LOAD = "table, mask, arena = S.table, S.mask, S.arena\n"
    _PROBE = """\
h = hash(key) & mask
while True:
    i = table[h]
    if i < 0:
        break
    if arena.startswith(key, i * W):
        break
    h = (h + 1) & mask
"""
    _INSERT = """\
i = S.n
table[h] = i
arena += key
S.n = n = i + 1
if n * 2 > mask + 1:
    GROW(S, W)
    table, mask = S.table, S.mask
S.last_key = key
"""
    _ADD = textwrap.indent(_LOAD + _PROBE + "if i >= 0:\n    return i, False\n" + _INSERT + "return i, True\n",
                           "    ")

    def fused_parts(self, moved: bool) -> tuple[dict[str, str], dict[str, Any], bool, Any]:
        """What the search's generated expand inlines (see search._FUSED): the parts (LOAD the
        table state, PARENT read the parent's key, RELATIVE pack `s` into `key`, PROBE for it,
        SEEN: the condition that it was there, INSERT it, NEW: the state to expand, SK: the
        invariant cache's key), the names they use, whether a state seen gets its index (i), and
        the function compiling the expand in the codec's namespace."""
        parts = dict(LOAD=self._LOAD, PROBE=self._PROBE, SEEN="i >= 0", INSERT=self._INSERT,
                     NEW="nxt = DECODE(key)\n", SK="key[:SW]")
        rel = self.codec.relative_encode(moved)
        parts["PARENT"] = "pkey = arena[idx * W:(idx + 1) * W]\n" + rel["PARENT"]
        parts["RELATIVE"] = rel["RELATIVE"]
        names = dict(S=self.h, W=self.w, GROW=_grow_compact, DECODE=self.codec.decode, SW=self.codec.shared_width)
        return parts, names, True, self.codec.fn_with_parts

    def add(self, state: Any) -> tuple[int, bool]:
        return self.add_key(self._encode(state))        # replaced per instance by the generated one

    def key(self, state: Any) -> bytes:
        return self.codec.encode(state)

    def has_key(self, key: bytes) -> bool:
        return self._find(key)[1] >= 0

    def add_key(self, key: bytes) -> tuple[int, bool]:
        raise NotImplementedError        # replaced per instance by the generated one (_key_fn)

    def interned(self) -> Any:
        """The state just added, rebuilt from interned components (see StateCodec.intern)."""
        return self._decode(self.h.last_key)

    def shared_key(self) -> bytes:
        """The ids of the globals and pools of the state just added (equal iff those are)."""
        return self.h.last_key[:self.codec.shared_width]

    def __contains__(self, state: Any) -> bool:
        return self._find(self.codec.encode(state))[1] >= 0

    def get(self, idx: int) -> Any:
        return self.codec.decode(bytes(self.arena[idx * self.w:(idx + 1) * self.w]))

    def __len__(self) -> int:
        return self.h.n

    def nbytes(self) -> int:
        return len(self.arena) + self.table.itemsize * len(self.table) + self.codec.nbytes()


def _grow_fp(h: _Hot, growth: float) -> None:
    old = h.table
    h.size = size = int(h.size * growth)
    h.table = table = array("Q", [0]) * size
    for fp in old:
        if fp:
            p = fp % size
            while table[p]:
                p += 1
                if p == size:
                    p = 0
            table[p] = fp


class FingerprintStore:
    """64-bit fingerprints of the states' values (StateHasher keys), nothing else per state: no
    component table either, so fingerprint mode keeps no per-state or per-component memory
    beyond the table (the hasher's value cache is bounded)."""
    kind = "fingerprint"
    # interned() is the state the hasher encoded last, not the one whose key was added last: a
    # caller that encoded other states in between must add with add(state), not add_key(key)
    interned_by_key = False
    table, size, n, last_key = (_via_hot(x) for x in ("table", "size", "n", "last_key"))

    # Load stays within [0.6, 3/4] once past the first table: the table grows by
    # a quarter when 3/4 full, so a fingerprint costs 8 / load <= 13.4 bytes (a rehash
    # moves each fingerprint 4 times over a run, amortised, against 2 growing by half).
    MAX_LOAD = 0.75
    GROWTH = 1.25

    def __init__(self, hasher: Any):
        self.hasher = hasher
        self.interned = hasher.interned       # the state just added, from the cached components
        self.h = _Hot()
        self.n = 0
        self.size = INITIAL_SLOTS
        self.table = array("Q", [0]) * self.size
        self.last_key = b""
        names = dict(S=self.h, FROM=int.from_bytes, BLAKE=_blake2b, MAXLOAD=self.MAX_LOAD,
                     GROW=_grow_fp, GROWTH=self.GROWTH)
        self.add = hasher.with_encode("add", self._FP + self._PROBE, **names)   # type: ignore[method-assign]
        self.add_key = _key_fn(self._FP + self._PROBE, **names)                 # type: ignore[method-assign]
        # add_fp(fp, key): the probe alone, for --workers (the sender computed fp to find the owner)
        loc: dict[str, Any] = {}
        exec(compile(f"def make({', '.join(names)}):\n    def add_fp(fp, key):\n"
                     + textwrap.indent(self._PROBE, "    ") + "    return add_fp\n",
                     "<forkcheck store: add_fp>", "exec"), {}, loc)
        self.add_fp = loc["make"](**names)

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

    # add(state): add_key(hasher.encode(state)) in one generated function (see CompactStore._ADD)
    _FP = """\
    fp = FROM(BLAKE(key, digest_size=8).digest(), "little") or 1
"""
    _PROBE = """\
    table, size = S.table, S.size
    h = fp % size
    while True:
        x = table[h]
        if x == 0:
            break
        if x == fp:
            return -1, False     # seen; its index is not kept (no per-state index in this mode)
        h += 1
        if h == size:
            h = 0
    table[h] = fp
    i = S.n
    S.n = i + 1
    if i + 1 > size * MAXLOAD:
        GROW(S, GROWTH)
    S.last_key = key
    return i, True
"""

    # The search's generated expand inlines these (see CompactStore.fused_parts): the probe ends
    # with x == 0 (absent; h: its free slot) or x == fp (seen: no index is kept in this mode).
    _F_LOAD = "table, size = S.table, S.size\n"
    _F_PROBE = """\
fp = FROM(BLAKE(key, digest_size=8).digest(), "little") or 1
h = fp % size
while True:
    x = table[h]
    if x == 0 or x == fp:
        break
    h += 1
    if h == size:
        h = 0
"""
    _F_INSERT = """\
table[h] = fp
i = S.n
S.n = i + 1
if i + 1 > size * MAXLOAD:
    GROW(S, GROWTH)
    table, size = S.table, S.size
S.last_key = key
"""

    def fused_parts(self, moved: bool) -> tuple[dict[str, str], dict[str, Any], bool, Any]:
        """As CompactStore.fused_parts: successors hashed against their parent (StateHasher.
        relative_parts) and the table probed inline; a state seen has no index."""
        parts = dict(LOAD=self._F_LOAD, PROBE=self._F_PROBE, SEEN="x", INSERT=self._F_INSERT,
                     SK="key[:SW]", **self.hasher.relative_parts(moved))
        names = dict(S=self.h, FROM=int.from_bytes, BLAKE=_blake2b, MAXLOAD=self.MAX_LOAD, GROW=_grow_fp,
                     GROWTH=self.GROWTH, SW=self.hasher.shared_width)
        return parts, names, False, self.hasher.fn_with_parts

    def add(self, state: Any) -> tuple[int, bool]:
        return self.add_key(self.hasher.encode(state))   # replaced per instance by the generated one

    def key(self, state: Any) -> bytes:
        return self.hasher.encode(state)

    def has_key(self, key: bytes) -> bool:
        return self._slot(fingerprint(key))[1]

    def add_key(self, key: bytes) -> tuple[int, bool]:
        raise NotImplementedError        # replaced per instance by the generated one (_key_fn)

    def add_fp(self, fp: int, key: bytes) -> tuple[int, bool]:
        raise NotImplementedError        # replaced per instance by the generated one

    def has_fp(self, fp: int) -> bool:
        return self._slot(fp)[1]

    def shared_key(self) -> bytes:
        """The digests of the globals and pools of the state just added (the invariant cache's key)."""
        return self.h.last_key[:self.hasher.shared_width]

    def __contains__(self, state: Any) -> bool:
        return self._slot(fingerprint(self.hasher.encode(state)))[1]

    def get(self, idx: int) -> Any:
        raise ForkcheckError("fingerprint mode keeps no states (liveness and the state graph need the full store)")

    def __len__(self) -> int:
        return self.h.n

    def nbytes(self) -> int:
        """Everything the store keeps: the table and the hasher's (bounded) value cache."""
        return self.table_bytes() + self.hasher.nbytes()

    def table_bytes(self) -> int:
        return self.table.itemsize * len(self.table)

    def collision_probability(self) -> float:
        """Chance that two distinct states shared a fingerprint (optimistic birthday bound, as TLC),
        plus the chance that two distinct components shared a 64-bit digest (then states differing
        only there would share a key): the hasher computed a digest at least once per component."""
        return collision_bound(self.n, self.hasher.computed[0])


def collision_bound(n: int, c: int) -> float:
    """Birthday bound for n states' 64-bit fingerprints plus c components' 64-bit digests."""
    return min(1.0, (n * (n - 1) + c * (c - 1)) / 2 / 2.0 ** 64)
