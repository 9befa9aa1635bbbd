"""MTA log parsers: raw log lines in, normalized `Attempt`s out (or `InvalidInput`).

One module per format behind one interface (`base.LogParser`); `make_parser` is the entry
point. Pure: no I/O, no clocks except the default year chosen in `make_parser`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.core.parsing.base import LogParser
from pipeline.core.parsing.detect import AutoParser, detect_format
from pipeline.core.parsing.exim import EximParser
from pipeline.core.parsing.jsonline import JsonLineParser
from pipeline.core.parsing.kumomta import KumoMtaParser
from pipeline.core.parsing.postfix import PostfixParser
from pipeline.core.parsing.powermta import PowerMtaParser
from pipeline.core.parsing.sendmail import SendmailParser

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


def make_parser(fmt: str, *, tenant: str = "default", year: int | None = None) -> LogParser:
    """Return a new parser for `fmt` (one of FORMATS) for one log stream.

    `tenant` is stamped on attempts whose line names none (see docs/parsing.md for the
    formats that carry their own). `year` completes classic syslog stamps, which have none;
    it defaults to the current UTC year, read once here. Raises ValueError for an unknown
    format name (a caller's mistake, not bad input).
    """
    try:
        cls = PARSERS[fmt]
    except KeyError:
        raise ValueError(
            f"unknown log format {fmt!r}; expected one of {', '.join(FORMATS)}"
        ) from None
    return cls(tenant=tenant, year=year if year is not None else datetime.now(UTC).year)


__all__ = ["FORMATS", "PARSERS", "LogParser", "detect_format", "make_parser"]
