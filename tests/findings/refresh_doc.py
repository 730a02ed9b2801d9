"""Re-paste every rendered trace in docs/findings.md: `python -m tests.findings.refresh_doc`.

A paste is a ```text block whose first line is `$ forkcheck trace show ...`; its body is
replaced by what that command prints now. test_findings checks the pastes are current.
"""

from __future__ import annotations

import re
import shlex
import subprocess

from .docblocks import REPO

DOC = REPO / "docs" / "findings.md"
PASTE = re.compile(r"^```text\n\$ (forkcheck trace show [^\n]+)\n(.*?)^```", re.S | re.M)


def render(cmd: str) -> str:
    words = shlex.split(cmd)
    p = subprocess.run(["forkcheck", *words[1:]], cwd=REPO, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise SystemExit(f"`{cmd}` failed: {p.stderr}")
    return "\n".join(ln.rstrip() for ln in p.stdout.strip().splitlines())


def main() -> None:
    text = DOC.read_text()
    DOC.write_text(PASTE.sub(lambda m: f"```text\n$ {m.group(1)}\n{render(m.group(1))}\n```", text))


if __name__ == "__main__":
    main()
