"""`--workers N`: breadth-first search with the states partitioned by hash over N processes.

Each worker owns the states whose hash falls in its partition: it stores
them, keeps their parent pointers, checks the state properties on them and
expands them. The search is level-synchronous: in each round every worker
expands its frontier and hands each successor to its owner (through the
coordinating process), and the owners drop the ones they have seen. A
state's global id is `local index * N + worker`, so a counterexample is
rebuilt by following parent ids from worker to worker and replaying the
moves on the reference interpreter. The reachable set, and so the state
count, is the same as a one-process BFS.

Covered in the workers: invariants, asserts, runtime, witness, deadlock.
Lock order, races and liveness need every transition (or the whole graph)
in one place; `check` runs them in a one-process search beside this one.
Partial-order reduction's cycle proviso asks "is this state stored?" of
one store, so it is off with workers. Workers are forked: they inherit the
compiled system, and hash() agrees across them.
"""

from __future__ import annotations

import marshal
import multiprocessing as mp
import signal
import sys
import time
import zlib
from typing import Any

from .. import interrupt, ir
from ..results import PropertyResult, RunResult, Stats, StopReason, Verdict
from ..semantics import Semantics
from .options import ExploreOptions
from .search import _reads_thread, check_invariants, peak_memory, resident_memory
from .store import CompactStore, DictStore, FingerprintStore, StateCodec
from .traces import build_trace, replay

PARALLEL_KINDS = ("invariant", "assert", "runtime", "witness", "deadlock")


def owner_of(state: Any, n: int) -> int:
    """The worker that owns a state: the same in every run. hash() is not (hash(None) is an
    address in Python 3.11, and freed slots are None), and which worker owns a state decides
    the order of the search and so which counterexample is reported. The key is the globals
    only: cheap to encode, and a step that changes no global (a thread's pc and locals, the
    pools) keeps the successor with the worker that made it (no pipe)."""
    return zlib.crc32(marshal.dumps(state[0], 2)) % n


class _Chan:
    """A worker's pipe that counts the replies still owed, so an interrupted round can be
    drained and the pipe stays in step for the parent queries that rebuild the traces."""

    def __init__(self, conn: Any, guard: "_Deferred"):
        self.conn = conn
        self.guard = guard
        self.pending = 0

    def send(self, msg: Any) -> None:
        with self.guard:
            self.conn.send(msg)
            self.pending += 1

    def recv(self) -> Any:
        while not self.conn.poll(0.05):
            pass                      # an interrupt may land here: nothing has been read yet
        with self.guard:
            r = self.conn.recv()
            self.pending -= 1
        return r

    def drain(self) -> None:
        while self.pending > 0:
            self.recv()


class _Deferred:
    """Ctrl-C (and SIGTERM, which the CLI maps to it) is held back while a message is half sent
    or half read, and raised as KeyboardInterrupt right after."""

    def __init__(self) -> None:
        self.depth = 0
        self.hit = False
        self.saved: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                cur = signal.getsignal(sig)
                if cur is signal.default_int_handler or cur is interrupt.handler:
                    self.saved[sig] = cur
                    signal.signal(sig, self._handler)
            except ValueError:        # not the main thread: leave signals alone
                pass

    def restore(self) -> None:
        for sig, h in self.saved.items():
            signal.signal(sig, h)
        self.saved.clear()

    def _handler(self, signum: int, frame: Any) -> None:
        if self.saved.get(signum) is interrupt.handler:
            interrupt.request()       # the CLI's flag, as its own handler would
        if self.depth:
            self.hit = True
        else:
            raise KeyboardInterrupt

    def __enter__(self) -> None:
        self.depth += 1

    def __exit__(self, *exc: Any) -> None:
        self.depth -= 1
        if not self.depth and self.hit and exc[0] is None:
            self.hit = False
            raise KeyboardInterrupt


