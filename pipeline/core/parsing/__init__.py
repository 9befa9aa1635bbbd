"""MTA log parsers: raw log lines in, normalized `Attempt`s out (or `InvalidInput`).

One module per format behind one interface (`base.LogParser`); `make_parser` is the entry
point. Pure: no I/O; the one clock is the reference time classic syslog stamps take their year
from (injectable, `make_parser(clock=...)`).
"""

from __future__ import annotations

from pipeline.core.parsing.base import LogParser
from pipeline.core.parsing.detect import AutoParser, detect_format
from pipeline.core.parsing.exim import EximParser
from pipeline.core.parsing.jsonline import JsonLineParser
from pipeline.core.parsing.kumomta import KumoMtaParser
from pipeline.core.parsing.postfix import PostfixParser
from pipeline.core.parsing.powermta import PowerMtaParser
from pipeline.core.parsing.sendmail import SendmailParser
from pipeline.core.parsing.syslog import Clock, utc_now

PARSERS: dict[str, type[LogParser]] = {
    "auto": AutoParser,
    "postfix": PostfixParser,
    "exim": EximParser,
    "pmta": PowerMtaParser,
    "kumo": KumoMtaParser,
    "sendmail": SendmailParser,
    "json": JsonLineParser,
}
"""Format name -> parser class; the names `make_parser` and `bounceguard parse` accept."""

FORMATS: tuple[str, ...] = tuple(PARSERS)


def make_parser(
    fmt: str, *, tenant: str = "default", year: int | None = None, clock: Clock = utc_now
) -> LogParser:
    """Return a new parser for `fmt` (one of FORMATS) for one log stream.

    `tenant` is stamped on attempts whose line names none (see docs/parsing.md for the
    formats that carry their own). Classic syslog stamps have no year: `year` pins it;
    without it each line's year is inferred from `clock()` (default: now, UTC), read per line:
    the clock's year, or the year before when that would put the stamp more than a day after
    the clock (`syslog.stamp_near`). Raises ValueError for an unknown format name (a caller's
    mistake, not bad input).
    """
    try:
        cls = PARSERS[fmt]
    except KeyError:
        raise ValueError(
            f"unknown log format {fmt!r}; expected one of {', '.join(FORMATS)}"
        ) from None
    return cls(tenant=tenant, year=year, clock=clock)


__all__ = ["FORMATS", "PARSERS", "LogParser", "detect_format", "make_parser"]
