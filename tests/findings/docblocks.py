"""The runnable commands of docs/findings.md and docs/tutorial.md, parsed out of the docs.

A command block is a fenced ```console block. Its `$ ...` lines run in order
(bash, in a scratch copy of the repository); its last line states what the
last command gives:

    # -> exit 0 · nprocs_bounded violated · nprocs_exact holds · slow
    # -> exit 1 · "verdict: violated"

`name verdict` pairs are read from the command's JSON (`verify --json FILE`,
`check --json`, `prove --json`); a "quoted" item must appear in its plain
output; `slow` marks a command that takes more than ~20 s. A console block
without a `# ->` line is output shown to the reader, not a command.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SEED_DIR = Path(os.environ.get("FORKCHECK_SEED_DIR", REPO.parent / "shared" / "seed"))

_BLOCK = re.compile(r"^```console\n(.*?)^```", re.S | re.M)
_EXPECT = re.compile(r"^# -> (.*)$")
VERDICTS = {"holds", "violated", "unknown", "proved", "cti"}


@dataclass(frozen=True)
class Expect:
    exit: int
    verdicts: tuple[tuple[str, str], ...]
    texts: tuple[str, ...]
    slow: bool


@dataclass(frozen=True)
class Block:
    doc: str
    line: int                     # 1-based line of the block's first command
    commands: tuple[str, ...]
    expect: Expect

    @property
    def id(self) -> str:
        return f"{Path(self.doc).name}:{self.line}:{self.commands[-1][:60]}"


class DocFormatError(ValueError):
    pass


def parse_expect(text: str, where: str) -> Expect:
    items = [x.strip() for x in text.split("·")]
    m = re.fullmatch(r"exit (\d+)", items[0])
    if not m:
        raise DocFormatError(f"{where}: `# ->` must start with `exit N`, not {items[0]!r}")
    verdicts: list[tuple[str, str]] = []
    texts: list[str] = []
    slow = False
    for it in items[1:]:
        if it == "slow":
            slow = True
        elif len(it) >= 2 and it[0] == it[-1] == '"':
            texts.append(it[1:-1])
        else:
            parts = it.split()
            if len(parts) != 2 or parts[1] not in VERDICTS:
                raise DocFormatError(f"{where}: expected `name verdict`, `\"text\"` or `slow`, not {it!r}")
            verdicts.append((parts[0], parts[1]))
    return Expect(int(m.group(1)), tuple(verdicts), tuple(texts), slow)


def blocks(doc: Path) -> list[Block]:
    text = doc.read_text()
    out: list[Block] = []
    for m in _BLOCK.finditer(text):
        body = m.group(1).splitlines()
        first = text.count("\n", 0, m.start(1)) + 1
        cmds: list[str] = []
        cmd_line = 0
        expect: Expect | None = None
        for i, ln in enumerate(body):
            if ln.startswith("$ "):
                if not cmds:
                    cmd_line = first + i
                cmds.append(ln[2:])
            e = _EXPECT.match(ln)
            if e:
                expect = parse_expect(e.group(1), f"{doc}:{first + i}")
        if expect is None:
            continue
        if not cmds:
            raise DocFormatError(f"{doc}:{first}: a `# ->` line with no `$` command")
        out.append(Block(str(doc), cmd_line, tuple(cmds), expect))
    return out


def params(doc: Path) -> list[object]:
    """The doc's command blocks as pytest parameters (a `slow` block in the slow tier)."""
    import pytest
    return [pytest.param(b, id=b.id, marks=[pytest.mark.slow] if b.expect.slow else []) for b in blocks(doc)]


def scratch_repo(tmp: Path) -> Path:
    """A copy of what the commands read (models, specs, counterexamples), so a command may write."""
    root = tmp / "repo"
    for d in ("models", "spec", "counterexamples", "scenarios"):
        if (REPO / d).exists():
            shutil.copytree(REPO / d, root / d)
    return root


def _forkcheck() -> str:
    exe = shutil.which("forkcheck")
    return shlex.quote(exe) if exe else f"{shlex.quote(sys.executable)} -m checker.cli"


def _with_json(cmd: str, json_file: Path) -> tuple[str, bool]:
    """The command with JSON output added; True when the JSON goes to stdout."""
    words = shlex.split(cmd)
    if words[:2] == ["forkcheck", "verify"]:
        return f"{cmd} --no-write --json {shlex.quote(str(json_file))} -q", False
    if words[:2] in (["forkcheck", "check"], ["forkcheck", "prove"]):
        return f"{cmd} --json", True
    raise DocFormatError(f"verdicts can be read only from verify, check or prove, not `{cmd}`")


def run_block(block: Block, root: Path, timeout: float = 900) -> None:
    """Run the block's commands in `root`; assert the stated exit code, verdicts and texts."""
    env = dict(os.environ, FORKCHECK_SEED_DIR=str(SEED_DIR), COLUMNS="100", NO_COLOR="1")
    json_file = root.parent / "out.json"
    for i, cmd in enumerate(block.commands):
        last = i == len(block.commands) - 1
        where = f"{block.doc}:{block.line}: `{cmd}`"
        if not last:
            p = _run(cmd, root, env, timeout)
            assert p.returncode == 0, f"{where} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
            continue
        # Texts are looked for in the plain output, verdicts in the JSON: one run each.
        if block.expect.texts or not block.expect.verdicts:
            p = _run(cmd, root, env, timeout)
            _exit(p, block, where)
            for t in block.expect.texts:
                assert t in p.stdout, f"{where}: output lacks {t!r}\n{p.stdout[-3000:]}"
        if block.expect.verdicts:
            run, to_stdout = _with_json(cmd, json_file)
            p = _run(run, root, env, timeout)
            _exit(p, block, where)
            data = json.loads(p.stdout if to_stdout else json_file.read_text())
            got = _verdicts(data)
            for name, want in block.expect.verdicts:
                assert name in got, f"{where}: no verdict for {name} (have {sorted(got)})"
                assert got[name] == want, f"{where}: {name} is {got[name]}, the doc says {want}"


def _run(cmd: str, root: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    cmd = re.sub(r"^forkcheck\b", _forkcheck(), cmd)
    return subprocess.run(["bash", "-c", cmd], cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _exit(p: subprocess.CompletedProcess[str], block: Block, where: str) -> None:
    assert p.returncode == block.expect.exit, (
        f"{where}: exit {p.returncode}, the doc says {block.expect.exit}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")


def _verdicts(data: dict) -> dict[str, str]:
    if "models" in data:                               # verify
        return {p["name"]: p["verdict"] for m in data["models"] for p in m["properties"]}
    if "properties" in data:                           # check, prove MODEL
        return {p["name"]: p["verdict"] for p in data["properties"]}
    return {"verdict": data["verdict"]}                # prove pidscan / refcounts
