"""Keys of states from their values, for the fingerprint store (`--fingerprint`).

A state's key is the concatenation of one 64-bit digest per component (the
globals, each pool, each thread): blake2b of the component's repr with bools
spelled as ints, so equal components (True == 1, as the full-state stores
compare them) get equal digests, the same in every process and run (unlike
hash(): hash(None) is an address, and hash(-1) == hash(-2)). The store
fingerprints that key to 64 bits. Two distinct components with one digest
would merge states too, so the collision bound also counts the digests
computed (at least the distinct components).

Unlike StateCodec, no table of components is kept, so memory does not grow
with the distinct components: each component position remembers the last
object seen there and its digest (successors share their parent's unchanged
components as the very same objects: one `is` test); another component is
looked up by identity, then by value, in one bounded cache (cleared when
full) before it is hashed. The states the search expands are rebuilt from
the cached objects (interned(), as StateCodec.intern), so the frontier's
states share their components as in the other stores.
"""

from __future__ import annotations

import hashlib
import sys
import textwrap
from typing import Any

from .. import ir

_blake2b = hashlib.blake2b

DIGEST = 8                   # bytes per component digest (16 cost ~2% more time on fork1: longer keys)
CACHE_MAX = 1024             # components remembered by value (then the cache starts over)


def component_digest(x: Any) -> bytes:
    """64-bit digest of a component (nested tuples of ints, bools and None)."""
    return _blake2b(repr(x).replace("True", "1").replace("False", "0").encode(), digest_size=DIGEST).digest()


