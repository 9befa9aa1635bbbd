"""engagement.events / feedback.events decoding: ARF reports -> Feedback, field by field, and
the reasons a bad message is rejected with (written against `make mutants` survivors)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from pipeline.core.arf import ArfReport, parse_arf
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.events import Engagement, EngagementAction, Feedback, FeedbackKind
from pipeline.core.messages import arf_feedback, decode_engagement, decode_feedback, event_kind
from pipeline.core.models import Attempt, Outcome

ARF = Path(__file__).resolve().parents[1] / "data" / "arf"
RECEIVED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def report(**fields: object) -> ArfReport:
    base: dict[str, object] = {
        "feedback_type": "opt-out",
        "original_rcpt_to": "a@example.com",
        "original_mail_from": None,
        "arrival_date": None,
        "source_ip": None,
        "reported_domain": None,
        "user_agent": None,
        "original_message_id": "m1",
    }
    return ArfReport(**{**base, **fields})  # type: ignore[arg-type]


def test_a_raw_report_with_our_headers_becomes_one_complaint() -> None:
    raw = (ARF / "yahoo-via-ses.eml").read_bytes()
    assert decode_feedback(raw, received=RECEIVED) == [
        Feedback(
            event_id="arf-08553f477ee1e35b524ba04874b43ad1",
            ts=datetime(2019, 10, 21, 15, 34, 36, tzinfo=UTC),
            recipient="johndoe@yahoo.co.uk",
            kind=FeedbackKind.COMPLAINT,
            tenant="shop",
            list_id="newsletter.shop.example",
            campaign_id="autumn-2019",
        )
    ]


def test_a_report_without_message_id_is_identified_by_its_bytes() -> None:
    raw = (ARF / "rfc5965-b2.eml").read_bytes()
    [event] = decode_feedback(raw, received=RECEIVED)
    assert event.event_id == "arf-38845a992d7d38bf451de2b3b44884d7"
    assert (event.tenant, event.list_id, event.campaign_id) == ("default", None, None)
    assert event.ts == datetime(2005, 3, 8, 18, 0, tzinfo=UTC)
    assert decode_feedback(raw, received=RECEIVED) == decode_feedback(raw, received=RECEIVED)


def test_an_opt_out_without_arrival_date_is_an_unsubscribe_at_the_kafka_time() -> None:
    assert arf_feedback(report(), b"raw", received=RECEIVED) == [
        Feedback(
            event_id="arf-8b9d28821a95d6b8380f2e6ce8457d62",
            ts=RECEIVED,
            recipient="a@example.com",
            kind=FeedbackKind.UNSUBSCRIBE,
            tenant="default",
        )
    ]


@pytest.mark.parametrize("kind", ["abuse", "fraud", "other"])
def test_complaint_feedback_types(kind: str) -> None:
    [event] = arf_feedback(report(feedback_type=kind), b"raw", received=RECEIVED)
    assert event.kind is FeedbackKind.COMPLAINT


@pytest.mark.parametrize("kind", ["not-spam", "virus", "auth-failure", "weird"])
def test_feedback_types_that_ask_for_nothing(kind: str) -> None:
    assert (
        arf_feedback(report(feedback_type=kind, original_rcpt_to=None), b"", received=RECEIVED)
        == []
    )


def test_a_complaint_naming_no_recipient_is_rejected() -> None:
    with pytest.raises(InvalidInput) as caught:
        arf_feedback(report(original_rcpt_to=None), b"raw", received=RECEIVED)
    assert caught.value.reason is Reason.MISSING_FIELD
    assert caught.value.detail == "the report names no original recipient"


def test_rejections_say_what_was_wrong() -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_engagement(b"[]")
    assert (caught.value.reason, caught.value.detail) == (Reason.MISSING_FIELD, "empty array")
    one = {"event_id": "e1", "ts": "2026-03-02T09:00:00Z", "recipient": "a@example.com"}
    with pytest.raises(InvalidInput) as caught:
        decode_engagement(orjson.dumps([one, 7]))
    assert (caught.value.reason, caught.value.detail) == (
        Reason.WRONG_TYPE,
        "element 1 is not a JSON object",
    )
    with pytest.raises(InvalidInput) as caught:
        decode_engagement(
            orjson.dumps([{**one, "type": "engagement"}, {**one, "type": "complaint"}])
        )
    assert (caught.value.reason, caught.value.detail) == (
        Reason.WRONG_TYPE,
        "element 1 is a complaint",
    )
    with pytest.raises(InvalidInput) as caught:
        decode_feedback(orjson.dumps({**one, "type": "engagement"}), received=RECEIVED)
    assert caught.value.detail == "element 0 is a engagement"


def test_json_feedback_defaults_to_a_complaint_and_engagement_to_an_open() -> None:
    one = {"event_id": "e1", "ts": "2026-03-02T09:00:00Z", "recipient": "a@example.com"}
    [complaint] = decode_feedback(b"  " + orjson.dumps([one]), received=RECEIVED)
    assert complaint.kind is FeedbackKind.COMPLAINT
    [opened] = decode_engagement(orjson.dumps(one))
    assert opened == Engagement("e1", RECEIVED, "a@example.com", EngagementAction.OPEN)


def test_event_kind_words() -> None:
    opened = Engagement("e1", RECEIVED, "a@example.com", EngagementAction.CLICK)
    attempt = Attempt("e2", RECEIVED, "a@example.com", Outcome.BOUNCED)
    unsub = Feedback("e3", RECEIVED, "a@example.com", FeedbackKind.UNSUBSCRIBE)
    assert [event_kind(opened), event_kind(attempt), event_kind(unsub)] == [
        "engagement",
        "attempt",
        "unsubscribe",
    ]


def test_parse_arf_is_what_decode_feedback_reads() -> None:
    raw = (ARF / "yahoo-via-ses.eml").read_bytes()
    assert decode_feedback(raw, received=RECEIVED) == arf_feedback(
        parse_arf(raw), raw, received=RECEIVED
    )


def test_a_raw_report_without_arrival_date_is_dated_by_kafka() -> None:
    raw = (ARF / "rfc5965-b2.eml").read_bytes().replace(b"Arrival-Date:", b"X-Arrival-Date:")
    [event] = decode_feedback(raw, received=RECEIVED)
    assert event.ts == RECEIVED
