"""The explicit-state search: BFS or DFS over the reachable states.

The search owns the visited store and the parent pointers (one per state:
parent index and the (thread, step) that first reached it), checks the
state properties (invariants, deadlock) on every stored state and the step
properties (runtime, witness, asserts) on every transition, and feeds each
transition to the analyses (lock order, races, liveness graph).

BFS finds shortest counterexamples. Among the shortest it prefers the path
with the fewest preemptions (a switch of thread while the previous thread
could have continued) and counts how many shortest paths there are; both
are exact per state except that ties on preemptions keep the first path.
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .. import interrupt, ir
from ..results import StopReason
from ..semantics import EvalError, Transition
from .options import ExploreOptions, Strategy
from .store import DictStore


class Engine(Protocol):
    """What the search needs from a successor function (Semantics or the compiled one)."""

    def initial_state(self) -> Any: ...
    def successors(self, state: Any) -> Any: ...
    def is_terminated(self, state: Any, tid: int) -> bool: ...
    def eval_in(self, state: Any, expr: ir.Expr, env: dict[str, int] | None = None, tid: int = -1) -> Any: ...


@dataclass
class Found:
    """A candidate counterexample for one property."""
    prop: str
    message: str
    target: int                       # state index: the violating state, or the source of the violating step
    tid: int = -1                     # violating step (tid, step id), or -1 for a state property
    step_id: int = -1
    extra_steps: tuple[tuple[int, int], ...] = ()   # steps after that (races: the second access)
    preempt_inc: int = 0
    preemptions: int = 0
    shortest_count: int | None = None
    seconds: float = 0.0              # search time when it was found
    details: dict[str, Any] = field(default_factory=dict)


INV_CACHE_MAX = 1 << 20        # remembered globals+pools keys where the invariants held


def check_invariants(engine: Any, invariants: list[ir.Invariant], decided: Any, state: Any,
                     key: Any, ok_keys: set[Any]) -> list[tuple[str, str]]:
    """The invariants not yet `decided` that fail on a new state, as (name, message).

    Invariants read only globals and objects, and many states share those (they differ in
    threads only), so `key` (the store's identity of the globals and pools; None: no cache)
    of a state where every invariant checked held is remembered in `ok_keys`: another state
    with the same key passes too."""
    if key is not None:
        if key in ok_keys:
            return []
        if len(ok_keys) >= INV_CACHE_MAX:
            ok_keys.clear()
    failed = []
    for inv in invariants:
        if inv.name in decided:
            continue
        try:
            if not engine.eval_in(state, inv.expr):
                failed.append((inv.name, f"invariant {inv.name} is false"))
        except EvalError as e:
            failed.append((inv.name, f"invariant {inv.name} cannot be evaluated: {e}"))
    if key is not None and not failed:
        ok_keys.add(key)
    return failed


def _reads_thread(e: Any) -> bool:
    """Whether an expression reads a thread's state (then its value is not a function of the
    globals and pools alone)."""
    if isinstance(e, (ir.Woken, ir.SelfIndex, ir.SelfId, ir.LocalRead)):
        return True
    if isinstance(e, (tuple, list)):
        return any(_reads_thread(x) for x in e)
    if hasattr(e, "__dataclass_fields__") and not isinstance(e, ir.Span):
        return any(_reads_thread(getattr(e, f)) for f in e.__dataclass_fields__ if f not in ("span", "type"))
    return False


# Check the clock and print progress only every this many expansions: a
# time.monotonic() call per state costs more than a cheap successor.
CLOCK_EVERY = 1024
PROGRESS_SECONDS = 0.5
GC_YOUNG = 100_000       # young-generation threshold while searching (Python's default: 700)
FUSE = True              # generate the fused expand when the run allows (tests compare it with _expand)


def resident_memory(pid: int | str = "self") -> int:
    """Resident memory of a process now, in bytes (Linux /proc; elsewhere this process's peak)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return peak_memory() if pid == "self" else 0


def peak_memory() -> int:
    """Peak resident memory of this process in bytes (ru_maxrss is KiB on Linux)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


class Search:
    def __init__(self, engine: Engine, system: ir.System, options: ExploreOptions,
                 invariants: list[ir.Invariant], step_props: set[str], check_deadlock: bool,
                 canon_perm: Callable[[Any], tuple[Any, tuple[int, ...]]] | None = None,
                 observers: list[Any] | None = None, ample: Callable[[Any, Any, list[Transition]], list[Transition]] | None = None,
                 keep_edges: bool = False, store: Any = None):
        self.engine = engine
        self.system = system
        self.options = options
        self.invariants = invariants
        self.step_props = step_props
        self.check_deadlock = check_deadlock
        self.canon_perm = canon_perm
        self.canon = None if canon_perm is None else (lambda st: canon_perm(st)[0])
        self.observers = observers or []
        self.ample = ample
        self.keep_edges = keep_edges
        self.nthreads = len(system.threads)
        # store: states (or their fingerprints) and, per index, how the search first reached it
        self.store: Any = store if store is not None else DictStore()
        self.interning = hasattr(self.store, "interned")
        # invariants that read no thread (no `woken`, self, or locals) can be cached per globals+pools
        self.inv_cache = bool(invariants) and hasattr(self.store, "shared_key") and not any(
            _reads_thread(i.expr) for i in invariants)
        self._inv_ok: set[bytes] = set()
        self.parent = array("q")
        self.via_tid = array("h")
        self.via_step = array("l")
        self.depth = array("l")
        self.pre = array("l")          # fewest preemptions on a shortest path (BFS)
        self.last = array("h")         # thread of the last step on that path
        self.count: list[int] = []     # number of shortest paths (BFS)
        self._appends = (self.parent.append, self.via_tid.append, self.via_step.append, self.depth.append,
                         self.pre.append, self.last.append, self.count.append)
        self.edges: list[list[tuple[int, int, int]]] = []   # (dst, tid, step id) when keep_edges
        self.enabled: list[int] = []   # when keep_edges: bit t set if thread t is enabled (full graph)
        # id(transition) -> (representative, permutation or None, store key): what the ample
        # function computed for the state being expanded, so it is not computed twice
        self.looked_up: dict[int, tuple[Any, Any, Any]] = {}
        # results
        self.found: dict[str, Found] = {}
        self.pending: dict[str, list[Found]] = {}
        self.transitions = 0
        self.max_depth = 0
        self.stop = StopReason.FINISHED
        self.depth_cut = False
        self.por_cut = -1              # least depth of a state whose successors POR pruned (-1: none)
        self.t0 = 0.0
        self.seconds = 0.0
        self.wanted: set[str] = set()   # every property whose violation could end the search
        self._last_progress = 0.0
        self._gc_threshold: tuple[int, ...] | None = None     # Python's, while the search raised it
        self.show_progress = options.progress if options.progress is not None else sys.stderr.isatty()

    # ------------------------------------------------------------ store

    def _add(self, state: Any, parent: int, tid: int, step_id: int, depth: int, pre: int, last: int,
             count: int, key: Any = None) -> tuple[int, bool]:
        idx, new = self.store.add(state) if key is None else self.store.add_key(key)
        if new:
            self._record(parent, tid, step_id, depth, pre, last, count)
        return idx, new

    def _record(self, parent: int, tid: int, step_id: int, depth: int, pre: int, last: int, count: int) -> None:
        """How the search first reached the state just added."""
        self.parent.append(parent)
        self.via_tid.append(tid)
        self.via_step.append(step_id)
        self.depth.append(depth)
        self.pre.append(pre)
        self.last.append(last)
        self.count.append(count)
        if self.keep_edges:
            self.edges.append([])
            self.enabled.append(0)
        if depth > self.max_depth:
            self.max_depth = depth

    def path(self, idx: int) -> list[tuple[int, int]]:
        """(thread, step id) from the initial state to state idx."""
        out = []
        while self.parent[idx] >= 0:
            out.append((self.via_tid[idx], self.via_step[idx]))
            idx = self.parent[idx]
        out.reverse()
        return out

    # ------------------------------------------------------- properties

    def _check_state(self, idx: int, state: Any, key: bytes | None = None) -> None:
        for name, msg in check_invariants(self.engine, self.invariants, self.found, state, key, self._inv_ok):
            self._candidate(Found(name, msg, idx))

    def _candidate(self, f: Found) -> None:
        if f.prop in self.found:
            return
        if self.options.strategy is Strategy.BFS:
            self.pending.setdefault(f.prop, []).append(f)
        else:
            self.found[f.prop] = self._finalise([f])

    def _finalise(self, cands: list[Found]) -> Found:
        bfs = self.options.strategy is Strategy.BFS
        for f in cands:
            f.preemptions = self.pre[f.target] + f.preempt_inc
        best = min(cands, key=lambda f: f.preemptions)
        best.seconds = time.monotonic() - self.t0
        if bfs:
            best.shortest_count = sum(self.count[f.target] for f in cands)
        return best

    def _flush_pending(self) -> None:
        for prop, cands in self.pending.items():
            if prop not in self.found:
                self.found[prop] = self._finalise(cands)
        self.pending.clear()

    def _all_decided(self) -> bool:
        """Every selected property is violated already: nothing left to learn (liveness never is)."""
        if not self.wanted:
            return False
        done = set(self.found)
        for obs in self.observers:
            done |= obs.decided()
        return all(p in done for p in self.wanted)

    # ----------------------------------------------------------- expand

    def _expand(self, idx: int, state: Any) -> list[tuple[int, Any]]:
        """Successors of a stored state; returns the new (idx, state) to queue."""
        (successors, observers, keep_edges, ample, bfs, looked_up, store, add, canon_perm, interned, shared_key,
         check_all, inv_ok, depth, count, pre_a, last_a, ap_parent, ap_tid, ap_step, ap_depth, ap_pre, ap_last,
         ap_count) = self._hot
        trans = list(successors(state))
        d = depth[idx]
        if not trans:
            if not all(self.engine.is_terminated(state, t) for t in range(self.nthreads)):
                if self.check_deadlock:
                    self._candidate(Found("deadlock", "deadlock: no thread can move and not all are done", idx))
                for obs in observers:
                    obs.on_deadlock(self, idx, state)
            return []
        if observers:
            for obs in observers:
                obs.on_state(self, idx, state, trans)
        if keep_edges:
            m = 0
            for t in trans:
                if not t.violations:       # as the edges: a step into a violation goes nowhere
                    m |= 1 << t.thread
            self.enabled[idx] = m
        if ample is not None:
            n0 = len(trans)
            looked_up.clear()
            trans = ample(self, state, trans)
            if len(trans) < n0 and (self.por_cut < 0 or d < self.por_cut):
                self.por_cut = d
        last = last_a[idx]
        # did the last path's thread have a step here (then another thread's step preempts it)?
        last_moves = last >= 0 and last in {t[0] for t in trans}
        out = []
        edges = self.edges[idx] if keep_edges else None
        pre0, cnt, d1 = pre_a[idx], count[idx], d + 1
        self.transitions += len(trans)
        for t in trans:
            tid, step, nxt, _, _, violations = t
            inc = 1 if last_moves and tid != last else 0
            if violations:
                for v in violations:
                    if v.prop in self.step_props:
                        self._candidate(Found(v.prop, v.message, idx, tid, step.id, preempt_inc=inc))
                continue
            seen = looked_up.get(id(t)) if looked_up else None
            if seen is not None:
                nxt, perm, key = seen       # POR already canonicalised and packed it
                now = tid if perm is None else perm[tid]
                # a store whose interned() is the state it last packed must pack this one again:
                # POR packed the other candidates since (interned() would return one of them)
                j, new = store.add_key(key) if store.interned_by_key else add(nxt)
            elif canon_perm is None:
                now = tid
                j, new = add(nxt)
            else:
                nxt, perm = canon_perm(nxt)
                now = perm[tid]             # the mover's number in the stored representative
                j, new = add(nxt)
            pre = pre0 + inc
            if edges is not None:
                edges.append((j, tid, step.id))
            if new:
                # self._record, inlined
                ap_parent(idx)
                ap_tid(tid)
                ap_step(step.id)
                ap_depth(d1)
                ap_pre(pre)
                ap_last(now)
                ap_count(cnt)
                if edges is not None:
                    self.edges.append([])
                    self.enabled.append(0)
                if interned is not None:
                    nxt = interned()
                # self._check_state, skipped on an invariant-cache hit
                if shared_key is not None:
                    sk = shared_key()
                    if sk not in inv_ok:
                        self._check_state(j, nxt, sk)
                elif check_all:
                    self._check_state(j, nxt, None)
                out.append((j, nxt))
            elif bfs and j >= 0 and depth[j] == d1:
                # another shortest path into j: count it, keep the one with fewer preemptions
                count[j] += cnt
                if pre < pre_a[j]:
                    pre_a[j] = pre
                    self.parent[j] = idx
                    self.via_tid[j] = tid
                    self.via_step[j] = step.id
                    self.last[j] = now
        if out and d1 > self.max_depth:
            self.max_depth = d1
        return out

    # -------------------------------------------------------------- run

    def _tick(self, frontier: int) -> None:
        interrupt.check()       # a signal whose KeyboardInterrupt was lost (raised in a finalizer)
        if self._gc_threshold is None:
            # past the first CLOCK_EVERY expansions (not for tiny searches): the search allocates
            # a few tuples per transition, nearly all freed at once by their refcount, so collect
            # the young generation less often (~3% of the run). Full collections then come late
            # too, so first free what earlier runs in this process left in reference cycles (else
            # two runs in one process peaked ~40 MiB higher on fork1_2001 with the dict store).
            self._gc_threshold = gc.get_threshold()
            gc.collect()
            gc.set_threshold(max(self._gc_threshold[0], GC_YOUNG), *self._gc_threshold[1:])
        now = time.monotonic()
        lim = self.options.time_limit
        if lim is not None and now - self.t0 >= lim:
            raise _Stop(StopReason.TIME_LIMIT)
        mm = self.options.max_memory
        if mm is not None and resident_memory() >= mm * 2**20:
            # stop while there is still room to build the traces and the report
            raise _Stop(StopReason.MEMORY_LIMIT)
        if self.show_progress and now - self._last_progress >= PROGRESS_SECONDS:
            self._last_progress = now
            el = now - self.t0
            n = len(self.store)
            sys.stderr.write(f"\r  {self.options.progress_label}{n:,} states  depth {self.max_depth}  "
                             f"queue {frontier:,}  "
                             f"{n / el if el else 0:,.0f} states/s  {peak_memory() / 2**20:,.0f} MiB \x1b[K")
            sys.stderr.flush()

    def _bind_hot(self) -> None:
        """What _expand reads on every call, bound once per run (the loop over transitions runs
        once per transition, so _record/_check_state are inlined there too: a method call costs
        as much as a cheap step)."""
        store = self.store
        shared_key = store.shared_key if self.inv_cache else None
        fn = getattr(self.engine, "successors_fn", None)
        self._hot = (fn() if fn is not None else self.engine.successors, self.observers, self.keep_edges, self.ample,
                     self.options.strategy is Strategy.BFS, self.looked_up, store, store.add, self.canon_perm,
                     store.interned if self.interning else None, shared_key,
                     bool(self.invariants) and shared_key is None, self._inv_ok, self.depth, self.count,
                     self.pre, self.last, *self._appends)

    def _bind_fused(self) -> None:
        """self._exp: _expand, or when nothing needs the transitions themselves (no observers,
        edges or POR) and the engine and store allow it, one function generated for this run that
        computes the successors, packs and probes each inline (no Transition, no add() call) and
        does what _expand does with them. A state where a step needs the interpreter, and a state
        with no successors, go to _expand."""
        self._exp = Search._expand
        store = self.store
        raw = getattr(self.engine, "raw_successors_fn", None)
        raw = raw() if raw is not None else None
        if (not FUSE or raw is None or self.observers or self.keep_edges or self.ample is not None
                or not hasattr(store, "fused_parts")):
            return
        canon = self.canon_perm is not None
        parts, names, indexed, compile_fn = store.fused_parts(moved=canon)
        bfs = self.options.strategy is Strategy.BFS
        shared = self.inv_cache
        check_all = bool(self.invariants) and not shared
        src = _FUSED.replace("@SEEN@", parts.pop("SEEN")).replace("@SK@", parts.pop("SK"))
        # a store that keeps no index of a state seen (fingerprints) has no shortest-path counts to update
        src = _select(src, {"CANON": canon, "PLAIN": not canon, "BFS": bfs and indexed, "SHARED": shared,
                            "ALL": check_all})
        names.update(RAW=raw, CANON_PERM=self.canon_perm, INV_OK=self._inv_ok, depth=self.depth, count=self.count,
                     pre_a=self.pre, last_a=self.last, parent=self.parent, via_tid=self.via_tid,
                     via_step=self.via_step)
        names.update(zip(("ap_parent", "ap_tid", "ap_step", "ap_depth", "ap_pre", "ap_last", "ap_count"),
                         self._appends))
        self._exp = compile_fn(src, "expand", parts, **names)

    def run(self) -> None:
        self.t0 = time.monotonic()
        self._bind_hot()
        self._bind_fused()
        try:
            init = self.engine.initial_state()
            if self.canon_perm is not None:
                init = self.canon_perm(init)[0]
            idx, _ = self._add(init, -1, -1, -1, 0, 0, -1, 1)
            self._check_state(idx, init, self.store.shared_key() if self.inv_cache else None)
            if self.options.strategy is Strategy.BFS:
                self._bfs(init)
            else:
                self._dfs(init)
        except _Stop as s:
            self.stop = s.reason
        except KeyboardInterrupt:
            self.stop = StopReason.INTERRUPTED
        finally:
            if self._gc_threshold is not None:
                gc.set_threshold(*self._gc_threshold)
                self._gc_threshold = None
            self._flush_pending()
            for obs in self.observers:
                obs.on_end(self)
            self.seconds = time.monotonic() - self.t0
            if self.show_progress:
                sys.stderr.write("\r\x1b[K")
                sys.stderr.flush()
        if self.stop is StopReason.FINISHED and self.depth_cut:
            self.stop = StopReason.DEPTH_LIMIT

    def _limit_states(self) -> None:
        ms = self.options.max_states
        if ms is not None and len(self.store) >= ms:
            raise _Stop(StopReason.STATE_LIMIT)

    def _bfs(self, init: Any) -> None:
        level: list[tuple[int, Any]] = [(0, init)]
        md = self.options.max_depth
        exp = self._exp
        limit = self.options.max_states is not None
        n = 0
        depth = 0
        while level:
            if md is not None and depth >= md:
                self.depth_cut = any(True for _, st in level if any(True for _ in self.engine.successors(st)))
                return
            nxt: list[tuple[int, Any]] = []
            for idx, st in level:
                n += 1
                if n % CLOCK_EVERY == 0:
                    self._tick(len(level) + len(nxt))
                out = exp(self, idx, st)
                if out:
                    nxt += out
                    if limit:
                        self._limit_states()    # once: the expansion added all of them already
            # the level is complete: counts and preemptions of its states are final
            self._flush_pending()
            if self.options.stop_first and self.found:
                raise _Stop(StopReason.VIOLATION)
            if self._all_decided():
                raise _Stop(StopReason.VIOLATION)
            level = nxt
            depth += 1

    def _dfs(self, init: Any) -> None:
        stack: list[tuple[int, Any]] = [(0, init)]
        md = self.options.max_depth
        n = 0
        while stack:
            idx, st = stack.pop()
            n += 1
            if n % CLOCK_EVERY == 0:
                self._tick(len(stack))
            if md is not None and self.depth[idx] >= md:
                if not self.depth_cut and any(True for _ in self.engine.successors(st)):
                    self.depth_cut = True
                continue
            new = self._exp(self, idx, st)
            for j, s2 in reversed(new):
                stack.append((j, s2))
                self._limit_states()
            if self.found and self.options.stop_first or n % CLOCK_EVERY == 0 and self._all_decided():
                raise _Stop(StopReason.VIOLATION)


# The generated expand (see Search._bind_fused). A line ending in `#@NAME` is kept only when
# NAME holds (and loses the tag); the lines `#LOAD` ... `#NEW` and @SEEN@, @SK@ are the store's
# parts (CompactStore.fused_parts, FingerprintStore.fused_parts): #PARENT reads what the parent
# `state` gives its successors, #RELATIVE packs (or hashes) `s` into `key` against it, #PROBE and
# #INSERT are the store's add() in parts, #NEW the state to expand.
_FUSED = """\
def expand(self, idx, state):
    res = RAW(state)
    if not res:
        return self._expand(idx, state)
    self.transitions += len(res)
    last = last_a[idx]
    pre0 = pre_a[idx]
    lm = last >= 0 and last in [x[0] for x in res]
    cnt = count[idx]
    d1 = depth[idx] + 1
    out = []
    #LOAD
    #PARENT
    for tid, sid, s in res:
        pre = pre0 + (tid != last) if lm else pre0
        s, perm = CANON_PERM(s)  #@CANON
        now = perm[tid]  #@CANON
        now = tid  #@PLAIN
        #RELATIVE
        #PROBE
        if @SEEN@:
            if depth[i] == d1:  #@BFS
                count[i] += cnt  #@BFS
                if pre < pre_a[i]:  #@BFS
                    pre_a[i] = pre  #@BFS
                    parent[i] = idx  #@BFS
                    via_tid[i] = tid  #@BFS
                    via_step[i] = sid  #@BFS
                    last_a[i] = now  #@BFS
            continue
        #INSERT
        ap_parent(idx)
        ap_tid(tid)
        ap_step(sid)
        ap_depth(d1)
        ap_pre(pre)
        ap_last(now)
        ap_count(cnt)
        #NEW
        sk = @SK@  #@SHARED
        if sk not in INV_OK:  #@SHARED
            self._check_state(i, nxt, sk)  #@SHARED
        self._check_state(i, nxt, None)  #@ALL
        out.append((i, nxt))
    if out and d1 > self.max_depth:
        self.max_depth = d1
    return out
"""


def _select(src: str, flags: dict[str, bool]) -> str:
    """Keep the lines of src tagged `#@NAME` whose flag holds (untagged lines stay)."""
    out = []
    for line in src.split("\n"):
        code, tag, name = line.partition("  #@")
        if not tag:
            out.append(line)
        elif flags[name]:
            out.append(code)
    return "\n".join(out)


class _Stop(Exception):
    def __init__(self, reason: StopReason):
        super().__init__(reason.value)
        self.reason = reason


def cpu_count() -> int:
    return os.cpu_count() or 1
