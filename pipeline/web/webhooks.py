"""ESP event webhooks on the worker's web server.

  POST /v1/webhooks/{ses,sendgrid,mailgun,postmark,sparkpost}

Each request is (1) checked for size (413 over BOUNCEGUARD_WEBHOOK_MAX_BYTES), (2)
authenticated by its provider's scheme (pipeline.core.webhook_auth; 401 and nothing written
when it fails or the provider has no credentials configured), (3) written whole, byte for
byte, to `esp.events.raw` keyed by `<provider>:<16 hex of the body's SHA-256>`, and (4)
answered 200 only once the broker acked that write: Kafka down or slow past
BOUNCEGUARD_WEBHOOK_TIMEOUT answers 503, so the provider retries (a write acked after the
503 is mapped twice to the same event ids and counts once). Mapping the body is the ESP
agent's job (pipeline.stream.esp), so a payload this code does not understand is a dead
letter to replay, never a lost request.

SNS subscription confirmations: nothing is fetched at run time, so the worker cannot confirm a
subscription itself. A signed SubscriptionConfirmation is written to the topic like any
message (a record of it), logged at WARNING with its topic and SubscribeURL, and answered
200; the operator confirms it once (open the SubscribeURL, or `aws sns confirm-subscription
--topic-arn ARN --token TOKEN`). docs/inputs.md says so too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from faust.web import View

from pipeline.config import Settings
from pipeline.core import webhook_auth
from pipeline.core.esp import PROVIDERS
from pipeline.core.webhook_auth import AuthError
from pipeline.stream import metrics
from pipeline.stream.app import Runtime

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answer (status, reason, detail), answered as pipeline.web answers its own:
    {"error": reason, "detail": detail}. Not imported from pipeline.web, which imports this
    module to register it."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


def error(web: Any, exc: ApiError) -> Any:
    """The JSON error answer for `exc`."""
    return web.json({"error": exc.reason, "detail": exc.detail}, status=exc.status)


@dataclass(frozen=True)
class Credentials:
    """Every provider's verification material, read once at start-up (a bad key or
    certificate file fails the start, not the first webhook)."""

    sendgrid: ec.EllipticCurvePublicKey | None = None
    mailgun: str | None = None
    postmark: str | None = None
    sparkpost: str | None = None
    sns_keys: list[rsa.RSAPublicKey] = field(default_factory=list)
    sns_topics: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        """Load what `settings` names; ValueError/OSError on an unreadable key or file."""
        pem = Path(settings.sns_cert_file).read_bytes() if settings.sns_cert_file else b""
        return cls(
            sendgrid=(
                webhook_auth.load_sendgrid_key(settings.sendgrid_public_key)
                if settings.sendgrid_public_key
                else None
            ),
            mailgun=settings.mailgun_signing_key or None,
            postmark=settings.postmark_basic_auth or None,
            sparkpost=settings.sparkpost_basic_auth or None,
            sns_keys=webhook_auth.load_sns_certificates(pem) if pem else [],
            sns_topics=tuple(t.strip() for t in settings.sns_topic_arns.split(",") if t.strip()),
        )


def attach(runtime: Runtime, settings: Settings) -> None:
    """Register POST /v1/webhooks/{provider} on `runtime.app`."""
    credentials = Credentials.from_settings(settings)

    class Webhook(View):
        """POST only: a provider never GETs its webhook."""

        async def post(self, request: Any, provider: str) -> Any:
            try:
                return self.json(await receive(runtime, settings, credentials, request, provider))
            except ApiError as exc:
                metrics.WEBHOOK_REQUESTS.labels(_label(provider), exc.reason).inc()
                return error(self, exc)

        async def get(self, request: Any, provider: str) -> Any:
            return error(self, ApiError(405, "method_not_allowed", "use POST"))

    runtime.app.page("/v1/webhooks/{provider}")(Webhook)


def _label(provider: str) -> str:
    return provider if provider in PROVIDERS else "unknown"


async def receive(
    runtime: Runtime, settings: Settings, credentials: Credentials, request: Any, provider: str
) -> dict[str, Any]:
    """Check, authenticate and write one webhook body; the answer's JSON. Raises ApiError:
    404 unknown provider, 413 too large, 400 unreadable (where the signature is inside the
    JSON), 401 not authentic, 503 the broker did not ack in time."""
    if provider not in PROVIDERS:
        raise ApiError(404, "unknown_provider", f"providers: {', '.join(PROVIDERS)}")
    limit = settings.webhook_max_bytes
    if (request.content_length or 0) > limit:
        raise ApiError(413, "too_large", f"the body is over {limit} bytes")
    body = await request.read()
    if len(body) > limit:
        raise ApiError(413, "too_large", f"the body is over {limit} bytes")
    try:
        doc = authenticate(credentials, provider, body, request.headers)
    except AuthError as exc:
        log.warning("webhook refused provider=%s reason=%s", provider, exc.detail)
        raise ApiError(401, "unauthorized", exc.detail) from exc
    await _write(runtime, settings, provider, body)
    if provider == "ses" and doc.get("Type") in (
        "SubscriptionConfirmation",
        "UnsubscribeConfirmation",
    ):
        return _subscription(doc)
    metrics.WEBHOOK_REQUESTS.labels(provider, "accepted").inc()
    return {"accepted": True}


def authenticate(
    credentials: Credentials, provider: str, body: bytes, headers: Any
) -> dict[str, Any]:
    """Verify one request by its provider's scheme; return its decoded JSON where the
    check needed it (Mailgun, SNS), else {}. Raises AuthError, and ApiError 400 for a body
    whose signature cannot even be read (not JSON)."""
    if provider == "sendgrid":
        if credentials.sendgrid is None:
            raise AuthError("no SendGrid public key configured")
        webhook_auth.verify_sendgrid(
            credentials.sendgrid,
            body,
            headers.get(webhook_auth.SENDGRID_SIGNATURE),
            headers.get(webhook_auth.SENDGRID_TIMESTAMP),
        )
        return {}
    if provider in ("postmark", "sparkpost"):
        expected = credentials.postmark if provider == "postmark" else credentials.sparkpost
        if expected is None:
            raise AuthError(f"no {provider} basic-auth credentials configured")
        webhook_auth.verify_basic(expected, headers.get("Authorization"))
        return {}
    doc = _json(body)
    if provider == "mailgun":
        if credentials.mailgun is None:
            raise AuthError("no Mailgun signing key configured")
        webhook_auth.verify_mailgun(credentials.mailgun, doc)
        return doc
    if not credentials.sns_keys or not credentials.sns_topics:
        raise AuthError("no SNS certificate or topic ARNs configured")
    webhook_auth.verify_sns(credentials.sns_keys, credentials.sns_topics, doc)
    return doc


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "bad_json", "the body is not JSON") from exc
    if not isinstance(doc, dict):
        raise ApiError(400, "wrong_type", "the body must be a JSON object")
    return doc


async def _write(runtime: Runtime, settings: Settings, provider: str, body: bytes) -> None:
    """Produce `body` to esp.events.raw and wait for the broker's ack; ApiError 503 when it
    does not come within the timeout or the producer fails."""

    # The provider names how to read the body; the hash spreads one provider's webhooks over
    # every partition, and puts a provider's retry of a body behind its first copy.
    key = f"{provider}:{hashlib.sha256(body).hexdigest()[:16]}".encode()

    async def send() -> None:
        future = await runtime.topics.esp.send(key=key, value=body)
        await future

    try:
        await asyncio.wait_for(send(), settings.webhook_timeout)
    except Exception as exc:  # TimeoutError, or any producer error: the provider retries
        log.warning("webhook not written provider=%s error=%s", provider, type(exc).__name__)
        raise ApiError(503, "kafka_unavailable", "not stored; retry later") from exc


def _subscription(doc: dict[str, Any]) -> dict[str, Any]:
    """Log an SNS (un)subscription confirmation for the operator (see the module doc)."""
    topic, url = doc.get("TopicArn"), doc.get("SubscribeURL")
    log.warning(
        "sns %s received topic=%s; confirm it once by opening SubscribeURL=%s",
        doc.get("Type"),
        topic,
        url,
    )
    metrics.WEBHOOK_REQUESTS.labels("ses", "subscription").inc()
    return {"accepted": True, "subscription": doc.get("Type"), "topic": topic, "subscribe_url": url}
