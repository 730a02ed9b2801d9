"""Scenario files for `forkcheck kernel run`: a config and a list of system
calls, run on one CPU. The format is documented in docs/kernel.md."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..diagnostics import ForkcheckError, Span
from .config import FIXES, RF, KernelConfig, PStat
from .kernel import Kernel
from .objects import Proc
from .runner import Outcome, SingleCpu
from .syscalls import PROCESS_CALLS, Call


class ScenarioError(ForkcheckError):
    """A malformed or impossible scenario (exit 2)."""


# op -> (required fields, optional fields); each field's expected JSON type.
_INT, _BOOL, _STR, _FLAGS = "integer", "boolean", "string", "list of RF flag names"
OPS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "fork": ({"pid": _INT}, {}),
    "vfork": ({"pid": _INT}, {}),
    "rfork": ({"pid": _INT, "flags": _FLAGS}, {}),
    "fork1": ({"pid": _INT, "flags": _FLAGS}, {}),
    "exit": ({"pid": _INT}, {"status": _INT}),
    "wait": ({"pid": _INT}, {"child": _INT}),
    "exec": ({"pid": _INT}, {"path": _STR}),
    "setsid": ({"pid": _INT}, {}),
    "setpgid": ({"pid": _INT, "pgid": _INT}, {"target": _INT}),
    "setuid": ({"pid": _INT, "uid": _INT}, {}),
    "setrlimit": ({"pid": _INT}, {"nproc": _INT, "sharemod": _BOOL}),
    "sysctl_randompid": ({"value": _INT}, {}),
    "at_fork": ({"fn": _STR}, {}),
    "rm_at_fork": ({"fn": _STR}, {}),
    "swapper": ({}, {}),
}
CONFIG_INTS = ("PID_MAX", "PID_FLOOR", "PID_HIGH_FLOOR", "RANDOMPID_MIN", "maxproc", "maxprocperuid",
               "randompid", "PIDHASH_SIZE", "seed")


@dataclass(frozen=True)
class Op:
    index: int
    call: Call
    args: dict[str, Any]

    @property
    def pid(self) -> int | None:
        return self.args.get("pid")


@dataclass(frozen=True)
class Scenario:
    path: str
    config: KernelConfig
    ops: tuple[Op, ...]


def _type_ok(v: Any, t: str) -> bool:
    if t == _INT:
        return isinstance(v, int) and not isinstance(v, bool)
    if t == _BOOL:
        return isinstance(v, bool)
    if t == _STR:
        return isinstance(v, str)
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def parse(text: str, path: str) -> Scenario:
    def err(msg: str) -> ScenarioError:
        return ScenarioError(f"{path}: {msg}")

    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ScenarioError(f"invalid JSON: {e.msg}", Span(path, e.lineno, e.colno), text=text) from None
    except RecursionError:
        raise ScenarioError(f"{path}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise err("the scenario must be a JSON object with \"config\" and \"ops\"")
    extra = sorted(set(data) - {"config", "ops", "description"})
    if extra:
        raise err(f"unknown top-level field {extra[0]!r} (expected config, ops, description)")
    cfg = data.get("config", {})
    if not isinstance(cfg, dict):
        raise err("config: must be an object")
    kw: dict[str, Any] = {}
    for key, v in cfg.items():
        if key == "fixes":
            if not isinstance(v, dict) or not all(isinstance(b, bool) for b in v.values()):
                raise err("config.fixes: must be an object of fix name -> true/false")
            for name in v:
                if name not in FIXES:
                    raise err(f"config.fixes.{name}: unknown fix toggle (known: {', '.join(FIXES)})")
            kw["fixes"] = dict(v)
        elif key in CONFIG_INTS:
            if not _type_ok(v, _INT):
                raise err(f"config.{key}: expected an integer, got {json.dumps(v)}")
            kw[key] = v
        else:
            raise err(f"config.{key}: unknown setting (known: {', '.join(CONFIG_INTS)}, fixes)")
    try:
        config = KernelConfig(**kw)
    except ValueError as e:
        raise err(f"config: {e}") from None
    raw_ops = data.get("ops")
    if not isinstance(raw_ops, list):
        raise err("ops: must be a list of operations")
    ops = []
    for i, o in enumerate(raw_ops):
        where = f"ops[{i}]"
        if not isinstance(o, dict):
            raise err(f"{where}: must be an object like {{\"op\": \"fork\", \"pid\": 1}}")
        name = o.get("op")
        if not isinstance(name, str) or name not in OPS:
            raise err(f"{where}.op: unknown operation {json.dumps(name)} (known: {', '.join(OPS)})")
        req, opt = OPS[name]
        for f in req:
            if f not in o:
                raise err(f"{where}.{f}: missing ({name} needs {', '.join(req)})")
        args: dict[str, Any] = {}
        for f, v in o.items():
            if f == "op":
                continue
            t = req.get(f) or opt.get(f)
            if t is None:
                allowed = ", ".join([*req, *opt]) or "no fields"
                raise err(f"{where}.{f}: unknown field for {name} (allowed: {allowed})")
            if not _type_ok(v, t):
                raise err(f"{where}.{f}: expected {t}, got {json.dumps(v)}")
            if t == _FLAGS:
                bits = 0
                for flag in v:
                    if flag not in RF.__members__:
                        raise err(f"{where}.{f}: unknown flag {flag!r} (known: {', '.join(RF.__members__)})")
                    bits |= RF[flag]
                v = RF(bits)
            args[f] = v
        ops.append(Op(i, Call(name), args))
    return Scenario(path, config, tuple(ops))


def load(path: str) -> Scenario:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError(f"cannot read scenario {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return parse(text, path)


@dataclass
class Run:
    scenario: Scenario
    kernel: Kernel
    outcomes: list[Outcome] = field(default_factory=list)


def _caller(k: Kernel, sc: Scenario, op: Op, runner: SingleCpu) -> Proc:
    where = f"{sc.path}: ops[{op.index}].pid"
    pid = op.pid
    p = k.pfind(pid) if pid is not None else None
    if p is None:
        z = k.zpfind(pid) if pid is not None else None
        state = "a zombie" if z is not None else "not a process"
        raise ScenarioError(f"{where}: pid {pid} is {state}; it cannot make system calls")
    if p.p_stat is PStat.SIDL:
        raise ScenarioError(f"{where}: pid {pid} is SIDL (created with RFSTOPPED) and never runs")
    if k.busy(p):
        c = next(c for c in k.cpus.values() if c.proc is p and not c.done)
        raise ScenarioError(f"{where}: pid {pid} is still inside {c.name} "
                            f"(asleep on {c.wmesg!r}); it cannot make another call")
    return p


def run(sc: Scenario) -> Run:
    k = Kernel(sc.config)
    runner = SingleCpu(k)
    r = Run(sc, k)
    for op in sc.ops:
        if k.panic is not None:
            break
        proc = _caller(k, sc, op, runner) if op.call in PROCESS_CALLS else None
        args = {a: v for a, v in op.args.items() if a != "pid"}
        r.outcomes.append(runner.call(op.call, proc, **args))
    return r


def _proc_row(p: Proc) -> dict[str, Any]:
    return {"pid": p.p_pid, "ppid": None if p.p_pptr is None else p.p_pptr.p_pid,
            "pgid": p.p_pgrp.pg_id if p.p_pgrp is not None else None,
            "sid": p.p_session.s_sid if p.p_pgrp is not None else None,
            "stat": p.p_stat.value, "flags": sorted(f.value for f in p.p_flag)}


def refcounts(k: Kernel) -> dict[str, int]:
    fields = {"ucred": "cr_ref", "plimit": "p_refcnt", "procsig": "ps_refcnt", "pargs": "ar_ref",
              "filedesc": "fd_refcnt", "vmspace": "vm_refcnt", "vnode": "v_usecount", "uidinfo": "ui_proccnt"}
    out = {}
    for kind, f in fields.items():
        for o in k.live.get(kind, {}).values():
            out[f"{o.ref}.{f}"] = getattr(o, f)
    return out


def result_json(r: Run) -> dict[str, Any]:
    k = r.kernel
    procs = sorted([p for p in k.allproc + k.zombproc if isinstance(p.p_pid, int)], key=lambda p: p.p_pid)
    seen: set[str] = set()
    witness = []
    for w in k.witness.warnings:
        if w.message not in seen:
            seen.add(w.message)
            witness.append(w.to_json())
    return {"results": [o.to_json() for o in r.outcomes], "procs": [_proc_row(p) for p in procs],
            "refcounts": refcounts(k), "lastpid": k.lastpid, "pidchecked": k.pidchecked, "nprocs": k.nprocs,
            "randompid": k.randompid, "fork_list": [e.name for e in k.fork_list],
            "witness": witness, "panic": None if k.panic is None else k.panic.to_json()}


def _describe_op(op: Op) -> str:
    parts = [op.call.value]
    for a, v in op.args.items():
        if isinstance(v, RF):
            v = "|".join(f.name for f in RF if f.name and v & f) or "0"
        parts.append(f"{a}={v}")
    return " ".join(parts)


def result_text(r: Run) -> str:
    j = result_json(r)
    lines = ["calls:"]
    for op, res in zip(r.scenario.ops, j["results"]):
        if "ret" in res:
            txt = f"-> {res['ret']}"
            if "completed_after_op" in res:
                txt += f"   (woken, returned after op {res['completed_after_op']})"
        elif "errno" in res:
            txt = f"-> {res['errno']}"
        elif "exited" in res:
            txt = f"-> exited ({res['exited']})"
        elif "blocked" in res:
            txt = f"-> asleep ({res['blocked']})"
        elif "hung" in res:
            txt = f"-> hung at line {res['line']}"
        else:
            txt = f"-> PANIC at {res['file']}:{res['line']}: {res['panic']}"
        lines.append(f"  [{op.index}] {_describe_op(op):<40} {txt}")
    skipped = len(r.scenario.ops) - len(r.outcomes)
    if skipped:
        lines.append(f"  ({skipped} later op(s) not run: the kernel panicked)")
    lines.append(f"nprocs {j['nprocs']}  lastpid {j['lastpid']}  pidchecked {j['pidchecked']}  "
                 f"randompid {j['randompid']}")
    lines.append(f"  {'PID':>5} {'PPID':>5} {'PGID':>5} {'SID':>5}  {'STAT':<7} FLAGS")
    for p in j["procs"]:
        ppid = "-" if p["ppid"] is None else p["ppid"]
        pgid = "-" if p["pgid"] is None else p["pgid"]
        sid = "-" if p["sid"] is None else p["sid"]
        lines.append(f"  {p['pid']:>5} {ppid:>5} {pgid:>5} {sid:>5}  {p['stat']:<7} {','.join(p['flags'])}")
    lines.append("refcounts: " + ", ".join(f"{k}={v}" for k, v in j["refcounts"].items()))
    for w in j["witness"]:
        lines.append(f"witness: {w['kind']}: {w['message']} ({w['file']}:{w['line']})")
    if j["panic"]:
        lines.append(f"panic: {j['panic']['file']}:{j['panic']['line']}: {j['panic']['panic']}")
    return "\n".join(lines)
