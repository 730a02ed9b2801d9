"""`check`: the explorer's public entry point, from an IR System to a RunResult."""

from __future__ import annotations

import time
from typing import Any, Callable

from .. import interrupt, ir
from ..diagnostics import UsageError
from ..results import PropertyResult, RunResult, Stats, StopReason, Verdict
from ..semantics import Semantics
from ..trace.itf import Trace
from .lockorder import LockOrderObserver
from .options import ExploreOptions, Strategy
from .races import RaceObserver
from .search import Found, Search, peak_memory
from .traces import build_trace, replay

STEP_KINDS = ("runtime", "witness", "assert")
RESEARCH_MIN_STATES = 50_000   # least number of states the re-search for a shorter counterexample may store


def select_properties(system: ir.System, properties: list[str] | None) -> list[str]:
    names = system.property_names
    if not properties:
        return list(names)
    bad = [p for p in properties if p not in names]
    if bad:
        raise UsageError(f"unknown property {bad[0]!r}; this model has: {', '.join(sorted(names))}")
    return list(dict.fromkeys(properties))


class Explorer:
    """One configured run: the search, its analyses, and the trace builder."""

    def __init__(self, system: ir.System, options: ExploreOptions, selected: list[str], model_name: str):
        self.system = system
        self.options = options
        self.selected = selected
        self.model_name = model_name
        self.kinds = system.property_names
        self.sem = Semantics(system)
        self.canon: Callable[[Any], Any] | None = None
        self.canon_perm: Callable[[Any], tuple[Any, tuple[int, ...]]] | None = None
        self.leadsto = [l for l in system.leadsto if l.name in selected]
        self.sym_note = ""
        self.sym_families: list[list[int]] = []
        sym = None
        if options.symmetry:
            from .symmetry import Symmetry
            sym = Symmetry(system)
        if sym is not None and sym.active and self.leadsto:
            # Weak fairness names threads; a quotient graph permutes them. Liveness runs without it.
            self.sym_note = "symmetry reduction is off in runs that check liveness (fairness is per thread)"
        elif sym is not None:
            if sym.active:
                self.canon = sym.canon
                self.canon_perm = sym.canon_perm
                self.sym_families = sym.families
        self.lockorder = LockOrderObserver(system, self.sem) if "lock_order" in selected else None
        self.races = RaceObserver(system, self.sem, sym_families=self.sym_families,
                                  report_all=options.all_races,
                                  skip_ghosts=options.race_skip_ghosts, contexts=options.race_contexts,
                                  handoff=options.race_handoff,
                                  sym_pools=frozenset(sym.sym_pool_names) if sym is not None and sym.active
                                  else frozenset()) if "races" in selected else None
        observers: list[Any] = [o for o in (self.lockorder, self.races) if o is not None]
        engine: Any = self.sem
        if options.compiled:
            from .compiled import compile_system
            # the lock and race analyses need each step's accesses: compile those steps with event logging
            engine = compile_system(system, tracking=bool(observers))
        self.engine = engine
        ample = None
        self.por_note = ""
        if options.por:
            from .por import Por
            por = Por(system, selected)
            if por.active:
                ample = por.ample
            self.por_note = por.note
        invariants = [i for i in system.invariants if i.name in selected]
        step_props = {n for n in selected if self.kinds[n] in STEP_KINDS}
        from .fingerprint import StateHasher
        from .store import CompactStore, DictStore, FingerprintStore, StateCodec
        self.fp_note = ""
        store: Any
        if options.fingerprint and not self.leadsto:
            store = FingerprintStore(StateHasher(system))
        elif options.compact:
            store = CompactStore(StateCodec(system))
        else:
            store = DictStore()
        if options.fingerprint and self.leadsto:
            self.fp_note = "liveness needs the states themselves: that run used the full-state store"
        self.search = Search(engine, system, options, invariants, step_props, "deadlock" in selected,
                             canon_perm=self.canon_perm, observers=observers, ample=ample,
                             keep_edges=bool(self.leadsto), store=store)
        if not self.leadsto:
            self.search.wanted = set(selected)

    # ------------------------------------------------------------ traces

    def trace_for(self, moves: list[tuple[int, int]], targets: list[Any | None], *, prop: str, kind: str,
                  message: str, loop: int | None = None, extra: dict[str, Any] | None = None) -> Trace:
        ts = replay(self.sem, moves, targets, self.canon_perm)
        return build_trace(self.sem, ts, model=self.model_name, prop=prop, kind=kind, message=message,
                           loop=loop, extra=extra)

    def path_to(self, idx: int) -> tuple[list[tuple[int, int]], list[Any]]:
        s = self.search
        idxs = []
        i = idx
        while s.parent[i] >= 0:
            idxs.append(i)
            i = s.parent[i]
        idxs.reverse()
        return [(s.via_tid[i], s.via_step[i]) for i in idxs], [None for _ in idxs]

    def found_trace(self, f: Found, kind: str) -> Trace:
        moves, targets = self.path_to(f.target)
        if f.tid >= 0:
            moves.append((f.tid, f.step_id))
            targets.append(None)
        for m in f.extra_steps:
            moves.append(m)
            targets.append(None)
        extra: dict[str, Any] = {"strategy": self.options.strategy.value, "preemptions": f.preemptions}
        if f.shortest_count is not None:
            extra["shortest_count"] = f.shortest_count
        return self.trace_for(moves, targets, prop=f.prop, kind=kind, message=f.message, extra=extra)

    # ------------------------------------------------------------- run

    def run(self) -> RunResult:
        s = self.search
        s.run()
        complete = s.stop in (StopReason.FINISHED, StopReason.VIOLATION) and not (
            s.stop is StopReason.VIOLATION and self.options.stop_first)
        exhausted = s.stop is StopReason.FINISHED
        results: list[PropertyResult] = []
        live_results = {}
        if self.leadsto and exhausted:
            from .liveness import check_leadsto
            t0 = time.monotonic()
            for l in self.leadsto:
                live_results[l.name] = check_leadsto(self, l)
            for r in live_results.values():
                r.seconds = time.monotonic() - t0
        for name in self.selected:
            kind = self.kinds[name]
            if kind == "lock_order":
                results.append(self._lock_order_result(exhausted))
            elif kind == "race":
                results.append(self._race_result(exhausted))
            elif kind == "leadsto":
                results.append(live_results.get(name) or PropertyResult(
                    name, kind, Verdict.UNKNOWN,
                    message=f"liveness needs the whole state graph; the search stopped: {s.stop.value}"))
            elif name in s.found:
                f = s.found[name]
                results.append(PropertyResult(name, kind, Verdict.VIOLATED, trace=self.found_trace(f, kind),
                                              message=f.message, seconds=f.seconds))
            elif exhausted or (complete and s.wanted):
                results.append(PropertyResult(name, kind, Verdict.HOLDS))
            else:
                results.append(PropertyResult(name, kind, Verdict.UNKNOWN, message=self._unknown_why()))
        for r in results:
            if not r.seconds:
                r.seconds = s.seconds        # decided (or given up) when the search ended
        shorten_notes = self._shorten(results) if self.options.shorten else []
        stats = Stats(states=len(s.store), transitions=s.transitions, depth=s.max_depth, seconds=s.seconds,
                      peak_memory=peak_memory(), store_bytes=s.store.nbytes())
        notes = []
        if self.fp_note:
            notes.append(self.fp_note)
        if s.store.kind == "fingerprint":
            p = s.store.collision_probability()
            from .fingerprint import collision_note
            notes.append(collision_note(p, len(s.store)))
        notes += [n for n in (self.por_note, self.sym_note) if n]
        notes += shorten_notes
        if self.options.strategy is Strategy.DFS and self.options.max_depth is not None:
            notes.append("DFS with a depth limit may miss states reachable within the limit by a shorter path")
        return RunResult(self.model_name, "explore", s.stop, results, stats, notes)

    # ------------------------------------------------------ shortening

    def _shorten(self, results: list[PropertyResult]) -> list[str]:
        """Make DFS and BFS+POR counterexamples shortest in the full state graph.

        DFS reaches a violation by whatever path it took; BFS with POR by a shortest
        path of the reduced graph, which drops interleavings. One BFS without POR
        (symmetry kept: it preserves distances) for those properties, to depth L-1 for
        the longest trace of L steps, finds a shorter one for each if there is any; it
        may store as many states as the search did, so a run about doubles at most.
        Lock-order traces (one per edge of a cycle) and lassos are left as found."""
        import dataclasses
        o = self.options
        dfs = o.strategy is Strategy.DFS
        s = self.search
        how = "DFS" if dfs else "BFS with partial-order reduction"
        todo: dict[str, PropertyResult] = {}
        for r in results:
            if r.verdict is not Verdict.VIOLATED or r.trace is None or r.kind in ("lock_order", "leadsto"):
                continue
            n = r.trace_length or 0
            if n <= 1 or (not dfs and (s.por_cut < 0 or n - 2 < s.por_cut)):
                # BFS: no state above the violation's depth was pruned, so those levels are the full graph's
                r.trace.extra["shortest"] = "full graph"
            else:
                todo[r.name] = r
        if not todo:
            return []
        if s.stop in (StopReason.TIME_LIMIT, StopReason.MEMORY_LIMIT, StopReason.INTERRUPTED):
            # the run is out of time or memory, or asked to stop: no second search
            for r in todo.values():
                r.trace.extra["shortest"] = "reduced graph" if not dfs else "no"
            return [f"{', '.join(todo)}: the {how} trace may not be shortest: not re-searched, the run "
                    f"stopped: {s.stop.value}"]
        # one BFS for all of them: it stops once each has a violation (or at the deepest bound)
        md = max(r.trace_length or 0 for r in todo.values()) - 1
        if o.max_depth is not None:
            md = min(md, o.max_depth)
        # budget: as many states as the search stored (at least RESEARCH_MIN_STATES), within the
        # run's limits. States, not seconds: the trace reported must not depend on the machine's load.
        budget = max(RESEARCH_MIN_STATES, len(s.store))
        if o.max_states is not None:
            budget = min(budget, o.max_states)
        # within the run's time limit: what the search left of it
        left = None if o.time_limit is None else max(0.0, o.time_limit - s.seconds)
        opts = dataclasses.replace(o, strategy=Strategy.BFS, por=False, max_depth=md, stop_first=False,
                                   shorten=False, progress=False, max_states=budget, time_limit=left)
        res = Explorer(self.system, opts, list(todo), self.model_name).run()
        complete = res.stop in (StopReason.FINISHED, StopReason.VIOLATION, StopReason.DEPTH_LIMIT)
        notes = []
        for q in res.properties:
            r = todo[q.name]
            n = r.trace_length or 0
            if q.verdict is Verdict.VIOLATED and q.trace is not None and (q.trace_length or 0) < n:
                m = q.trace_length
                q.trace.extra["shortened_from"] = n
                q.trace.extra["shortest"] = "full graph"
                r.trace, r.message = q.trace, q.message
                notes.append(f"{r.name}: {how} counterexample shortened from {n} to {m} steps by a BFS "
                             f"re-search without POR to depth {md} (--no-shorten keeps it)")
            elif q.verdict is Verdict.VIOLATED or (complete and md >= n - 1):
                # BFS met it no earlier (every level above was complete), or searched every
                # shorter length: nothing shorter exists
                r.trace.extra["shortest"] = "full graph"
            else:
                r.trace.extra["shortest"] = "reduced graph" if not dfs else "no"
                notes.append(f"{r.name}: the {how} trace of {n} steps may not be shortest: the re-search "
                             f"for a shorter one stopped: {res.stop.value}")
        return notes

    def _unknown_why(self) -> str:
        s = self.search
        if s.stop is StopReason.VIOLATION:
            return "not decided: the search stopped at the first violation"
        return f"no violation in {len(s.store):,} states to depth {s.max_depth}, but the search stopped: {s.stop.value}"

    def _lock_order_result(self, exhausted: bool) -> PropertyResult:
        assert self.lockorder is not None
        revs = self.lockorder.reversals(exhausted)
        if not revs:
            if exhausted:
                return PropertyResult("lock_order", "lock_order", Verdict.HOLDS,
                                      details={"edges": sorted(f"{a} -> {b}" for a, b in self.lockorder.edges)})
            return PropertyResult("lock_order", "lock_order", Verdict.UNKNOWN, message=self._unknown_why())
        r = revs[0]
        traces = [self._edge_trace(w, r) for w in r.edges]
        main = traces[0]
        if r.deadlock_state is not None:
            moves, targets = self.path_to(r.deadlock_state)
            main = self.trace_for(moves, targets, prop="lock_order", kind="lock_order",
                                  message=self.lockorder.describe(r) + " — deadlock trace")
            main.extra["order_traces"] = [t.to_itf() for t in traces]
        elif len(traces) > 1:
            main.extra["order_traces"] = [t.to_itf() for t in traces[1:]]
        details = {"reversals": [{"classes": list(x.classes), "duplicate": x.duplicate,
                                  "reachable_deadlock": x.deadlock_state is not None, "reason": x.reason,
                                  "message": self.lockorder.describe(x),
                                  "orders": [f"{w.held_lock} then {w.acquired_lock} by "
                                             f"{self.system.threads[w.tid].name} at "
                                             f"`{self.system.steps[w.step_id].label}`" for w in x.edges]}
                                 for x in revs]}
        return PropertyResult("lock_order", "lock_order", Verdict.VIOLATED, trace=main,
                              message=self.lockorder.describe(r), details=details)

    def _edge_trace(self, w: Any, r: Any) -> Trace:
        moves, targets = self.path_to(w.state)
        moves.append((w.tid, w.step_id))
        targets.append(None)
        return self.trace_for(moves, targets, prop="lock_order", kind="lock_order",
                              message=f"{w.acquired_lock} (class \"{w.second}\") acquired with {w.held_lock} "
                                      f"(class \"{w.first}\") held")

    def _race_result(self, exhausted: bool) -> PropertyResult:
        assert self.races is not None
        ro = self.races
        if not ro.races and not ro.guards and not ro.pairs and not ro.handoffs:
            if exhausted:
                return PropertyResult("races", "race", Verdict.HOLDS)
            return PropertyResult("races", "race", Verdict.UNKNOWN, message=self._unknown_why())
        items: list[dict[str, Any]] = []
        # candidates for the main trace: (steps, rank, message, builder); the shortest is shown
        # (so BFS's is shortest), on a tie the co-enabled form (both accesses back to back) first
        cands: list[tuple[int, int, str, Callable[[], Trace]]] = []
        depth = self.search.depth
        for loc, rw in sorted(ro.races.items(), key=lambda kv: (depth[kv[1].state], str(kv[0]))):
            ls = ro.lockset.get(loc)
            items.append({"location": str(loc), "kind": "race", "message": rw.message,
                          "lockset": sorted(ls) if ls else [],
                          "accesses": [self._access_where(rw.first[0], rw.first[1]),
                                       self._access_where(rw.second[0], rw.second[1])]})
            cands.append((depth[rw.state] + 2, len(cands), rw.message, lambda rw=rw: self._coenabled_trace(rw)))
        for loc, lw in sorted(ro.pairs.items(), key=lambda kv: (depth[kv[1].second[0]], str(kv[0]))):
            # else listed above (its pair of traces may still be shorter); --all-races lists both rules
            if loc not in ro.races or ro.report_all:
                ls = ro.lockset.get(loc)
                items.append({"location": str(loc), "kind": "lockset", "message": lw.message,
                              "lockset": sorted(ls) if ls else [],
                              "accesses": [self._access_where(lw.first[1], lw.first[2]),
                                           self._access_where(lw.second[1], lw.second[2])]})
            cands.append((depth[lw.second[0]] + 1, len(cands), lw.message, lambda lw=lw: self._pair_trace(lw)))
        for loc, gw in sorted(ro.guards.items(), key=lambda kv: (depth[kv[1].state], str(kv[0]))):
            items.append({"location": str(loc), "kind": "guarded_by", "message": gw.message,
                          "accesses": [self._access_where(gw.tid, gw.step_id)]})
            cands.append((depth[gw.state] + 1, len(cands), gw.message, lambda gw=gw: self._step_trace(
                gw.state, gw.tid, gw.step_id, gw.message)))
        for _, hw in sorted(ro.handoffs.items(), key=lambda kv: (depth[kv[1].state], kv[0])):
            items.append({"location": str(hw.loc), "kind": "context", "message": hw.message,
                          "accesses": [self._access_where(hw.tid, hw.step_id)]})
            cands.append((depth[hw.state] + 1, len(cands), hw.message, lambda hw=hw: self._step_trace(
                hw.state, hw.tid, hw.step_id, hw.message)))
        _, _, msg, build = min(cands, key=lambda c: (c[0], c[1]))
        return PropertyResult("races", "race", Verdict.VIOLATED, trace=build(), message=msg,
                              details={"races": items})

    def _access_where(self, tid: int, sid: int) -> str:
        """One access of a race report: thread, step and where the step is written."""
        st = self.system.steps[sid]
        return f"{self.sem.thread_names[tid]}: {st.label} ({st.span})"

    def _coenabled_trace(self, rw: Any) -> Trace:
        moves, targets = self.path_to(rw.state)
        moves += [rw.first[:2], rw.second[:2]]
        targets += [None, None]
        try:
            return self.trace_for(moves, targets, prop="races", kind="race", message=rw.message)
        except RuntimeError:
            # the second access is not enabled after the first: show both from the common state
            tr = self.trace_for(moves[:-1], targets[:-1], prop="races", kind="race", message=rw.message)
            tr.extra["second_access"] = {"thread": self.system.threads[rw.second[0]].name,
                                         "step": self.system.steps[rw.second[1]].label}
            return tr

    def _pair_trace(self, lw: Any) -> Trace:
        traces = [self._step_trace(sidx, tid, sid, lw.message) for sidx, tid, sid in (lw.first, lw.second)]
        traces[1].extra["other_access_trace"] = traces[0].to_itf()
        return traces[1]

    def _step_trace(self, idx: int, tid: int, sid: int, message: str) -> Trace:
        moves, targets = self.path_to(idx)
        moves.append((tid, sid))
        targets.append(None)
        return self.trace_for(moves, targets, prop="races", kind="race", message=message)


