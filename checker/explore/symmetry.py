"""Symmetry reduction: threads of an indexed family, and slots of a pool.

A state is replaced by a representative of its orbit under permutations of
(a) the threads of each family whose code never reads `self`/its index and
(b) the slots of each pool marked symmetric. Any representative is sound
(it is a permutation of the state, and the transition relation and every
property commute with these permutations); a better-chosen one only stores
fewer states. The representative here:

1. threads of a family are ordered by (pc, locals, wait channel);
2. slots of a symmetric pool are ordered by their contents (raw values,
   refs included), free slots last.

Both are cheap (no walk over references) and not always the least member
of the orbit; a better representative would only store fewer states.
Only pools that are never freed are permuted: they fill slots 1..k in
allocation order, so a permutation of the allocated slots fixes every free
slot and commutes with lowest-free-slot allocation. In a pool with `free`,
a dangling ref can point at a free slot, free slots stop being
interchangeable, and permuting them would be unsound.
`wakeup_one` (wakes the lowest-numbered thread) breaks thread symmetry, and
ordering comparisons on refs break slot symmetry: such systems are reduced
only where it is still sound, and `reasons` says what was turned off.
"""

from __future__ import annotations

from typing import Any, Callable

from .. import ir


def _walk_exprs(x: Any, out: list[Any]) -> None:
    if isinstance(x, (tuple, list)):
        for y in x:
            _walk_exprs(y, out)
        return
    if x is None or isinstance(x, (str, int, bool, ir.Span)) or not hasattr(x, "__dataclass_fields__"):
        return
    out.append(x)
    for name in x.__dataclass_fields__:
        if name in ("span", "type"):
            continue
        _walk_exprs(getattr(x, name), out)


