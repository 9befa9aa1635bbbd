"""Each provider's webhook authentication (pipeline.core.webhook_auth): a good signature or
credential passes, a wrong or missing one raises AuthError. Keys are generated per test run."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization

from pipeline.core import webhook_auth
from pipeline.core.webhook_auth import AuthError
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

ESP = Path(__file__).resolve().parents[1] / "data" / "esp"
SENDGRID = sendgrid_key()
SNS = sns_signer()


def sample(name: str) -> bytes:
    return (ESP / name).read_bytes()


# ---------------------------------------------------------------- SendGrid


def _verify_sendgrid(body: bytes, headers: dict[str, str], key: Any = None) -> None:
    webhook_auth.verify_sendgrid(
        key or webhook_auth.load_sendgrid_key(SENDGRID.public_b64),
        body,
        headers.get(webhook_auth.SENDGRID_SIGNATURE),
        headers.get(webhook_auth.SENDGRID_TIMESTAMP),
    )


def test_sendgrid_signature_over_timestamp_and_body_passes() -> None:
    body = sample("sendgrid-events.json")
    _verify_sendgrid(body, SENDGRID.headers(body))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, h: (body + b" ", h),  # the body changed after signing
        lambda body, h: (body, {**h, webhook_auth.SENDGRID_TIMESTAMP: "1600112503"}),
        lambda body, h: (body, {k: v for k, v in h.items() if "Signature" not in k}),
        lambda body, h: (body, {**h, webhook_auth.SENDGRID_SIGNATURE: "not base64!"}),
    ],
    ids=["body", "timestamp", "no-signature", "garbage"],
)
def test_sendgrid_wrong_signature_is_refused(tamper: Any) -> None:
    body = sample("sendgrid-events.json")
    body, headers = tamper(body, SENDGRID.headers(body))
    with pytest.raises(AuthError):
        _verify_sendgrid(body, headers)


def test_sendgrid_signature_of_another_key_is_refused() -> None:
    body = sample("sendgrid-events.json")
    with pytest.raises(AuthError, match="bad SendGrid signature"):
        _verify_sendgrid(body, sendgrid_key().headers(body))


def test_sendgrid_key_loads_from_pem_too_and_refuses_garbage() -> None:
    pem = SENDGRID.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = sample("sendgrid-events.json")
    _verify_sendgrid(body, SENDGRID.headers(body), webhook_auth.load_sendgrid_key(pem.decode()))
    with pytest.raises(ValueError, match="SendGrid public key"):
        webhook_auth.load_sendgrid_key("definitely not a key")


# ---------------------------------------------------------------- Mailgun


def test_mailgun_hmac_of_timestamp_and_token_passes() -> None:
    body = mailgun_signed(orjson.loads(sample("mailgun-failed-bounce.json")))
    webhook_auth.verify_mailgun(MAILGUN_KEY, orjson.loads(body))


def test_mailgun_documented_signature_fails_with_our_key() -> None:
    """The sample's signature was made with Mailgun's (unknown) key: ours must refuse it."""
    with pytest.raises(AuthError, match="bad Mailgun signature"):
        webhook_auth.verify_mailgun(MAILGUN_KEY, orjson.loads(sample("mailgun-failed-bounce.json")))


@pytest.mark.parametrize("field", ["timestamp", "token"])
def test_mailgun_changed_signed_field_is_refused(field: str) -> None:
    doc = orjson.loads(mailgun_signed(orjson.loads(sample("mailgun-failed-bounce.json"))))
    doc["signature"][field] += "0"
    with pytest.raises(AuthError):
        webhook_auth.verify_mailgun(MAILGUN_KEY, doc)


@pytest.mark.parametrize("doc", [{}, {"signature": "x"}, {"signature": {"token": "t"}}, []])
def test_mailgun_without_a_signature_object_is_refused(doc: Any) -> None:
    with pytest.raises(AuthError):
        webhook_auth.verify_mailgun(MAILGUN_KEY, doc)


# ---------------------------------------------------------------- basic auth


def test_basic_auth_passes_with_the_configured_credentials() -> None:
    webhook_auth.verify_basic(BASIC, basic_header()["Authorization"])


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer abc",
        "Basic !!!",
        basic_header("bounceguard:wrong")["Authorization"],
        basic_header(BASIC + "x")["Authorization"],
    ],
)
def test_basic_auth_refuses_anything_else(header: str | None) -> None:
    with pytest.raises(AuthError):
        webhook_auth.verify_basic(BASIC, header)


# ---------------------------------------------------------------- SNS


def _keys() -> list[Any]:
    return webhook_auth.load_sns_certificates(SNS.pem)


@pytest.mark.parametrize("version", ["1", "2"])
def test_sns_notification_signed_by_the_certificate_passes(version: str) -> None:
    message = SNS.sign(sns_envelope(sample("ses-bounce-dsn.json")), version)
    webhook_auth.verify_sns(_keys(), [TOPIC_ARN], message)


def test_sns_subscription_confirmation_signs_its_own_fields() -> None:
    doc = orjson.loads(sample("sns-subscription-confirmation.json"))
    webhook_auth.verify_sns(_keys(), [TOPIC_ARN], SNS.sign(doc))


def test_sns_documented_example_signature_is_refused() -> None:
    """The documentation's placeholder signature is not one of our certificate's."""
    doc = orjson.loads(sample("sns-subscription-confirmation.json"))
    with pytest.raises(AuthError, match="bad SNS signature"):
        webhook_auth.verify_sns(_keys(), [TOPIC_ARN], doc)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Message": "{}"}, "bad SNS signature"),
        ({"Subject": "added later"}, "bad SNS signature"),
        ({"TopicArn": "arn:aws:sns:us-west-2:999999999999:Other"}, "not one configured"),
        ({"SignatureVersion": "3"}, "SignatureVersion"),
        ({"Type": "Nope"}, "not an SNS message"),
        ({"Signature": "%%%"}, "malformed"),
    ],
)
def test_sns_changed_message_is_refused(change: dict[str, str], reason: str) -> None:
    message = SNS.sign(sns_envelope(sample("ses-bounce-dsn.json")))
    with pytest.raises(AuthError, match=reason):
        webhook_auth.verify_sns(_keys(), [TOPIC_ARN], {**message, **change})


def test_sns_signature_of_another_certificate_is_refused() -> None:
    message = sns_signer().sign(sns_envelope("{}"))
    with pytest.raises(AuthError, match="bad SNS signature"):
        webhook_auth.verify_sns(_keys(), [TOPIC_ARN], message)


def test_sns_file_with_two_certificates_accepts_either() -> None:
    """A rotation: the file holds the old and the new certificate."""
    other = sns_signer()
    keys = webhook_auth.load_sns_certificates(SNS.pem + other.pem)
    for signer in (SNS, other):
        webhook_auth.verify_sns(keys, [TOPIC_ARN], signer.sign(sns_envelope("{}")))


def test_sns_canonical_string_is_sorted_name_newline_value() -> None:
    message = {"Type": "Notification", "MessageId": "m", "TopicArn": "t", "Message": "x",
               "Timestamp": "ts"}  # fmt: skip
    assert webhook_auth.sns_canonical(message) == (
        b"Message\nx\nMessageId\nm\nTimestamp\nts\nTopicArn\nt\nType\nNotification\n"
    )
    assert base64.b64decode(SNS.sign(message)["Signature"])  # signs without a Subject


def test_sns_documented_notification_verifies_once_signed() -> None:
    """The documented example's own fields (with a Subject) sign and verify as SNS's do."""
    doc = orjson.loads(sample("sns-notification.json"))
    webhook_auth.verify_sns(_keys(), [TOPIC_ARN], SNS.sign(doc, "2"))
    assert doc["TopicArn"] == TOPIC_ARN
