"""Delivery status notifications (RFC 3464): one raw bounce mail -> attempts, or InvalidInput.

A receiving MTA that answered 250 and fails later, and every MTA that gives up on a queued
message, mails the return path a `multipart/report; report-type=delivery-status` with
(1) a human-readable part, (2) a `message/delivery-status` part: one block of per-message
fields (Reporting-MTA, Arrival-Date, ...) then one block per recipient (RFC 3464 §2.2-2.3),
and (3) the returned message (`message/rfc822`) or only its header (`text/rfc822-headers`).

Per recipient block, by its Action (§2.3.3):
- `failed` -> an attempt, outcome `bounced` (`expired` when its Status is 4.x.x: the MTA gave
  up retrying a temporary failure, like RFC 3464's own example of §10.1);
- `delayed` -> an attempt, outcome `deferred`;
- `delivered`, `relayed`, `expanded` -> nothing (not a failure).
Fields: Final-Recipient (else Original-Recipient) is the recipient; Status the enhanced code;
Diagnostic-Code the reply (its basic code read from the text; without one, the comment of the
Status field); Remote-MTA the host. The time is Last-Attempt-Date, else the report's own Date
(written when the MTA gave up, so the bounce's time; Postfix writes no Last-Attempt-Date),
else the per-message Arrival-Date (when the message reached the reporting MTA: earlier).

Joining to the send: the returned message's `join_header` (default X-Bounceguard-Event-Id, a
header the sender sets to its own id of the send), else its Message-ID, becomes the attempt's
message_id (so the DSN's bounce groups with the MTA's log lines of that message); X-BG-Tenant,
X-BG-List (or List-Id) and X-BG-Campaign name tenant, list and campaign, as for ARF. A report
naming no send is InvalidInput(UNATTRIBUTED): a dead letter, never a guess.

Event ids are "dsn:" + a hash of the report's own Message-ID (its bytes when it has none) and
the recipient, so the same DSN delivered twice is the same attempts, counted once.

Uses only the stdlib `email` package; pure (no I/O).
"""

from __future__ import annotations

import base64
import hashlib
import quopri
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import Message

from pipeline.core.classify import extract_codes
from pipeline.core.decode import normalize_address
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.mailparts import (
    body_text,
    date,
    header_block,
    header_fields,
    list_id,
    parse_mail,
    parts,
    text,
)
from pipeline.core.models import Attempt, Outcome, check_tenant

MAX_DSN_BYTES = 4 * 1024 * 1024
"""Largest report parsed (a returned message with attachments can be big; ARF's limit)."""
DEFAULT_JOIN_HEADER = "X-Bounceguard-Event-Id"
_STATUS = "message/delivery-status"
_RETURNED = ("message/rfc822", "text/rfc822-headers")
_OUTCOMES = {"failed": Outcome.BOUNCED, "delayed": Outcome.DEFERRED}
"""Actions that are attempts; delivered, relayed and expanded are not failures."""
_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True, slots=True)
class _Context:
    """What every recipient block of one report shares."""

    dsn_id: str
    arrival: datetime | None
    tenant: str
    list_id: str | None
    campaign_id: str | None
    message_id: str


def parse_dsn(
    raw: bytes, *, join_header: str = DEFAULT_JOIN_HEADER, tenant: str = "default"
) -> list[Attempt]:
    """Parse one raw DSN (the whole mail, as received) into its failed and delayed attempts
    (module doc), in the report's recipient order; [] when every recipient was delivered,
    relayed or expanded. `tenant` stands for a returned message without X-BG-Tenant.

    Raises InvalidInput: TOO_LARGE over MAX_DSN_BYTES; BAD_DSN when no multipart/report holds
    a message/delivery-status part with a recipient block; UNATTRIBUTED when the returned
    message names no send; BAD_ADDRESS when no failed or delayed recipient is readable;
    BAD_TIMESTAMP when a recipient's time cannot be found.
    """
    if len(raw) > MAX_DSN_BYTES:
        raise InvalidInput(Reason.TOO_LARGE, f"report is {len(raw)} bytes (max {MAX_DSN_BYTES})")
    try:
        return _parse(raw, join_header, tenant)
    except InvalidInput:
        raise
    except Exception as exc:  # the email package is lenient, but not on everything
        raise InvalidInput(Reason.BAD_DSN, f"unreadable report: {type(exc).__name__}") from exc


def _parse(raw: bytes, join_header: str, tenant: str) -> list[Attempt]:
    msg = parse_mail(raw)
    report = _find_report(msg)
    blocks = _blocks(next(p for p in parts(report) if p.get_content_type() == _STATUS))
    if len(blocks) < 2:
        raise InvalidInput(Reason.BAD_DSN, "delivery-status part has no recipient block")
    if not any(_outcome(b) for b in blocks[1:]):
        return []  # all delivered, relayed or expanded: nothing to attribute
    context = _context(raw, msg, report, blocks[0], join_header=join_header, tenant=tenant)
    return _attempts(blocks[1:], context, date(msg.get("Date")))


def _find_report(msg: Message) -> Message:
    """The first multipart/report part (the mail itself, usually) with a delivery status."""
    for part in msg.walk():
        if part.get_content_type() != "multipart/report":
            continue
        if any(sub.get_content_type() == _STATUS for sub in parts(part)):
            return part
    if msg.get_content_type() != "multipart/report":
        raise InvalidInput(Reason.BAD_DSN, f"not a multipart/report: {msg.get_content_type()}")
    raise InvalidInput(Reason.BAD_DSN, "multipart/report without a message/delivery-status")


