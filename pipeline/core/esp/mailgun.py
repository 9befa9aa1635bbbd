"""Mailgun's webhooks: one object per POST, the event in `event-data`."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.esp import common as c
from pipeline.core.esp.common import Doc, EspEvent
from pipeline.core.esp_verdicts import esp_phase
from pipeline.core.events import EngagementAction, FeedbackKind
from pipeline.core.models import Outcome


def map_event(item: Doc, tenant: str) -> list[EspEvent]:
    """A Mailgun webhook body: {"signature": ..., "event-data": {...}}."""
    data = item.get("event-data")
    if not isinstance(data, Mapping):
        raise InvalidInput(Reason.MISSING_FIELD, "the body has no event-data object")
    event = data.get("event")
    meta = c.meta(data.get("user-variables"), tenant)
    event_id = c.event_id("mailgun", data.get("id"), data)
    recipient, ts = data.get("recipient"), data.get("timestamp")
    if event in ("failed", "delivered"):
        reason = str(data.get("reason") or "")
        if reason.startswith("suppress-"):
            return []  # Mailgun did not try: the address is on its own list already
        status = data.get("delivery-status") or {}
        text = c.text(status.get("message")) or c.text(status.get("description"))
        severity = str(data.get("severity") or "")
        outcome = {"permanent": Outcome.BOUNCED, "temporary": Outcome.DEFERRED}.get(severity)
        return [
            c.attempt(
                event_id,
                ts,
                recipient,
                outcome or Outcome.DELIVERED,
                meta,
                diagnostic=text,
                code=status.get("code"),
                phase=esp_phase("mailgun", severity or "delivered", reason),
                remote=status.get("mx-host"),
                message_id=(data.get("message") or {}).get("headers", {}).get("message-id"),
            )
        ]
    action = {"opened": EngagementAction.OPEN, "clicked": EngagementAction.CLICK}.get(str(event))
    if action is not None:
        return [c.engagement(event_id, ts, recipient, action, meta)]
    kind = {"complained": FeedbackKind.COMPLAINT, "unsubscribed": FeedbackKind.UNSUBSCRIBE}.get(
        str(event)
    )
    return [c.feedback(event_id, ts, recipient, kind, meta)] if kind else []