class _Worker:
    def __init__(self, w: int, n: int, system: ir.System, options: ExploreOptions, selected: list[str]):
        from .compiled import compile_system
        self.w, self.n = w, n
        self.engine: Any = compile_system(system) if options.compiled else Semantics(system)
        self.canon = None
        if options.symmetry:
            from .symmetry import Symmetry
            sym = Symmetry(system)
            if sym.active:
                self.canon = sym.canon
        kinds = system.property_names
        self.invariants = [i for i in system.invariants if i.name in selected]
        self.step_props = {p for p in selected if kinds[p] in ("assert", "runtime", "witness")}
        self.deadlock = "deadlock" in selected
        self.nthreads = len(system.threads)
        if options.fingerprint:
            self.store: Any = FingerprintStore(StateCodec(system))
        elif options.compact:
            self.store = CompactStore(StateCodec(system))
        else:
            self.store = DictStore()
        # as the one-process search: invariants that read no thread are cached per globals+pools
        self.inv_cache = bool(self.invariants) and hasattr(self.store, "shared_key") and not any(
            _reads_thread(i.expr) for i in self.invariants)
        self.inv_ok: set[Any] = set()
        self.parent: list[int] = []
        self.via: list[tuple[int, int]] = []
        self.frontier: list[tuple[int, Any]] = []
        self.local: list[tuple[Any, int, int, int]] = []   # this round's successors it owns itself
        self.decided: set[str] = set()

    def insert(self, parts: list[Any]) -> tuple[int, list[tuple[str, str, int]]]:
        """Store the states this worker owns and check them. `parts` holds, per worker in order,
        the successors it sent here (marshalled, see expand); this worker's own part is only their
        count: those never left it (kept as objects, which share components with the store)."""
        found = []
        new = 0
        loads = marshal.loads
        items = []
        for part in parts:
            if isinstance(part, int):   # this worker's own part
                items += self.local
                self.local = []
            else:
                items += [(loads(packed), parent, tid, sid) for packed, parent, tid, sid in part]
        for state, parent, tid, sid in items:
            idx, fresh = self.store.add(state)
            if not fresh:
                continue
            new += 1
            gid = idx * self.n + self.w
            self.parent.append(parent)
            self.via.append((tid, sid))
            self.frontier.append((gid, state))
            if self.invariants:
                key = self.store.shared_key() if self.inv_cache else None
                for name, msg in check_invariants(self.engine, self.invariants, self.decided, state, key,
                                                  self.inv_ok):
                    found.append((name, msg, gid))
        return new, found

    def expand(self) -> tuple[list[list[tuple[bytes, int, int, int]]], list[tuple[str, str, int, int, int]], int, int]:
        out: list[list[tuple[bytes, int, int, int]]] = [[] for _ in range(self.n)]
        viols: list[tuple[str, str, int, int, int]] = []
        trans = 0
        expanded = 0
        frontier, self.frontier = self.frontier, []
        dumps, n, me = marshal.dumps, self.n, self.w
        sent: set[bytes] = set()
        local: list[tuple[Any, int, int, int]] = []
        for gid, state in frontier:
            expanded += 1
            ts = list(self.engine.successors(state))
            if not ts:
                if self.deadlock and not all(self.engine.is_terminated(state, t) for t in range(self.nthreads)):
                    viols.append(("deadlock", "deadlock: no thread can move and not all are done", gid, -1, -1))
                continue
            for t in ts:
                trans += 1
                if t.violations:
                    for v in t.violations:
                        if v.prop in self.step_props:
                            viols.append((v.prop, v.message, gid, t.thread, t.step.id))
                    continue
                nxt = t.state if self.canon is None else self.canon(t.state)
                # A successor this worker owns stays here as an object (it shares components
                # with the store); another's travels marshalled, once per round (its first
                # parent, as the owner's store would keep).
                o = owner_of(nxt, n)
                if o == me:
                    local.append((nxt, gid, t.thread, t.step.id))
                    continue
                packed = dumps(nxt, 2)
                if packed in sent:
                    continue
                sent.add(packed)
                out[o].append((packed, gid, t.thread, t.step.id))
        self.local = local
        out[me] = len(local)    # type: ignore[call-overload]  # kept here (see insert): how many
        return out, viols, trans, expanded

    def parent_of(self, gid: int) -> tuple[int, int, int]:
        i = gid // self.n
        tid, sid = self.via[i]
        return self.parent[i], tid, sid


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when the coordinator dies (even by SIGKILL). The other
    workers hold copies of every pipe, so a worker blocked sending to a dead coordinator
    would otherwise never see the pipe close."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)    # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _serve(conn: Any, w: int, n: int, system: ir.System, options: ExploreOptions, selected: list[str]) -> None:
    # A terminal's Ctrl-C (or a SIGTERM to the process group) reaches every process: the
    # coordinator alone stops the search, and still needs the workers for the parent pointers
    # of its traces. A worker ends when the coordinator says so, kills it, or dies (EOF).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    try:
        wk = _Worker(w, n, system, options, selected)
        while True:
            msg = conn.recv()
            op = msg[0]
            if op == "insert":
                conn.send(wk.insert(msg[1]))
            elif op == "expand":
                wk.decided |= msg[1]
                conn.send(wk.expand())
            elif op == "parent":
                conn.send(wk.parent_of(msg[1]))
            elif op == "stats":
                conn.send((len(wk.store), wk.store.nbytes(), peak_memory()))
            else:
                conn.send(None)
                return
    except (KeyboardInterrupt, EOFError):
        return


