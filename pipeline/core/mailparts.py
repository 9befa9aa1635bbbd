"""Small helpers over stdlib `email` messages, shared by the report parsers (ARF in
`pipeline.core.arf`, DSN in `pipeline.core.dsn`): the parts of a multipart, the header block a
message/* or text/* part carries, and header values as text, date or list id. Pure.
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import re
from datetime import UTC, datetime
from email.message import Message

BG_HEADERS = ("X-BG-Tenant", "X-BG-List", "X-BG-Campaign")
"""Headers a sender puts on its own mail so that a report enclosing it names tenant, list and
campaign (docs/inputs.md)."""


def parse_mail(raw: bytes) -> Message:
    """The whole mail as a compat32 Message (the lenient policy: real reports break rules)."""
    return email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)


def parts(msg: Message) -> list[Message]:
    """The direct sub-parts of a multipart `msg` ([] for a single part)."""
    payload = msg.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def header_block(part: Message) -> Message:
    """The header block a message/* or text/* part carries. The email package parses
    message/* bodies into a sub-message; a text body (or an encoded one) is parsed here."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    return header_fields(body_text(part))


def header_fields(chunk: str) -> Message:
    """One block of `Name: value` lines (folded lines allowed) as a Message."""
    return email.parser.HeaderParser(policy=email.policy.compat32).parsestr(chunk)


def body_text(part: Message) -> str:
    """The decoded body of a single part as text (UTF-8, bad bytes replaced), left-trimmed."""
    body = part.get_payload(decode=True)
    payload = part.get_payload()
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(payload or "")
    return text.lstrip()


def text(value: object) -> str | None:
    """A header value unfolded and trimmed, or None when absent or blank."""
    if value is None:
        return None
    out = " ".join(str(value).split())
    return out or None


def date(value: str | None) -> datetime | None:
    """An RFC 5322 date as aware UTC; None when absent or unreadable."""
    found = text(value)
    if found is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(found)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def list_id(value: str | None) -> str | None:
    """`List-Id: Newsletter <news.example.com>` -> "news.example.com" (RFC 2919)."""
    found = text(value)
    if found is None:
        return None
    match = re.search(r"<([^<>]+)>", found)
    return match[1].strip() if match else found
