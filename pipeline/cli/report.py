"""`bounceguard report --tenant T`: the seed-000 export of bounced contacts (address, list,
latest bounce reason, bounce count), sorted on bounce reason then count, as JSONL or CSV."""

from __future__ import annotations

import argparse
import sys

from pipeline.cli.replay import add_engine_arguments, with_store

COLUMNS = ("address", "list_id", "latest_reason", "bounce_count", "latest_ts", "suppressed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register report's options."""
    add_engine_arguments(parser)
    parser.add_argument("--tenant", required=True, help="the tenant to export")
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")


def run(args: argparse.Namespace) -> int:
    """Print the report; return 0, or 1 when Redis is unreachable."""
    import csv

    import orjson

    from pipeline.core.errors import Transient
    from pipeline.state import queries

    try:
        rows = with_store(args, lambda store: queries.report(store, args.tenant))
    except Transient as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    if args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row.to_json())
    else:
        for row in rows:
            print(orjson.dumps(row.to_json()).decode())
    return 0