def _blocks(part: Message) -> list[Message]:
    """The field blocks of a message/delivery-status part. The email package parses them into
    sub-messages, but reads an encoded body (base64, quoted-printable: some gateways send
    that) as if it were plain: such a body is decoded and split on its blank lines here."""
    found = parts(part)
    encoding = (part.get("Content-Transfer-Encoding") or "").strip().lower()
    if found and encoding not in ("base64", "quoted-printable"):
        return found
    raw = "\n".join(b.as_string() for b in found) if found else body_text(part)
    if encoding == "base64":
        raw = base64.b64decode(raw).decode("utf-8", "replace")
    elif encoding == "quoted-printable":
        raw = quopri.decodestring(raw.encode()).decode("utf-8", "replace")
    chunks = re.split(r"\r?\n[ \t]*\r?\n", raw.strip())
    return [header_fields(c.strip()) for c in chunks if c.strip()]


def _context(
    raw: bytes, msg: Message, report: Message, fields: Message, *, join_header: str, tenant: str
) -> _Context:
    returned = next(
        (header_block(p) for p in parts(report) if p.get_content_type() in _RETURNED), Message()
    )
    join = text(returned.get(join_header)) or text(returned.get("Message-ID"))
    if join is None:
        raise InvalidInput(
            Reason.UNATTRIBUTED, f"the returned message has neither {join_header} nor a Message-ID"
        )
    own = text(msg.get("Message-ID"))
    named_tenant = text(returned.get("X-BG-Tenant")) or tenant
    check_tenant(named_tenant)
    return _Context(
        dsn_id=own.strip("<>") if own else "sha256:" + hashlib.sha256(raw).hexdigest(),
        arrival=date(fields.get("Arrival-Date")),
        tenant=named_tenant,
        list_id=text(returned.get("X-BG-List")) or list_id(returned.get("List-Id")),
        campaign_id=text(returned.get("X-BG-Campaign")),
        message_id=join.strip("<>"),
    )


def _attempts(blocks: list[Message], context: _Context, sent: datetime | None) -> list[Attempt]:
    out, unreadable = [], 0
    for block in blocks:
        outcome = _outcome(block)
        if outcome is None:
            continue
        recipient = _recipient(block)
        if recipient is None:
            unreadable += 1
            continue
        out.append(_attempt(block, recipient, outcome, context, sent))
    if unreadable and not out:
        raise InvalidInput(Reason.BAD_ADDRESS, "no failed or delayed recipient is readable")
    return out


def _outcome(block: Message) -> Outcome | None:
    """The outcome a recipient block's Action stands for; None for the non-failures."""
    action = (text(block.get("Action")) or "").split()[:1]
    return _OUTCOMES.get(action[0].lower()) if action else None


def _attempt(
    block: Message, recipient: str, outcome: Outcome, context: _Context, sent: datetime | None
) -> Attempt:
    status_field = text(block.get("Status")) or ""
    # No Diagnostic-Code: the Status comment is the only text there is, e.g. RFC 3464's
    # "4.0.0 (hpnjld.njd.jp.com: host name lookup failure)", which the classifier can read.
    comment = re.search(r"\((.+)\)", status_field)
    diagnostic = _typed(block.get("Diagnostic-Code")) or (comment[1].strip() if comment else "")
    basic, said = extract_codes(diagnostic)
    status = _ENHANCED.search(status_field)
    enhanced = status[1] if status else said
    if outcome is Outcome.BOUNCED and enhanced and enhanced.startswith("4"):
        outcome = Outcome.EXPIRED
    ts = date(block.get("Last-Attempt-Date")) or sent or context.arrival
    if ts is None:
        raise InvalidInput(Reason.BAD_TIMESTAMP, "no Last-Attempt-Date, Date or Arrival-Date")
    key = f"{context.dsn_id}\x1f{recipient}".encode()
    return Attempt(
        event_id="dsn:" + hashlib.sha256(key).hexdigest()[:32],
        ts=ts,
        recipient=recipient,
        outcome=outcome,
        tenant=context.tenant,
        list_id=context.list_id,
        campaign_id=context.campaign_id,
        message_id=context.message_id,
        smtp_code=basic,
        enhanced_code=enhanced,
        diagnostic=diagnostic,
        remote_mta=_typed(block.get("Remote-MTA")),
    )


def _recipient(block: Message) -> str | None:
    """Final-Recipient, else Original-Recipient, when it is an rfc822 address we accept."""
    for name in ("Final-Recipient", "Original-Recipient"):
        value = text(block.get(name))
        if not value:
            continue
        kind, _, address = value.partition(";")
        if not address or kind.strip().lower() != "rfc822":
            continue
        try:
            return normalize_address(address)
        except InvalidInput:
            continue
    return None


def _typed(value: object) -> str | None:
    """A typed field ("smtp; 550 5.1.1 ...", "dns; mx.example.com") without its type, and a
    trailing RFC 822 comment of Action or Status ("5.0.0 (permanent failure)") kept as is."""
    found = text(value)
    if found is None:
        return None
    kind, sep, rest = found.partition(";")
    if sep and re.fullmatch(r"[A-Za-z0-9-]+", kind.strip()):
        return rest.strip() or None
    return found
