"""ARF feedback reports (RFC 5965): raw report bytes -> `ArfReport`, or InvalidInput.

A feedback-loop complaint arrives as a `multipart/report; report-type=feedback-report` mail
with (1) a human-readable part, (2) a `message/feedback-report` part of `Name: value` fields
and (3) the reported message as `message/rfc822`, or only its header as
`text/rfc822-headers`. What a suppression needs is the complaining recipient, which
reporters often redact; so it is looked for in order:
1. `Original-Rcpt-To:` of the report (RFC 5965 §3.2; repeatable, the first plausible wins);
2. `To:` of the enclosed original message;
3. `X-HmXmrOriginalRecipient:` of the enclosed message (Microsoft JMRP adds it when it
   redacts the rest).
Tenant, list and campaign come from headers the sender put on its own message (`X-BG-Tenant`,
`X-BG-List` or `List-Id`, `X-BG-Campaign`), which the enclosed copy carries back.

Uses only the stdlib `email` package; pure (no I/O).
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import Message

from pipeline.core.decode import normalize_address
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.mailparts import date as _date
from pipeline.core.mailparts import header_block as _header_block
from pipeline.core.mailparts import list_id as _list_id
from pipeline.core.mailparts import parse_mail
from pipeline.core.mailparts import parts as _parts
from pipeline.core.mailparts import text as _text

MAX_ARF_BYTES = 4 * 1024 * 1024
"""Largest report parsed; complaints enclose one message, rarely over a few hundred KiB."""
_FEEDBACK = "message/feedback-report"
_ORIGINAL = ("message/rfc822", "text/rfc822-headers")


@dataclass(frozen=True, slots=True)
class ArfReport:
    """The fields of one feedback report that suppressions and tenant health need."""

    feedback_type: str
    """`Feedback-Type`, lowercased: abuse, fraud, virus, other, not-spam, auth-failure, ..."""
    original_rcpt_to: str | None
    """The complaining recipient, normalized (see the module doc for where it comes from);
    None when the reporter redacted it everywhere."""
    original_mail_from: str | None
    """`Original-Mail-From`, normalized; None when absent, empty (`<>`) or implausible."""
    arrival_date: datetime | None
    """`Arrival-Date` (or the historic `Received-Date`), aware UTC; None when absent or
    unreadable."""
    source_ip: str | None
    """`Source-IP`: the address the reported message came from (ours)."""
    reported_domain: str | None
    """First `Reported-Domain`."""
    user_agent: str | None
    """`User-Agent`: the report generator, e.g. "Yahoo!-Mail-Feedback/2.0"."""
    original_message_id: str | None
    """Message-ID of the enclosed message without `<>` (else the report's
    `Original-Message-ID`, which some generators add)."""
    tenant: str | None = None
    """`X-BG-Tenant` of the enclosed message."""
    list_id: str | None = None
    """`X-BG-List` of the enclosed message, else its `List-Id` (the part inside `<>`)."""
    campaign_id: str | None = None
    """`X-BG-Campaign` of the enclosed message."""


def parse_arf(raw: bytes) -> ArfReport:
    """Parse one raw ARF report (the whole mail, as received).

    The report may be the top-level message or a part of it (a report forwarded as an
    attachment). Raises InvalidInput: TOO_LARGE over MAX_ARF_BYTES; BAD_ARF when there is no
    `multipart/report` with a `message/feedback-report` part, or that part has no
    `Feedback-Type`. A missing recipient is not an error (`original_rcpt_to` is None); the
    caller decides what a complaint without one is worth.
    """
    if len(raw) > MAX_ARF_BYTES:
        raise InvalidInput(Reason.TOO_LARGE, f"report is {len(raw)} bytes (max {MAX_ARF_BYTES})")
    try:
        msg = parse_mail(raw)
        report = _find_report(msg)
        fields = _feedback_fields(report)
        original = _original(report)
    except InvalidInput:
        raise
    except Exception as exc:  # the email package is lenient, but not on everything
        raise InvalidInput(Reason.BAD_ARF, f"unreadable report: {type(exc).__name__}") from exc
    feedback_type = _text(fields.get("Feedback-Type"))
    if feedback_type is None:
        raise InvalidInput(Reason.BAD_ARF, "feedback report has no Feedback-Type")
    return _report(feedback_type.lower(), fields, original)


def _report(feedback_type: str, fields: Message, original: Message | None) -> ArfReport:
    header = original if original is not None else Message()
    message_id = _text(header.get("Message-ID")) or _text(fields.get("Original-Message-ID"))
    return ArfReport(
        feedback_type=feedback_type,
        original_rcpt_to=_recipient(fields, header),
        original_mail_from=_first_address([fields.get("Original-Mail-From")]),
        arrival_date=_date(fields.get("Arrival-Date") or fields.get("Received-Date")),
        source_ip=_text(fields.get("Source-IP")),
        reported_domain=_text(fields.get("Reported-Domain")),
        user_agent=_text(fields.get("User-Agent")),
        original_message_id=message_id.strip("<>") if message_id else None,
        tenant=_text(header.get("X-BG-Tenant")),
        list_id=_text(header.get("X-BG-List")) or _list_id(header.get("List-Id")),
        campaign_id=_text(header.get("X-BG-Campaign")),
    )


def _find_report(msg: Message) -> Message:
    """The first multipart/report part (the message itself, usually) that holds a
    message/feedback-report part."""
    for part in msg.walk():
        if part.get_content_type() != "multipart/report":
            continue
        if any(sub.get_content_type() == _FEEDBACK for sub in _parts(part)):
            return part
    if msg.get_content_type() != "multipart/report":
        raise InvalidInput(Reason.BAD_ARF, f"not a multipart/report: {msg.get_content_type()}")
    raise InvalidInput(Reason.BAD_ARF, "multipart/report without a message/feedback-report")


def _feedback_fields(report: Message) -> Message:
    """The `Name: value` fields of the message/feedback-report part, as a header block."""
    part = next(p for p in _parts(report) if p.get_content_type() == _FEEDBACK)
    return _header_block(part)


def _original(report: Message) -> Message | None:
    """The header of the enclosed original message (message/rfc822 or text/rfc822-headers)."""
    for part in _parts(report):
        if part.get_content_type() in _ORIGINAL:
            return _header_block(part)
    return None


def _recipient(fields: Message, original: Message) -> str | None:
    """Where the complaining recipient is found, in the module doc's order."""
    candidates = list(fields.get_all("Original-Rcpt-To") or [])
    candidates += [addr for _, addr in email.utils.getaddresses(original.get_all("To") or [])]
    candidates += list(original.get_all("X-HmXmrOriginalRecipient") or [])
    return _first_address(candidates)


def _first_address(values: Sequence[str | None]) -> str | None:
    for value in values:
        text = _text(value)
        if not text:
            continue
        # "rfc822; user@example.com" (the DSN-style form some generators use) -> the address
        text = text.split(";", 1)[1] if ";" in text else text
        try:
            return normalize_address(text)
        except InvalidInput:
            continue
    return None
