"""JUnit and SARIF of a small example: golden files, and SARIF against the 2.1.0 (subset) schema."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from checker.results import Verdict
from checker.trace import junit, sarif
from checker.trace.report import VerifyReport
from checker.trace.seed import SeedSource
from checker.verify import VerifyOptions, verify

from .fakes import model_files, prop, result, runner, standard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "trace"))
from golden import check_golden  # noqa: E402

GOLDEN = Path(__file__).parent / "golden"


def example(tmp_path: Path) -> VerifyReport:
    """Two expected violations, one unexpected holds, one load error; times fixed for golden files."""
    sc = standard()
    sc["fixed"] = lambda: ({"nprocs_bounded": "violated"},
                           [result("fixed", prop("nprocs_bounded", "invariant", Verdict.HOLDS))])
    rep = verify(model_files(tmp_path, "race", "ppwait", "fixed", "broken"),
                 VerifyOptions(root=tmp_path, cex_dir=tmp_path / "counterexamples"), runner(sc))
    rep.seconds = 1.5
    for m in rep.models:
        m.seconds = 0.5
        if m.error:
            m.error = m.error.replace(str(tmp_path) + "/", "")
    return rep


def test_junit_golden(tmp_path: Path, seed_file: Path) -> None:
    text = junit.to_junit(example(tmp_path), SeedSource(seed_file.parent))
    root = ET.fromstring(text)
    assert root.get("tests") == "6" and root.get("failures") == "1" and root.get("errors") == "1"
    fixed = root.find("testsuite[@name='fixed']/testcase")
    assert fixed is not None and fixed.find("failure") is not None
    race = root.find("testsuite[@name='race']/testcase[@name='nprocs_bounded']")
    assert race is not None and "270 nprocs++;" in race.findtext("system-out", "")
    check_golden(GOLDEN / "example.junit.xml", text)


def test_sarif_golden_and_schema(tmp_path: Path, seed_file: Path, repo: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    doc = sarif.to_sarif(example(tmp_path), seed=SeedSource(seed_file.parent),
                         src_root_uri="file:///src/forkcheck/", seed_root_uri="file:///src/shared/seed/")
    schema = json.loads((repo / "tests/data/schemas/sarif-2.1.0-subset.schema.json").read_text())
    jsonschema.validate(doc, schema)
    results = doc["runs"][0]["results"]
    by_rule = {(r["properties"]["model"] if "properties" in r else "?", r["ruleId"]): r for r in results}
    race = by_rule[("race", "nprocs_bounded")]
    assert race["level"] == "warning" and race["suppressions"][0]["kind"] == "external"
    flows = race["codeFlows"][0]["threadFlows"]
    assert [f["id"] for f in flows] == ["cpu[0]", "cpu[1]"]
    orders = sorted(loc["executionOrder"] for f in flows for loc in f["locations"])
    assert orders == list(range(1, 8))
    assert race["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "spec/race.fk", "uriBaseId": "SRCROOT"},
        "region": {"startLine": 12, "startColumn": 11}}
    assert race["relatedLocations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "kern_fork.c", "uriBaseId": "SEEDROOT"}, "region": {"startLine": 270}}
    assert by_rule[("fixed", "nprocs_bounded")]["level"] == "error"
    assert "suppressions" not in by_rule[("fixed", "nprocs_bounded")]
    assert any(r["ruleId"] == "input-error" for r in results)
    check_golden(GOLDEN / "example.sarif.json", sarif.dumps(doc))


def test_sarif_schema_rejects_what_sarif_forbids(repo: Path) -> None:
    """The subset schema must be able to fail: a result without a message, a bad level."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((repo / "tests/data/schemas/sarif-2.1.0-subset.schema.json").read_text())
    base = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {"text": "m"}}]}]}
    jsonschema.validate(base, schema)
    for bad in ({"level": "fatal", "message": {"text": "m"}}, {"ruleId": "r"},
                {"message": {"text": "m"}, "codeFlows": [{"threadFlows": []}]},
                {"message": {"text": "m"}, "locations": [{"physicalLocation": {"region": {"startLine": 0}},
                                                          }]}):
        doc = json.loads(json.dumps(base))
        doc["runs"][0]["results"] = [bad]
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, schema)
