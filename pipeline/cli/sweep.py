"""`bounceguard sweep --policy listrak`: run the count-threshold sweep (listrak's cleanup) now,
as of --at (default: now), and print the suppressions it trips as JSONL. The worker runs the
same sweep every BOUNCEGUARD_SWEEP_INTERVAL_DAYS. The printed events are marked emitted: the
CLI is their consumer, so a second run prints nothing new."""

from __future__ import annotations

import argparse
import sys

from pipeline.cli.replay import add_engine_arguments, open_store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register sweep's options."""
    add_engine_arguments(parser)
    parser.add_argument("--tenant", help="sweep one tenant only (default: all)")
    parser.add_argument("--at", help="RFC 3339 time the sweep runs as of (default: now)")


def run(args: argparse.Namespace) -> int:
    """Sweep; return 0, 2 for a bad --at, 1 when Redis is unreachable."""
    import asyncio
    from datetime import UTC, datetime

    import orjson

    from pipeline.core.decode import parse_ts
    from pipeline.core.errors import InvalidInput, Transient
    from pipeline.core.models import Suppression
    from pipeline.state import inspect

    try:
        at = parse_ts(args.at) if args.at else datetime.now(UTC)
    except InvalidInput as exc:
        print(f"sweep: --at: {exc.detail}", file=sys.stderr)
        return 2
    store = open_store(args)

    async def sweep() -> list[Suppression]:
        try:
            found = await inspect.sweep(store, at, args.tenant)
            for s in found:
                print(orjson.dumps(s.to_json()).decode(), flush=True)
            await store.mark_emitted(found)
            return found
        finally:
            await store.close()

    try:
        asyncio.run(sweep())
    except Transient as exc:
        print(f"sweep: {exc}", file=sys.stderr)
        return 1
    return 0
