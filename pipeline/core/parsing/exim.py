"""Exim main log lines -> attempts.

Line shape: `YYYY-MM-DD HH:MM:SS[.mmm] [+ZZZZ] [[pid]] MESSAGE-ID FLAG address ...` with
both message-id lengths: the classic 16 characters (`1RookS-000Pg8-VO`, 6-6-2) and the
23 characters of Exim 4.97 and later (`1rAbCd-000000001bo-D342`, 6-11-4).

Flags read (Exim spec, "Log line flags"):
- `=>` delivery and `->` an additional address in the same delivery -> delivered;
- `**` failure -> bounced, except `retry timeout exceeded` -> expired (the address outlived
  its retry window; no server said it was bad);
- `==` deferral -> deferred, except `retry time not reached` (no delivery was tried).
Everything else (`<=` arrivals, `Completed`, `>>` cutthrough, `*>` suppressed, `(=` fakereject,
per-host connection messages) gives no attempt.
Times without `+ZZZZ` (the default `log_timezone = false` writes local time) are taken as UTC.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import ClassVar

from pipeline.core.decode import normalize_address, parse_ts
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Attempt, Outcome
from pipeline.core.parsing.base import LogParser, event_id, host_of, normalize_phase, split_reply

EXIM_ID = r"[0-9A-Za-z]{6}-(?:[0-9A-Za-z]{11}-[0-9A-Za-z]{4}|[0-9A-Za-z]{6}-[0-9A-Za-z]{2})"
"""Both Exim message-id forms (new 6-11-4 first so the old 6-6-2 does not match a prefix)."""

LINE = re.compile(
    r"^(?P<date>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})?)(?: (?P<tz>[+-]\d{4}))?"
    r"(?: \[\d+\])? (?P<id>" + EXIM_ID + r") (?P<rest>.*)$"
)
_FLAGGED = re.compile(r"^(?P<flag>=>|->|\*\*|==) (?P<body>.*)$")
_OUTCOMES = {"=>": Outcome.DELIVERED, "->": Outcome.DELIVERED, "**": Outcome.BOUNCED}
_HOST = re.compile(r"\bH=(?P<host>\S+)(?: \([^)]*\))? \[(?P<ip>[^\]]+)\]")
_CONFIRM = re.compile(r'\bC="(?P<text>(?:[^"\\]|\\.)*)"')
_SMTP_ERROR = re.compile(
    r"SMTP error from remote mail(?:er| server) after (?P<cmd>.+?)(?::<[^>]*>)?: "
    r"host (?P<host>\S+) \[[^\]]*\]: (?P<reply>.*)$",
    re.S,
)
_DEFER = re.compile(r"\bdefer \([^)]*\): (?P<text>.*)$", re.S)


class EximParser(LogParser):
    """Exim main log (`mainlog`) lines; see the module docstring."""

    fmt: ClassVar[str] = "exim"

    def _parse(self, text: str) -> list[Attempt]:
        match = LINE.match(text)
        if match is None:
            raise InvalidInput(Reason.UNKNOWN_FORMAT, "not an Exim main log line")
        flagged = _FLAGGED.match(match["rest"])
        if flagged is None:
            return []
        ts = _exim_ts(match["date"], match["tz"])
        flag, body = flagged["flag"], flagged["body"]
        recipient, detail = _recipient(body)
        diagnostic, code, enhanced, remote, phase = _result(flag, detail)
        outcome = _outcome(flag, diagnostic)
        if outcome is None:
            return []
        return [
            Attempt(
                event_id=event_id(self.fmt, match["id"], flag, recipient, ts, outcome),
                ts=ts,
                recipient=recipient,
                outcome=outcome,
                tenant=self.tenant,
                message_id=match["id"],
                smtp_code=code,
                enhanced_code=enhanced,
                diagnostic=diagnostic,
                remote_mta=remote,
                smtp_phase=phase,
            )
        ]


def _exim_ts(date: str, tz: str | None) -> datetime:
    """Read `YYYY-MM-DD HH:MM:SS[.mmm]` plus an optional `+ZZZZ` as aware UTC."""
    iso = date.replace(" ", "T")
    if tz:
        iso += f"{tz[:3]}:{tz[3:]}"
    return parse_ts(iso)


def _recipient(body: str) -> tuple[str, str]:
    """Return (normalized recipient, the rest of the line after the address part).

    The address part is `addr`, `addr <original>` or, for local deliveries, `/path <addr>` or
    `|command <addr>`; a parent in parentheses may follow. The first plausible address wins,
    so a pipe or file delivery is counted against the address that led to it.
    """
    address_part, sep, rest = body.partition(": ") if _is_failure_body(body) else ("", "", "")
    if not sep:
        address_part, _, rest = body.partition(" R=")
        rest = "R=" + rest if rest else ""
    tokens = [t.strip("<>()") for t in address_part.split()]
    for token in tokens:
        if "@" in token:
            try:
                return normalize_address(token), rest
            except InvalidInput:
                continue
    raise InvalidInput(Reason.BAD_ADDRESS, "no plausible recipient address in the Exim line")


def _is_failure_body(body: str) -> bool:
    """True when the address part ends at the first `: ` (`** a@b <a@b>: unknown mail
    domain`, `** a@b R=x T=y: SMTP error ...`) rather than running into ` R=`."""
    colon = body.find(": ")
    router = body.find(" R=")
    return colon != -1 and (router == -1 or colon < router)


def _result(flag: str, detail: str) -> tuple[str, int | None, str | None, str | None, str | None]:
    """Return (diagnostic, smtp code, enhanced code, remote host, phase) of one flagged line."""
    host = _HOST.search(detail)
    remote = host_of(host["host"]) if host else None
    if flag in ("=>", "->"):
        confirm = _CONFIRM.search(detail)
        diagnostic = confirm["text"].replace('\\"', '"') if confirm else ""
        code, enhanced = split_reply(diagnostic)
        return diagnostic, code, enhanced, remote, "end of DATA" if confirm else None
    if flag == "==":
        deferred = _DEFER.search(detail)
        detail = deferred["text"] if deferred else detail
    else:
        # `R=dnslookup T=remote_smtp: SMTP error ...`: drop the router/transport prefix.
        detail = re.sub(r"^(?:[RT]=\S+ ?)+:? ?", "", detail)
    error = _SMTP_ERROR.search(detail)
    if error is None:
        return detail.strip(), None, None, remote, None
    reply = error["reply"].strip()
    code, enhanced = split_reply(reply)
    return reply, code, enhanced, host_of(error["host"]), normalize_phase(error["cmd"])


def _outcome(flag: str, diagnostic: str) -> Outcome | None:
    """Map a flag to an outcome; None for a deferral that was no delivery try."""
    lowered = diagnostic.lower()
    if flag == "**" and "retry timeout exceeded" in lowered:
        return Outcome.EXPIRED
    if flag == "==":
        return None if "retry time not reached" in lowered else Outcome.DEFERRED
    return _OUTCOMES[flag]
