"""`bounceguard sweep --policy listrak`: run the count-threshold sweep (listrak's cleanup) now,
as of --at (default: now), as the worker does every BOUNCEGUARD_SWEEP_INTERVAL_DAYS.

The sweep marks what it trips as suppressed in Redis, so its events must reach the consumers:
by default they are produced to `suppression.events` (acks awaited) and only then marked
emitted and added to the tenant's history; they are also printed as JSONL. `--print-only`
skips Kafka for offline use (a namespace of your own): the events then exist only on stdout.
Re-running the same run (same --at) before they were marked re-emits the same ids."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from pipeline.cli.replay import add_engine_arguments, with_store

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.core.models import Suppression


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register sweep's options."""
    add_engine_arguments(parser)
    parser.add_argument("--tenant", help="sweep one tenant only (default: all)")
    parser.add_argument("--at", help="RFC 3339 time the sweep runs as of (default: now)")
    parser.add_argument(
        "--print-only",
        action="store_true",
        help="do not produce to Kafka: print the events only (for a namespace of your own)",
    )


def run(args: argparse.Namespace) -> int:
    """Sweep; return 0, 2 for a bad --at, 1 when Redis or Kafka is unreachable."""
    from datetime import UTC, datetime

    import orjson

    from pipeline.config import Settings
    from pipeline.core.decode import parse_ts
    from pipeline.core.errors import InvalidInput, Transient
    from pipeline.state import queries

    try:
        at = parse_ts(args.at) if args.at else datetime.now(UTC)
    except InvalidInput as exc:
        print(f"sweep: --at: {exc.detail}", file=sys.stderr)
        return 2
    settings = Settings.from_env()

    try:
        found = with_store(args, lambda store: queries.sweep(store, at, args.tenant))
        for s in found:
            print(orjson.dumps(s.to_json()).decode(), flush=True)
        if found and not args.print_only:
            produce(settings, found)
            with_store(args, lambda store: store.mark_emitted(found))
    except Transient as exc:
        # A run cut short may have marked some scopes suppressed already (pending until
        # emitted): only the same run (same --at) gives their events again.
        hint = f"re-run with --at {at.isoformat()} (same run, same events)"
        print(f"sweep: {exc}; {hint}", file=sys.stderr)
        return 1
    except Exception as exc:  # kafka-python's errors share no base class worth naming
        print(
            f"sweep: cannot deliver to Kafka ({type(exc).__name__}); re-run with the same "
            f"--at {at.isoformat()} to re-emit the same events",
            file=sys.stderr,
        )
        return 1
    return 0


def produce(settings: Settings, found: list[Suppression]) -> None:
    """Produce `found` to the suppression topic and wait for every ack; raise on failure."""
    import orjson
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.kafka, acks="all", retries=5)
    try:
        futures = [
            producer.send(
                settings.topics.suppressions,
                key=s.address.encode(),
                value=orjson.dumps(s.to_json()),
            )
            for s in found
        ]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close(timeout=10)
