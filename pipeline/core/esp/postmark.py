"""Postmark's webhooks: one object per POST, told apart by RecordType."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.core.esp import common as c
from pipeline.core.esp.common import Doc, EspEvent
from pipeline.core.esp_verdicts import esp_phase
from pipeline.core.events import EngagementAction, FeedbackKind
from pipeline.core.models import Outcome


def map_event(item: Doc, tenant: str) -> list[EspEvent]:
    """One Postmark webhook, by RecordType (Bounce, SpamComplaint, Delivery,
    SubscriptionChange, Open, Click; the others give nothing)."""
    handler = _POSTMARK.get(str(item.get("RecordType")))
    return handler(item, c.meta(item.get("Metadata"), tenant)) if handler else []


def _postmark_delivery(item: Doc, meta: dict[str, Any]) -> list[EspEvent]:
    recipient = item.get("Recipient")
    event_id = f"postmark:delivery:{item.get('MessageID')}:{c.digest(str(recipient))[:12]}"
    return [
        c.attempt(
            event_id,
            item.get("DeliveredAt"),
            recipient,
            Outcome.DELIVERED,
            meta,
            diagnostic=item.get("Details"),
            message_id=item.get("MessageID"),
        )
    ]


def _postmark_subscription(item: Doc, meta: dict[str, Any]) -> list[EspEvent]:
    # Only the recipient's own opt-out is news: a HardBounce or SpamComplaint reason arrived
    # through its own webhook, and a reactivation on Postmark's side is not ours to follow.
    if item.get("SuppressSending") is not True:
        return []
    if item.get("SuppressionReason") != "ManualSuppression":
        return []
    event_id = f"postmark:unsubscribe:{item.get('MessageID')}:{item.get('ChangedAt')}"
    when, who = item.get("ChangedAt"), item.get("Recipient")
    return [c.feedback(event_id, when, who, FeedbackKind.UNSUBSCRIBE, meta)]


def _postmark_complaint(item: Doc, meta: dict[str, Any]) -> list[EspEvent]:
    event_id = f"postmark:complaint:{item.get('ID')}"
    when, who = item.get("BouncedAt"), item.get("Email")
    return [c.feedback(event_id, when, who, FeedbackKind.COMPLAINT, meta)]


def _postmark_bounce(item: Doc, meta: dict[str, Any]) -> list[EspEvent]:
    kind = str(item.get("Type") or "")
    if kind == "SpamComplaint":
        return _postmark_complaint(item, meta)
    if kind in _POSTMARK_SKIP:
        return []
    event_id = c.event_id("postmark:bounce", item.get("ID"), item)
    if kind == "Unsubscribe":
        when, who = item.get("BouncedAt"), item.get("Email")
        return [c.feedback(event_id, when, who, FeedbackKind.UNSUBSCRIBE, meta)]
    return [
        c.attempt(
            event_id,
            item.get("BouncedAt"),
            item.get("Email"),
            Outcome.DEFERRED if kind == "Transient" else Outcome.BOUNCED,
            meta,
            diagnostic=c.text(item.get("Details")) or c.text(item.get("Description")),
            phase=esp_phase("postmark", kind),
            message_id=item.get("MessageID"),
        )
    ]


def _postmark_engagement(item: Doc, meta: dict[str, Any]) -> list[EspEvent]:
    # Postmark gives an open or click no id of its own: the message, the recipient and the
    # time name it (a retry of the webhook is the same three).
    kind = str(item.get("RecordType"))
    who, when = item.get("Recipient"), item.get("ReceivedAt")
    event_id = f"postmark:{kind.lower()}:{item.get('MessageID')}:{c.digest(str(who))[:12]}:{when}"
    action = EngagementAction.OPEN if kind == "Open" else EngagementAction.CLICK
    return [c.engagement(event_id, when, who, action, meta)]


_POSTMARK_SKIP = frozenset(
    {"ManuallyDeactivated", "Subscribe", "AddressChange", "OpenRelayTest", "SMTPApiError",
     "InboundError", "TemplateRenderingFailed", "Unconfirmed"}
)  # fmt: skip
"""Bounce types that are not a delivery result for the recipient (Postmark's own actions,
inbound processing, template errors)."""
_POSTMARK: dict[str, Callable[[Doc, dict[str, Any]], list[EspEvent]]] = {
    "Bounce": _postmark_bounce,
    "SpamComplaint": _postmark_complaint,
    "Delivery": _postmark_delivery,
    "SubscriptionChange": _postmark_subscription,
    "Open": _postmark_engagement,
    "Click": _postmark_engagement,
}
