"""`bounceguard status ADDRESS`: one address's state per scope (counters, suppression, last
delivery and engagement), and its bounce and delivered logs, as JSON."""

from __future__ import annotations

import argparse
import sys

from pipeline.cli.replay import add_engine_arguments, with_store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register status's options."""
    add_engine_arguments(parser)
    parser.add_argument("address", help="the e-mail address")
    parser.add_argument("--tenant", default="default", help="tenant (default: default)")
    parser.add_argument("--list", dest="list_id", help="list, for list-scoped policies")


def run(args: argparse.Namespace) -> int:
    """Print the status JSON; return 0, 2 for a bad address, 1 when Redis is unreachable."""
    import orjson

    from pipeline.core.decode import normalize_address
    from pipeline.core.errors import InvalidInput, Transient
    from pipeline.state import queries

    try:
        address = normalize_address(args.address)
    except InvalidInput as exc:
        print(f"status: {exc.detail}", file=sys.stderr)
        return 2
    try:
        view = with_store(
            args, lambda store: queries.status(store, address, args.tenant, args.list_id)
        )
    except Transient as exc:
        print(f"status: {exc}", file=sys.stderr)
        return 1
    print(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode())
    return 0