def run_parallel(system: ir.System, options: ExploreOptions, selected: list[str], model_name: str,
                 canon_perm: Any) -> RunResult:
    n = options.workers
    ctx = mp.get_context("fork")
    conns: list[_Chan] = []
    procs = []
    guard = _Deferred()
    for w in range(n):
        a, b = ctx.Pipe()
        p = ctx.Process(target=_serve, args=(b, w, n, system, options, selected), daemon=True)
        p.start()
        conns.append(_Chan(a, guard))
        procs.append(p)
    guard.install()
    try:
        return _coordinate(system, options, selected, model_name, canon_perm, conns, procs)
    finally:
        guard.restore()
        for p in procs:
            if p.is_alive():      # told to stop and joined, unless interrupted mid-round
                p.kill()          # workers ignore SIGTERM (see _serve)
                p.join(timeout=5)


def _coordinate(system: ir.System, options: ExploreOptions, selected: list[str], model_name: str,
                canon_perm: Any, conns: list[_Chan], procs: list[Any]) -> RunResult:
    n = options.workers
    sem = Semantics(system)
    kinds = system.property_names
    found: dict[str, tuple[str, int, int, int]] = {}   # prop -> (message, gid, tid, step)
    t0 = time.monotonic()
    states = transitions = depth = 0
    stop = StopReason.FINISHED
    show_progress = options.progress if options.progress is not None else sys.stderr.isatty()
    try:
        init = sem.initial_state()
        if canon_perm is not None:
            init = canon_perm(init)[0]
        owner = owner_of(init, n)
        conns[owner].send(("insert", [[(marshal.dumps(init, 2), -1, -1, -1)]]))
        new, f = conns[owner].recv()
        states += new
        for prop, msg, gid in f:
            found.setdefault(prop, (msg, gid, -1, -1))
        while True:
            interrupt.check()         # between rounds: a signal whose KeyboardInterrupt was lost
            if all(p in found for p in selected):
                stop = StopReason.VIOLATION
                break
            if options.max_depth is not None and depth >= options.max_depth:
                for c in conns:
                    c.send(("expand", set(found)))
                if any(any(b) for c in conns for b in c.recv()[0]):
                    stop = StopReason.DEPTH_LIMIT
                break
            if options.time_limit is not None and time.monotonic() - t0 >= options.time_limit:
                stop = StopReason.TIME_LIMIT
                break
            if options.max_memory is not None and resident_memory() + sum(
                    resident_memory(p.pid) for p in procs) >= options.max_memory * 2**20:
                stop = StopReason.MEMORY_LIMIT
                break
            for c in conns:
                c.send(("expand", set(found)))
            # per destination, each source's part in source order (its own part: a count, kept there)
            buckets: list[list[Any]] = [[] for _ in range(n)]
            level_viols = []
            expanded = 0
            for c in conns:
                out, viols, tr, ex = c.recv()
                transitions += tr
                expanded += ex
                level_viols += viols
                for w in range(n):
                    buckets[w].append(out[w])
            for prop, msg, gid, tid, sid in sorted(level_viols, key=lambda v: (v[0], v[2], v[3], v[4])):
                found.setdefault(prop, (msg, gid, tid, sid))
            if expanded == 0:
                break
            for w in range(n):
                conns[w].send(("insert", buckets[w]))
            new_level = 0
            for w in range(n):
                new, f = conns[w].recv()
                new_level += new
                for prop, msg, gid in sorted(f, key=lambda x: (x[0], x[2])):
                    found.setdefault(prop, (msg, gid, -1, -1))
            states += new_level
            if new_level:
                depth += 1
            if show_progress:
                el = time.monotonic() - t0
                sys.stderr.write(f"\r  {options.progress_label}{states:,} states  depth {depth}  {n} workers  "
                                 f"{states / el if el else 0:,.0f} states/s \x1b[K")
                sys.stderr.flush()
            if options.max_states is not None and states >= options.max_states:
                stop = StopReason.STATE_LIMIT
                break
            if options.stop_first and found:
                stop = StopReason.VIOLATION
                break
    except KeyboardInterrupt:
        stop = StopReason.INTERRUPTED
    if show_progress:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()
    workers_ok = True
    if stop is StopReason.INTERRUPTED:
        if found:
            for c in conns:        # the replies of the interrupted round, then the pipes are in step
                c.drain()
        else:
            workers_ok = False     # no trace to rebuild: do not wait for the round to finish

    def path(gid: int) -> list[tuple[int, int]]:
        moves = []
        while True:
            conns[gid % n].send(("parent", gid))
            parent, tid, sid = conns[gid % n].recv()
            if parent < 0:
                break
            moves.append((tid, sid))
            gid = parent
        moves.reverse()
        return moves

    results = []
    exhausted = stop is StopReason.FINISHED
    for name in selected:
        kind = kinds[name]
        if name in found:
            msg, gid, tid, sid = found[name]
            moves = path(gid) + ([(tid, sid)] if tid >= 0 else [])
            tr = build_trace(sem, replay(sem, moves, None, canon_perm), model=model_name, prop=name, kind=kind,
                             message=msg, extra={"strategy": "bfs", "workers": n})
            results.append(PropertyResult(name, kind, Verdict.VIOLATED, trace=tr, message=msg))
        elif exhausted or (stop is StopReason.VIOLATION and not options.stop_first):
            results.append(PropertyResult(name, kind, Verdict.HOLDS))
        else:
            results.append(PropertyResult(name, kind, Verdict.UNKNOWN,
                                          message=f"no violation in {states:,} states, but the search stopped: "
                                                  f"{stop.value}"))
    store_bytes = 0
    peak = peak_memory()
    if workers_ok:
        for c in conns:
            try:
                c.send(("stats",))
                _, nb, pk = c.recv()
                store_bytes += nb
                peak += pk
            except (EOFError, OSError):
                pass
        for c in conns:
            try:
                c.send(("stop",))
                c.recv()
            except (EOFError, OSError):
                pass
        for p in procs:
            p.join(timeout=5)
    else:
        peak += sum(resident_memory(p.pid) for p in procs)
    stats = Stats(states=states, transitions=transitions, depth=depth, seconds=time.monotonic() - t0,
                  peak_memory=peak, store_bytes=store_bytes)
    notes = [f"{n} worker processes (states partitioned by hash); peak memory is the sum over processes"]
    return RunResult(model_name, "explore", stop, results, stats, notes)
