"""`bounceguard ship FILE`: parse a log file and produce its attempts to `delivery.attempts`.

Reads FILE (or stdin for `-`) through one core parser, sends the attempts with kafka-python
(acks=all, idempotent) as one JSON array per partition and batch, and lines it cannot parse to
`mta.log.raw.deadletter` (`pipeline.stream.shipper` has the details). `--follow` keeps reading
like `tail -F`, through rotation and truncation, until SIGINT or SIGTERM; either signal stops
the read, flushes what was read, and exits. Progress goes to stderr every `--progress`
seconds, and a summary line at the end. Kafka and topic names come from BOUNCEGUARD_*.

A failed send is retried with backoff (1 s doubling to 30 s, 6 rounds, WARNING lines with counts
only), each partition's messages in order; what still fails is dropped and counted.

Exit codes: 0 = every line read was delivered (attempts or dead letters); 1 = some sends
failed after their retries; 2 = FILE cannot be read, the broker cannot be reached or the topic
does not exist.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from pipeline.core.parsing import FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register FILE, the parser options and the follow options."""
    parser.add_argument("file", metavar="FILE", help="log file to ship, - = stdin")
    parser.add_argument("--format", choices=FORMATS, default="auto", help="default: auto")
    parser.add_argument("--tenant", default="default", help="tenant for lines that name none")
    parser.add_argument(
        "--year",
        type=int,
        default=None,
        help="year for classic syslog stamps (default: inferred per line from the current time)",
    )
    parser.add_argument(
        "--follow", action="store_true", help="keep reading like tail -F (rotation, truncation)"
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--from-start",
        dest="from_end",
        action="store_false",
        help="with --follow: ship the file's existing lines first (default)",
    )
    start.add_argument(
        "--from-end",
        dest="from_end",
        action="store_true",
        help="with --follow: ship only lines written from now on",
    )
    parser.set_defaults(from_end=False)  # store_false alone would default to True
    parser.add_argument("--batch-size", type=int, default=500, help="attempts per message")
    parser.add_argument(
        "--progress", type=float, default=2.0, help="seconds between progress lines, 0 = none"
    )


class _Stop:
    """Set by SIGINT/SIGTERM; the reader checks it between reads."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def handle(self, signum: int, frame: Any) -> None:
        self.requested = True


def run(args: argparse.Namespace) -> int:
    """Ship the file named by `args`; return the process exit code (see the module doc)."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from pipeline.config import Settings
    from pipeline.core.parsing import make_parser
    from pipeline.stream.shipper import LogReader, Shipper

    settings = Settings.from_env()
    stop = _Stop()
    signal.signal(signal.SIGINT, stop.handle)
    signal.signal(signal.SIGTERM, stop.handle)
    source = "stdin" if args.file == "-" else args.file
    try:
        producer = KafkaProducer(
            bootstrap_servers=settings.kafka.split(","),
            client_id="bounceguard-ship",
            acks="all",
            linger_ms=20,
            max_block_ms=15_000,
        )
    except KafkaError as exc:
        return _fail(f"cannot connect to Kafka at {settings.kafka}: {exc}")
    try:
        parser = make_parser(args.format, tenant=args.tenant, year=args.year)
        shipper = Shipper(
            producer, settings.topics, parser, source=source, batch_size=args.batch_size
        )
        reader = LogReader(
            "/dev/stdin" if args.file == "-" else args.file,
            follow=args.follow and args.file != "-",
            from_end=args.from_end,
            stop=stop,
        )
        return pump(reader, shipper, _Progress(sys.stderr, args.progress))
    except (LookupError, KafkaError) as exc:
        return _fail(f"cannot ship to {settings.topics.attempts}: {exc}")
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror}")
    finally:
        producer.close(timeout=30)


def pump(lines: Iterable[Any], shipper: Any, progress: _Progress) -> int:
    """Ship every line (flushing whenever the reader has caught up), flush at the end, print
    the summary; return 0 when everything was delivered, else 1."""
    for line in lines:
        if line is None:
            shipper.flush()
        else:
            shipper.ship(line)
        progress.maybe(shipper.stats)
    ok: bool = shipper.flush()
    progress.final(shipper.stats)
    return 0 if ok else 1


class _Progress:
    """Prints `lines=.. attempts=.. ...` to stderr every `interval` seconds, and at the end."""

    def __init__(self, err: TextIO, interval: float) -> None:
        self.err = err
        self.interval = interval
        self.started = self.last = time.monotonic()

    def maybe(self, stats: Any) -> None:
        now = time.monotonic()
        if self.interval > 0 and now - self.last >= self.interval:
            self.last = now
            self._print(stats, now)

    def final(self, stats: Any) -> None:
        self._print(stats, time.monotonic(), final=True)

    def _print(self, stats: Any, now: float, final: bool = False) -> None:
        rate = stats.lines / max(now - self.started, 1e-6)
        print(
            f"ship: {'done ' if final else ''}lines={stats.lines} attempts={stats.attempts} "
            f"skipped={stats.skipped} dead_letters={stats.dead} messages={stats.messages} "
            f"failed={stats.failed} rate={rate:.0f} lines/s",
            file=self.err,
            flush=True,
        )


def _fail(message: str) -> int:
    print(f"bounceguard ship: {message}", file=sys.stderr)
    return 2
