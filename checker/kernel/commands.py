"""`forkcheck kernel run SCENARIO [--json]`."""

from __future__ import annotations

import argparse
import json

from ..results import EXIT_OK, EXIT_UNEXPECTED
from . import scenario


def _run(args: argparse.Namespace) -> int:
    sc = scenario.load(args.scenario)
    r = scenario.run(sc)
    if args.json:
        print(json.dumps(scenario.result_json(r), indent=2))
    else:
        print(scenario.result_text(r))
    # A panic is a finding, not a usage error: exit 1 so CI notices.
    return EXIT_UNEXPECTED if r.kernel.panic is not None else EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    kp = subparsers.add_parser("kernel", help="run system calls on the executable reference kernel",
                               description="The reference kernel: fork1 and its neighbours in Python.")
    ksub = kp.add_subparsers(dest="kernel_command", metavar="SUBCOMMAND", parser_class=type(kp))
    rp = ksub.add_parser("run", help="run a scenario (JSON) on one CPU and print results and the process table",
                         description="Run a scenario's system calls one after another on one CPU; print each "
                                     "call's result and the final process table (docs/kernel.md).")
    rp.add_argument("scenario", metavar="SCENARIO.json")
    rp.add_argument("--json", action="store_true", help="print one JSON object")
    rp.set_defaults(func=_run)
    kp.set_defaults(func=lambda a: (kp.print_help(), 2)[1])
