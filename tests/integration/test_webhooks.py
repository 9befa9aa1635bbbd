"""ESP webhooks on the real stack: POST /v1/webhooks/{provider} on a live worker -> Kafka
(`esp.events.raw`) -> the ESP agent -> delivery.attempts / feedback.events -> the policy
agents -> suppressions in Redis and on `suppression.events`. Real Kafka and Redis; the
providers' documented samples (tests/data/esp), signed with keys made for the test."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.config import Settings
from tests.esp_signing import (
    BASIC,
    MAILGUN_KEY,
    TOPIC_ARN,
    basic_header,
    mailgun_signed,
    sendgrid_key,
    sns_envelope,
    sns_signer,
)
from tests.integration.conftest import WorkerProcess, kafka_ctl, read_topic, wait_for

pytestmark = pytest.mark.integration
ESP = Path(__file__).resolve().parents[1] / "data" / "esp"
SENDGRID = sendgrid_key()
SNS = sns_signer()


def sample(name: str) -> bytes:
    return (ESP / name).read_bytes()


def post(
    settings: Settings, provider: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """One webhook POST to the test worker; (status, decoded JSON answer)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{settings.web_port}/v1/webhooks/{provider}",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read())


def sns(name: str, message_id: str) -> bytes:
    """An SES sample inside an SNS Notification signed by the test certificate."""
    return orjson.dumps(SNS.sign(sns_envelope(sample(name), message_id)))


def authenticated() -> list[tuple[str, bytes, dict[str, str]]]:
    """Every provider's samples as the provider would POST them (valid credentials)."""
    sendgrid = [sample("sendgrid-events.json"), sample("sendgrid-blocked.json")]
    mailgun = ["mailgun-failed-bounce.json", "mailgun-failed-suppressed.json"]
    return [
        ("ses", sns("ses-bounce-dsn.json", "m-bounce"), {}),
        ("ses", sns("ses-complaint.json", "m-complaint"), {}),
        *(("sendgrid", body, SENDGRID.headers(body)) for body in sendgrid),
        *(("mailgun", mailgun_signed(orjson.loads(sample(n))), {}) for n in mailgun),
        ("postmark", sample("postmark-bounce.json"), basic_header()),
        ("sparkpost", sample("sparkpost-events.json"), basic_header()),
    ]


def forged() -> list[tuple[str, bytes, dict[str, str]]]:
    """The same providers with a wrong signature or credential each."""
    body = sample("sendgrid-events.json")
    return [
        ("ses", orjson.dumps(sns_signer().sign(sns_envelope(sample("ses-bounce-dsn.json")))), {}),
        ("sendgrid", body, sendgrid_key().headers(body)),
        ("mailgun", sample("mailgun-failed-bounce.json"), {}),  # Mailgun's own key signed it
        ("postmark", sample("postmark-bounce.json"), basic_header("bounceguard:guess")),
        ("sparkpost", sample("sparkpost-events.json"), {}),
    ]


@pytest.fixture
def webhook_worker(settings: Settings, worker_factory: Any, tmp_path: Path) -> WorkerProcess:
    """A worker with every provider's credentials configured; raw tenant acme."""
    cert = tmp_path / "sns.pem"
    cert.write_bytes(SNS.pem)
    worker: WorkerProcess = worker_factory(
        settings,
        BOUNCEGUARD_RAW_TENANT="acme",
        BOUNCEGUARD_SENDGRID_PUBLIC_KEY=SENDGRID.public_b64,
        BOUNCEGUARD_MAILGUN_SIGNING_KEY=MAILGUN_KEY,
        BOUNCEGUARD_POSTMARK_BASIC_AUTH=BASIC,
        BOUNCEGUARD_SPARKPOST_BASIC_AUTH=BASIC,
        BOUNCEGUARD_SNS_CERT_FILE=str(cert),
        BOUNCEGUARD_SNS_TOPIC_ARNS=TOPIC_ARN,
        BOUNCEGUARD_WEBHOOK_TIMEOUT="3",
        BOUNCEGUARD_WEBHOOK_MAX_BYTES="200000",
    )
    return worker


EXPECTED = {
    ("jane@example.com", "immediate_hard", "user_unknown"),  # SES Permanent, 550 5.1.1
    ("richard@example.com", "complaint", "complaint"),  # SES complaint
    ("example@test.com", "immediate_hard", "user_unknown"),  # SendGrid bounce
    ("alice@example.com", "immediate_hard", "user_unknown"),  # Mailgun permanent 550
    ("john@example.com", "immediate_hard", "user_unknown"),  # Postmark HardBounce
    ("recipient@example.com", "complaint", "complaint"),  # SparkPost spam_complaint
}
"""Not suppressed: SendGrid's `blocked` address, Mailgun's suppress-bounce (Mailgun did not
try), SparkPost's blacklist bounce (a block): none of them says anything against an address."""


