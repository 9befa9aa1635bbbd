"""SendGrid's Event Webhook: a JSON array of events; custom args are top-level fields."""

from __future__ import annotations

from pipeline.core.esp import common as c
from pipeline.core.esp.common import Doc, EspEvent
from pipeline.core.esp_verdicts import esp_phase
from pipeline.core.events import EngagementAction, FeedbackKind
from pipeline.core.models import Outcome


def map_event(item: Doc, tenant: str) -> list[EspEvent]:
    """One element of a SendGrid Event Webhook array; custom args are top-level fields."""
    event = item.get("event")
    meta = c.meta(item, tenant)
    event_id = c.event_id(f"sendgrid:{event}", item.get("sg_event_id"), item)
    email, ts = item.get("email"), item.get("timestamp")
    if event == "bounce":
        phase = esp_phase(
            "sendgrid", item.get("type") or "bounce", item.get("bounce_classification")
        )
        return [
            c.attempt(
                event_id,
                ts,
                email,
                Outcome.BOUNCED,
                meta,
                diagnostic=item.get("reason"),
                status=item.get("status"),
                phase=phase,
                message_id=item.get("sg_message_id"),
            )
        ]
    if event in ("deferred", "delivered"):
        outcome = Outcome.DEFERRED if event == "deferred" else Outcome.DELIVERED
        return [
            c.attempt(
                event_id,
                ts,
                email,
                outcome,
                meta,
                diagnostic=item.get("response"),
                phase=esp_phase("sendgrid", str(event)),
                message_id=item.get("sg_message_id"),
            )
        ]
    if event in ("open", "click"):
        if item.get("sg_machine_open") is True:
            return []  # a mail client's prefetch (Apple Mail Privacy Protection), not a person
        action = EngagementAction.OPEN if event == "open" else EngagementAction.CLICK
        return [c.engagement(event_id, ts, email, action, meta)]
    kind = _SENDGRID_FEEDBACK.get(str(event))
    return [c.feedback(event_id, ts, email, kind, meta)] if kind else []


_SENDGRID_FEEDBACK = {
    "spamreport": FeedbackKind.COMPLAINT,
    "unsubscribe": FeedbackKind.UNSUBSCRIBE,
    "group_unsubscribe": FeedbackKind.UNSUBSCRIBE,
}
