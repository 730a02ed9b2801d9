"""`--workers N`: breadth-first search with the states partitioned by hash over N processes.

Each worker owns the states whose hash (owner_of: the whole state) falls in
its partition: it stores them, keeps their parent pointers, checks the
state properties on them and expands them. The search is level-synchronous:
in each round every worker expands its frontier, stores the successors it
owns and hands the others to their owners (packed as component ids, see
_Worker, or in fingerprint mode their fingerprints first and then, marshalled
with their keys, only the states their owners lack; relayed
by the coordinating process, which does no per-state work), and the owners
drop the ones they have seen. In fingerprint mode the owner is picked from
the state's fingerprint, so two states with one fingerprint always meet in
the same table: the chance that a collision hid a state is the sum over the
workers' tables. A state's global id is
`local index * N + worker`, so a counterexample is rebuilt by following
parent ids from worker to worker and replaying the moves on the reference
interpreter. The reachable set, and so the state count, is the same as a
one-process BFS.

Covered in the workers: invariants, asserts, runtime, witness, deadlock.
Lock order, races and liveness need every transition (or the whole graph)
in one place; `check` runs them in a one-process search beside this one.
Partial-order reduction's cycle proviso asks "is this state stored?" of
one store, so it is off with workers. Workers are forked: they inherit the
compiled system, and hash() agrees across them.
"""

from __future__ import annotations

import hashlib
import marshal
import multiprocessing as mp
import signal
import sys
import time
import zlib
from array import array
from typing import Any

from .. import interrupt, ir
from ..diagnostics import ForkcheckError
from ..results import PropertyResult, RunResult, Stats, StopReason, Verdict
from ..semantics import Semantics
from .options import ExploreOptions
from .search import _reads_thread, check_invariants, peak_memory, resident_memory
from .fingerprint import StateHasher, collision_note
from .store import CompactStore, DictStore, FingerprintStore, StateCodec, collision_bound, fingerprint
from .traces import build_trace, replay

PARALLEL_KINDS = ("invariant", "assert", "runtime", "witness", "deadlock")


def component_hash(comp: Any) -> int:
    """A component's hash, the same in every process and run (hash() is not: hash(None) is an
    address in Python 3.11, and which worker owns a state decides the order of the search and
    so which counterexample is reported). States hold tuples, ints, bools and None; bools are
    spelled as ints so that equal components (True == 1) hash the same whichever of them a
    worker interned."""
    return zlib.crc32(repr(comp).replace("True", "1").replace("False", "0").encode())


def owner_of(state: Any, n: int) -> int:
    """The worker that owns a state. The key is the whole state (its components' hashes): on
    fork1_2001 the globals alone split the states 35/65 and each BFS level worse (the busier
    worker had 1.5x its share), the whole state 50/50 within 3%. Half the successors then
    change owner, which is cheap as they cross as component ids (see _Worker). Workers compute
    the same from a packed state and their component hash cache (_Worker.owner)."""
    g, pools, threads = state
    return hash(tuple(component_hash(c) for c in (g, *pools, *threads))) % n


