"""Authentication of ESP webhook requests, one check per provider; pure (no I/O: keys and
certificates are handed in, read once at start-up by the web layer).

- SendGrid (Signed Event Webhook): ECDSA P-256 / SHA-256 over the timestamp header's bytes
  followed by the raw body; the signature (base64 DER) in X-Twilio-Email-Event-Webhook-Signature,
  the timestamp in X-Twilio-Email-Event-Webhook-Timestamp; the public key is the one the
  SendGrid console shows (base64 DER, or PEM).
- Mailgun: HMAC-SHA256 (hex) of timestamp + token with the webhook signing key; all three
  are inside the JSON body (`signature` object).
- Postmark and SparkPost: HTTP basic auth, the credentials put in the webhook URL / settings.
- Amazon SNS: the message signature (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA,
  PKCS#1 v1.5) over the canonical string of its fields, verified against a configured
  certificate instead of fetching SigningCertURL at run time; and the TopicArn must be one
  configured: AWS signs every customer's topics with the same certificate, so a valid
  signature alone proves only that the message came through SNS.

Every check returns None or raises AuthError(detail); no check compares secrets with `==`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
# The fields of each SNS message type that are signed, in the canonical (sorted) order.
_SNS_NOTIFICATION = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SNS_SUBSCRIPTION = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
SNS_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")


class AuthError(Exception):
    """The request is not authentic (answer 401, write nothing); `detail` says why, without
    any secret."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def load_sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """The SendGrid verification key from its console form (base64 DER) or PEM; ValueError
    when it is neither or not an EC key."""
    data = text.strip().encode()
    try:
        key = (
            serialization.load_pem_public_key(data)
            if data.startswith(b"-----")
            else serialization.load_der_public_key(base64.b64decode(data, validate=True))
        )
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the SendGrid public key is not base64 DER or PEM") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("the SendGrid public key is not an EC key")
    return key


def verify_sendgrid(
    key: ec.EllipticCurvePublicKey, body: bytes, signature: str | None, timestamp: str | None
) -> None:
    """Check SendGrid's ECDSA signature of timestamp + body."""
    if not signature or not timestamp:
        raise AuthError("missing SendGrid signature or timestamp header")
    try:
        der = base64.b64decode(signature, validate=True)
        key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature) as exc:
        raise AuthError("bad SendGrid signature") from exc


def verify_mailgun(signing_key: str, doc: Any) -> None:
    """Check the `signature` object of a decoded Mailgun body: hex HMAC-SHA256 of
    timestamp + token keyed with the signing key."""
    sig = doc.get("signature") if isinstance(doc, Mapping) else None
    if not isinstance(sig, Mapping):
        raise AuthError("the Mailgun body has no signature object")
    timestamp, token, given = (str(sig.get(k) or "") for k in ("timestamp", "token", "signature"))
    if not (timestamp and token and given):
        raise AuthError("the Mailgun signature lacks timestamp, token or signature")
    expected = hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), given.lower()):
        raise AuthError("bad Mailgun signature")


def verify_basic(expected: str, authorization: str | None) -> None:
    """Check an HTTP basic Authorization header against `expected` ("user:password")."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise AuthError("basic authentication required")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AuthError("malformed basic credentials") from exc
    if not hmac.compare_digest(given, expected.encode()):
        raise AuthError("wrong basic credentials")


def load_sns_certificates(pem: bytes) -> list[rsa.RSAPublicKey]:
    """The RSA keys of every certificate in a PEM file (a file may hold the current and the
    next SNS signing certificate, so a rotation needs no restart in step with AWS)."""
    keys = []
    for cert in x509.load_pem_x509_certificates(pem):
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("an SNS signing certificate holds an RSA key")
        keys.append(key)
    return keys


def sns_canonical(message: Mapping[str, Any]) -> bytes:
    """The string SNS signs: "Name\\nvalue\\n" for each signed field present, in order."""
    fields = _SNS_NOTIFICATION if message.get("Type") == "Notification" else _SNS_SUBSCRIPTION
    parts = []
    for name in fields:
        value = message.get(name)
        if value is None:
            if name == "Subject":
                continue  # the only optional signed field
            raise AuthError(f"the SNS message lacks {name}")
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode()


def verify_sns(
    keys: Sequence[rsa.RSAPublicKey], topics: Sequence[str], message: Mapping[str, Any]
) -> None:
    """Check an SNS message (the decoded JSON body): its Type, that its TopicArn is one of
    `topics`, and its Signature by one of `keys` with the hash its SignatureVersion names."""
    if message.get("Type") not in SNS_TYPES:
        raise AuthError("not an SNS message")
    if message.get("TopicArn") not in topics:
        raise AuthError("the SNS topic is not one configured")
    # SHA1 because SignatureVersion 1 is SNS's default and still what most topics send.
    versions = {"1": hashes.SHA1(), "2": hashes.SHA256()}  # noqa: S303
    algorithm = versions.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise AuthError("unknown SNS SignatureVersion")
    try:
        signature = base64.b64decode(str(message.get("Signature") or ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AuthError("malformed SNS signature") from exc
    canonical = sns_canonical(message)
    for key in keys:
        try:
            key.verify(signature, canonical, padding.PKCS1v15(), algorithm)
            return
        except InvalidSignature:
            continue
    raise AuthError("bad SNS signature")
