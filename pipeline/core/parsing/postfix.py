"""Postfix delivery lines (smtp, lmtp, local, virtual, pipe, error, retry) -> attempts.

Reads the syslog line, then for one queue id:
- `QID: to=<rcpt>, [orig_to=..,] relay=.., delay=.., delays=.., [tls=..,] dsn=X.Y.Z,
  status=sent|deferred|bounced|expired (text)` -> one attempt;
- `QID: from=<sender>, status=expired, returned to sender` (qmgr) -> one `expired` attempt per
  recipient this parser saw deferred for QID and not yet delivered or bounced: the qmgr line
  names the sender only, so the recipients come from the earlier deferred lines, remembered in
  a bounded LRU (`max_queue_ids`, oldest queue id dropped first);
- `QID: removed` forgets QID; every other Postfix line (smtpd connects, cleanup, qmgr
  `from=<..>, size=..`, bounce notifications, warnings) and lines of other programs sharing
  mail.log (dovecot, amavis, opendkim) give no attempt.
"""

from __future__ import annotations

import dataclasses
import re
from collections import OrderedDict
from typing import ClassVar

import msgspec

from pipeline.core.decode import normalize_address
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Attempt, Outcome
from pipeline.core.parsing.base import (
    LogParser,
    event_id,
    find_enhanced,
    host_of,
    normalize_phase,
    split_reply,
)
from pipeline.core.parsing.syslog import Clock, SyslogLine, parse_syslog, utc_now

_PROGRAM = re.compile(r"^postfix(?:-[\w.-]+)?(?:/|$)")  # postfix/smtp, postfix-out/smtp
_QUEUED = re.compile(r"^(?P<qid>[0-9A-Za-z]{5,20}): (?P<rest>.*)$")
_FIELD_SPLIT = re.compile(r", (?=[a-z_]+=)")
_STATUS = re.compile(r"^(?P<status>[A-Za-z_-]+),? ?(?P<rest>.*)$", re.S)
_SAID = re.compile(
    r"^host (?P<host>\S+?)\[[^\]]*\](?::\d+)? (?:said|refused to talk to me): (?P<reply>.*)$",
    re.S,
)
_IN_REPLY = re.compile(r"\s*\(in reply to (?P<cmd>.+?) command\)\s*$", re.S)
_WHILE = re.compile(r"\bwhile (?:sending|receiving) (?P<cmd>[^-(]+?)\s*(?:--.*|\(.*)?$")

_OUTCOMES = {
    "sent": Outcome.DELIVERED,
    "deferred": Outcome.DEFERRED,
    "softbounce": Outcome.DEFERRED,  # soft_bounce=yes turns a bounce into a deferral
    "bounced": Outcome.BOUNCED,
    "expired": Outcome.EXPIRED,
}
# Address-verification probes (`sendmail -bv`, reject_unverified_recipient) report what
# *would* happen; no mail was sent, so they are not delivery attempts.
_PROBE_STATUSES = frozenset({"deliverable", "undeliverable"})


@dataclasses.dataclass(frozen=True, slots=True)
class _Reply:
    """What the parenthesised status text says."""

    diagnostic: str
    smtp_code: int | None
    enhanced: str | None
    remote: str | None
    phase: str | None