def _run_group(system: ir.System, options: ExploreOptions, label: str, props: list[str],
               model_name: str) -> RunResult:
    if label == "workers":
        import dataclasses
        from .parallel import run_parallel
        canon_perm = None
        if options.symmetry:
            from .symmetry import Symmetry
            sym = Symmetry(system)
            if sym.active:
                canon_perm = sym.canon_perm
        res = run_parallel(system, dataclasses.replace(options, por=False), props, model_name, canon_perm)
        if options.por:
            res.notes.append("partial-order reduction is off with --workers (its cycle proviso needs one store)")
        return res
    import dataclasses
    opts = dataclasses.replace(options, workers=1)
    return Explorer(system, opts, props, model_name).run()


def _symmetry_active(system: ir.System) -> bool:
    from .symmetry import Symmetry
    return Symmetry(system).active


def check(system: ir.System, options: ExploreOptions, *, model_name: str,
          expect: dict[str, str] | None = None, properties: list[str] | None = None) -> RunResult:
    """Explore `system` and decide each selected property (default: all of them)."""
    selected = select_properties(system, properties)
    kinds = system.property_names
    groups: list[tuple[str, list[str]]] = []
    live = [p for p in selected if kinds[p] == "leadsto"]
    rest = [p for p in selected if kinds[p] != "leadsto"]
    if live and rest and options.symmetry and _symmetry_active(system):
        # liveness runs without symmetry (fairness is per thread; POR is kept): the safety
        # properties keep theirs in their own run
        groups.append(("liveness", live))
    else:
        rest = selected
    if options.workers > 1:
        from .parallel import PARALLEL_KINDS
        par = [p for p in rest if kinds[p] in PARALLEL_KINDS]
        seq = [p for p in rest if kinds[p] not in PARALLEL_KINDS]
        groups = ([("workers", par)] if par else []) + ([("one process", seq)] if seq else []) + groups
    else:
        groups = [("main", rest)] + groups
    runs: list[tuple[str, RunResult]] = []
    t0 = time.monotonic()
    for label, props in groups:
        if props:
            try:
                runs.append((label, _run_group(system, options, label, props, model_name)))
            except KeyboardInterrupt:
                # before the search started (compiling the steps, building the store): nothing found
                runs.append((label, RunResult(model_name, "explore", StopReason.INTERRUPTED, [
                    PropertyResult(n, kinds[n], Verdict.UNKNOWN, message="not checked: the run was interrupted")
                    for n in props], Stats(seconds=time.monotonic() - t0, peak_memory=peak_memory()))))
            if runs[-1][1].stop is StopReason.INTERRUPTED or interrupt.requested():
                runs[-1][1].stop = StopReason.INTERRUPTED
                break         # Ctrl-C stops the whole check, not just this group's search
    result = runs[0][1]
    if len(runs) > 1 or len(runs) < sum(1 for _, props in groups if props):
        by = {p.name: p for _, r in runs for p in r.properties}
        result.properties = [by.get(n) or PropertyResult(n, kinds[n], Verdict.UNKNOWN,
                                                         message="not checked: the run was interrupted")
                             for n in selected]
        result.notes = [n for n in result.notes if "liveness" not in n]
        for label, r in runs[1:]:
            what = ", ".join(p.name for p in r.properties)
            # each run's collision bound is about its own store: say whose
            result.notes += [f"{what}: {n}" if n.startswith("fingerprint mode:") else n
                             for n in r.notes if "liveness" not in n and n not in result.notes]
            # no seconds here: notes are compared across runs (determinism); the time is in the stats
            result.notes.append(f"{what}: checked in a separate {label} run: {r.stats.states:,} states, "
                                f"stopped: {r.stop.value}")
            result.stats.seconds += r.stats.seconds
            result.stats.peak_memory = max(result.stats.peak_memory, r.stats.peak_memory)
            if result.stop in (StopReason.FINISHED, StopReason.VIOLATION) and r.stop not in (
                    StopReason.FINISHED, StopReason.VIOLATION):
                result.stop = r.stop
    for p in result.properties:
        if expect and p.name in expect:
            p.expected = expect[p.name]
    return result
