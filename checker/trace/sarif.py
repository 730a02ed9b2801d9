"""SARIF 2.1.0 for code-scanning UIs.

One result per violation (unexpected or expected) and per other unexpected
verdict. A violation's result points at the property in the spec and at the
seed line where it happened, and carries the trace as a codeFlow with one
threadFlow per CPU (executionOrder gives the interleaving). Expected
violations are reported with an external, accepted suppression: known bugs
stay visible without failing a gate.
"""

from __future__ import annotations

import json
from typing import Any

from .. import __version__
from .report import Location, Row, Status, VerifyReport
from .seed import SeedSource, parse_ref
from .view import build_view

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
SEEDROOT = "SEEDROOT"
SRCROOT = "SRCROOT"


def _phys(loc: Location) -> dict[str, Any]:
    region: dict[str, Any] = {"startLine": loc.line}
    if loc.col > 0:
        region["startColumn"] = loc.col
    return {"artifactLocation": {"uri": loc.file, "uriBaseId": loc.base}, "region": region}


def _seed_loc(ref: str | None) -> Location | None:
    pr = parse_ref(ref)
    return Location(pr[0], pr[1], 0, SEEDROOT) if pr else None


def _code_flow(row: Row, seed: SeedSource) -> dict[str, Any]:
    assert row.trace is not None
    view = build_view(row.trace, seed)
    flows: dict[str, list[dict[str, Any]]] = {t: [] for t in view.threads}
    for st in view.steps:
        loc: dict[str, Any] = {"message": {"text": st.label}}
        sl = _seed_loc(st.ref)
        if sl is not None:
            loc["physicalLocation"] = _phys(sl)
        tfl: dict[str, Any] = {"location": loc, "executionOrder": st.index, "nestingLevel": 0}
        if st.changes:
            tfl["state"] = {c.path: {"text": str(c).split(": ", 1)[1]} for c in st.changes}
        kinds = ["acquire"] if any("holds" in t and t != "holds no lock" for _, t in st.locks) else []
        if kinds:
            tfl["kinds"] = kinds
        flows.setdefault(st.thread, []).append(tfl)
    return {"message": {"text": f"{view.length}-step trace"
                        + ("" if view.loop is None else f", cycle from state {view.loop}")},
            "threadFlows": [{"id": t, "message": {"text": t}, "locations": locs}
                            for t, locs in flows.items() if locs]}


def _result(row: Row, rule_index: int, seed: SeedSource) -> dict[str, Any]:
    expected_violation = row.is_violation and row.status is Status.OK
    verdict = row.verdict.value if row.verdict else "-"
    text = f"{row.kind} {row.property} {verdict} in model {row.model}"
    if row.message:
        text += f": {row.message}"
    if not expected_violation:
        text += f" (expected {row.expected})"
    if row.notes and row.status is not Status.OK:
        text += ". " + "; ".join(row.notes)
    res: dict[str, Any] = {
        "ruleId": row.property, "ruleIndex": rule_index,
        "level": "warning" if expected_violation else "error",
        "kind": "fail",
        "message": {"text": text},
        "partialFingerprints": {"forkcheck/v1": f"{row.model}/{row.property}"},
        "properties": {"model": row.model, "verdict": verdict, "expected": row.expected,
                       "status": row.status.value, "traceFile": row.trace_file,
                       "traceLength": row.trace_length},
    }
    locations = []
    if row.spec_location is not None:
        locations.append({"physicalLocation": _phys(row.spec_location),
                          "message": {"text": f"property {row.property}"}})
    related = []
    if row.trace is not None:
        # The seed line of the last cited step: where the violation became visible.
        last = next((s for s in reversed(row.trace.steps) if s is not None and parse_ref(s.ref)), None)
        sl = _seed_loc(last.ref) if last else None
        if sl is not None:
            seed_loc = {"physicalLocation": _phys(sl), "message": {"text": f"{last.thread}: {last.label}"}}
            if locations:
                related.append({"id": 1, **seed_loc})
            else:
                locations.append(seed_loc)
        res["codeFlows"] = [_code_flow(row, seed)]
    if locations:
        res["locations"] = locations
    if related:
        res["relatedLocations"] = related
    if expected_violation:
        res["suppressions"] = [{"kind": "external", "status": "accepted",
                                "justification": f"known violation: the model {row.model} expects "
                                                 f"{row.property} = violated"}]
    return res


def to_sarif(report: VerifyReport, *, seed: SeedSource | None = None, src_root_uri: str | None = None,
             seed_root_uri: str | None = None) -> dict[str, Any]:
    seed = seed or SeedSource(None)
    rows = [r for r in report.rows if r.is_violation or r.status is not Status.OK]
    rules: dict[str, dict[str, Any]] = {}
    for r in report.rows:
        rules.setdefault(r.property, {"id": r.property, "name": r.property,
                                      "shortDescription": {"text": f"{r.kind} {r.property}"},
                                      "properties": {"kind": r.kind}})
    index = {name: i for i, name in enumerate(rules)}
    results = [_result(r, index[r.property], seed) for r in rows]
    for m in report.models:
        if m.error is not None:
            results.append({"ruleId": "input-error", "level": "error", "kind": "fail",
                            "message": {"text": m.error},
                            "locations": [{"physicalLocation": {
                                "artifactLocation": {"uri": m.model_file, "uriBaseId": SRCROOT}}}]})
    bases: dict[str, Any] = {
        SRCROOT: {"description": {"text": "the forkcheck checkout (models, specs, counterexamples)"}},
        SEEDROOT: {"description": {"text": "the folder holding the seed kern_fork.c"}}}
    if src_root_uri:
        bases[SRCROOT]["uri"] = src_root_uri
    if seed_root_uri:
        bases[SEEDROOT]["uri"] = seed_root_uri
    code = report.exit_code()
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [{
        "tool": {"driver": {"name": "forkcheck", "version": __version__,
                            "semanticVersion": __version__, "rules": list(rules.values())}},
        "originalUriBaseIds": bases,
        "invocations": [{"executionSuccessful": code in (0, 1), "exitCode": code,
                         "commandLine": "forkcheck verify"}],
        "results": results}]}


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=False, ensure_ascii=False) + "\n"
