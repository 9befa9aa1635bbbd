"""`bounceguard import-suppressions FILE --tenant T`: a suppression list exported from another
platform (SES, SendGrid, Mailgun, Postmark, Listrak's bounced contacts, or a plain list) into
bounceguard: each valid row is recorded as suppressed in Redis and emitted to
`suppression.events` (rule `imported`), as if our own policy had suppressed it.

Order per batch, as in the worker: 1. record in Redis (an address suppressed already in that
scope is skipped; a pending one from an interrupted run comes back); 2. produce the events and
wait for every ack; 3. mark them emitted (which adds them to the tenant's history). A crash
between 2 and 3 re-emits the same events (same ids) on the next run; importing the same file
again after a complete run emits nothing.

Bad rows go to stderr as `line N: reason: detail` and the rest is imported; a summary line
ends stderr; a progress line is drawn only when stderr is a terminal. Exit codes: 0 every row
was good; 1 some rows were bad (the others imported); 2 the file or the options are unusable
(nothing imported); 3 Redis or Kafka unreachable (re-run to finish: nothing is doubled).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import IO, TYPE_CHECKING, Any

from pipeline.cli.replay import add_engine_arguments

if TYPE_CHECKING:
    from datetime import datetime

    from pipeline.config import Settings
    from pipeline.core.imports import ImportRow
    from pipeline.core.models import Suppression
    from pipeline.state.store import Store

BATCH = 5000
"""Rows per round (Redis, Kafka, confirm); an interrupted import redoes at most one round."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register import-suppressions' options."""
    from pipeline.core.imports import FORMATS

    add_engine_arguments(parser)
    parser.add_argument("--tenant", required=True, help="the tenant the list belongs to")
    parser.add_argument("--list", dest="list_id", help="the list (for list-scoped policies)")
    parser.add_argument("--format", choices=FORMATS, default="plain", help="column layout")
    parser.add_argument(
        "--scope",
        choices=("list", "tenant", "global"),
        help="where the suppressions apply (default: the tenant policy's scope)",
    )
    parser.add_argument(
        "--at",
        help="RFC 3339 time of rows without a date (default: the file's modification time)",
    )
    parser.add_argument(
        "--check", action="store_true", help="only read the file and report bad rows"
    )
    parser.add_argument("file", metavar="FILE", help="the CSV file, - = stdin")


@dataclass(slots=True)
class Counts:
    """The summary line's numbers."""

    rows: int = 0
    imported: int = 0
    already: int = 0
    reactivated: int = 0
    skipped: int = 0
    bad: int = 0

    def line(self) -> str:
        """`rows=.. imported=.. ...`, as `parse` ends its output."""
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


