"""Sendmail delivery lines -> attempts.

`<syslog prefix> sendmail[pid]: QID: to=<a@x>,<b@y>, [ctladdr=..,] delay=.., xdelay=..,
mailer=esmtp, pri=.., relay=host. [ip], dsn=X.Y.Z, stat=...` (op.me, "The System Log").
`to=` lists the recipients of one delivery (comma-separated, no space): one attempt each.
`stat=Sent (...)` -> delivered; `stat=Deferred...` -> deferred; any other stat is the failure
reason of a permanent error (`stat=User unknown`) -> bounced, unless `dsn=` is 4.x.x (deferred).
Programs read: `sendmail`, `sm-mta` (Debian), `sm-msp-queue`. The per-message `from=` line,
`done;`, `DSN:` / `return to sender` notices and other programs give no attempt.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pipeline.core.decode import normalize_address
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Attempt, Outcome
from pipeline.core.parsing.base import LogParser, event_id, find_enhanced, host_of, split_reply
from pipeline.core.parsing.syslog import SyslogLine, parse_syslog

_PROGRAMS = frozenset({"sendmail", "sm-mta", "sm-msp-queue"})
_QUEUED = re.compile(r"^(?P<qid>[0-9A-Za-z]{8,20}): (?P<rest>to=.*)$")
_FIELD_SPLIT = re.compile(r", (?=[a-z_]+=)")


class SendmailParser(LogParser):
    """Sendmail syslog lines; see the module docstring."""

    fmt: ClassVar[str] = "sendmail"

    @staticmethod
    def handles(program: str) -> bool:
        """True for the syslog program names Sendmail logs under."""
        return program in _PROGRAMS

    def _parse(self, text: str) -> list[Attempt]:
        line = parse_syslog(text, self.year, self.clock)
        if line is None:
            raise InvalidInput(Reason.UNKNOWN_FORMAT, "not a syslog line")
        if line.program not in _PROGRAMS:
            return []
        match = _QUEUED.match(line.message)
        if match is None:
            return []
        head, sep, stat = match["rest"].partition(", stat=")
        if not sep:
            raise InvalidInput(Reason.UNKNOWN_FORMAT, "sendmail to= line without stat=")
        fields: dict[str, str] = {}
        for part in _FIELD_SPLIT.split(head):
            key, _, value = part.partition("=")
            fields[key] = value
        return [
            self._attempt(line, match["qid"], rcpt, fields, stat)
            for rcpt in _recipients(fields.get("to", ""))
        ]

    def _attempt(
        self, line: SyslogLine, qid: str, recipient: str, fields: dict[str, str], stat: str
    ) -> Attempt:
        """One attempt for one recipient of a `to=` line."""
        dsn = fields.get("dsn") or None
        outcome, diagnostic = _outcome(stat, dsn)
        code, enhanced = split_reply(diagnostic)
        return Attempt(
            event_id=event_id(self.fmt, line.host, qid, recipient, line.ts, outcome, stat),
            ts=line.ts,
            recipient=recipient,
            outcome=outcome,
            tenant=self.tenant,
            message_id=qid,
            smtp_code=code,
            enhanced_code=dsn or enhanced or find_enhanced(diagnostic),
            diagnostic=diagnostic,
            remote_mta=host_of(fields.get("relay")),
        )


def _recipients(value: str) -> list[str]:
    """`<a@x>,<b@y>` -> normalized addresses (BAD_ADDRESS if one is not plausible)."""
    items = [item for item in value.split(",") if item.strip()]
    if not items:
        raise InvalidInput(Reason.BAD_ADDRESS, "sendmail to= names no recipient")
    return [normalize_address(item) for item in items]


def _outcome(stat: str, dsn: str | None) -> tuple[Outcome, str]:
    """(outcome, diagnostic) of a stat= value.

    `Sent (ok: Message 40279895 accepted)` -> delivered, "ok: Message ..."; `Deferred: 451
    4.3.5 Server configuration problem` -> deferred, "451 4.3.5 ..."; `User unknown` with
    dsn=5.1.1 -> bounced, "User unknown".
    """
    stat = stat.strip()
    if stat.startswith("Sent"):
        text = stat[4:].strip()
        return Outcome.DELIVERED, text[1:-1] if text.startswith("(") and text.endswith(
            ")"
        ) else text
    if stat.startswith("Deferred"):
        return Outcome.DEFERRED, stat[8:].lstrip(":").strip()
    if dsn is not None and dsn.startswith("4"):
        return Outcome.DEFERRED, stat
    return Outcome.BOUNCED, stat
