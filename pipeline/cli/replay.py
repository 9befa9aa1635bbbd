"""`bounceguard replay`: run events from a file through the policy engine the worker uses
(same Store, same Lua scripts, same Redis) and print the suppression events they trip, one JSON
object per line, in the order they trip.

Input is attempt JSONL (lines may carry `type`: attempt, engagement, complaint, unsubscribe) or
raw MTA logs (--format). Bad lines are reported on stderr with their line numbers and skipped.
Replaying the same input into the same namespace again prints nothing new: every event id is
counted once and every printed suppression is marked emitted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from datetime import datetime

    from pipeline.core.events import Event
    from pipeline.state.store import Store

T = TypeVar("T")
FORMATS = ("json", "auto", "postfix", "exim", "pmta", "kumo", "sendmail")
BATCH = 5000
"""Events per Redis round trip (the worker's default unit, BOUNCEGUARD_BATCH_ATTEMPTS)."""


# The engine options and Store set-up, shared by status, report and sweep.
def add_engine_arguments(parser: argparse.ArgumentParser, *, policy_help: str = "") -> None:
    """--policy, --policy-file, --redis, --namespace (defaults: the worker's settings)."""
    parser.add_argument(
        "--policy",
        help=policy_help
        or "preset for tenants the policy file does not name "
        "(default: BOUNCEGUARD_DEFAULT_POLICY or 'default')",
    )
    parser.add_argument("--policy-file", help="per-tenant policy file, TOML or YAML")
    parser.add_argument("--redis", help="Redis URL (default: BOUNCEGUARD_REDIS_URL)")
    parser.add_argument(
        "--namespace", help="prefix of every Redis key (default: the worker's namespace)"
    )


def open_store(args: argparse.Namespace) -> Store:
    """A Store configured from `args` over the BOUNCEGUARD_* settings (no I/O yet)."""
    from pipeline.config import Settings
    from pipeline.core.policies import load_book
    from pipeline.state.store import Store

    settings = Settings.from_env()
    book = load_book(
        args.policy or settings.default_policy, args.policy_file or settings.policy_file
    )
    return Store.from_url(
        args.redis or settings.redis_url,
        book,
        namespace=args.namespace or settings.namespace,
        state_ttl_days=settings.state_ttl_days,
        bounce_log_size=settings.bounce_log_size,
        delivered_log_hours=settings.delivered_log_hours,
    )


def with_store(args: argparse.Namespace, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run `work` on a Store opened from `args`, close it, return the result. Raises what
    `work` raises (Transient when Redis is unreachable)."""
    import asyncio

    async def run() -> T:
        store = open_store(args)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register replay's options."""
    add_engine_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="json", help="input format")
    parser.add_argument("--tenant", default="default", help="tenant of raw log lines")
    parser.add_argument(
        "--sweep", action="store_true", help="run the sweep at the last event's time at the end"
    )
    parser.add_argument("file", nargs="?", default="-", help="input file (default: stdin)")


def run(args: argparse.Namespace) -> int:
    """Replay; return 0, or 1 when Redis cannot be reached."""
    import asyncio

    from pipeline.cli.process import tuned_gc
    from pipeline.core.errors import Transient

    store = open_store(args)
    try:
        with tuned_gc():
            asyncio.run(_replay(store, args))
    except Transient as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 1
    return 0


def _events(args: argparse.Namespace, stream: IO[bytes]) -> Iterator[Event]:
    """Decode the input, reporting bad lines on stderr (`line N: reason: detail`)."""
    from pipeline.core.errors import InvalidInput, Reason
    from pipeline.core.events import decode_event_line

    feed: Any = decode_event_line
    if args.format != "json":
        from pipeline.core.parsing import make_parser

        feed = make_parser(args.format, tenant=args.tenant).feed
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            found = feed(line)
        except InvalidInput as exc:
            if exc.reason is not Reason.NOT_AN_ATTEMPT:
                print(f"line {number}: {exc.reason.value}: {exc.detail}", file=sys.stderr)
            continue
        yield from found if isinstance(found, list) else [found]


async def _replay(store: Store, args: argparse.Namespace) -> None:
    last: datetime | None = None
    try:
        with _open(args.file) as stream:
            batch: list[Event] = []
            for event in _events(args, stream):
                batch.append(event)
                last = event.ts if last is None or event.ts > last else last
                if len(batch) >= BATCH:
                    await _apply(store, batch)
                    batch = []
            await _apply(store, batch)
        if args.sweep and last is not None:
            from pipeline.state import queries

            found = await queries.sweep(store, last)
            _print(found)
            await store.mark_emitted(found)
    finally:
        await store.close()


async def _apply(store: Store, batch: list[Event]) -> None:
    if not batch:
        return
    import orjson

    applied = await store.apply(batch)
    _print(applied.suppressions)
    for alert in applied.alerts:
        print("alert " + orjson.dumps(alert.to_json()).decode(), file=sys.stderr)
    for outage in applied.outage_alerts:
        print("alert " + orjson.dumps(outage.to_json()).decode(), file=sys.stderr)
    for event, _ in applied.failed:
        print(f"event {event.event_id}: internal_error", file=sys.stderr)
    await store.mark_emitted(applied.suppressions, applied.alerts, applied.acks)


def _print(suppressions: Any) -> None:
    import orjson

    for s in suppressions:
        sys.stdout.write(orjson.dumps(s.to_json()).decode() + "\n")
    sys.stdout.flush()


def _open(path: str) -> Any:
    import contextlib

    if path == "-":
        return contextlib.nullcontext(sys.stdin.buffer)
    return open(path, "rb")
