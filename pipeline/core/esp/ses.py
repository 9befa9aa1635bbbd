"""Amazon SES through SNS: an SNS Notification whose Message is the SES notification (or
event-publishing) JSON; one event per listed recipient, ids from the SES feedbackId."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pipeline.core.decode import load_json
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.esp import common as c
from pipeline.core.esp.common import Doc, EspEvent
from pipeline.core.esp_verdicts import esp_phase
from pipeline.core.events import EngagementAction, FeedbackKind
from pipeline.core.models import Outcome


def map_event(item: Doc, tenant: str) -> list[EspEvent]:
    """An SNS envelope (Type Notification, the SES JSON in Message) or the SES JSON itself
    (notifications: notificationType; event publishing: eventType)."""
    if item.get("Type") in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        return []  # handled (logged) by the web layer; nothing about a recipient
    if item.get("Type") == "Notification":
        message = load_json(str(item.get("Message") or ""))
        if not isinstance(message, Mapping):
            raise InvalidInput(Reason.WRONG_TYPE, "the SNS Message is not a JSON object")
        item = message
    kind = item.get("notificationType") or item.get("eventType")
    mail = item.get("mail") or {}
    meta = c.meta(mail.get("tags") or _ses_headers(mail), tenant)
    handler = _SES.get(str(kind))
    return list(handler(item, mail, meta)) if handler else []


def _ses_headers(mail: Doc) -> dict[str, str]:
    """tenant/list/campaign from X-BG-* headers of the original mail, when SES includes them."""
    names = {"x-bg-tenant": "tenant", "x-bg-list": "list_id", "x-bg-campaign": "campaign_id"}
    out = {}
    for header in mail.get("headers") or []:
        key = names.get(str(header.get("name", "")).lower())
        if key and isinstance(header.get("value"), str):
            out[key] = header["value"]
    return out


def _per_recipient(feedback_id: str, address: object) -> str:
    return f"ses:{feedback_id}:{c.digest(str(address).strip().lower())[:12]}"


def _ses_bounce(item: Doc, mail: Doc, meta: dict[str, Any]) -> Iterator[EspEvent]:
    bounce = item["bounce"]
    phase = esp_phase("ses", bounce.get("bounceType"), bounce.get("bounceSubType"))
    for rcpt in bounce.get("bouncedRecipients") or []:
        yield c.attempt(
            _per_recipient(
                str(bounce.get("feedbackId") or mail.get("messageId")), rcpt.get("emailAddress")
            ),
            bounce.get("timestamp"),
            rcpt.get("emailAddress"),
            Outcome.BOUNCED,
            meta,
            diagnostic=rcpt.get("diagnosticCode"),
            status=rcpt.get("status"),
            phase=phase,
            remote=bounce.get("remoteMtaIp"),
            message_id=mail.get("messageId"),
        )


def _ses_complaint(item: Doc, mail: Doc, meta: dict[str, Any]) -> Iterator[EspEvent]:
    complaint = item["complaint"]
    if complaint.get("complaintFeedbackType") == "not-spam":
        return  # the recipient says it is not spam: no wish to stop mail
    for rcpt in complaint.get("complainedRecipients") or []:
        address = rcpt.get("emailAddress")
        event_id = _per_recipient(str(complaint.get("feedbackId")), address)
        yield c.feedback(
            event_id, complaint.get("timestamp"), address, FeedbackKind.COMPLAINT, meta
        )


def _ses_delivery(item: Doc, mail: Doc, meta: dict[str, Any]) -> Iterator[EspEvent]:
    delivery = item["delivery"]
    for address in delivery.get("recipients") or []:
        yield c.attempt(
            _per_recipient(f"delivery:{mail.get('messageId')}", address),
            delivery.get("timestamp"),
            address,
            Outcome.DELIVERED,
            meta,
            diagnostic=delivery.get("smtpResponse"),
            remote=delivery.get("remoteMtaIp"),
            message_id=mail.get("messageId"),
        )


def _ses_delay(item: Doc, mail: Doc, meta: dict[str, Any]) -> Iterator[EspEvent]:
    delay = item["deliveryDelay"]
    phase = esp_phase("ses", "delay", delay.get("delayType"))
    for rcpt in delay.get("delayedRecipients") or []:
        address = rcpt.get("emailAddress")
        yield c.attempt(
            _per_recipient(f"delay:{mail.get('messageId')}:{delay.get('timestamp')}", address),
            delay.get("timestamp"),
            address,
            Outcome.DEFERRED,
            meta,
            diagnostic=rcpt.get("diagnosticCode"),
            status=rcpt.get("status"),
            phase=phase,
            message_id=mail.get("messageId"),
        )


def _ses_engagement(item: Doc, mail: Doc, meta: dict[str, Any]) -> Iterator[EspEvent]:
    # SES reports an open or click per message, listing every destination of it: who
    # opened is known only when there was one.
    kind = str(item.get("eventType"))
    detail = item.get(kind.lower()) or {}
    destinations = mail.get("destination") or []
    if len(destinations) != 1:
        return
    address, when = destinations[0], detail.get("timestamp")
    action = EngagementAction.OPEN if kind == "Open" else EngagementAction.CLICK
    event_id = _per_recipient(f"{kind.lower()}:{mail.get('messageId')}:{when}", address)
    yield c.engagement(event_id, when, address, action, meta)


_SES: dict[str, Callable[[Doc, Doc, dict[str, Any]], Iterator[EspEvent]]] = {
    "Bounce": _ses_bounce,
    "Complaint": _ses_complaint,
    "Delivery": _ses_delivery,
    "DeliveryDelay": _ses_delay,
    "Open": _ses_engagement,
    "Click": _ses_engagement,
}
