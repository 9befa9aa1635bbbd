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
Opens and clicks are engagement events (for the engagement policy, as on
`engagement.events`): SendGrid open/click (not a machine open, `sg_machine_open`: a mail
client's prefetch), Mailgun opened/clicked, Postmark Open/Click, SparkPost open, initial_open,
click and their AMP forms, SES event publishing Open/Click of a message with one destination
(SES names the message, not which of several recipients opened it).
Events that say nothing new about a recipient give nothing: sends, and the provider's refusals
to send to an address it already suppresses (SendGrid dropped, Mailgun suppress-*, Postmark
ManuallyDeactivated), which would count one old bounce again.
All or nothing per body, like `delivery.attempts`: one bad mapped event rejects the body
(dead-lettered whole, its index in the detail), so a batch is never half counted.
Pure: no I/O. Authentication is pipeline.core.webhook_auth's (the web layer's) job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline.core.decode import load_json
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.esp import mailgun, postmark, sendgrid, ses, sparkpost
from pipeline.core.esp.common import MAX_ESP_BYTES, Doc, EspEvent

__all__ = ["MAX_ESP_BYTES", "PROVIDERS", "EspEvent", "parse_esp"]

PROVIDERS: dict[str, Callable[[Doc, str], list[EspEvent]]] = {
    "ses": ses.map_event,
    "sendgrid": sendgrid.map_event,
    "mailgun": mailgun.map_event,
    "postmark": postmark.map_event,
    "sparkpost": sparkpost.map_event,
}
"""Every provider with a webhook, and its per-event mapper (one module each)."""


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
