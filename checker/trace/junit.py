"""JUnit XML for CI: one testsuite per model, one testcase per property.

An unexpected verdict is a <failure> whose body is the rendered trace (when
there is one); a limit or a load error is an <error>; an expected violation
passes and carries its trace in <system-out>, so CI shows the known bug.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .report import ModelReport, Row, Status, VerifyReport
from .seed import SeedSource
from .text import render_plain
from .view import build_view


def _trace_text(row: Row, seed: SeedSource) -> str:
    if row.trace is None:
        return ""
    return render_plain(build_view(row.trace, seed))


def _body(row: Row, seed: SeedSource) -> str:
    lines = [f"{row.model} / {row.property} ({row.kind}): verdict {row.verdict.value if row.verdict else '-'}, "
             f"expected {row.expected or '-'}"]
    if row.message:
        lines.append(row.message)
    lines += row.notes
    if row.trace_file:
        lines.append(f"trace: {row.trace_file} (forkcheck trace show {row.trace_file})")
    text = _trace_text(row, seed)
    return "\n".join(lines) + ("\n\n" + text if text else "\n")


def _testcase(row: Row, seed: SeedSource) -> ET.Element:
    tc = ET.Element("testcase", {"classname": f"forkcheck.{row.model}", "name": row.property,
                                 "time": f"{row.seconds:.3f}"})
    short = f"{row.kind} {row.property}: {row.verdict.value if row.verdict else '-'}, expected {row.expected}"
    if row.notes and row.status is Status.UNEXPECTED and row.verdict is not None and \
            row.expected is not None and row.verdict.satisfies(row.expected):
        short += f" ({row.notes[0]})"
    if row.status is Status.UNEXPECTED:
        ET.SubElement(tc, "failure", {"message": short, "type": "unexpected verdict"}).text = _body(row, seed)
    elif row.status is Status.CTI:
        ET.SubElement(tc, "failure", {"message": short, "type": "counterexample to induction"}).text = \
            _body(row, seed)
    elif row.status is Status.LIMIT:
        ET.SubElement(tc, "error", {"message": short, "type": "limit"}).text = _body(row, seed)
    elif row.trace is not None:
        ET.SubElement(tc, "system-out").text = _body(row, seed)
    return tc


def _suite(m: ModelReport, seed: SeedSource) -> ET.Element:
    rows = m.rows
    failures = sum(r.status in (Status.UNEXPECTED, Status.CTI) for r in rows)
    errors = sum(r.status is Status.LIMIT for r in rows) + (m.error is not None)
    suite = ET.Element("testsuite", {"name": m.name, "tests": str(len(rows) + (m.error is not None)),
                                     "failures": str(failures), "errors": str(errors), "skipped": "0",
                                     "time": f"{m.seconds:.3f}", "file": m.model_file})
    if m.error is not None:
        tc = ET.SubElement(suite, "testcase", {"classname": f"forkcheck.{m.name}", "name": "load model",
                                               "time": "0.000"})
        ET.SubElement(tc, "error", {"message": m.error.splitlines()[0], "type": "input error"}).text = m.error
    for r in rows:
        suite.append(_testcase(r, seed))
    return suite


def to_junit(report: VerifyReport, seed: SeedSource | None = None) -> str:
    seed = seed or SeedSource(None)
    suites = [_suite(m, seed) for m in report.models]
    root = ET.Element("testsuites", {
        "name": "forkcheck verify",
        "tests": str(sum(int(s.get("tests", "0")) for s in suites)),
        "failures": str(sum(int(s.get("failures", "0")) for s in suites)),
        "errors": str(sum(int(s.get("errors", "0")) for s in suites)),
        "time": f"{report.seconds:.3f}"})
    root.extend(suites)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