def test_each_providers_authenticated_sample_ends_in_its_suppressions(
    settings: Settings, webhook_worker: WorkerProcess
) -> None:
    sent = authenticated()
    for provider, body, headers in sent:
        assert post(settings, provider, body, headers) == (200, {"accepted": True}), provider
    # A provider retry of an acked webhook: same body, same event ids, counted once.
    provider, body, headers = sent[0]
    assert post(settings, provider, body, headers)[0] == 200

    events = [orjson.loads(v) for v in read_topic(settings.kafka, settings.topics.suppressions, 6)]
    got = {(e["address"], e["rule"], e["reason"]) for e in events}
    assert got == EXPECTED, webhook_worker.tail()
    assert len(events) == len(EXPECTED)
    assert {e["tenant"] for e in events} == {"acme"}
    # the event time is the provider's (SES bounce.timestamp), not the processing time
    [jane] = [e for e in events if e["address"] == "jane@example.com"]
    assert jane["ts"] == "2016-01-27T14:59:38.237Z"
    for address, rule, _ in EXPECTED:
        status = _status(settings, address)
        assert rule in orjson.dumps(status).decode(), (address, status)

    # An open: no suppression, an engagement event for the engagement policy.
    opened = orjson.dumps(
        [
            {
                "email": "ann@example.com",
                "timestamp": 1772442000,
                "event": "open",
                "sg_event_id": "o1",
            }
        ]
    )
    assert post(settings, "sendgrid", opened, SENDGRID.headers(opened)) == (200, {"accepted": True})
    [event] = [orjson.loads(v) for v in read_topic(settings.kafka, settings.topics.engagement, 1)]
    assert (event["recipient"], event["action"], event["tenant"], event["event_id"]) == (
        "ann@example.com", "open", "acme", "sendgrid:open:o1",
    ), webhook_worker.tail()  # fmt: skip


def test_a_signed_sns_subscription_confirmation_is_logged_for_the_operator(
    settings: Settings, webhook_worker: WorkerProcess
) -> None:
    """Nothing is fetched at run time: the worker answers 200 and logs the SubscribeURL."""
    doc = SNS.sign(orjson.loads(sample("sns-subscription-confirmation.json")))
    status, answer = post(settings, "ses", orjson.dumps(doc))
    assert (status, answer["subscription"], answer["topic"]) == (
        200,
        "SubscriptionConfirmation",
        TOPIC_ARN,
    )
    assert answer["subscribe_url"] == doc["SubscribeURL"]
    wait_for(lambda: "confirm it once by opening SubscribeURL" in webhook_worker.tail(), 10)


def _status(settings: Settings, address: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{settings.web_port}/v1/addresses/{address}?tenant=acme"
    with urllib.request.urlopen(url, timeout=10) as resp:
        result: dict[str, Any] = orjson.loads(resp.read())
        return result


def test_a_wrong_signature_is_401_and_writes_nothing(
    settings: Settings, webhook_worker: WorkerProcess
) -> None:
    for provider, body, headers in forged():
        status, answer = post(settings, provider, body, headers)
        assert (status, answer["error"]) == (401, "unauthorized"), (provider, answer)
    assert post(settings, "mailchimp", b"{}")[0] == 404
    too_big = orjson.dumps([{"pad": "x" * 200_000}])
    assert post(settings, "postmark", too_big, basic_header()) == (
        413,
        {"error": "too_large", "detail": "the body is over 200000 bytes"},
    )
    # One authentic webhook after the refusals: the topic then holds exactly that one.
    good = sample("postmark-spam-complaint.json")
    assert post(settings, "postmark", good, basic_header())[0] == 200
    assert read_topic(settings.kafka, settings.topics.esp, 1) == [good]


def test_with_kafka_stopped_the_webhook_answers_503_then_200_once_it_is_back(
    settings: Settings, webhook_worker: WorkerProcess
) -> None:
    body = sample("postmark-bounce.json")
    assert post(settings, "postmark", body, basic_header())[0] == 200  # producer warmed up
    # The web server answers before faust has finished starting (declaring topics, joining
    # the group); a broker gone in that window can make faust's start-up fail and the worker
    # exit (seen once in a full run). The outage this test is about comes after start-up.
    log = webhook_worker.log
    wait_for(lambda: "[^Worker]: Ready" in log.read_text(errors="replace"), 60, webhook_worker.tail)
    kafka_ctl("stop")
    try:
        status, answer = post(settings, "postmark", body, basic_header())
        assert (status, answer["error"]) == (503, "kafka_unavailable"), webhook_worker.tail()
    finally:
        kafka_ctl("start")
    # What the provider does next: retry until it gets a 200.
    wait_for(lambda: post(settings, "postmark", body, basic_header())[0] == 200, 90)
    assert webhook_worker.proc.poll() is None, webhook_worker.tail()
