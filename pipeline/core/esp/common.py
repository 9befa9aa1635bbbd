"""What every ESP mapper shares: the event types, and the id, time, address and custom-data
rules of pipeline.core.esp's module docstring, with the builders of attempts and feedback."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pipeline.core.classify import extract_codes
from pipeline.core.decode import normalize_address, parse_ts
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.events import Engagement, EngagementAction, Feedback, FeedbackKind
from pipeline.core.models import Attempt, Outcome

MAX_ESP_BYTES = 4 * 1024 * 1024
"""Largest body mapped (the web layer's own limit is lower: BOUNCEGUARD_WEBHOOK_MAX_BYTES)."""
EspEvent = Attempt | Feedback | Engagement
"""What a webhook event maps to."""
Doc = Mapping[str, Any]
_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


def event_id(provider: str, value: object, item: Doc) -> str:
    """`<provider>:<value>`; without one, a hash of the event itself (a retry is the same
    bytes, so the same id)."""
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
        return f"{provider}:{value}"
    return f"{provider}:h{digest(repr(sorted(item.items())))[:24]}"


def digest(text: str) -> str:
    """SHA-256 of `text` in hex (ids name a recipient by this, never by the address)."""
    return hashlib.sha256(text.encode()).hexdigest()


def text(value: object) -> str | None:
    """`value` when it is a non-blank string, else None."""
    return value if isinstance(value, str) and value.strip() else None


def meta(custom: object, tenant: str) -> dict[str, Any]:
    """tenant, list_id and campaign_id from the sender's custom data (strings; an SES tag's
    value is a list of strings, its first counts)."""
    data = custom if isinstance(custom, Mapping) else {}

    def one(key: str) -> str | None:
        value = data.get(key)
        if isinstance(value, list) and value:
            value = value[0]
        return str(value) if isinstance(value, str | int) and str(value) else None

    return {
        "tenant": one("tenant") or tenant,
        "list_id": one("list_id"),
        "campaign_id": one("campaign_id"),
    }


def attempt(
    event_id: str,
    ts: object,
    recipient: object,
    outcome: Outcome,
    meta: dict[str, Any],
    *,
    diagnostic: str | None = None,
    status: object = None,
    code: object = None,
    phase: str | None = None,
    remote: object = None,
    message_id: object = None,
) -> Attempt:
    """An attempt of an ESP event; the codes come from `code`/`status` when they are well
    formed, else from the text (as for a DSN)."""
    reply = diagnostic or ""
    basic, enhanced = extract_codes(reply)
    if isinstance(code, int) and not isinstance(code, bool) and 200 <= code <= 599:
        basic = code
    if isinstance(status, str) and _ENHANCED.fullmatch(status.strip()):
        enhanced = status.strip()
    return Attempt(
        event_id=event_id,
        ts=timestamp(ts),
        recipient=address(recipient),
        outcome=outcome,
        message_id=text(message_id),
        smtp_code=basic,
        enhanced_code=enhanced,
        diagnostic=reply,
        remote_mta=text(remote),
        smtp_phase=phase,
        **meta,
    )


def feedback(
    event_id: str, ts: object, recipient: object, kind: FeedbackKind, meta: dict[str, Any]
) -> Feedback:
    """A complaint or unsubscribe of an ESP event (time and recipient checked as for an
    attempt)."""
    return Feedback(
        event_id=event_id, ts=timestamp(ts), recipient=address(recipient), kind=kind, **meta
    )


def engagement(
    event_id: str, ts: object, recipient: object, action: EngagementAction, meta: dict[str, Any]
) -> Engagement:
    """An open or click of an ESP event (time and recipient checked as for an attempt)."""
    return Engagement(
        event_id=event_id, ts=timestamp(ts), recipient=address(recipient), action=action, **meta
    )


def address(value: object) -> str:
    """The normalized recipient; InvalidInput MISSING_FIELD or BAD_ADDRESS."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(Reason.MISSING_FIELD, "the event names no recipient")
    return normalize_address(value)


def timestamp(value: object) -> datetime:
    """The event time (RFC 3339, or epoch seconds as a number or digits); InvalidInput
    MISSING_FIELD or BAD_TIMESTAMP."""
    if value is None or value == "":
        raise InvalidInput(Reason.MISSING_FIELD, "the event has no time")
    if isinstance(value, str) and value.isdigit():  # SparkPost: epoch seconds as text
        return parse_ts(int(value))
    return parse_ts(value)
