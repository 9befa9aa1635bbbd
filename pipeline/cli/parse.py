"""`bounceguard parse`: raw MTA log lines (or bounce mails) in, normalized attempt JSONL out.

Reads FILE (or stdin for `-`) as bytes, line by line, through one parser for the whole input
(`pipeline.core.parsing.make_parser`), and writes one JSON attempt per line to stdout. Bad
lines go to stderr as `line N: reason: detail` and parsing goes on; a summary
(`lines=.. attempts=.. skipped=.. bad=..`) ends stderr. Exit code 0 when the input was read
(bad lines included), 2 when FILE cannot be opened.

`--format dsn` reads delivery status notifications (RFC 3464, `pipeline.core.dsn`) instead:
FILE is one .eml, an mbox, a Maildir or a directory of mails (`pipeline.cli.mailboxes`). A
mail that is no DSN, or names no send, goes to stderr as `<label>: reason: detail`; the
summary reads `mails=.. attempts=.. skipped=.. bad=..` (skipped: every recipient delivered).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import BinaryIO, TextIO

import orjson

from pipeline.core.errors import InvalidInput
from pipeline.core.parsing import FORMATS, LogParser, make_parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `--format`, `--tenant`, `--year` and the FILE argument."""
    parser.add_argument(
        "--format",
        choices=(*FORMATS, "dsn"),
        default="auto",
        help="log format (default: auto, detected per line); dsn: bounce mails (RFC 3464 "
        "reports and the plain-text notices of Exim, qmail, Yahoo, Gmail, Exchange)",
    )
    parser.add_argument(
        "--join-header",
        default=None,
        help="dsn: header of the returned message naming its send (default: "
        "$BOUNCEGUARD_DSN_JOIN_HEADER, as the worker's bounce.mail.raw agent reads it, else "
        "X-Bounceguard-Event-Id; without the header, its Message-ID)",
    )
    parser.add_argument(
        "--verp",
        default=None,
        metavar="REGEX",
        help="dsn: pattern over the address a bounce was mailed to whose (?P<id>...) group names "
        "the send, for bounces that quote no returned message (default: $BOUNCEGUARD_DSN_VERP)",
    )
    parser.add_argument(
        "--tenant", default="default", help="tenant for lines that name none (default: default)"
    )
    parser.add_argument(
        "--year",
        type=int,
        default=None,
        help="year for classic syslog stamps, which have none (default: inferred per line, the "
        "current UTC year or the year before for a stamp over a day ahead)",
    )
    parser.add_argument("file", nargs="?", default="-", metavar="FILE", help="log file, - = stdin")


def run(args: argparse.Namespace) -> int:
    """Parse the input named by `args`; return the process exit code."""
    if args.format == "dsn":
        return parse_mails(args, sys.stdout.buffer, sys.stderr)
    parser = make_parser(args.format, tenant=args.tenant, year=args.year)
    if args.file == "-":
        return parse_stream(parser, sys.stdin.buffer, sys.stdout.buffer, sys.stderr)
    try:
        with open(args.file, "rb") as source:
            return parse_stream(parser, source, sys.stdout.buffer, sys.stderr)
    except OSError as exc:
        print(f"bounceguard parse: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2


def parse_stream(parser: LogParser, source: Iterable[bytes], out: BinaryIO, err: TextIO) -> int:
    """Feed every line of `source` to `parser`, write attempts to `out` and problems and the
    summary to `err`; return 0. A line that raises is reported and skipped, never fatal."""
    lines = attempts = skipped = bad = 0
    for number, raw in enumerate(source, 1):
        lines = number
        try:
            parsed = parser.feed(raw)
        except InvalidInput as exc:
            bad += 1
            print(f"line {number}: {exc.reason.value}: {exc.detail}", file=err)
            continue
        if not parsed:
            skipped += 1
        for attempt in parsed:
            out.write(orjson.dumps(attempt.to_json()) + b"\n")
        attempts += len(parsed)
    out.flush()
    print(f"lines={lines} attempts={attempts} skipped={skipped} bad={bad}", file=err)
    return 0


def parse_mails(args: argparse.Namespace, out: BinaryIO, err: TextIO) -> int:
    """Parse every mail at `args.file` as a DSN; write attempts to `out`, problems and the
    summary to `err`; return 0, or 2 when the file or directory cannot be read."""
    from pipeline.cli.mailboxes import read_mails
    from pipeline.config import Settings
    from pipeline.core.dsn import compile_verp, parse_dsn

    # The worker's settings by default, so the shell and bounce.mail.raw join a DSN alike.
    settings = Settings.from_env()
    join = args.join_header or settings.dsn_join_header
    try:
        verp = compile_verp(args.verp if args.verp is not None else settings.dsn_verp)
    except ValueError as exc:
        print(f"bounceguard parse: {exc}", file=err)
        return 2
    mails = attempts = skipped = bad = 0
    try:
        for label, raw in read_mails("/dev/stdin" if args.file == "-" else args.file):
            mails += 1
            try:
                found = parse_dsn(raw, join_header=join, tenant=args.tenant, verp=verp)
            except InvalidInput as exc:
                bad += 1
                print(f"{label}: {exc.reason.value}: {exc.detail}", file=err)
                continue
            skipped += not found
            attempts += len(found)
            for attempt in found:
                out.write(orjson.dumps(attempt.to_json()) + b"\n")
    except OSError as exc:
        print(f"bounceguard parse: cannot read {args.file}: {exc.strerror}", file=err)
        return 2
    out.flush()
    print(f"mails={mails} attempts={attempts} skipped={skipped} bad={bad}", file=err)
    return 0