class _Chan:
    """A worker's pipe that counts the replies still owed, so an interrupted round can be
    drained and the pipe stays in step for the parent queries that rebuild the traces."""

    def __init__(self, conn: Any, guard: "_Deferred", proc: Any, w: int):
        self.conn = conn
        self.guard = guard
        self.pending = 0
        self.proc, self.w = proc, w

    def send(self, msg: Any) -> None:
        with self.guard:
            self.conn.send(msg)
            self.pending += 1

    def recv(self) -> Any:
        while not self.conn.poll(0.05):
            # an interrupt may land here: nothing has been read yet. The other workers hold
            # copies of this pipe, so a dead worker shows as no EOF: ask the process.
            if not self.proc.is_alive() and not self.conn.poll(0):
                self.pending = 0
                raise ForkcheckError(f"--workers: worker {self.w} ended unexpectedly (exit code "
                                     f"{self.proc.exitcode}{', killed' if (self.proc.exitcode or 0) < 0 else ''})")
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
    """One partition's store, parent pointers and frontier.

    A state crosses to its owner as its packed encoding (StateCodec: one int32 component id per
    component), not as the objects: ~100 bytes instead of ~3 KB marshalled on fork1_2001. Ids
    are this worker's, so each round also ships the components it interned since the last round
    (a few thousand in a whole run), and the receiver keeps, per sender, a table from the
    sender's ids to its own: a translated key is looked up in the store with no decoding, and
    only a new state is decoded, from the receiver's own components (which its successors then
    share, as in the one-process search). A successor this worker owns is stored at once.

    Fingerprint mode keeps no component table (see fingerprint.StateHasher), so there a state
    crosses as its 64-bit fingerprint (which also picks its owner: fp_owner); the owner answers
    which fingerprints it has not stored (probe), and only those states follow (ship), with
    their keys (the component digests), in one marshal per destination and round (objects shared
    between states written once); the receiver interns them by the digests (hasher.adopt),
    hashing nothing."""

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
        codec = StateCodec(system)
        self.fp = options.fingerprint
        if self.fp:
            self.hasher = StateHasher(system)
            self.store: Any = FingerprintStore(self.hasher)
        elif options.compact:
            self.store = CompactStore(codec)
        else:
            self.store = DictStore()      # the codec then only packs states for the pipes
        self.by_key = self.store.kind == "compact"
        self.codec = codec
        self.chash: list[int] = [0]       # component id -> component_hash (id 0 is no component)
        self.shipped = 1                  # components[:shipped] were sent to the other workers
        self.id_maps: list[list[int]] = [[0] for _ in range(n)]   # per sender: its component id -> ours
        # as the one-process search: invariants that read no thread are cached per globals+pools
        self.inv_cache = bool(self.invariants) and hasattr(self.store, "shared_key") and not any(
            _reads_thread(i.expr) for i in self.invariants)
        self.inv_ok: set[Any] = set()
        self.parent = array("q")
        self.via_tid = array("h")
        self.via_step = array("l")
        self.frontier: list[tuple[int, Any]] = []
        self._held: Any = None            # fingerprint mode: the round's states for other owners
        self.decided: set[str] = set()

    def owner(self, key: bytes) -> int:
        """owner_of the state packed in key, from the cached component hashes."""
        comps, chash = self.codec.comps, self.chash
        while len(chash) < len(comps):
            chash.append(component_hash(comps[len(chash)]))
        return hash(tuple(map(chash.__getitem__, self.codec.struct.unpack(key)))) % self.n

    def _keep(self, key: bytes, state: Any, parent: int, tid: int, sid: int, found: list[Any]) -> bool:
        """Store a state this worker owns (state: its object, or None to decode it from key)."""
        if self.by_key:
            idx, fresh = self.store.add_key(key)
            if not fresh:
                return False
            state = self.codec.decode(key)    # built from the stored components (see the class)
        else:
            if state is None:
                state = self.codec.decode(key)
            idx, fresh = self.store.add(state)
            if not fresh:
                return False
        self._record(idx, state, parent, tid, sid, found)
        return True

    def _keep_fp(self, fp: int, key: bytes, parent: int, tid: int, sid: int, found: list[Any]) -> bool:
        """Store a state this worker owns in fingerprint mode: key is what the hasher encoded
        last (so its interned() is that state, built from the cached components)."""
        idx, fresh = self.store.add_fp(fp, key)
        if not fresh:
            return False
        self._record(idx, self.hasher.interned(), parent, tid, sid, found)
        return True

    def _record(self, idx: int, state: Any, parent: int, tid: int, sid: int, found: list[Any]) -> None:
        gid = idx * self.n + self.w
        self.parent.append(parent)
        self.via_tid.append(tid)
        self.via_step.append(sid)
        self.frontier.append((gid, state))
        if self.invariants:
            sk = self.store.shared_key() if self.inv_cache else None
            for name, msg in check_invariants(self.engine, self.invariants, self.decided, state, sk, self.inv_ok):
                found.append((name, msg, gid))

    def init(self) -> tuple[int, list[tuple[str, str, int]]]:
        """Every worker computes the initial state; its owner stores it."""
        state = self.engine.initial_state()
        if self.canon is not None:
            state = self.canon(state)
        found: list[Any] = []
        if self.fp:
            key = self.hasher.encode(state)
            fp = fingerprint(key)
            new = fp_owner(fp, self.n) == self.w and self._keep_fp(fp, key, -1, -1, -1, found)
            return int(new), found
        key = self.codec.encode(state)
        new = self.owner(key) == self.w and self._keep(key, state, -1, -1, -1, found)
        return int(new), found

    def insert(self, parts: list[Any]) -> tuple[int, list[tuple[str, str, int]]]:
        """Store the states the other workers sent here: per sender in order, its new components
        (marshalled), the packed states (its ids) and their (parent, thread, step) triples."""
        if self.fp:
            return self._insert_fp(parts)
        found: list[Any] = []
        new = 0
        w = self.codec.width
        unpack_from, pack, cid, keep = self.codec.struct.unpack_from, self.codec.struct.pack, self.codec._cid, self._keep
        for src, part in enumerate(parts):
            if part is None:              # this worker's own: stored while expanding
                continue
            comps, keys, meta = part
            ids = self.id_maps[src]
            if comps:
                ids += [cid(c) for c in marshal.loads(comps)]
            get = ids.__getitem__
            m = array("q")
            m.frombytes(meta)
            for i in range(len(keys) // w):
                if keep(pack(*map(get, unpack_from(keys, i * w))), None, m[3 * i], m[3 * i + 1], m[3 * i + 2],
                        found):
                    new += 1
        return new, found

    def _insert_fp(self, parts: list[Any]) -> tuple[int, list[tuple[str, str, int]]]:
        """insert() in fingerprint mode: per sender, (fingerprints, keys, marshalled states, triples).
        A new state's components are found by the digests in its key (hasher.adopt), not hashed
        again: received objects are fresh, so a lookup by value would hash each one."""
        found: list[Any] = []
        new = 0
        seen, adopt, keep, w = self.store.has_fp, self.hasher.adopt, self._keep_fp, self.hasher.width
        for part in parts:
            if part is None:
                continue
            fps_b, keys, blob, meta = part
            fps, m = array("Q"), array("q")
            fps.frombytes(fps_b)
            m.frombytes(meta)
            states = marshal.loads(blob)
            for i, fp in enumerate(fps):
                if not seen(fp):
                    key = keys[i * w:(i + 1) * w]
                    adopt(states[i], key)
                    new += keep(fp, key, m[3 * i], m[3 * i + 1], m[3 * i + 2], found)
        return new, found

    def _successors(self, viols: list[tuple[str, str, int, int, int]], counts: list[int]) -> Any:
        """(parent id, transition, canonical next state) for each violation-free successor of
        this round's frontier, which it empties. Deadlocks and step violations go to `viols`;
        counts[0] counts transitions, counts[1] expanded states."""
        frontier, self.frontier = self.frontier, []
        canon, engine, props = self.canon, self.engine, self.step_props
        for gid, state in frontier:
            counts[1] += 1
            ts = list(engine.successors(state))
            if not ts:
                if self.deadlock and not all(engine.is_terminated(state, t) for t in range(self.nthreads)):
                    viols.append(("deadlock", "deadlock: no thread can move and not all are done", gid, -1, -1))
                continue
            counts[0] += len(ts)
            for t in ts:
                if t.violations:
                    viols.extend((v.prop, v.message, gid, t.thread, t.step.id)
                                 for v in t.violations if v.prop in props)
                    continue
                yield gid, t, (t.state if canon is None else canon(t.state))

    def expand(self, two_phase: bool = False) -> tuple[list[Any], list[tuple[str, str, int, int, int]],
                                                       list[tuple[str, str, int]], int, int, int]:
        """Expand the frontier: store the successors this worker owns, pack the others per owner
        (two_phase, in fingerprint mode: only their fingerprints, see probe)."""
        if self.fp:
            return self._expand_fp(two_phase)
        n, me = self.n, self.w
        keys = [bytearray() for _ in range(n)]
        metas = [array("q") for _ in range(n)]
        viols: list[tuple[str, str, int, int, int]] = []
        found: list[Any] = []
        new = 0
        counts = [0, 0]
        encode, keep = self.codec.encode, self._keep
        # self.owner inlined: it runs once per transition
        unpack, comps, chash = self.codec.struct.unpack, self.codec.comps, self.chash
        chget = chash.__getitem__
        sent: set[bytes] = set()
        for gid, t, nxt in self._successors(viols, counts):
            key = encode(nxt)
            if len(comps) > len(chash):
                self.owner(key)       # hashes the new components
            o = hash(tuple(map(chget, unpack(key)))) % n
            if o == me:
                new += keep(key, nxt, gid, t.thread, t.step.id, found)
            elif key not in sent:     # once per round: its first parent, as the owner's store would keep
                sent.add(key)
                keys[o] += key
                metas[o].extend((gid, t.thread, t.step.id))
        trans, expanded = counts
        fresh = marshal.dumps(comps[self.shipped:], 2) if len(comps) > self.shipped else b""
        self.shipped = len(comps)
        out: list[Any] = [None if o == me else (fresh, bytes(keys[o]), metas[o].tobytes()) for o in range(n)]
        return out, viols, found, trans, expanded, new

    def _expand_fp(self, two_phase: bool) -> tuple[list[Any], list[tuple[str, str, int, int, int]],
                                                   list[tuple[str, str, int]], int, int, int]:
        """expand() in fingerprint mode (see the class)."""
        n, me = self.n, self.w
        fpss = [array("Q") for _ in range(n)]
        keyss = [bytearray() for _ in range(n)]
        outs: list[list[Any]] = [[] for _ in range(n)]
        metas = [array("q") for _ in range(n)]
        viols: list[tuple[str, str, int, int, int]] = []
        found: list[Any] = []
        new = 0
        counts = [0, 0]
        encode, keep = self.hasher.encode, self._keep_fp
        blake, frm = hashlib.blake2b, int.from_bytes
        sent: set[int] = set()
        for gid, t, nxt in self._successors(viols, counts):
            key = encode(nxt)
            fp = frm(blake(key, digest_size=8).digest(), "little") or 1     # store.fingerprint, inlined
            o = (fp >> 32) % n        # fp_owner, inlined
            if o == me:
                new += keep(fp, key, gid, t.thread, t.step.id, found)
            elif fp not in sent:      # once per round: its first parent, as the owner's store would keep
                sent.add(fp)
                fpss[o].append(fp)
                keyss[o] += key
                outs[o].append(nxt)
                metas[o].extend((gid, t.thread, t.step.id))
        trans, expanded = counts
        if two_phase:
            # only the fingerprints go out now: the owners say which they lack (probe), and only
            # those are shipped (ship): most states sent were seen by their owner already
            self._held = (fpss, keyss, outs, metas)
            out: list[Any] = [None if o == me else fpss[o].tobytes() for o in range(n)]
        else:
            out = [None if o == me else (fpss[o].tobytes(), bytes(keyss[o]), marshal.dumps(outs[o]),
                                         metas[o].tobytes()) for o in range(n)]
        return out, viols, found, trans, expanded, new

    def probe(self, parts: list[Any]) -> list[Any]:
        """Fingerprint mode: per sender, a mask (one byte per fingerprint it would send here) of
        the states this worker has not stored. The search is level-synchronous, so nothing is
        stored between this and the insert: a state it has now is one insert would drop."""
        has = self.store.has_fp
        masks: list[Any] = []
        for part in parts:
            if part is None:
                masks.append(None)
                continue
            fps = array("Q")
            fps.frombytes(part)
            masks.append(bytes([not has(fp) for fp in fps]))
        return masks

    def ship(self, masks: list[Any]) -> list[Any]:
        """Fingerprint mode: per destination, the states its mask asks for, as insert() takes
        them: (fingerprints, keys, marshalled states, (parent, thread, step) triples)."""
        fpss, keyss, outs, metas = self._held
        self._held = None
        w = self.hasher.width
        out: list[Any] = []
        for o, mask in enumerate(masks):
            if mask is None:
                out.append(None)
                continue
            want = [i for i, b in enumerate(mask) if b]
            fps, meta, ks, m = array("Q"), array("q"), keyss[o], metas[o]
            for i in want:
                fps.append(fpss[o][i])
                meta.extend(m[3 * i:3 * i + 3])
            keys = b"".join([ks[i * w:(i + 1) * w] for i in want])
            states = outs[o]
            out.append((fps.tobytes(), keys, marshal.dumps([states[i] for i in want]), meta.tobytes()))
        return out

    def more(self) -> bool:
        """Can any frontier state move? (the depth bound cut the search short)"""
        return any(True for _, st in self.frontier for _ in self.engine.successors(st))

    def parent_of(self, gid: int) -> tuple[int, int, int]:
        i = gid // self.n
        return self.parent[i], self.via_tid[i], self.via_step[i]

    def nbytes(self) -> int:
        return self.store.nbytes() + (0 if self.by_key or self.fp else self.codec.nbytes())

    def collision_counts(self) -> tuple[int, int] | None:
        """(fingerprints stored, component digests computed) in fingerprint mode."""
        return (self.store.n, self.hasher.computed[0]) if self.fp else None


def fp_owner(fp: int, n: int) -> int:
    """The worker that owns a state in fingerprint mode: from the fingerprint's high half (the
    table's slot is fp % size: the low bits, so one worker's fingerprints still spread over it)."""
    return (fp >> 32) % n


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
                c0 = time.process_time()
                conn.send((*wk.insert(msg[1]), time.process_time() - c0))
            elif op == "expand":
                wk.decided |= msg[1]
                c0 = time.process_time()
                conn.send((*wk.expand(msg[2]), time.process_time() - c0))
            elif op in ("probe", "ship"):
                c0 = time.process_time()
                conn.send((getattr(wk, op)(msg[1]), time.process_time() - c0))
            elif op == "init":
                conn.send(wk.init())
            elif op == "more":
                conn.send(wk.more())
            elif op == "parent":
                conn.send(wk.parent_of(msg[1]))
            elif op == "stats":
                # with this process's whole CPU (from the fork: setup, compiling steps, sizing)
                nb = wk.nbytes()
                conn.send((len(wk.store), nb, peak_memory(), time.process_time(), wk.collision_counts()))
            else:
                conn.send(None)
                return
    except (KeyboardInterrupt, EOFError):
        return


def _phase(conns: list[Any], op: str, args: list[Any]) -> list[Any]:
    """Send op with args[w] to each worker, then collect the answers (and their CPU, in profile)."""
    for c, a in zip(conns, args):
        c.send((op, a))
    out, cpus = [], []
    for w, c in enumerate(conns):
        r, cpu = c.recv()
        out.append(r)
        profile.rounds[w] += cpu
        cpus.append(cpu)
    profile.critical_cpu += max(cpus)
    profile.worker_cpu += sum(cpus)
    return out


# --workers with fingerprints: a round sends fingerprints first (probe, ship) when the states it
# would send otherwise, marshalled, come to more than this (estimated from the last round)
TWO_PHASE_BYTES = 256 * 1024


class Profile:
    """The workers' CPU seconds in the last run, for the benchmark. The critical path (per round
    the busiest worker's, plus the most any worker spent outside the rounds: setup, compiling
    steps, sizing its store) is about the wall time the search would take with a core per
    process and nothing else running, which a shared machine's wall time does not show."""

    critical_cpu = 0.0
    worker_cpu = 0.0
    rounds: list[float] = []          # per worker: CPU in the rounds


profile = Profile()


def run_parallel(system: ir.System, options: ExploreOptions, selected: list[str], model_name: str,
                 canon_perm: Any) -> RunResult:
    n = options.workers
    profile.critical_cpu = profile.worker_cpu = 0.0
    profile.rounds = [0.0] * n
    ctx = mp.get_context("fork")
    conns: list[_Chan] = []
    procs = []
    guard = _Deferred()
    for w in range(n):
        a, b = ctx.Pipe()
        p = ctx.Process(target=_serve, args=(b, w, n, system, options, selected), daemon=True)
        p.start()
        conns.append(_Chan(a, guard, p, w))
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
    two_phase, per_state = False, 0.0      # fingerprint mode: see TWO_PHASE_BYTES
    stop = StopReason.FINISHED
    show_progress = options.progress if options.progress is not None else sys.stderr.isatty()
    def note(inv: list[tuple[str, str, int]]) -> None:
        for prop, msg, gid in sorted(inv, key=lambda x: (x[0], x[2])):
            found.setdefault(prop, (msg, gid, -1, -1))

    try:
        for c in conns:
            c.send(("init",))
        for c in conns:
            new, f = c.recv()
            states += new
            note(f)
        while True:
            interrupt.check()         # between rounds: a signal whose KeyboardInterrupt was lost
            if all(p in found for p in selected):
                stop = StopReason.VIOLATION
                break
            if options.max_depth is not None and depth >= options.max_depth:
                for c in conns:
                    c.send(("more",))
                if any([c.recv() for c in conns]):
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
                c.send(("expand", set(found), two_phase))
            # per destination, each source's part in source order (its own: None, stored already)
            buckets: list[list[Any]] = [[] for _ in range(n)]
            level_viols = []
            level_inv = []
            cpus: list[float] = []
            expanded = new_level = 0
            for c in conns:
                out, viols, inv, tr, ex, new, cpu = c.recv()
                profile.rounds[len(cpus)] += cpu
                cpus.append(cpu)
                transitions += tr
                expanded += ex
                new_level += new
                level_viols += viols
                level_inv += inv
                for w in range(n):
                    buckets[w].append(out[w])
            for prop, msg, gid, tid, sid in sorted(level_viols, key=lambda v: (v[0], v[2], v[3], v[4])):
                found.setdefault(prop, (msg, gid, tid, sid))
            if expanded == 0:
                break
            profile.critical_cpu += max(cpus)
            profile.worker_cpu += sum(cpus)
            if two_phase:
                # the owners say which of the fingerprints sent to them they lack, then only those
                # states cross (see _Worker.probe)
                offered = sum(len(p) for b in buckets for p in b if p is not None) // 8
                buckets = _phase(conns, "probe", buckets)
                buckets = _phase(conns, "ship", [[buckets[o][s] for o in range(n)] for s in range(n)])
                buckets = [[buckets[s][o] for s in range(n)] for o in range(n)]
            elif options.fingerprint:
                offered = sum(len(p[0]) for b in buckets for p in b if p is not None) // 8
            if options.fingerprint:
                # the next round asks first when sending every state would cost more than the two
                # extra exchanges (a round's fixed cost; fork_exit's ~250 small rounds lost ~2%)
                sent = [p for b in buckets for p in b if p is not None]
                if sent and sum(len(p[0]) for p in sent):
                    per_state = sum(len(p[2]) for p in sent) / (sum(len(p[0]) for p in sent) // 8)
                two_phase = offered * per_state > TWO_PHASE_BYTES
            for w in range(n):
                conns[w].send(("insert", buckets[w]))
            cpus = []
            for w in range(n):
                new, f, cpu = conns[w].recv()
                new_level += new
                level_inv += f
                profile.rounds[w] += cpu
                cpus.append(cpu)
            profile.critical_cpu += max(cpus)
            profile.worker_cpu += sum(cpus)
            note(level_inv)
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
    counts: list[tuple[int, int]] = []    # per worker that answered, in fingerprint mode
    peak = peak_memory()
    others: list[float] = []          # per worker that answered: its CPU seconds
    if workers_ok:
        for op in ("stats", "stop"):
            asked = []
            for c in conns:           # all asked first: each sizes its store at the same time
                try:
                    c.send((op,))
                    asked.append(c)
                except (EOFError, OSError):
                    pass
            for c in asked:
                try:
                    r = c.recv()
                except (EOFError, OSError, ForkcheckError):
                    continue
                if op == "stats":
                    store_bytes += r[1]
                    peak += r[2]
                    others.append(r[3])
                    if r[4] is not None:
                        counts.append(r[4])
        if len(others) == n:          # the CPU outside the rounds, as if in parallel
            rest = [max(0.0, c - r) for c, r in zip(others, profile.rounds)]
            profile.critical_cpu += max(rest)
            profile.worker_cpu += sum(rest)
        for p in procs:
            p.join(timeout=5)
    else:
        peak += sum(resident_memory(p.pid) for p in procs)
    stats = Stats(states=states, transitions=transitions, depth=depth, seconds=time.monotonic() - t0,
                  peak_memory=peak, store_bytes=store_bytes)
    notes = [f"{n} worker processes (states partitioned by hash); peak memory is the sum over processes"]
    if options.fingerprint:
        if len(counts) != n:          # a worker did not answer: bound by all states in one table
            collision = collision_bound(states, (1 + len(system.pools) + len(system.threads)) * states)
        else:
            # each table's fingerprints, plus the digests all workers computed as one set: a
            # receiver trusts its sender's digests (adopt), so two components with one digest
            # may come from two workers
            collision = sum(collision_bound(f, 0) for f, _ in counts) + collision_bound(0, sum(c for _, c in counts))
        notes.append(collision_note(min(1.0, collision), states, n))
    return RunResult(model_name, "explore", stop, results, stats, notes)
