"""The webhook page's authentication step (pipeline.web.webhooks.authenticate) without a
server: a provider with no credentials refuses everything; a body whose signature lives in
its JSON must be JSON. The pages on a live worker: tests/integration/test_webhooks.py."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pipeline.config import Settings
from pipeline.core.webhook_auth import AuthError
from pipeline.web.webhooks import ApiError, Credentials, authenticate
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


def configured(tmp_path: Path) -> Credentials:
    cert = tmp_path / "sns.pem"
    cert.write_bytes(SNS.pem)
    settings = Settings.from_env(
        {
            "BOUNCEGUARD_SENDGRID_PUBLIC_KEY": SENDGRID.public_b64,
            "BOUNCEGUARD_MAILGUN_SIGNING_KEY": MAILGUN_KEY,
            "BOUNCEGUARD_POSTMARK_BASIC_AUTH": BASIC,
            "BOUNCEGUARD_SPARKPOST_BASIC_AUTH": BASIC,
            "BOUNCEGUARD_SNS_CERT_FILE": str(cert),
            "BOUNCEGUARD_SNS_TOPIC_ARNS": f" {TOPIC_ARN} ,arn:aws:sns:eu-west-1:1:Other",
        }
    )
    return Credentials.from_settings(settings)


def requests() -> dict[str, tuple[bytes, dict[str, str]]]:
    """One authentic request per provider."""
    sendgrid = (ESP / "sendgrid-events.json").read_bytes()
    mailgun = orjson.loads((ESP / "mailgun-failed-bounce.json").read_bytes())
    ses = SNS.sign(sns_envelope((ESP / "ses-bounce-dsn.json").read_bytes()))
    return {
        "sendgrid": (sendgrid, SENDGRID.headers(sendgrid)),
        "mailgun": (mailgun_signed(mailgun), {}),
        "postmark": (b"{}", basic_header()),
        "sparkpost": (b"[]", basic_header()),
        "ses": (orjson.dumps(ses), {}),
    }


@pytest.mark.parametrize("provider", ["ses", "sendgrid", "mailgun", "postmark", "sparkpost"])
def test_each_provider_passes_with_its_credentials(provider: str, tmp_path: Path) -> None:
    body, headers = requests()[provider]
    authenticate(configured(tmp_path), provider, body, headers)


@pytest.mark.parametrize("provider", ["ses", "sendgrid", "mailgun", "postmark", "sparkpost"])
def test_a_provider_without_credentials_refuses_even_an_authentic_request(
    provider: str,
) -> None:
    """Catches: an unset setting read as "no check needed"."""
    body, headers = requests()[provider]
    with pytest.raises(AuthError, match="configured"):
        authenticate(Credentials(), provider, body, headers)


@pytest.mark.parametrize("provider", ["ses", "mailgun"])
def test_a_signature_inside_a_body_that_is_not_json_is_400(provider: str, tmp_path: Path) -> None:
    with pytest.raises(ApiError) as err:
        authenticate(configured(tmp_path), provider, b"not json", {})
    assert (err.value.status, err.value.reason) == (400, "bad_json")


def test_a_bad_key_setting_fails_at_start_up() -> None:
    with pytest.raises(ValueError, match="SendGrid public key"):
        Credentials.from_settings(Settings.from_env({"BOUNCEGUARD_SENDGRID_PUBLIC_KEY": "x"}))
