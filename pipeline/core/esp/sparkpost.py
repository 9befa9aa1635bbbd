"""SparkPost's webhooks: a JSON array of {"msys": {"<class>_event": {...}}} per POST."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.core.esp import common as c
from pipeline.core.esp.common import Doc, EspEvent
from pipeline.core.esp_verdicts import esp_phase
from pipeline.core.events import EngagementAction, FeedbackKind
from pipeline.core.models import Outcome


def map_event(item: Doc, tenant: str) -> list[EspEvent]:
    """One element of a SparkPost webhook batch: {"msys": {"<class>_event": {...}}}."""
    msys = item.get("msys") or {}
    event = next((v for v in msys.values() if isinstance(v, Mapping)), None)
    if event is None:
        return []  # SparkPost's test ping posts [{"msys": {}}]
    kind = str(event.get("type") or "")
    meta = c.meta(event.get("rcpt_meta"), tenant)
    meta["campaign_id"] = meta["campaign_id"] or c.text(event.get("campaign_id"))
    event_id = c.event_id(f"sparkpost:{kind}", event.get("event_id"), event)
    rcpt, ts = event.get("rcpt_to"), event.get("timestamp")
    feedback = _SPARKPOST_FEEDBACK.get(kind)
    bounce_class = str(event.get("bounce_class") or "")
    if kind in ("bounce", "out_of_band") and bounce_class == "90":
        feedback = FeedbackKind.UNSUBSCRIBE  # "Unsubscribe: an unsubscribe request"
    if feedback is not None:
        return [c.feedback(event_id, ts, rcpt, feedback, meta)]
    action = _SPARKPOST_ENGAGEMENT.get(kind)
    if action is not None:
        return [c.engagement(event_id, ts, rcpt, action, meta)]
    outcome = _SPARKPOST_OUTCOMES.get(kind)
    if outcome is None or bounce_class == "80":  # 80 Subscribe: a subscribe request
        return []
    return [
        c.attempt(
            event_id,
            ts,
            rcpt,
            outcome,
            meta,
            diagnostic=event.get("raw_reason"),
            code=_int(event.get("error_code")),
            phase=esp_phase("sparkpost", bounce_class),
            remote=event.get("ip_address"),
            message_id=event.get("message_id"),
        )
    ]


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


_SPARKPOST_OUTCOMES = {
    "bounce": Outcome.BOUNCED,
    "out_of_band": Outcome.BOUNCED,
    "delay": Outcome.DEFERRED,
    "delivery": Outcome.DELIVERED,
}
_SPARKPOST_ENGAGEMENT = {
    "open": EngagementAction.OPEN,
    "initial_open": EngagementAction.OPEN,
    "amp_open": EngagementAction.OPEN,
    "amp_initial_open": EngagementAction.OPEN,
    "click": EngagementAction.CLICK,
    "amp_click": EngagementAction.CLICK,
}
_SPARKPOST_FEEDBACK = {
    "spam_complaint": FeedbackKind.COMPLAINT,
    "list_unsubscribe": FeedbackKind.UNSUBSCRIBE,
    "link_unsubscribe": FeedbackKind.UNSUBSCRIBE,
}
