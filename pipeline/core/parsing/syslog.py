"""The syslog line prefix shared by Postfix and Sendmail logs.

Two shapes are read:
- classic BSD syslog (RFC 3164 style, what `/var/log/mail.log` holds by default):
  `Mar  2 09:00:00 host postfix/smtp[123]: message`. It has no year and no zone: the year
  comes from the parser (factory argument, default the current UTC year) and the time is
  taken as UTC;
- the RFC 3339 form written by modern rsyslog (`RSYSLOG_FileFormat`) and `journalctl -o
  short-iso`: `2024-03-02T09:00:00.123456+01:00 host postfix/smtp[123]: message`.
An optional `<PRI>` in front (a raw syslog packet forwarded as is) is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.core.decode import parse_ts
from pipeline.core.errors import InvalidInput, Reason

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


def parse_syslog(text: str, year: int) -> SyslogLine | None:
    """Split a syslog line into time, host, program and message.

    Returns None when the line has no syslog prefix at all (the caller decides whether that is
    an error); raises InvalidInput(BAD_TIMESTAMP) when the prefix is there but its date is
    impossible (Feb 30) or its month name unknown.
    """
    match = _CLASSIC.match(text)
    if match is not None:
        ts = _classic_ts(match["mon"], match["day"], match["hms"], match["frac"], year)
    else:
        match = _ISO.match(text)
        if match is None:
            return None
        iso = match["iso"]
        # fromisoformat wants +HH:MM and at most 6 fraction digits (journald writes 6, some
        # rsyslog templates 9).
        iso = re.sub(r"(\.\d{6})\d+", r"\1", iso)
        iso = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", iso)
        ts = parse_ts(iso)
    return SyslogLine(ts=ts, host=match["host"], program=match["prog"], message=match["msg"])


def _classic_ts(mon: str, day: str, hms: str, frac: str | None, year: int) -> datetime:
    """Build the UTC time of a classic syslog stamp in `year`."""
    month = _MONTHS.get(mon)
    if month is None:
        raise InvalidInput(Reason.BAD_TIMESTAMP, f"unknown month {mon!r}")
    hour, minute, second = (int(x) for x in hms.split(":"))
    micro = int((frac or "0").ljust(6, "0")[:6])
    try:
        return datetime(year, month, int(day), hour, minute, second, micro, tzinfo=UTC)
    except ValueError as exc:
        raise InvalidInput(Reason.BAD_TIMESTAMP, f"impossible date {mon} {day} {hms}") from exc
