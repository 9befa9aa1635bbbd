"""Decode the messages of `engagement.events` and `feedback.events` into policy events.

Both topics take one JSON object or an array of them (like `delivery.attempts`).
`feedback.events` also takes a raw ARF report (RFC 5965 `multipart/report`), as feedback-loop
mailboxes deliver them: it becomes a complaint (or an unsubscribe for `opt-out`) for the
original recipient the report names. Everything bad raises InvalidInput, so the worker can
dead-letter it with the reason.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pipeline.core.arf import ArfReport, parse_arf
from pipeline.core.decode import load_json
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.events import Engagement, Event, Feedback, FeedbackKind, event_from_mapping

# Feedback-Type values (RFC 5965 §7.3 registry, plus opt-out from RFC 6650's practice) and
# what they mean for the recipient. not-spam, virus and auth-failure say nothing about the
# recipient's wish, so they become no event at all.
ARF_KINDS: dict[str, FeedbackKind] = {
    "abuse": FeedbackKind.COMPLAINT,
    "fraud": FeedbackKind.COMPLAINT,
    "other": FeedbackKind.COMPLAINT,
    "opt-out": FeedbackKind.UNSUBSCRIBE,
}


def _json_events(doc: Any, default_type: str, want: type[Any]) -> list[Any]:
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise InvalidInput(Reason.MISSING_FIELD, "empty array")
    out = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidInput(Reason.WRONG_TYPE, f"element {index} is not a JSON object")
        event = event_from_mapping({"type": default_type, **item})
        if not isinstance(event, want):
            raise InvalidInput(Reason.WRONG_TYPE, f"element {index} is a {event_kind(event)}")
        out.append(event)
    return out


def event_kind(event: Event) -> str:
    """The `type` word of an event (attempt, engagement, complaint, unsubscribe)."""
    if isinstance(event, Feedback):
        return event.kind.value
    return "engagement" if isinstance(event, Engagement) else "attempt"


def decode_engagement(raw: bytes) -> list[Engagement]:
    """Decode one `engagement.events` message: opens and clicks (`type` defaults to
    engagement, `action` to open). Raises InvalidInput."""
    return _json_events(load_json(raw), "engagement", Engagement)


def decode_feedback(raw: bytes, *, received: datetime) -> list[Feedback]:
    """Decode one `feedback.events` message: JSON complaints/unsubscribes (`type` complaint or
    unsubscribe), or a raw ARF report. `received` (the Kafka timestamp) is the event time of
    a report without an Arrival-Date. May return [] for a report that asks for nothing
    (not-spam, virus, auth-failure). Raises InvalidInput."""
    if raw.lstrip()[:1] in (b"{", b"["):
        return _json_events(load_json(raw), "complaint", Feedback)
    return arf_feedback(parse_arf(raw), raw, received=received)


def arf_feedback(report: ArfReport, raw: bytes, *, received: datetime) -> list[Feedback]:
    """The Feedback event of a parsed ARF report (see ARF_KINDS), with a deterministic id so
    a report delivered twice counts once."""
    kind = ARF_KINDS.get(report.feedback_type)
    if kind is None:
        return []
    if report.original_rcpt_to is None:
        raise InvalidInput(Reason.MISSING_FIELD, "the report names no original recipient")
    identity = report.original_message_id or hashlib.sha256(raw).hexdigest()
    event_id = "arf-" + _digest(report.feedback_type, report.original_rcpt_to, identity)
    return [
        Feedback(
            event_id=event_id,
            ts=report.arrival_date or received,
            recipient=report.original_rcpt_to,
            kind=kind,
            tenant=report.tenant or "default",
            list_id=report.list_id,
            campaign_id=report.campaign_id,
        )
    ]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
