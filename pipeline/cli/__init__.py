"""The `bounceguard` command line: a small dispatcher over one module per subcommand.

Each subcommand lives in `pipeline/cli/<name>.py` ("-" in a name is "_" in its module) and
exposes two functions: `add_arguments(parser)` and `run(args) -> int` (the process exit code).
Modules are imported only when their command runs, so `bounceguard classify` never pays for
faust's import time.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

# name -> one-line help; the module pipeline.cli.<name> implements it.
COMMANDS: dict[str, str] = {
    "classify": "classify SMTP responses read from stdin; one JSON verdict per line",
    "parse": "parse raw MTA log lines into normalized attempt JSONL",
    "replay": "run attempts or raw logs through the policy engine; print suppressions",
    "worker": "run the stream worker (faust)",
    "ship": "tail a log file into Kafka",
    "status": "show one address's counters, suppressions and bounce log",
    "report": "export bounced contacts of a tenant",
    "sweep": "run the scheduled count-threshold sweep now",
    "topics": "create the Kafka topics bounceguard uses",
    "import-suppressions": "import another platform's suppression list (CSV) as suppressions",
    "held": "list, release or discard the suppressions the provider-outage guard holds",
}


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand's arguments registered."""
    parser = argparse.ArgumentParser(prog="bounceguard", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = _module(name)
        if module is None:
            continue
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
    return parser


def _module(name: str) -> ModuleType | None:
    """Import pipeline.cli.<name>, or None while that command is not built yet."""
    module = f"pipeline.cli.{name.replace('-', '_')}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with `argv` (default: sys.argv[1:]); return the exit code."""
    args = build_parser().parse_args(argv)
    module = importlib.import_module(f"pipeline.cli.{args.command.replace('-', '_')}")
    code: int = module.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
