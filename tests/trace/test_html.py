"""The HTML page: self-contained, and (in headless Chromium) it renders the steps and follows keys."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from checker.cli import main
from checker.trace.html import page_data, render_html
from checker.trace.itf import Trace, TraceStep
from checker.trace.seed import SeedSource

from .samples import lock_wait, nprocs_race


def test_page_is_self_contained(seed_file: Path) -> None:
    page = render_html(nprocs_race(), SeedSource(seed_file.parent))
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched
    assert "@import" not in page
    data = json.loads(re.search(r'<script id="trace-data" type="application/json">(.*?)</script>',
                                page, re.S).group(1))
    assert data["steps"][3]["source"].strip() == "nprocs++;"
    assert data["sources"]["kern_fork.c"]["270"].strip() == "nprocs++;"
    assert data["shown"] == ["allproc_lock", "cpu[0].tmp", "cpu[1].tmp", "maxproc", "nprocs"]


def test_script_end_in_data_cannot_break_the_page() -> None:
    t = lock_wait()
    t.steps[1] = TraceStep("cpu[0]", 1, "</script><b>x</b>", None)
    page = render_html(t)
    assert page.count("</script>") == 2  # the data block's and the code's, nothing from the trace
    assert page_data(t)["steps"][0]["label"] == "</script><b>x</b>"


def test_show_html_command(tmp_path: Path) -> None:
    f = tmp_path / "t.itf.json"
    nprocs_race().write(f)
    out = tmp_path / "t.html"
    assert main(["trace", "show", str(f), "--html", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")




@pytest.mark.browser
def test_renders_and_follows_keys_in_chromium(tmp_path: Path, seed_file: Path, dump_dom) -> None:
    page = tmp_path / "race.html"
    page.write_text(render_html(nprocs_race(), SeedSource(seed_file.parent)), encoding="utf-8")

    dom = dump_dom(page, "", tmp_path / "p1")
    assert '<body data-step="0">' in dom
    assert len(re.findall(r'<tr class="step[^"]*" data-step="\d+"', dom)) == 8   # initial + 7 steps
    assert "270 nprocs++;" in dom and "step 0 of 7" in dom

    # Three steps forward, one back, then "j": step 3, with 270 highlighted and nprocs shown changed.
    dom = dump_dom(page, "#keys=ArrowRight,ArrowRight,ArrowRight,ArrowLeft,j", tmp_path / "p2")
    assert '<body data-step="3">' in dom and "step 3 of 7" in dom
    assert re.search(r'<tr class="step current" data-step="3">', dom)
    assert re.search(r'class="hl"><span class="ln">270</span>', dom)
    dom = dump_dom(page, "#keys=End", tmp_path / "p3")
    assert '<body data-step="7">' in dom
    assert re.search(r'<tr class="changed" data-path="nprocs"><td>nprocs</td><td>3</td>', dom)


def test_idle_thread_has_no_lane_in_the_page() -> None:
    t = nprocs_race()
    for s in t.states:   # a thread that never steps, holds nothing and waits for nothing
        s["#threads"]["swapper"] = {"pc": "start", "locals": {}, "wchan": None, "status": "running"}
    data = page_data(t)
    assert data["threads"] == ["cpu[0]", "cpu[1]"] and data["idle"] == ["swapper"]
    assert page_data(nprocs_race())["idle"] == []
