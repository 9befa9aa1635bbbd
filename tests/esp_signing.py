"""Test keys and signers for the ESP webhooks: each test makes its own (nothing real is
checked in), signs the documented samples with them, and hands the worker the public half.
Shared by tests/unit/test_webhook_auth.py and tests/integration/test_webhooks.py."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from pipeline.core.webhook_auth import sns_canonical

TOPIC_ARN = "arn:aws:sns:us-west-2:123456789012:MyTopic"
MAILGUN_KEY = "key-test-signing-0123456789abcdef"
BASIC = "bounceguard:webhook-pass"


@dataclass(frozen=True)
class SendGridKey:
    """An ECDSA P-256 pair; `public_b64` is the form the SendGrid console shows."""

    private: ec.EllipticCurvePrivateKey
    public_b64: str

    def headers(self, body: bytes, timestamp: str = "1600112502") -> dict[str, str]:
        """The two signed-webhook headers SendGrid sends with `body`."""
        signature = self.private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }


def sendgrid_key() -> SendGridKey:
    """A fresh SendGrid-style key pair."""
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SendGridKey(private, base64.b64encode(der).decode())


def mailgun_signed(doc: dict[str, Any], key: str = MAILGUN_KEY) -> bytes:
    """`doc` (a Mailgun body) with its signature object recomputed for `key`."""
    sig = dict(doc["signature"])
    mac = hmac.new(key.encode(), (sig["timestamp"] + sig["token"]).encode(), hashlib.sha256)
    sig["signature"] = mac.hexdigest()
    return orjson.dumps({**doc, "signature": sig})


def basic_header(credentials: str = BASIC) -> dict[str, str]:
    """The Authorization header of HTTP basic auth."""
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


@dataclass(frozen=True)
class SnsSigner:
    """A self-signed RSA certificate standing in for the SNS signing certificate."""

    private: rsa.RSAPrivateKey
    pem: bytes

    def sign(self, message: dict[str, Any], version: str = "1") -> dict[str, Any]:
        """`message` with SignatureVersion and Signature set as SNS would."""
        signed = {**message, "SignatureVersion": version}
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        raw = self.private.sign(sns_canonical(signed), padding.PKCS1v15(), algorithm)
        return {**signed, "Signature": base64.b64encode(raw).decode()}


def sns_signer() -> SnsSigner:
    """A fresh signer and its PEM certificate."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test.invalid")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(private, hashes.SHA256())
    )
    return SnsSigner(private, cert.public_bytes(serialization.Encoding.PEM))


def sns_envelope(
    message: bytes | str, message_id: str = "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"
) -> dict[str, Any]:
    """An SNS Notification (tests/data/esp/sns-notification.json's fields) carrying `message`."""
    text = message.decode() if isinstance(message, bytes) else message
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": TOPIC_ARN,
        "Message": text,
        "Timestamp": "2016-01-27T14:59:39.000Z",
        "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
    }