class PostfixParser(LogParser):
    """Postfix syslog lines (classic or RFC 3339 stamps); see the module docstring."""

    fmt: ClassVar[str] = "postfix"
    max_queue_ids: ClassVar[int] = 50_000
    """Queue ids whose deferred recipients are remembered for a later `status=expired`."""
    max_recipients: ClassVar[int] = 1_000
    """Recipients remembered per queue id (a list send can have thousands)."""

    def __init__(
        self, *, tenant: str = "default", year: int | None = None, clock: Clock = utc_now
    ) -> None:
        super().__init__(tenant=tenant, year=year, clock=clock)
        self._deferred: OrderedDict[str, dict[str, Attempt]] = OrderedDict()

    def _parse(self, text: str) -> list[Attempt]:
        line = parse_syslog(text, self.year, self.clock)
        if line is None:
            raise InvalidInput(Reason.UNKNOWN_FORMAT, "not a syslog line")
        if not _PROGRAM.match(line.program):
            return []
        match = _QUEUED.match(line.message)
        if match is None:
            return []
        qid, rest = match["qid"], match["rest"]
        if rest.startswith("to="):
            return [self._delivery(line, qid, rest)] if self._is_attempt(rest) else []
        if rest.startswith("from=") and ", status=expired" in rest:
            return self._expired(line, qid)
        if rest == "removed":
            self._deferred.pop(qid, None)
        return []

    @staticmethod
    def _is_attempt(rest: str) -> bool:
        status = rest.rpartition(", status=")[2].split(" ", 1)[0].rstrip(",").lower()
        return status not in _PROBE_STATUSES

    def _delivery(self, line: SyslogLine, qid: str, rest: str) -> Attempt:
        """Build the attempt of one `to=` line and update the deferred-recipient memory."""
        head, sep, tail = rest.partition(", status=")
        if not sep:
            raise InvalidInput(Reason.UNKNOWN_FORMAT, "postfix to= line without status=")
        fields = {k: v for k, _, v in (part.partition("=") for part in _FIELD_SPLIT.split(head))}
        status_match = _STATUS.match(tail)
        if status_match is None:
            raise InvalidInput(Reason.UNKNOWN_FORMAT, "postfix status= without a value")
        outcome = _OUTCOMES.get(status_match["status"].lower())
        if outcome is None:
            raise InvalidInput(Reason.UNKNOWN_FORMAT, f"unknown status {status_match['status']!r}")
        recipient = normalize_address(fields.get("to", ""))
        reply = _read_reply(status_match["rest"], fields)
        attempt = Attempt(
            event_id=event_id(self.fmt, line.host, line.program, qid, recipient, line.ts, outcome),
            ts=line.ts,
            recipient=recipient,
            outcome=outcome,
            tenant=self.tenant,
            message_id=qid,
            smtp_code=reply.smtp_code,
            enhanced_code=reply.enhanced,
            diagnostic=reply.diagnostic,
            remote_mta=reply.remote,
            smtp_phase=reply.phase,
        )
        self._remember(qid, attempt)
        return attempt

    def _remember(self, qid: str, attempt: Attempt) -> None:
        """Keep deferred recipients per queue id; forget one once it is delivered or bounced."""
        if attempt.outcome is not Outcome.DEFERRED:
            pending = self._deferred.get(qid)
            if pending is not None:
                pending.pop(attempt.recipient, None)
            return
        pending = self._deferred.setdefault(qid, {})
        self._deferred.move_to_end(qid)
        if attempt.recipient in pending or len(pending) < self.max_recipients:
            pending[attempt.recipient] = attempt
        while len(self._deferred) > self.max_queue_ids:
            self._deferred.popitem(last=False)

    def _expired(self, line: SyslogLine, qid: str) -> list[Attempt]:
        """One expired attempt per remembered recipient of `qid`, carrying the last deferral
        reason (Postfix returns the message with that reason too)."""
        pending = self._deferred.pop(qid, {})
        return [
            msgspec.structs.replace(
                last,
                event_id=event_id(self.fmt, line.host, line.program, qid, rcpt, line.ts, "expired"),
                ts=line.ts,
                outcome=Outcome.EXPIRED,
            )
            for rcpt, last in pending.items()
        ]


def _read_reply(status_text: str, fields: dict[str, str]) -> _Reply:
    """Split the `(...)` after status= into remote host, reply text, codes and SMTP phase.

    `host mx[1.2.3.4] said: 550-5.1.1 text (in reply to RCPT TO command)` gives host `mx`,
    diagnostic `550-5.1.1 text`, code 550, phase `RCPT TO`; `dsn=` wins for the enhanced
    code because Postfix normalizes it there. Texts without a remote reply (`connect to ...:
    Connection refused`, `delivered via dovecot service`) are kept whole as the diagnostic.
    """
    text = status_text.strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    elif text.startswith("("):  # truncated by the syslog line limit: keep what is there
        text = text[1:]
    relay = fields.get("relay", "")
    # `relay=dovecot`, `relay=local`, `relay=none` name a transport, not a host that answered.
    remote = host_of(relay) if "[" in relay else None
    phase = None
    said = _SAID.match(text)
    if said is not None:
        remote = host_of(said["host"])
        text = said["reply"]
        phase = "CONNECT" if "refused to talk to me" in status_text else None
    in_reply = _IN_REPLY.search(text)
    if in_reply is not None:
        phase = normalize_phase(in_reply["cmd"])
        text = text[: in_reply.start()]
    elif (during := _WHILE.search(text)) is not None:
        phase = normalize_phase(during["cmd"])
    code, enhanced = split_reply(text) if said is not None or text[:1].isdigit() else (None, None)
    dsn = fields.get("dsn") or None
    return _Reply(
        diagnostic=text.strip(),
        smtp_code=code,
        enhanced=dsn or enhanced or find_enhanced(text),
        remote=remote,
        phase=phase,
    )
