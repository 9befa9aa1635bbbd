"""Format detection for `--format auto` and the `mta.log.raw` topic, one line at a time.

Rules, first match wins (docs/parsing.md has the table):
1. A JSON array, or an object with `event_id` and `outcome` -> our attempt JSON.
2. A JSON object whose `type` is a KumoMTA record type -> KumoMTA.
3. A JSON object with a string `message` (Vector, Filebeat) or `log` (Fluent Bit tail) field
   -> a shipper's envelope: the field is unwrapped and detected again (once).
4. `type,...` -> a PowerMTA header; `d,`/`b,`/`t,`/`rb,`/... -> a PowerMTA row.
5. `YYYY-MM-DD HH:MM:SS <exim id> ...` -> Exim.
6. A syslog line from `postfix*/...` -> Postfix; from `sendmail`/`sm-mta` -> Sendmail; from
   any other program (dovecot, amavis, opendkim sharing mail.log) -> no attempt.
Anything else is UNKNOWN_FORMAT. Each format keeps one parser for the whole stream, so state
that spans lines (the PowerMTA header, Postfix deferred recipients) survives interleaving.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pipeline.core.decode import load_json
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Attempt
from pipeline.core.parsing.base import LogParser
from pipeline.core.parsing.exim import LINE as EXIM_LINE
from pipeline.core.parsing.exim import EximParser
from pipeline.core.parsing.jsonline import JsonLineParser
from pipeline.core.parsing.kumomta import KNOWN_TYPES, KumoMtaParser
from pipeline.core.parsing.postfix import PostfixParser
from pipeline.core.parsing.powermta import PowerMtaParser
from pipeline.core.parsing.sendmail import SendmailParser
from pipeline.core.parsing.syslog import Clock, parse_syslog, utc_now

_PMTA_ROW = re.compile(r"^(?:d|b|t|tq|r|f|rb|rs),", re.I)
_SYSLOG_OTHER = "syslog"
_ENVELOPE_KEYS = ("message", "log")

TEXT_PARSERS: dict[str, type[LogParser]] = {
    "postfix": PostfixParser,
    "exim": EximParser,
    "pmta": PowerMtaParser,
    "sendmail": SendmailParser,
}


def detect_format(text: str, year: int = 2000) -> str | None:
    """Name the format of one decoded line: "json", "kumo", "envelope", "pmta", "exim",
    "postfix", "sendmail", "syslog" (another program's syslog line), or None if unknown.

    JSON lines are decoded to look inside (InvalidInput BAD_JSON if they do not decode).
    `year` only matters for the validity of a classic syslog date (Feb 29).
    """
    if text.lstrip()[:1] in ("{", "["):
        return _json_kind(load_json(text))
    return _text_kind(text, year)


def _json_kind(doc: Any) -> str | None:
    if isinstance(doc, list) or (
        isinstance(doc, Mapping) and "event_id" in doc and "outcome" in doc
    ):
        return "json"
    if not isinstance(doc, Mapping):
        return None
    if doc.get("type") in KNOWN_TYPES:
        return "kumo"
    if any(isinstance(doc.get(key), str) for key in _ENVELOPE_KEYS):
        return "envelope"
    return None


def _text_kind(text: str, year: int | None, clock: Clock = utc_now) -> str | None:
    if text[:5].lower() == "type," or _PMTA_ROW.match(text):
        return "pmta"
    if EXIM_LINE.match(text):
        return "exim"
    line = parse_syslog(text, year, clock)
    if line is None:
        return None
    if line.program.startswith("postfix"):
        return "postfix"
    if SendmailParser.handles(line.program):
        return "sendmail"
    return _SYSLOG_OTHER


class AutoParser(LogParser):
    """Detects the format of every line and hands it to that format's parser."""

    fmt: ClassVar[str] = "auto"

    def __init__(
        self, *, tenant: str = "default", year: int | None = None, clock: Clock = utc_now
    ) -> None:
        super().__init__(tenant=tenant, year=year, clock=clock)
        self._parsers: dict[str, LogParser] = {}
        self._json = JsonLineParser(tenant=tenant, year=year, clock=clock)
        self._kumo = KumoMtaParser(tenant=tenant, year=year, clock=clock)

    def _parse(self, text: str) -> list[Attempt]:
        return self._dispatch(text, unwrapped=False)

    def _dispatch(self, text: str, *, unwrapped: bool) -> list[Attempt]:
        if text.lstrip()[:1] in ("{", "["):
            return self._dispatch_json(text, unwrapped=unwrapped)
        kind = _text_kind(text, self.year, self.clock)
        if kind is None:
            raise InvalidInput(Reason.UNKNOWN_FORMAT, "line matches no known log format")
        if kind == _SYSLOG_OTHER:
            return []
        parser = self._parsers.get(kind)
        if parser is None:
            parser = self._parsers[kind] = TEXT_PARSERS[kind](
                tenant=self.tenant, year=self.year, clock=self.clock
            )
        return parser.feed(text)

    def _dispatch_json(self, text: str, *, unwrapped: bool) -> list[Attempt]:
        doc = load_json(text)
        kind = _json_kind(doc)
        if kind == "json":
            return self._json.feed(text)
        if kind == "kumo":
            return self._kumo.from_record(doc)
        if kind == "envelope" and not unwrapped:
            inner = next(doc[k] for k in _ENVELOPE_KEYS if isinstance(doc.get(k), str))
            inner = inner.rstrip("\r\n")
            return self._dispatch(inner, unwrapped=True) if inner.strip() else []
        raise InvalidInput(Reason.UNKNOWN_FORMAT, "JSON object in no known log format")
