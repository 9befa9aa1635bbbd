"""Replay lines -> events: each field, the defaults, and the exact detail of each rejection
(written against `make mutants` survivors; see docs/mutants.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.events import (
    Engagement,
    EngagementAction,
    Feedback,
    FeedbackKind,
    decode_event_line,
    event_from_mapping,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ONE = {"event_id": "e1", "ts": "2026-03-02T09:00:00Z", "recipient": "A@X.com"}


def detail(obj: object) -> tuple[Reason, str]:
    with pytest.raises(InvalidInput) as caught:
        event_from_mapping(obj)
    return caught.value.reason, caught.value.detail


def test_an_engagement_line_with_every_field() -> None:
    line = {**ONE, "type": "engagement", "action": "CLICK", "tenant": "t1", "list_id": 7,
            "campaign_id": "c1"}  # fmt: skip
    assert event_from_mapping(line) == Engagement(
        "e1", T0, "a@x.com", EngagementAction.CLICK, tenant="t1", list_id="7", campaign_id="c1"
    )


def test_feedback_lines_and_defaults() -> None:
    assert decode_event_line(
        b'{"type":"unsubscribe","event_id":"e1","ts":"2026-03-02T09:00:00Z",'
        b'"recipient":"a@x.com","tenant":"","campaign_id":""}'
    ) == Feedback("e1", T0, "a@x.com", FeedbackKind.UNSUBSCRIBE)
    assert event_from_mapping({**ONE, "type": "engagement", "action": ""}) == Engagement(
        "e1", T0, "a@x.com", EngagementAction.OPEN
    )


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ([ONE], (Reason.WRONG_TYPE, "an event must be a JSON object")),
        ({**ONE, "type": "bounce"}, (Reason.WRONG_TYPE,
         "type must be attempt, engagement, complaint or unsubscribe")),
        ({**ONE, "type": "engagement", "action": "view"}, (Reason.WRONG_TYPE,
         "action must be open or click")),
        ({"type": "complaint", "event_id": "e1", "recipient": "a@x.com"},
         (Reason.MISSING_FIELD, "ts is required")),
        ({**ONE, "type": "complaint", "event_id": ""}, (Reason.MISSING_FIELD,
         "event_id is required")),
        ({**ONE, "type": "complaint", "recipient": None}, (Reason.MISSING_FIELD,
         "recipient is required")),
        ({**ONE, "type": "complaint", "campaign_id": False}, (Reason.WRONG_TYPE,
         "campaign_id must be a string")),
        ({**ONE, "type": "complaint", "list_id": 1.5}, (Reason.WRONG_TYPE,
         "list_id must be a string")),
    ],
)  # fmt: skip
def test_rejections(obj: object, expected: tuple[Reason, str]) -> None:
    assert detail(obj) == expected
