"""The syslog line prefix shared by Postfix and Sendmail logs.

Two shapes are read:
- classic BSD syslog (RFC 3164 style, what `/var/log/mail.log` holds by default):
  `Mar  2 09:00:00 host postfix/smtp[123]: message`. It has no year and no zone: the time is
  taken as UTC, and the year is the parser's fixed year (`--year`) or else inferred from a
  reference time, read per line (`stamp_near`);
- the RFC 3339 form written by modern rsyslog (`RSYSLOG_FileFormat`) and `journalctl -o
  short-iso`: `2024-03-02T09:00:00.123456+01:00 host postfix/smtp[123]: message`.
An optional `<PRI>` in front (a raw syslog packet forwarded as is) is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline.core.decode import parse_ts
from pipeline.core.errors import InvalidInput, Reason

Clock = Callable[[], datetime]
"""Returns the reference time (aware UTC) a classic stamp's year is inferred from."""

FUTURE_SLACK = timedelta(days=1)
"""How far after the reference time a classic stamp may be and still be this year's (clock
skew between the MTA host and the worker, zones: classic stamps are local time taken as UTC)."""


def utc_now() -> datetime:
    """The default Clock: processing time, aware UTC."""
    return datetime.now(UTC)


_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_TAIL = r" (?P<host>\S+) (?P<prog>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$"
_CLASSIC = re.compile(
    r"^(?:<\d{1,3}>)?(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) "
    r"(?P<hms>\d\d:\d\d:\d\d)(?:\.(?P<frac>\d{1,6}))?" + _TAIL
)
_ISO = re.compile(
    r"^(?:<\d{1,3}>)?(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?"
    r"(?:Z|[+-]\d\d:?\d\d)?)" + _TAIL
)


@dataclass(frozen=True, slots=True)
class SyslogLine:
    """The parts of one syslog line."""

    ts: datetime
    """Event time, aware UTC."""
    host: str
    """Host name field."""
    program: str
    """Program name without pid, e.g. "postfix/smtp", "sm-mta"."""
    message: str
    """Everything after `program[pid]: `."""


_FRACTION = re.compile(r"(\.\d{6})\d+")
_OFFSET = re.compile(r"([+-]\d\d)(\d\d)$")
_LAST: list[tuple[str, int | None, Clock, SyslogLine | None]] = [("", None, utc_now, None)]
"""The last line parsed and its result: format detection parses a line, then the format's
parser parses the same text again (one entry is enough for that, and costs no memory)."""


def parse_syslog(text: str, year: int | None, clock: Clock = utc_now) -> SyslogLine | None:
    """Split a syslog line into time, host, program and message.

    A classic stamp gets `year` when it is given, else the year `stamp_near` infers from
    `clock()` (called for classic stamps only). Returns None when the line has no syslog
    prefix at all (the caller decides whether that is an error); raises
    InvalidInput(BAD_TIMESTAMP) when the prefix is there but its date is impossible (Feb 30)
    or its month name unknown.
    """
    last_text, last_year, last_clock, last_line = _LAST[0]
    if text == last_text and year == last_year and clock is last_clock and text:
        return last_line
    line = _parse_syslog(text, year, clock)
    _LAST[0] = (text, year, clock, line)
    return line


def _parse_syslog(text: str, year: int | None, clock: Clock) -> SyslogLine | None:
    match = _CLASSIC.match(text)
    if match is not None:
        ts = _classic_ts(match, year, clock)
    else:
        match = _ISO.match(text)
        if match is None:
            return None
        iso = match["iso"]
        try:
            ts = parse_ts(iso)  # Python 3.11 reads +HHMM and 9 fraction digits itself
        except InvalidInput:
            # The older fromisoformat forms, in case: +HH:MM, at most 6 fraction digits
            # (journald writes 6, some rsyslog templates 9).
            ts = parse_ts(_OFFSET.sub(r"\1:\2", _FRACTION.sub(r"\1", iso)))
    return SyslogLine(ts=ts, host=match["host"], program=match["prog"], message=match["msg"])


def _classic_ts(match: re.Match[str], year: int | None, clock: Clock) -> datetime:
    """Build the UTC time of a classic syslog stamp (a `_CLASSIC` match), in `year` or else
    in the year `stamp_near` picks for `clock()`."""
    mon, day, hms = match["mon"], match["day"], match["hms"]
    month = _MONTHS.get(mon)
    if month is None:
        raise InvalidInput(Reason.BAD_TIMESTAMP, f"unknown month {mon!r}")
    hour, minute, second = (int(x) for x in hms.split(":"))
    micro = int((match["frac"] or "0").ljust(6, "0")[:6])
    parts = (month, int(day), hour, minute, second, micro)
    try:
        if year is not None:
            return datetime(year, *parts, tzinfo=UTC)
        return stamp_near(parts, clock())
    except ValueError as exc:
        raise InvalidInput(Reason.BAD_TIMESTAMP, f"impossible date {mon} {day} {hms}") from exc


def stamp_near(parts: tuple[int, int, int, int, int, int], reference: datetime) -> datetime:
    """Return the time of a yearless stamp (month, day, hour, minute, second, microsecond) in
    the latest year, among the reference's year, the one after and the one before, in which it
    exists and is at most FUTURE_SLACK after `reference` (aware).

    The rsyslog/logstash rule: the reference's year, unless that puts the stamp in the future,
    then the previous year (a December line read in January); the next year only for a stamp
    just past a New Year the reference has not reached (a January line read on December 31st
    from a host whose clock is ahead). Raises ValueError when the date exists in none of the
    three (Feb 30; Feb 29 far from a leap year).
    """
    limit = reference + FUTURE_SLACK
    for year in (reference.year + 1, reference.year, reference.year - 1):
        try:
            ts = datetime(year, *parts, tzinfo=UTC)
        except ValueError:
            continue
        if ts <= limit:
            return ts
    raise ValueError(f"no year near {reference.year} has the date {parts[0]}-{parts[1]}")
