"""`lockorder --svg` and `graph --svg`: well-formed, red exactly on reversals, escaped, deterministic."""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from checker import cli
from checker.explore import svg

ROOT = Path(__file__).resolve().parents[2]
NS = "{http://www.w3.org/2000/svg}"

pytestmark = pytest.mark.skipif(importlib.util.find_spec("checker.model") is None, reason="checker.model not built")

# b and c taken in both orders (a reversal), e only ever after them: its edges must stay black.
# The class names are hostile: markup, an entity, quotes, a CDATA end and a control character.
HOSTILE_B = "<script>&amp;\"x'</script>]]>\x01"
HOSTILE_SPEC = """\
lock b: mutex class "<script>&amp;\\"x'</script>]]>\x01"
lock c: mutex class "c & <d>"
lock e: mutex

thread t1 {
  lock(b)
  lock(c)
  lock(e)
  unlock(e)
  unlock(c)
  unlock(b)
}

thread t2 {
  lock(c)
  lock(b)
  unlock(b)
  unlock(c)
}
"""


def _edges(root: ET.Element) -> list[tuple[str, str]]:
    """(class, stroke) of every drawn edge."""
    return [(p.get("class"), p.get("stroke")) for p in root.iter(f"{NS}path") if "edge" in (p.get("class") or "")]


def _texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{NS}text")]


def _labels(root: ET.Element) -> dict[str, str]:
    """edge label -> its colour"""
    g = next(g for g in root.iter(f"{NS}g") if g.get("class") == "labels")
    return {t.text: t.get("fill") for t in g.iter(f"{NS}text")}


def test_lockorder_svg_abba_reversal_is_red(tmp_path, capsys):
    out = tmp_path / "lo.svg"
    rc = cli.main(["lockorder", str(ROOT / "models" / "ex_abba.toml"), "--svg", str(out)])
    assert rc == 0
    root = ET.parse(out).getroot()
    assert root.tag == f"{NS}svg"
    edges = _edges(root)
    # abba's graph is the cycle a -> b -> a: both edges, both red, with the acquiring step
    assert len(edges) == 2 and all(c == "edge red" and s == svg.RED for c, s in edges)
    assert _labels(root) == {"t1: lock(b)": svg.RED, "t2: lock(a)": svg.RED}
    assert {"a", "b"} <= set(_texts(root))


def test_lockorder_svg_red_only_on_cycle_and_names_escaped(tmp_path, capsys):
    spec = tmp_path / "hostile.fk"
    spec.write_text(HOSTILE_SPEC, encoding="utf-8")
    out, dot = tmp_path / "h.svg", tmp_path / "h.dot"
    rc = cli.main(["lockorder", str(spec), "--svg", str(out), "--dot", str(dot)])
    assert rc == 0
    raw = out.read_text(encoding="utf-8")
    assert "<script>" not in raw and "]]>" not in raw and "\x01" not in raw
    root = ET.fromstring(raw)                       # well-formed despite the names
    texts = _texts(root)
    assert HOSTILE_B.replace("\x01", "\ufffd") in texts and "c & <d>" in texts and "e" in texts
    edges = _edges(root)
    assert sorted(c for c, _ in edges) == ["edge", "edge", "edge red", "edge red"]
    assert all((s == svg.RED) == (c == "edge red") for c, s in edges)
    labels = _labels(root)
    assert labels["t2: lock(b)"] == svg.RED and labels["t1: lock(c)"] == svg.RED
    assert labels["t1: lock(e)"] != svg.RED
    # the dot file colours the same edges (and nothing else) red
    reds = [ln for ln in dot.read_text().splitlines() if 'color="red"' in ln]
    assert len(reds) == 2 and not any('"e"' in ln for ln in reds)


def test_svg_is_deterministic(tmp_path, capsys):
    spec = tmp_path / "hostile.fk"
    spec.write_text(HOSTILE_SPEC, encoding="utf-8")
    a, b = tmp_path / "a.svg", tmp_path / "b.svg"
    assert cli.main(["lockorder", str(spec), "--svg", str(a)]) == 0
    assert cli.main(["lockorder", str(spec), "--svg", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    # the layout does not depend on the order nodes and edges are given in
    nodes = [svg.Node(k, (k,)) for k in "pqrs"]
    edges = [svg.Edge("p", "q", "1"), svg.Edge("q", "p", "2", True), svg.Edge("q", "r"), svg.Edge("s", "s", "x")]
    assert svg.render(nodes, edges) == svg.render(nodes[::-1], edges[::-1])


def test_layers_put_a_cycle_in_one_column():
    nodes = [svg.Node(k, (k,)) for k in ("a", "b", "c", "d")]
    cols = svg.layers(nodes, [svg.Edge("a", "b"), svg.Edge("b", "a"), svg.Edge("b", "c"), svg.Edge("d", "c")])
    assert cols == [["a", "b", "d"], ["c"]]


def test_render_rejects_dangling_edge():
    with pytest.raises(ValueError, match="unknown node"):
        svg.render([svg.Node("a", ("a",))], [svg.Edge("a", "zz")])


def test_graph_svg_and_limit(tmp_path, capsys):
    model = str(ROOT / "models" / "ex_abba.toml")
    out = tmp_path / "g.svg"
    rc = cli.main(["graph", model, "--svg", str(out)])
    assert rc == 0 and "23 states" in capsys.readouterr().out
    root = ET.parse(out).getroot()
    nodes = [g for g in root.iter(f"{NS}g") if g.get("class") == "node"]
    assert len(nodes) == 23                         # every state (abba has no failing step: no violation box)
    assert sum(1 for n in nodes if n[0].get("stroke-width") == "2.5") == 1     # the initial state
    rc = cli.main(["graph", model, "--svg", str(out), "--limit", "3"])
    assert rc == 2 and "more than 3 states" in capsys.readouterr().err
    rc = cli.main(["graph", model])
    assert rc == 2 and "--svg FILE" in capsys.readouterr().err


def test_graph_svg_violation_box_is_red(tmp_path, capsys):
    spec = tmp_path / "bad.fk"
    spec.write_text("var x: 0..1 = 0\nthread t {\n  x := 1\n  assert x_zero: x == 0\n}\n")
    out = tmp_path / "g.svg"
    assert cli.main(["graph", str(spec), "--svg", str(out)]) == 0
    root = ET.parse(out).getroot()
    nodes = [g for g in root.iter(f"{NS}g") if g.get("class") == "node"]
    red = [n for n in nodes if n[0].get("stroke") == svg.RED]
    assert len(nodes) == 3 and len(red) == 1 and red[0][1].text == "violation"
    assert _edges(root) == [("edge", "#333333"), ("edge red", svg.RED)]
    assert _labels(root)["t: assert x_zero: x == 0 [x_zero]"] == svg.RED
