"""The JSON Schemas in schemas/ describe what the code really reads and writes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from pipeline.core.decode import attempt_from_mapping, decode_attempts
from pipeline.core.dsn import parse_dsn
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.esp import parse_esp
from pipeline.core.events import Feedback
from pipeline.core.messages import decode_engagement, decode_feedback
from pipeline.core.models import Action, Scope, SenderAlert, Suppression
from pipeline.core.parsing import make_parser
from pipeline.stream.deadletter import envelope
from tests.esp_signing import sns_envelope, sns_signer

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
DATA = Path(__file__).resolve().parents[1] / "data"
NAMES = [
    "delivery.attempt.v1",
    "suppression.event.v1",
    "deadletter.v1",
    "engagement.event.v1",
    "feedback.event.v1",
    "sender.alert.v1",
    "mta.log.raw.v1",
    "bounce.mail.raw.v1",
    "esp.events.raw.v1",
]


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = orjson.loads((SCHEMAS / f"{name}.json").read_bytes())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def example(name: str) -> Any:
    return orjson.loads((SCHEMAS / "examples" / f"{name}.json").read_bytes())


@pytest.mark.parametrize("name", NAMES)
def test_every_example_is_valid(name: str) -> None:
    validator(name).validate(example(name))


def test_example_attempt_decodes_and_round_trips() -> None:
    attempt = attempt_from_mapping(example("delivery.attempt.v1"))
    validator("delivery.attempt.v1").validate(attempt.to_json())
    assert attempt_from_mapping(attempt.to_json()) == attempt


def test_an_array_of_attempts_is_one_message() -> None:
    doc = example("delivery.attempt.v1")
    batch = [doc, {**doc, "event_id": "second"}]
    validator("delivery.attempt.v1").validate(batch)
    assert [a.event_id for a in decode_attempts(orjson.dumps(batch))] == [doc["event_id"], "second"]


def test_schema_rejects_what_the_decoder_rejects() -> None:
    bad = {**example("delivery.attempt.v1"), "outcome": "exploded"}
    with pytest.raises(jsonschema.ValidationError):
        validator("delivery.attempt.v1").validate(bad)
    with pytest.raises(InvalidInput) as err:
        attempt_from_mapping(bad)
    assert err.value.reason is Reason.WRONG_TYPE


def test_suppression_model_matches_schema() -> None:
    event = Suppression(
        event_id="0" * 32,
        action=Action.SUPPRESSED,
        address="a@example.com",
        tenant="acme",
        scope=Scope.LIST,
        list_id="news",
        reason="user_unknown",
        rule="immediate",
        count=1,
        threshold=1,
        policy="listrak",
        tag=None,
        trigger_event_id="e1",
        ts=datetime(2026, 3, 2, 9, tzinfo=UTC),
        evidence=({"event_id": "e1", "ts": "2026-03-02T09:00:00Z", "category": "user_unknown"},),
    )
    validator("suppression.event.v1").validate(event.to_json())


@pytest.mark.parametrize("raw", [b"not json", b"\xff\xfe\x00 garbage", b"x" * 200_000])
def test_dead_letter_envelope_matches_schema(raw: bytes) -> None:
    doc = orjson.loads(
        envelope(raw, InvalidInput(Reason.BAD_JSON, "nope"), topic="t", partition=0, offset=7)
    )
    validator("deadletter.v1").validate(doc)
    assert doc["size"] == len(raw)
    assert doc["truncated"] is (len(raw) > 64 * 1024)


def test_dead_letter_schema_lists_every_reason() -> None:
    schema = orjson.loads((SCHEMAS / "deadletter.v1.json").read_bytes())
    assert set(schema["properties"]["reason"]["enum"]) == {r.value for r in Reason}


def test_every_topic_has_a_schema() -> None:
    names = {p.name.removesuffix(".json") for p in SCHEMAS.glob("*.v1.json")}
    assert names == set(NAMES)


def test_engagement_and_feedback_examples_decode() -> None:
    [open_] = decode_engagement(orjson.dumps(example("engagement.event.v1")))
    assert (open_.recipient, open_.action.value) == ("jane.doe@example.com", "open")
    received = datetime(2026, 3, 2, tzinfo=UTC)
    [complaint] = decode_feedback(orjson.dumps(example("feedback.event.v1")), received=received)
    assert complaint.kind.value == "complaint"
    validator("feedback.event.v1").validate({**complaint.to_json()})


def test_sender_alert_model_matches_schema() -> None:
    alert = SenderAlert(
        event_id="a1",
        tenant="news",
        rule="complaint_rate",
        policy="ecomail",
        count=4,
        sent=1000,
        rate=0.004,
        max_rate=0.001,
        window_days=30.0,
        ts=datetime(2026, 3, 2, 9, tzinfo=UTC),
    )
    validator("sender.alert.v1").validate(alert.to_json())


def test_raw_wrapper_example_parses_to_the_attempt_it_carries() -> None:
    doc = example("mta.log.raw.v1")
    [attempt] = make_parser("auto", year=2026).feed(orjson.dumps(doc))
    assert (attempt.recipient, attempt.enhanced_code) == ("nobody.here@gmail.com", "5.1.1")


@pytest.mark.parametrize("tenant", ["acme:l:news", "{acme}", "a b", "mallory@evil.example", ""])
def test_a_tenant_that_could_break_keys_or_labels_is_refused(tenant: str) -> None:
    doc = {**example("delivery.attempt.v1"), "tenant": tenant}
    if tenant == "":
        assert attempt_from_mapping(doc).tenant == "default"  # empty means not given
        return
    with pytest.raises(InvalidInput) as err:
        attempt_from_mapping(doc)
    assert err.value.reason is Reason.WRONG_TYPE


def test_bounce_mail_example_is_a_dsn_that_parses_to_valid_attempts() -> None:
    """The example is the message value as bytes (a JSON string here only for the schema)."""
    mail = example("bounce.mail.raw.v1")
    assert mail == (DATA / "dsn" / "postfix-5.1.1.eml").read_text()  # the documented sample
    [attempt] = parse_dsn(mail.encode())
    assert (attempt.recipient, attempt.enhanced_code, attempt.message_id) == (
        "jane.doe@example.com",
        "5.1.1",
        "send-7f3c2a9e01",
    )
    validator("delivery.attempt.v1").validate(attempt.to_json())


@pytest.mark.parametrize("mail", ["", "I am away until Monday.\n", "From jane Mon Mar  2\n"])
def test_bounce_mail_schema_refuses_what_is_not_a_mail(mail: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validator("bounce.mail.raw.v1").validate(mail)


ESP_SAMPLES = DATA / "esp"


def test_esp_example_is_a_sendgrid_batch_that_maps_to_valid_events() -> None:
    """The example is the documented SendGrid batch (key `sendgrid`); its events validate."""
    raw = (SCHEMAS / "examples" / "esp.events.raw.v1.json").read_bytes()
    assert raw == (ESP_SAMPLES / "sendgrid-events.json").read_bytes()
    events = parse_esp("sendgrid", raw)
    assert len(events) == 3
    for event in events:
        assert not isinstance(event, Feedback)
        validator("delivery.attempt.v1").validate(event.to_json())


def test_every_esp_sample_as_put_on_the_topic_is_valid() -> None:
    """What the web layer writes: the non-SES samples as they are, the SES ones in SNS."""
    signer = sns_signer()
    for path in sorted(ESP_SAMPLES.glob("*.json")):
        doc = orjson.loads(path.read_bytes())
        if path.name.startswith("ses-"):
            doc = signer.sign(sns_envelope(path.read_bytes()))
        validator("esp.events.raw.v1").validate(doc)


@pytest.mark.parametrize("doc", [{}, [], "text", {"Type": "Notification"}, [{"event": "x"}]])
def test_esp_schema_refuses_what_no_provider_sends(doc: Any) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validator("esp.events.raw.v1").validate(doc)