def run(args: argparse.Namespace) -> int:
    """Import; return the exit code of the module doc."""
    from pipeline.core.errors import InvalidInput
    from pipeline.core.models import check_tenant

    try:
        check_tenant(args.tenant)
        default_ts = _default_ts(args)
        rows, counts = _read(args)
    except InvalidInput as exc:
        print(f"import-suppressions: {exc.detail}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"import-suppressions: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    if not args.check:
        code = _import(args, rows, default_ts, counts)
        if code:
            return code
    print(counts.line(), file=sys.stderr)
    return 1 if counts.bad else 0


def _read(args: argparse.Namespace) -> tuple[list[ImportRow], Counts]:
    """Every good row of the file; bad ones reported on stderr as they are met."""
    from pipeline.core.imports import BadRow, ImportRow, SkippedRow, load_format, read_rows

    fmt = load_format(args.format)
    counts, rows = Counts(), []
    with _open(args.file) as text:
        for row in read_rows(text, fmt):
            counts.rows += 1
            if isinstance(row, BadRow):
                counts.bad += 1
                print(f"line {row.line}: {row.reason.value}: {row.detail}", file=sys.stderr)
            elif isinstance(row, SkippedRow):
                counts.skipped += 1
            elif isinstance(row, ImportRow):
                rows.append(row)
    return rows, counts


def _open(path: str) -> IO[str]:
    """The file as text: UTF-8 with or without a BOM (spreadsheet exports add one); bytes
    that are not UTF-8 stay readable (surrogateescape) so their row is reported, not fatal."""
    import io

    raw = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _default_ts(args: argparse.Namespace) -> datetime:
    """--at, else the file's modification time (so re-importing an unchanged file gives its
    dateless rows the same time), else now (stdin)."""
    import os
    from datetime import UTC, datetime

    from pipeline.core.decode import parse_ts

    if args.at:
        return parse_ts(args.at)
    if args.file != "-":
        return datetime.fromtimestamp(int(os.stat(args.file).st_mtime), UTC)
    return datetime.now(UTC)


def _import(
    args: argparse.Namespace, rows: list[ImportRow], default_ts: datetime, counts: Counts
) -> int:
    """Record and emit `rows`; return 0, or 2 / 3 (module doc) after a message on stderr."""
    import asyncio

    from pipeline.cli.replay import open_store
    from pipeline.config import Settings
    from pipeline.core.errors import InvalidInput, Transient

    store = open_store(args)
    try:
        found = _suppressions(store, args, rows, default_ts)
    except InvalidInput as exc:
        print(f"import-suppressions: {exc.detail}", file=sys.stderr)
        asyncio.run(store.close())
        return 2
    try:
        asyncio.run(_rounds(store, Emitter(Settings.from_env()), found, counts))
    except Transient as exc:
        print(f"import-suppressions: {exc}; re-run to finish", file=sys.stderr)
        return 3
    except Exception as exc:  # kafka-python's errors share no base class worth naming
        print(
            f"import-suppressions: cannot deliver to Kafka ({type(exc).__name__}); re-run the "
            "same import to emit the same events",
            file=sys.stderr,
        )
        return 3
    return 0


def _suppressions(
    store: Store, args: argparse.Namespace, rows: list[ImportRow], default_ts: datetime
) -> list[Suppression]:
    """The events of `rows` under the tenant's policy and scope. Raises InvalidInput when a
    list scope has no --list."""
    from pipeline.core.errors import InvalidInput, Reason
    from pipeline.core.imports import imported_suppression
    from pipeline.core.models import Scope

    policy = store.book.for_tenant(args.tenant)
    scope = Scope(args.scope) if args.scope else policy.scope
    if scope is Scope.LIST and not args.list_id:
        detail = f"policy {policy.name} is list-scoped: give --list"
        raise InvalidInput(Reason.MISSING_FIELD, detail)
    if scope is not Scope.LIST and args.list_id:
        print(f"import-suppressions: --list ignored: scope is {scope.value}", file=sys.stderr)
    return [
        imported_suppression(
            row,
            policy=policy,
            tenant=args.tenant,
            scope=scope,
            list_id=args.list_id,
            fmt=args.format,
            default_ts=default_ts,
        )
        for row in rows
    ]


async def _rounds(store: Store, emitter: Emitter, found: list[Suppression], counts: Counts) -> None:
    """Record, emit and confirm `found` BATCH at a time (module doc: the order and why)."""
    from pipeline.state.imports import record_imports

    progress = Progress(len(found))
    try:
        for at in range(0, len(found), BATCH):
            batch = found[at : at + BATCH]
            recorded = await record_imports(store, batch)  # 1. Redis
            emitter.send(recorded.emit)  # 2. Kafka, every ack awaited
            await store.mark_emitted(recorded.emit)  # 3. confirm + history
            counts.imported += len(recorded.emit)
            counts.already += len(recorded.already)
            counts.reactivated += len(recorded.reactivated)
            progress.show(at + len(batch))
    finally:
        progress.done()
        emitter.close()
        await store.close()


class Emitter:
    """One kafka-python producer (acks=all) for the whole import."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: Any = None

    def send(self, events: Sequence[Suppression]) -> None:
        """Produce `events` to the suppression topic, keyed by address; return only when every
        one is acknowledged (raise otherwise)."""
        if not events:
            return
        import orjson
        from kafka import KafkaProducer

        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self.settings.kafka.split(","),
                client_id="bounceguard-import",
                acks="all",
                retries=5,
                linger_ms=20,
                # a broker that is down fails the run in seconds, not kafka-python's 30 + 60
                bootstrap_timeout_ms=10_000,
                max_block_ms=15_000,
            )
        topic = self.settings.topics.suppressions
        futures = [
            self._producer.send(topic, key=s.address.encode(), value=orjson.dumps(s.to_json()))
            for s in events
        ]
        self._producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)

    def close(self) -> None:
        """Close the producer, if one was opened."""
        if self._producer is not None:
            self._producer.close(timeout=10)


class Progress:
    """`import-suppressions: N/M rows` redrawn in place, on a terminal only (a log file or a
    pipe gets the summary line alone)."""

    def __init__(self, total: int, stream: IO[str] | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.on = self.stream.isatty() and total > 0

    def show(self, done: int) -> None:
        """Redraw with `done` rows handled."""
        if self.on:
            self.stream.write(f"\rimport-suppressions: {done}/{self.total} rows")
            self.stream.flush()

    def done(self) -> None:
        """End the progress line."""
        if self.on:
            self.stream.write("\n")
            self.stream.flush()
