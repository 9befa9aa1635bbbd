"""ESP event webhooks (Amazon SES via SNS, SendGrid, Mailgun, Postmark, SparkPost): one raw
request body -> attempts and feedback events, or InvalidInput.

Per event, as the issue asks:
- one event per recipient (an SES bounce lists several);
- event time from the payload (the bounce, complaint or delivery time, never the send time);
- the provider's event id as the event id (`<provider>[:<event type>]:<id>`), so a provider's
  retry of the same POST counts once; where the id covers several recipients (SES
  feedbackId), 12 hex digits of the recipient are appended (hashed: event ids reach logs).
  SendGrid's and SparkPost's ids carry the event type too: their documented samples reuse
  one id for every event of a batch, and a bounce must not hide the complaint after it;
- the provider's own verdict (SES bounceType/bounceSubType, SendGrid type and
  bounce_classification, Mailgun severity and reason, Postmark Type, SparkPost bounce_class)
  in the attempt's smtp_phase as "esp:<key>", which the classifier weighs next to the SMTP
  text (pipeline.core.esp_verdicts, esp_verdicts.toml);
- tenant, list and campaign from the custom data the sender attached (`tenant`, `list_id`,
  `campaign_id` in SES tags, SendGrid custom args, Mailgun user-variables, Postmark Metadata,
  SparkPost rcpt_meta), else `tenant`.
Events that say nothing new about a recipient give nothing: sends, opens, clicks, and the
provider's refusals to send to an address it already suppresses (SendGrid dropped, Mailgun
suppress-*, Postmark ManuallyDeactivated), which would count one old bounce again.
All or nothing per body, like `delivery.attempts`: one bad mapped event rejects the body
(dead-lettered whole, its index in the detail), so a batch is never half counted.
Pure: no I/O. Authentication is pipeline.core.webhook_auth's (the web layer's) job.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from pipeline.core.classify import extract_codes
from pipeline.core.decode import load_json, normalize_address, parse_ts
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.esp_verdicts import esp_phase
from pipeline.core.events import Feedback, FeedbackKind
from pipeline.core.models import Attempt, Outcome

MAX_ESP_BYTES = 4 * 1024 * 1024
"""Largest body mapped (the web layer's own limit is lower: BOUNCEGUARD_WEBHOOK_MAX_BYTES)."""
EspEvent = Attempt | Feedback
_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
Doc = Mapping[str, Any]


def parse_esp(provider: str, body: bytes, *, tenant: str = "default") -> list[EspEvent]:
    """Map one webhook body of `provider` (one of PROVIDERS) to its events, [] when none
    matters. Raises InvalidInput: TOO_LARGE, BAD_JSON/BAD_ENCODING, WRONG_TYPE (unknown
    provider, a payload of the wrong shape), MISSING_FIELD, BAD_ADDRESS, BAD_TIMESTAMP."""
    mapper = PROVIDERS.get(provider)
    if mapper is None:
        raise InvalidInput(Reason.WRONG_TYPE, f"unknown provider {provider[:40]!r}")
    if len(body) > MAX_ESP_BYTES:
        raise InvalidInput(Reason.TOO_LARGE, f"body is {len(body)} bytes (max {MAX_ESP_BYTES})")
    doc = load_json(body)
    out: list[EspEvent] = []
    for index, item in enumerate(_items(provider, doc)):
        try:
            out += mapper(item, tenant)
        except InvalidInput as exc:
            raise InvalidInput(exc.reason, f"{provider} event {index}: {exc.detail}") from exc
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            detail = f"{provider} event {index}: unexpected shape ({type(exc).__name__})"
            raise InvalidInput(Reason.WRONG_TYPE, detail) from exc
    return out


def _items(provider: str, doc: Any) -> list[Doc]:
    """The events of a body: SendGrid and SparkPost post arrays, the others one object."""
    items = doc if isinstance(doc, list) else [doc]
    if provider in ("sendgrid", "sparkpost") and not isinstance(doc, list):
        raise InvalidInput(Reason.WRONG_TYPE, f"a {provider} body is a JSON array")
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidInput(Reason.WRONG_TYPE, f"{provider} event {index} is not an object")
    return items


# ---------------------------------------------------------------- shared helpers


def _id(provider: str, value: object, item: Doc) -> str:
    """`<provider>:<value>`; without one, a hash of the event itself (a retry is the same
    bytes, so the same id)."""
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
        return f"{provider}:{value}"
    return f"{provider}:h{_digest(repr(sorted(item.items())))[:24]}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _meta(custom: object, tenant: str) -> dict[str, Any]:
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


def _attempt(
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
    text = diagnostic or ""
    basic, enhanced = extract_codes(text)
    if isinstance(code, int) and not isinstance(code, bool) and 200 <= code <= 599:
        basic = code
    if isinstance(status, str) and _ENHANCED.fullmatch(status.strip()):
        enhanced = status.strip()
    return Attempt(
        event_id=event_id,
        ts=_ts(ts),
        recipient=_address(recipient),
        outcome=outcome,
        message_id=_text(message_id),
        smtp_code=basic,
        enhanced_code=enhanced,
        diagnostic=text,
        remote_mta=_text(remote),
        smtp_phase=phase,
        **meta,
    )


def _feedback(
    event_id: str, ts: object, recipient: object, kind: FeedbackKind, meta: dict[str, Any]
) -> Feedback:
    return Feedback(event_id=event_id, ts=_ts(ts), recipient=_address(recipient), kind=kind, **meta)


def _address(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(Reason.MISSING_FIELD, "the event names no recipient")
    return normalize_address(value)


def _ts(value: object) -> datetime:
    if value is None or value == "":
        raise InvalidInput(Reason.MISSING_FIELD, "the event has no time")
    if isinstance(value, str) and value.isdigit():  # SparkPost: epoch seconds as text
        return parse_ts(int(value))
    return parse_ts(value)


# ---------------------------------------------------------------- Amazon SES (SNS)


def _ses(item: Doc, tenant: str) -> list[EspEvent]:
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
    meta = _meta(mail.get("tags") or _ses_headers(mail), tenant)
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
    return f"ses:{feedback_id}:{_digest(str(address).strip().lower())[:12]}"


def _ses_bounce(item: Doc, mail: Doc, meta: dict[str, Any]) -> Iterator[EspEvent]:
    bounce = item["bounce"]
    phase = esp_phase("ses", bounce.get("bounceType"), bounce.get("bounceSubType"))
    for rcpt in bounce.get("bouncedRecipients") or []:
        yield _attempt(
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
        yield _feedback(event_id, complaint.get("timestamp"), address, FeedbackKind.COMPLAINT, meta)


def _ses_delivery(item: Doc, mail: Doc, meta: dict[str, Any]) -> Iterator[EspEvent]:
    delivery = item["delivery"]
    for address in delivery.get("recipients") or []:
        yield _attempt(
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
        yield _attempt(
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


_SES: dict[str, Callable[[Doc, Doc, dict[str, Any]], Iterator[EspEvent]]] = {
    "Bounce": _ses_bounce,
    "Complaint": _ses_complaint,
    "Delivery": _ses_delivery,
    "DeliveryDelay": _ses_delay,
}


# ---------------------------------------------------------------- SendGrid


def _sendgrid(item: Doc, tenant: str) -> list[EspEvent]:
    """One element of a SendGrid Event Webhook array; custom args are top-level fields."""
    event = item.get("event")
    meta = _meta(item, tenant)
    event_id = _id(f"sendgrid:{event}", item.get("sg_event_id"), item)
    email, ts = item.get("email"), item.get("timestamp")
    if event == "bounce":
        phase = esp_phase(
            "sendgrid", item.get("type") or "bounce", item.get("bounce_classification")
        )
        return [
            _attempt(
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
            _attempt(
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
    kind = _SENDGRID_FEEDBACK.get(str(event))
    return [_feedback(event_id, ts, email, kind, meta)] if kind else []


_SENDGRID_FEEDBACK = {
    "spamreport": FeedbackKind.COMPLAINT,
    "unsubscribe": FeedbackKind.UNSUBSCRIBE,
    "group_unsubscribe": FeedbackKind.UNSUBSCRIBE,
}


# ---------------------------------------------------------------- Mailgun


def _mailgun(item: Doc, tenant: str) -> list[EspEvent]:
    """A Mailgun webhook body: {"signature": ..., "event-data": {...}}."""
    data = item.get("event-data")
    if not isinstance(data, Mapping):
        raise InvalidInput(Reason.MISSING_FIELD, "the body has no event-data object")
    event = data.get("event")
    meta = _meta(data.get("user-variables"), tenant)
    event_id = _id("mailgun", data.get("id"), data)
    recipient, ts = data.get("recipient"), data.get("timestamp")
    if event in ("failed", "delivered"):
        reason = str(data.get("reason") or "")
        if reason.startswith("suppress-"):
            return []  # Mailgun did not try: the address is on its own list already
        status = data.get("delivery-status") or {}
        text = _text(status.get("message")) or _text(status.get("description"))
        severity = str(data.get("severity") or "")
        outcome = {"permanent": Outcome.BOUNCED, "temporary": Outcome.DEFERRED}.get(severity)
        return [
            _attempt(
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
    kind = {"complained": FeedbackKind.COMPLAINT, "unsubscribed": FeedbackKind.UNSUBSCRIBE}.get(
        str(event)
    )
    return [_feedback(event_id, ts, recipient, kind, meta)] if kind else []


# ---------------------------------------------------------------- Postmark


def _postmark(item: Doc, tenant: str) -> list[EspEvent]:
    """One Postmark webhook, by RecordType (Bounce, SpamComplaint, Delivery,
    SubscriptionChange; the others, opens and clicks, give nothing)."""
    handler = _POSTMARK.get(str(item.get("RecordType")))
    return handler(item, _meta(item.get("Metadata"), tenant)) if handler else []


def _postmark_delivery(item: Doc, meta: dict[str, Any]) -> list[EspEvent]:
    recipient = item.get("Recipient")
    event_id = f"postmark:delivery:{item.get('MessageID')}:{_digest(str(recipient))[:12]}"
    return [
        _attempt(
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
    return [_feedback(event_id, when, who, FeedbackKind.UNSUBSCRIBE, meta)]


def _postmark_complaint(item: Doc, meta: dict[str, Any]) -> list[EspEvent]:
    event_id = f"postmark:complaint:{item.get('ID')}"
    when, who = item.get("BouncedAt"), item.get("Email")
    return [_feedback(event_id, when, who, FeedbackKind.COMPLAINT, meta)]


def _postmark_bounce(item: Doc, meta: dict[str, Any]) -> list[EspEvent]:
    kind = str(item.get("Type") or "")
    if kind == "SpamComplaint":
        return _postmark_complaint(item, meta)
    if kind in _POSTMARK_SKIP:
        return []
    event_id = _id("postmark:bounce", item.get("ID"), item)
    if kind == "Unsubscribe":
        when, who = item.get("BouncedAt"), item.get("Email")
        return [_feedback(event_id, when, who, FeedbackKind.UNSUBSCRIBE, meta)]
    return [
        _attempt(
            event_id,
            item.get("BouncedAt"),
            item.get("Email"),
            Outcome.DEFERRED if kind == "Transient" else Outcome.BOUNCED,
            meta,
            diagnostic=_text(item.get("Details")) or _text(item.get("Description")),
            phase=esp_phase("postmark", kind),
            message_id=item.get("MessageID"),
        )
    ]


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
}


# ---------------------------------------------------------------- SparkPost


def _sparkpost(item: Doc, tenant: str) -> list[EspEvent]:
    """One element of a SparkPost webhook batch: {"msys": {"<class>_event": {...}}}."""
    msys = item.get("msys") or {}
    event = next((v for v in msys.values() if isinstance(v, Mapping)), None)
    if event is None:
        return []  # SparkPost's test ping posts [{"msys": {}}]
    kind = str(event.get("type") or "")
    meta = _meta(event.get("rcpt_meta"), tenant)
    meta["campaign_id"] = meta["campaign_id"] or _text(event.get("campaign_id"))
    event_id = _id(f"sparkpost:{kind}", event.get("event_id"), event)
    rcpt, ts = event.get("rcpt_to"), event.get("timestamp")
    feedback = _SPARKPOST_FEEDBACK.get(kind)
    bounce_class = str(event.get("bounce_class") or "")
    if kind in ("bounce", "out_of_band") and bounce_class == "90":
        feedback = FeedbackKind.UNSUBSCRIBE  # "Unsubscribe: an unsubscribe request"
    if feedback is not None:
        return [_feedback(event_id, ts, rcpt, feedback, meta)]
    outcome = _SPARKPOST_OUTCOMES.get(kind)
    if outcome is None or bounce_class == "80":  # 80 Subscribe: a subscribe request
        return []
    return [
        _attempt(
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
_SPARKPOST_FEEDBACK = {
    "spam_complaint": FeedbackKind.COMPLAINT,
    "list_unsubscribe": FeedbackKind.UNSUBSCRIBE,
    "link_unsubscribe": FeedbackKind.UNSUBSCRIBE,
}

PROVIDERS: dict[str, Callable[[Doc, str], list[EspEvent]]] = {
    "ses": _ses,
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "postmark": _postmark,
    "sparkpost": _sparkpost,
}
"""Every provider with a webhook, and its per-event mapper."""