class Symmetry:
    def __init__(self, system: ir.System):
        self.system = system
        s = system
        self.reasons: list[str] = []
        nodes: list[Any] = []
        per_code: dict[str, list[Any]] = {}
        for c in s.codes:
            lst: list[Any] = []
            for st in c.steps:
                _walk_exprs((st.guard, st.effects), lst)
            per_code[c.name] = lst
            nodes += lst
        _walk_exprs([i.expr for i in s.invariants] + [(l.p, l.q) for l in s.leadsto], nodes)
        wake_one = any(isinstance(n, ir.Wakeup) and n.one for n in nodes)
        # thread families
        self.families: list[list[int]] = []
        for fam, ths in s.families().items():
            tids = [s.threads.index(t) for t in ths]
            codes = {t.code for t in ths}
            if len(tids) < 2:
                continue
            if len(codes) != 1 or any(s.threads[i].fair != s.threads[tids[0]].fair for i in tids):
                self.reasons.append(f"family {fam}: threads differ in code or fairness")
                continue
            if any(isinstance(n, (ir.SelfIndex, ir.SelfId)) for n in per_code[next(iter(codes))]):
                self.reasons.append(f"family {fam}: its code reads its index")
                continue
            if wake_one:
                self.reasons.append(f"family {fam}: wakeup_one picks the lowest-numbered thread")
                continue
            self.families.append(tids)
        # pools
        ordered = {n.left.type.pool for n in nodes if isinstance(n, ir.Binary) and n.op in (
            ir.BinOp.LT, ir.BinOp.LE, ir.BinOp.GT, ir.BinOp.GE, ir.BinOp.ADD, ir.BinOp.SUB)
            and isinstance(n.left.type, ir.RefT)}
        ordered |= {n.type.pool for n in nodes if isinstance(n, ir.Const) and isinstance(n.type, ir.RefT)
                    and n.value != 0}
        _walk_exprs(s.init, nodes)
        freed = {n.obj.type.pool for n in nodes if isinstance(n, ir.Free) and isinstance(n.obj.type, ir.RefT)}
        self.pools: list[int] = []
        for pi, p in enumerate(s.pools):
            if p.name == "__chan__" or not p.symmetric or p.size < 2:
                continue
            if p.name in freed:
                # Allocation takes the lowest free slot. Once an object is freed, a ref left
                # pointing at its slot (a use-after-free, what several fork1 models look for)
                # makes free slots distinguishable, and permuting slots would no longer commute
                # with allocation. Never-freed pools fill slots 1..k in order, so permuting the
                # allocated ones is exact.
                self.reasons.append(f"pool {p.name}: objects are freed (slots are not interchangeable)")
                continue
            if p.name in ordered:
                self.reasons.append(f"pool {p.name}: refs are compared by order or named by slot")
                continue
            self.pools.append(pi)
        self.active = bool(self.families or self.pools)
        self.sym_pool_names = {s.pools[pi].name for pi in self.pools}
        self.pool_names = [p.name for p in s.pools]
        from ..semantics import Semantics
        self.sem = Semantics(system)
        self.thread_locals = [self.sem.thread_code[t].locals for t in range(len(s.threads))]
        sym = self.sym_pool_names

        def ren(types: list[ir.Type]) -> list[tuple[int, ir.Type]]:
            """Positions a permutation may rewrite: refs/lists into permuted pools, lock owners."""
            return [(i, t) for i, t in enumerate(types)
                    if (isinstance(t, (ir.RefT, ir.ListT)) and t.pool in sym) or isinstance(t, ir.LockT)]

        def fp(types: list[ir.Type]) -> tuple[frozenset[str], bool]:
            return (frozenset(t.pool for t in types if isinstance(t, (ir.RefT, ir.ListT)) and t.pool in sym),
                    any(isinstance(t, ir.LockT) for t in types))
        gtypes = [gv.type for gv in s.globals]
        ftypes = [[f.type for f in p.fields] for p in s.pools]
        ltypes = [[lv.type for lv in self.thread_locals[t]] for t in range(len(s.threads))]
        self.gren, self.gfp = ren(gtypes), fp(gtypes)
        self.fren, self.ffp = [ren(t) for t in ftypes], [fp(t) for t in ftypes]
        self.lren, self.lfp = [ren(t) for t in ltypes], [fp(t) for t in ltypes]
        self.nthreads = len(s.threads)
        self._ident = tuple(range(self.nthreads))
        self._memo: dict[int, tuple[Any, list[int] | None]] = {}
        self.canon_perm = self._compile()

    # ------------------------------------------------------------ canon

    def canon(self, state: Any) -> Any:
        return self.canon_perm(state)[0]

    def canon_perm_plain(self, state: Any) -> tuple[Any, tuple[int, ...]]:
        """The reference canonicaliser: `canon_perm` (generated by `_compile`) must return
        exactly what this returns (tests/explore/test_symmetry.py checks it on random states)."""
        g, pools, threads = state
        # fast path: every family already in order (sorting is stable, so ties stay) and no
        # slot to move: the state is its own representative
        for fam in self.families:
            prev = threads[fam[0]]
            for t in fam[1:]:
                cur = threads[t]
                if cur < prev:
                    break
                prev = cur
            else:
                continue
            break
        else:
            if not self.pools or not self._slot_sort(pools):
                return state, self._ident
        return self._with_slots(state, self._slot_sort(pools) if self.pools else {})

    def _with_slots(self, state: Any, smap: dict[str, list[int]]) -> tuple[Any, tuple[int, ...]]:
        """Sort the families and apply that with the slot maps `smap` (the generic path)."""
        threads = state[2]
        n = self.nthreads
        tperm = list(range(n))           # tperm[old] = new
        order = list(range(n))           # order[new] = old
        for fam in self.families:
            srt = sorted(fam, key=threads.__getitem__)
            for new_pos, old in zip(fam, srt):
                order[new_pos] = old
                tperm[old] = new_pos
        if not smap and tperm == list(range(n)):
            return state, tuple(tperm)
        return self._apply(state, tperm, order, smap), tuple(tperm)

    def _compile(self) -> Callable[[Any], tuple[Any, tuple[int, ...]]]:
        """`canon_perm_plain` specialised to this system as straight-line code (as compiled.py
        does for steps): same representative and permutation, a quarter of the cost on
        fork_exit, under half on fork1_2001.

        A state with slots to move takes the generic path. Otherwise only threads move: then
        refs, lists and wait channels are unchanged, so only lock owners are rewritten, each
        family's order test and sort are unrolled, and the permutation of each thread order
        is built once. The pools' slot maps are also cached for the last pools tuple seen
        (the successors of a state share their parent's)."""
        s = self.system
        n = self.nthreads
        ns: dict[str, Any] = {"IDENT": self._ident, "WITH_SLOTS": self._with_slots, "SLOT_SORT": self._slot_sort,
                              "LAST": [None, None], "TPERM": {}, "MK_TPERM": _mk_tperm,
                              "RL": _rl_mutex, "RL_SX": _rl_sx}

        def rl(t: ir.LockT, x: str) -> str:
            return f"{'RL_SX' if t.kind is ir.LockKind.SX else 'RL'}({x}, tp)"

        def rename(var: str, locks: list[tuple[int, ir.LockT]], pre: str, ind: str) -> list[str]:
            """Lines that rename the lock owners in tuple `var`, rebinding `var` to a new tuple only
            if one changed (an unchanged component stays the same object: the store's identity
            cache finds it without hashing)."""
            out = [f"{ind}{pre}{i} = {rl(t, f'{var}[{i}]')}" for i, t in locks]
            out.append(f"{ind}if {' or '.join(f'{pre}{i} is not {var}[{i}]' for i, _ in locks)}:")
            parts, at = [], 0
            for i, _ in locks:
                if i > at:
                    parts.append(f"{var}[{at}:{i}]")
                if parts and parts[-1].endswith(",)") and i == at:     # adjacent: one literal
                    parts[-1] = parts[-1][:-1] + f" {pre}{i},)"
                else:
                    parts.append(f"({pre}{i},)")
                at = i + 1
            parts.append(f"{var}[{at}:]")
            out.append(f"{ind}    {var} = {' + '.join(parts)}")
            return out

        def locks(ren: list[tuple[int, ir.Type]]) -> list[tuple[int, ir.LockT]]:
            return [(i, t) for i, t in ren if isinstance(t, ir.LockT)]

        helpers = []
        for pi in range(len(s.pools)):
            fl = locks(self.fren[pi])
            if fl:
                helpers += [f"def pool{pi}(slots, tp):",
                            "    out = None",
                            "    for k, o in enumerate(slots):",
                            "        if o is None:",
                            "            continue",
                            "        o0 = o",
                            *rename("o", fl, "q", "        "),
                            "        if o is not o0:",
                            "            if out is None:",
                            "                out = list(slots)",
                            "            out[k] = o",
                            "    return slots if out is None else tuple(out)",
                            ""]
        L = ["def canon_perm(state):", "    g, pools, threads = state"]
        if self.pools:
            L += ["    if pools is LAST[0]:",
                  "        sm = LAST[1]",
                  "    else:",
                  "        sm = SLOT_SORT(pools)",
                  "        LAST[0] = pools",
                  "        LAST[1] = sm",
                  "    if sm:",
                  "        return WITH_SLOTS(state, sm)"]
        tests = [f"threads[{b}] < threads[{a}]" for fam in self.families for a, b in zip(fam, fam[1:])]
        if not tests:
            L.append("    return state, IDENT")
        else:
            L += [f"    if not ({' or '.join(tests)}):", "        return state, IDENT"]
            order = [str(i) for i in range(n)]
            for k, fam in enumerate(self.families):
                if len(fam) == 2:
                    a, b = fam
                    L.append(f"    f{k} = ({b}, {a}) if threads[{b}] < threads[{a}] else ({a}, {b})")
                else:
                    ns[f"F{k}"] = tuple(fam)
                    L.append(f"    f{k} = sorted(F{k}, key=threads.__getitem__)")
                for j, pos in enumerate(fam):
                    order[pos] = f"f{k}[{j}]"
            L += [f"    order = ({', '.join(order)},)",
                  "    tp = TPERM.get(order)",
                  "    if tp is None:",
                  "        tp = MK_TPERM(TPERM, order)"]
            gl = locks(self.gren)
            if gl:
                L += rename("g", gl, "r", "    ")
            for pi in range(len(s.pools)):
                if locks(self.fren[pi]):
                    L += [f"    x = pool{pi}(pools[{pi}], tp)",
                          f"    if x is not pools[{pi}]:",
                          f"        pools = pools[:{pi}] + (x,) + pools[{pi + 1}:]"]
            nts = []
            for new in range(n):
                # family members share code, so the old thread's locals have the new one's types
                ll = locks(self.lren[new])
                if ll:
                    L += [f"    th = threads[{order[new]}]", "    loc = th[1]", *rename("loc", ll, "u", "    "),
                          f"    t{new} = th if loc is th[1] else (th[0], loc, th[2])"]
                    nts.append(f"t{new}")
                else:
                    nts.append(f"threads[{order[new]}]")
            L.append(f"    return (g, pools, ({', '.join(nts)},)), tp")
        src = "\n".join(helpers + L) + "\n"
        self.canon_source = src          # for debugging: the generated code
        exec(compile(src, f"<forkcheck symmetry: {s.name}>", "exec"), ns)
        fn: Callable[[Any], tuple[Any, tuple[int, ...]]] = ns["canon_perm"]
        return fn

    def _slot_sort(self, pools: Any) -> dict[str, list[int]]:
        """Slots of each symmetric pool ordered by their raw contents, free slots last.

        Cheaper than a walk (no per-ref work) and still a permutation, so sound. The map
        depends on the pool's tuple alone, and successors share their parent's pool tuples
        (the store interns them), so it is memoised by identity."""
        out: dict[str, list[int]] = {}
        names = self.pool_names
        memo = self._memo
        if len(memo) > 200_000:
            memo.clear()
        for pi in self.pools:
            slots = pools[pi]
            e = memo.get(id(slots))
            if e is not None and e[0] is slots:
                m = e[1]
            else:
                m = self._sort_one(slots)
                memo[id(slots)] = (slots, m)
            if m is not None:
                out[names[pi]] = m
        return out

    @staticmethod
    def _sort_one(slots: Any) -> list[int] | None:
        alloc = [i for i, o in enumerate(slots) if o is not None]
        if len(alloc) < 2 and (not alloc or alloc[0] == 0):
            return None
        alloc.sort(key=slots.__getitem__)
        newold = alloc + [i for i, o in enumerate(slots) if o is None]
        if all(newold[i] == i for i in range(len(newold))):
            return None
        m = [0] * len(slots)             # m[old] = new (1-based)
        for new, old in enumerate(newold, 1):
            m[old] = new
        return m

    def _apply(self, state: Any, tperm: list[int], order: list[int], smap: dict[str, list[int]]) -> Any:
        s = self.system
        g, pools, threads = state
        sem = self.sem

        def rn(t: ir.Type, v: Any) -> Any:
            if isinstance(t, ir.RefT):
                m = smap.get(t.pool)
                return m[v - 1] if (m is not None and v) else v
            if isinstance(t, ir.ListT):
                m = smap.get(t.pool)
                return tuple(m[x - 1] for x in v) if m is not None else v
            if isinstance(t, ir.LockT):
                a, b = v
                if t.kind is ir.LockKind.SX:
                    sh = 0
                    k = 0
                    while b:
                        if b & 1:
                            sh |= 1 << tperm[k]
                        b >>= 1
                        k += 1
                    return (tperm[a] if a >= 0 else -1, sh)
                return (tperm[a] if a >= 0 else -1, b)
            return v

        def rchan(w: int) -> int:
            if not w or not smap:
                return w
            base = 0
            for pi, size in enumerate(sem.pool_sizes):
                if w <= base + size:
                    if pi < len(s.pools) and s.pools[pi].name in smap:
                        return base + smap[s.pools[pi].name][w - base - 1]
                    return w
                base += size
            return w

        # Components the permutation does not touch are kept as the same objects (the
        # store's identity cache then finds them without hashing); in the others only the
        # fields that hold refs, lists or lock owners are rewritten.
        moved = set(smap)
        tid_same = all(tperm[i] == i for i in range(len(tperm)))

        def touched(fp: tuple[frozenset[str], bool]) -> bool:
            return bool(fp[0] & moved) or (fp[1] and not tid_same)

        def redo(vals: Any, ren: list[tuple[int, ir.Type]]) -> tuple:
            out = list(vals)
            for i, t in ren:
                out[i] = rn(t, vals[i])
            return tuple(out)

        ng = redo(g, self.gren) if touched(self.gfp) else g
        npools = []
        for pi, p in enumerate(s.pools):
            slots = pools[pi]
            m = smap.get(p.name)
            if m is None and not touched(self.ffp[pi]):
                npools.append(slots)
                continue
            ren = self.fren[pi]
            objs = [None if o is None else (redo(o, ren) if ren else o) for o in slots]
            if m is not None:
                re = [None] * len(objs)
                for old, o in enumerate(objs):
                    re[m[old] - 1] = o
                objs = re
            npools.append(tuple(objs))
        chan_moved = bool(moved)
        nthreads = []
        for new in range(len(threads)):
            old = order[new]
            th = threads[old]
            pc, locs, w = th
            if not touched(self.lfp[old]) and not (chan_moved and w):
                nthreads.append(th)
                continue
            nthreads.append((pc, redo(locs, self.lren[old]), rchan(w)))
        np_ = tuple(npools)
        if all(a is b for a, b in zip(np_, pools)):
            np_ = pools             # unchanged pools: keep the tuple (the codec caches it by identity)
        return (ng, np_, tuple(nthreads))


def _mk_tperm(cache: dict[tuple[int, ...], tuple[int, ...]], order: tuple[int, ...]) -> tuple[int, ...]:
    """The inverse of `order` (order[new] = old, tperm[old] = new), remembered."""
    tp = [0] * len(order)
    for new, old in enumerate(order):
        tp[old] = new
    cache[order] = t = tuple(tp)
    return t


def _rl_mutex(v: tuple[int, int], tp: tuple[int, ...]) -> tuple[int, int]:
    """A mutex value (owner, recursion) with its owner renamed; `v` itself if unchanged."""
    a, b = v
    if a < 0:
        return v if a == -1 else (-1, b)
    t = tp[a]
    return v if t == a else (t, b)


def _rl_sx(v: tuple[int, int], tp: tuple[int, ...]) -> tuple[int, int]:
    """An sx value (exclusive owner, a bit per shared holder) renamed; `v` itself if unchanged."""
    a, b = v
    sh = 0
    k = 0
    while b:
        if b & 1:
            sh |= 1 << tp[k]
        b >>= 1
        k += 1
    t = tp[a] if a >= 0 else -1
    return v if (t == a and sh == v[1]) else (t, sh)
