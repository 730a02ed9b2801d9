"""The terminal rendering: golden files, shrinking, lock waits, the `trace show` command."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from checker.cli import main
from checker.trace.seed import SeedSource, find_seed_dir, parse_ref
from checker.trace.shrink import matches, relevant_paths
from checker.trace.text import render, render_plain
from checker.trace.view import build_view

from .golden import check_golden
from .samples import lock_wait, nprocs_race, ppwait_lasso

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("make", [nprocs_race, lock_wait, ppwait_lasso], ids=lambda f: f.__name__)
def test_plain_golden(make, seed_file: Path) -> None:
    text = render_plain(build_view(make(), SeedSource(seed_file.parent)), width=100)
    check_golden(GOLDEN / f"{make.__name__}.txt", text)


def test_full_golden_without_seed() -> None:
    text = render_plain(build_view(nprocs_race(), SeedSource(None), full=True), width=80)
    check_golden(GOLDEN / "nprocs_race.full.noseed.txt", text)
    assert "proc#1.stat = SRUN" in text and "hidden" not in text
    assert "   3  270 tmp := nprocs + 1 [load]" in text  # no seed: the line number and the label


def test_seed_text_and_changes(seed_file: Path) -> None:
    text = render_plain(build_view(nprocs_race(), SeedSource(seed_file.parent)))
    assert "270 nprocs++;" in text
    assert "nprocs: 2 -> 3" in text
    assert "proc#1.stat" not in text            # shrunk: neither changed nor read by the property
    assert "maxproc = 2" in text                # read by the property (focus), though it never changes
    assert "VIOLATED nprocs_bounded (invariant): nprocs = 3 exceeds maxproc = 2" in text


def test_wait_names_the_holder_and_since_when() -> None:
    view = build_view(lock_wait())
    assert view.steps[2].waits == (("cpu[1]", "waits for allproc_lock, held by cpu[0] since step 1"),)
    assert view.steps[1].waits == (("cpu[0]", "blocked: sleeping on proc#1"),)
    assert view.steps[0].locks == (("cpu[0]", "holds allproc_lock (since step 1)"),)


def test_waits_derived_from_lock_values_without_meta() -> None:
    t = lock_wait()
    for s in t.steps[1:]:
        s.locks_held.clear()
        s.blocked.clear()
    view = build_view(t)
    assert view.holders[3] == {"cpu[0]": ("allproc_lock",)}
    assert view.waiting[3]["cpu[1]"] == "blocked: blocked"
    assert view.waiting[3]["cpu[0]"] == "blocked: sleeping on proc#1"


def test_lasso_is_marked(seed_file: Path) -> None:
    text = render_plain(build_view(ppwait_lasso(), SeedSource(seed_file.parent)))
    lines = text.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith("====  cycle starts here"))
    assert lines[i + 1].lstrip().startswith("1 ")
    assert any(ln.startswith("====  back to state 1") for ln in lines)


def test_shrink_patterns() -> None:
    assert matches("proc#3.stat", "proc.stat") and matches("proc#3.stat", "proc")
    assert not matches("proc#3.pid", "proc.stat") and not matches("nprocsx", "nprocs")
    flats = [{"a": 1, "b": 1, "proc#1.x": 0}, {"a": 2, "b": 1, "proc#1.x": 0}]
    assert relevant_paths(flats) == ["a"]
    assert relevant_paths(flats, ["proc.x"]) == ["a", "proc#1.x"]


def test_seed_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_ref("kern_fork.c:270") == ("kern_fork.c", 270) and parse_ref("nonsense") is None
    (tmp_path / "kern_fork.c").write_text("a\nb\n")
    monkeypatch.setenv("FORKCHECK_SEED_DIR", str(tmp_path))
    assert find_seed_dir() == tmp_path
    src = SeedSource(find_seed_dir())
    assert src.line("kern_fork.c", 2) == "b" and src.line("kern_fork.c", 3) is None
    assert src.line("../../etc/kern_fork.c", 1) == "a"   # only the base name is used
    assert SeedSource(None).line("kern_fork.c", 1) is None


def test_rich_rendering_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True
    out = Tty()
    assert render(build_view(lock_wait()), stream=out, width=120) is None
    text = out.getvalue()
    assert "\x1b[" in text and "waits for allproc_lock, held by cpu[0]" in text.replace("\n", " ")


def test_trace_show_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "t.itf.json"
    nprocs_race().write(f)
    assert main(["trace", "show", str(f), "--seed-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model nprocs_race") and "270 tmp := nprocs + 1 [load]" in out
    assert main(["trace", "show", str(tmp_path / "missing.itf.json")]) == 2
    assert "error: no such trace file" in capsys.readouterr().err
    f.write_text("{oops")
    assert main(["trace", "show", str(f)]) == 2
    assert "t.itf.json:1:2: invalid JSON" in capsys.readouterr().err
    assert main(["trace", "replay", str(f)]) == 2


def test_idle_thread_gets_no_lane_and_is_named() -> None:
    t = nprocs_race()
    for s in t.states:   # a swapper that never steps, holds nothing and waits for nothing
        s["#threads"]["swapper"] = {"pc": "start", "locals": {}, "wchan": None, "status": "running"}
    view = build_view(t)
    assert "swapper" in view.threads
    text = render_plain(view, width=100)
    lanes = next(ln for ln in text.splitlines() if ln.startswith("step  "))
    assert lanes.split() == ["step", "cpu[0]", "cpu[1]"]
    assert "threads that take no step (no lane): swapper" in text
    # the same trace without the idle thread draws the same table, lanes as wide

    def table(s: str) -> str:
        return s[s.index("\nstep  "):s.index("\nfinal state")]
    assert table(render_plain(build_view(nprocs_race()), width=100)) == table(text)


def test_rich_rendering_drops_idle_lanes_too() -> None:
    t = nprocs_race()
    for s in t.states:
        s["#threads"]["swapper"] = {"pc": "start", "locals": {}, "wchan": None, "status": "running"}
    buf = io.StringIO()
    render(build_view(t), stream=buf, width=120, color=True)
    out = buf.getvalue()
    assert "threads that take no step (no lane): swapper" in out
    assert "cpu[1]" in out and out.count("swapper") == 1