class StateHasher:
    """encode(state) -> the concatenated component digests (k * 16 bytes); with_encode fuses that
    into a store's add as StateCodec.with_encode does."""

    def __init__(self, system: ir.System, cache_max: int = CACHE_MAX):
        self.npools = len(system.pools)
        self.nthreads = len(system.threads)
        self.k = 1 + self.npools + self.nthreads
        self.width = DIGEST * self.k
        self.shared_width = DIGEST * (1 + self.npools)    # the globals' and pools' digests: what invariants read
        self.cache: dict[Any, tuple[Any, bytes]] = {}      # component -> (that object, its digest)
        self.cache_max = cache_max
        self.computed = computed = [0]                       # digests computed (found in no cache)
        # id(component) -> its entry, for the cached objects themselves (the interned states'
        # components): found without hashing the value; the entry keeps the object, so its id
        # cannot be reused while it is here
        self.byid: dict[int, tuple[Any, bytes]] = {}
        # digest -> the same entries: --workers' receiver finds a shipped state's components by
        # the digests its sender computed (adopt()), without hashing their values again
        self.bydig: dict[bytes, tuple[Any, bytes]] = {}
        cache, byid, bydig = self.cache, self.byid, self.bydig
        cget = cache.get

        def miss(x: Any) -> tuple[Any, bytes]:
            """(x, its digest) for a component in no cache, now cached (a closure, not a method:
            the generated code must not refer back to the hasher, or it would wait for a full
            collection)."""
            r = (x, component_digest(x))
            computed[0] += 1
            if len(cache) >= cache_max:
                cache.clear()
                byid.clear()
                bydig.clear()
            cache[x] = r
            byid[id(x)] = r
            bydig[r[1]] = r
            return r

        def known(x: Any, d: bytes) -> tuple[Any, bytes]:
            """(x, d) for a component in no cache whose digest d another process computed, now
            cached (the digest is a function of the value, so it is the one miss() would give)."""
            r = (x, d)
            if len(cache) >= cache_max:
                cache.clear()
                byid.clear()
                bydig.clear()
            cache[x] = r
            byid[id(x)] = r
            bydig[d] = r
            return r

        ns: dict[str, Any] = {"D": miss, "B": self.byid.get, "G": cget, "JOIN": b"".join, "BD": bydig.get,
                              "K": known}
        # per position: L the object last seen there (kept, so `is` cannot be fooled by a reused
        # id), C the cached object equal to it (what interned() rebuilds from), V its digest.
        # L is the object itself, not C: siblings share a new component as one object
        gnames = [f"{c}{i}" for c in "LCV" for i in range(self.k)] + ["LP"]
        for nm in gnames:
            ns[nm] = b"" if nm.startswith("V") else None
        pools = "".join(f"        x = P[{i}]\n"
                        f"        if x is not L{1 + i}:\n"
                        f"            L{1 + i} = x\n"
                        f"            C{1 + i}, V{1 + i} = B(id(x)) or G(x) or D(x)\n" for i in range(self.npools))
        thr = "".join(f"    x = T[{i}]\n"
                      f"    if x is not L{j}:\n"
                      f"        L{j} = x\n"
                      f"        C{j}, V{j} = B(id(x)) or G(x) or D(x)\n"
                      for i, j in enumerate(range(1 + self.npools, self.k)))
        body = (f"    global {', '.join(gnames)}\n"
                "    g, P, T = s\n"
                "    if g is not L0:\n"
                "        L0 = g\n"
                "        C0, V0 = B(id(g)) or G(g) or D(g)\n"
                "    if P is not LP:\n"
                + (pools or "        pass\n") +
                "        LP = P\n" +
                thr +
                f"    key = JOIN(({''.join(f'V{i}, ' for i in range(self.k))}))\n")
        exec(compile(f"def encode(s):\n{body}    return key\n", "<forkcheck state hasher>", "exec"), ns)
        self._encode = ns["encode"]
        # interned(): the state last encoded, rebuilt from the cached objects (as StateCodec.intern)
        n = 1 + self.npools
        exec(compile("def interned():\n"
                     f"    return (C0, ({''.join(f'C{i}, ' for i in range(1, n))}), "
                     f"({''.join(f'C{i}, ' for i in range(n, self.k))}))\n",
                     "<forkcheck state hasher: interned>", "exec"), ns)
        self.interned = ns["interned"]
        self._encode_body, self._encode_ns = body, ns
        # adopt(s, key): as encode(s) for a state whose key another process computed (--workers
        # ships it with the state): each component is found by its digest in the key, so a
        # received state's fresh objects are not hashed again; interned() is then that state
        # rebuilt from the cached objects
        dig = [f"key[{DIGEST * i}:{DIGEST * (i + 1)}]" for i in range(self.k)]
        pools = "".join(f"    x = P[{i}]\n"
                        f"    if x is not L{1 + i}:\n"
                        f"        d = {dig[1 + i]}\n"
                        f"        L{1 + i} = x\n"
                        f"        C{1 + i}, V{1 + i} = BD(d) or K(x, d)\n" for i in range(self.npools))
        thr = "".join(f"    x = T[{i}]\n"
                      f"    if x is not L{j}:\n"
                      f"        d = {dig[j]}\n"
                      f"        L{j} = x\n"
                      f"        C{j}, V{j} = BD(d) or K(x, d)\n"
                      for i, j in enumerate(range(1 + self.npools, self.k)))
        exec(compile("def adopt(s, key):\n"
                     f"    global {', '.join(gnames)}\n"
                     "    g, P, T = s\n"
                     "    if g is not L0:\n"
                     f"        d = {dig[0]}\n"
                     "        L0 = g\n"
                     "        C0, V0 = BD(d) or K(g, d)\n"
                     "    LP = P\n" + pools + thr,
                     "<forkcheck state hasher: adopt>", "exec"), ns)
        self.adopt = ns["adopt"]

    def with_encode(self, name: str, tail: str, **names: Any) -> Any:
        """A function `name(s)` that computes s's key into `key` as encode() does (sharing its
        caches) then runs `tail` (source indented by 4)."""
        loc: dict[str, Any] = {}
        src = (f"def make({', '.join(names)}):\n"
               f"    def {name}(s):\n" + textwrap.indent(self._encode_body + tail, "    ") +
               f"    return {name}\n")
        exec(compile(src, f"<forkcheck state hasher: {name}>", "exec"), self._encode_ns, loc)
        return loc["make"](**names)

    def relative_parts(self, moved: bool) -> dict[str, str]:
        """Parts for fn_with_parts (as StateCodec.relative_encode) that hash successors against
        their parent: `#PARENT` finds the digests of the parent `state`'s components once (through
        encode()'s per-position objects, then the caches), then `#RELATIVE` computes `s`'s key
        into `key`, a component that is the parent's object at its position costing one `is`
        test and no lookup, and `#NEW` rebuilds `s` into `nxt` from the cached objects (as
        interned()). Another component is looked up by value (and by identity first if `moved`:
        symmetry may move the parent's components to other positions)."""
        np_, k = self.npools, self.k
        look = "B(id({0})) or G({0}) or D({0})" if moved else "G({0}) or D({0})"
        find = "B(id({0})) or G({0}) or D({0})"
        gl = [f"{c}{i}" for c in "LCV" for i in range(k)] + ["LP"]
        par = [f"global {', '.join(gl)}", "_g, _P, _T = state", "if _g is not L0:", "    L0 = _g",
               f"    C0, V0 = {find.format('_g')}", "if _P is not LP:"]
        for i in range(np_):
            par += [f"    x = _P[{i}]", f"    if x is not L{1 + i}:", f"        L{1 + i} = x",
                    f"        C{1 + i}, V{1 + i} = {find.format('x')}"]
        par += ["    LP = _P"]
        par += [f"O{1 + i} = _P[{i}]" for i in range(np_)]
        for i in range(self.nthreads):
            j = 1 + np_ + i
            par += [f"O{j} = x = _T[{i}]", f"if x is not L{j}:", f"    L{j} = x", f"    C{j}, V{j} = {find.format('x')}"]
        # the parent's cached objects and digests, as locals; its pools rebuilt and their digests joined
        par += [f"{', '.join(f'PL{i}' for i in range(k))}, = {', '.join(f'C{i}' for i in range(k))},",
                f"{', '.join(f'Q{i}' for i in range(k))}, = {', '.join(f'V{i}' for i in range(k))},",
                f"PRP = ({''.join(f'PL{1 + i}, ' for i in range(np_))})",
                f"QP = JOIN(({''.join(f'Q{1 + i}, ' for i in range(np_))}))"]

        def one(x: str, i: int) -> list[str]:
            return [f"if {x} is O{i}:", f"    U{i} = Q{i}", "else:", f"    R{i}, U{i} = {look.format(x)}"]
        rel = ["g, P, T = s", "if g is _g:", "    U0 = Q0", "else:", f"    R0, U0 = {look.format('g')}",
               "if P is _P:", "    UP = QP", "else:"]
        for i in range(np_):
            rel += [f"    x = P[{i}]"] + ["    " + ln for ln in one("x", 1 + i)]
        rel += [f"    UP = JOIN(({''.join(f'U{1 + i}, ' for i in range(np_))}))"]
        for i in range(self.nthreads):
            rel += [f"x = T[{i}]"] + one("x", 1 + np_ + i)
        rel += [f"key = JOIN((U0, UP, {''.join(f'U{1 + np_ + i}, ' for i in range(self.nthreads))}))"]
        pools = "".join(f"PL{1 + i} if P[{i}] is O{1 + i} else R{1 + i}, " for i in range(np_))
        thr = "".join(f"PL{1 + np_ + i} if T[{i}] is O{1 + np_ + i} else R{1 + np_ + i}, "
                      for i in range(self.nthreads))
        new = f"nxt = (PL0 if g is _g else R0, PRP if P is _P else ({pools}), ({thr}))"
        return {"PARENT": "\n".join(par) + "\n", "RELATIVE": "\n".join(rel) + "\n", "NEW": new + "\n"}

    def fn_with_parts(self, src: str, name: str, parts: dict[str, str], **names: Any) -> Any:
        """Compile `src` in encode()'s namespace (sharing its caches), each line `#PART` replaced
        by parts[PART] (see store.compile_with_parts)."""
        from .store import compile_with_parts
        return compile_with_parts(src, name, parts, self._encode_ns, f"<forkcheck state hasher: {name}>", names)

    def encode(self, state: Any) -> bytes:
        return self._encode(state)

    def nbytes(self) -> int:
        """The value cache: bounded by cache_max components, whatever the number of states."""
        from .store import _deep_distinct
        # per entry: the component's tuples (each shared one once), the (object, digest) pair, the digest
        return sys.getsizeof(self.cache) + sys.getsizeof(self.byid) + sys.getsizeof(self.bydig) + _deep_distinct(list(self.cache)) + len(self.cache) * (
            sys.getsizeof((None, b"")) + sys.getsizeof(b"") + DIGEST)


def collision_note(p: float, states: int, workers: int = 1) -> str:
    """The result's note on what fingerprint mode may have missed (one process or --workers)."""
    where = (f"over {states:,} 64-bit fingerprints" if workers == 1 else
             f"summed over the {workers} workers' tables, {states:,} 64-bit fingerprints in all; a state's "
             f"owner is picked from its fingerprint, so equal fingerprints always meet in one table")
    return f"fingerprint mode: probability that a collision hid a state <= {p:.2g} (optimistic birthday bound {where})"
