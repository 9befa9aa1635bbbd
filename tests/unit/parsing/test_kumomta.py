"""KumoMTA JSON log records (tests/data/logs/kumo.jsonl; sources in README)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Outcome
from pipeline.core.parsing import make_parser

from .conftest import attempts_by_line


@pytest.fixture
def lines() -> dict[int, list]:
    return attempts_by_line(make_parser("kumo", tenant="fallback"), "kumo.jsonl")


def test_delivery_record_from_the_docs(lines: dict[int, list]) -> None:
    (a,) = lines[2]
    assert (a.outcome, a.recipient, a.smtp_code, a.enhanced_code) == (
        Outcome.DELIVERED,
        "user@recipient.example.com",
        250,
        "2.0.0",
    )
    assert (a.smtp_phase, a.remote_mta) == ("end of DATA", "gmail-smtp-in.l.google.com")
    assert a.ts == datetime.fromtimestamp(1678069691, UTC)
    assert a.message_id == "1d98076abbbc11ed940250ebf67f93bd"
    # no meta: campaign and tenant come from the queue name campaign:tenant@domain
    assert (a.campaign_id, a.tenant) == ("campaign", "tenant")


def test_recipient_list_gives_one_attempt_each_with_meta_labels(lines: dict[int, list]) -> None:
    attempts = lines[3]
    assert [a.recipient for a in attempts] == ["gone@example.net", "also-gone@example.net"]
    assert len({a.event_id for a in attempts}) == 2
    for a in attempts:
        assert (a.outcome, a.enhanced_code, a.smtp_phase) == (Outcome.BOUNCED, "5.1.1", "RCPT TO")
        assert (a.tenant, a.list_id, a.campaign_id) == ("acme", "newsletter", "spring-sale")


def test_transient_failure_and_expiration(lines: dict[int, list]) -> None:
    (t,) = lines[4]
    assert (t.outcome, t.smtp_code, t.smtp_phase, t.tenant) == (
        Outcome.DEFERRED,
        421,
        "MAIL FROM",
        "acme",
    )
    (e,) = lines[5]
    assert e.outcome is Outcome.EXPIRED
    assert e.ts == datetime(2023, 3, 13, 2, 28, 11, 10010, tzinfo=UTC)  # event_time wins
    assert e.remote_mta is None


def test_reception_and_feedback_are_not_attempts(lines: dict[int, list]) -> None:
    assert lines[1] == []
    assert lines[6] == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", Reason.BAD_JSON),
        ('{"no_type": 1}', Reason.UNKNOWN_FORMAT),
        ("[1, 2]", Reason.UNKNOWN_FORMAT),
        # a doc fragment (KumoMTA spool health page): no recipient at all
        (
            '{"type": "TransientFailure", "response": {"code": 400, "content": "KumoMTA '
            'internal: error in deliver_message: IO error: No such file or directory: ..."}}',
            Reason.BAD_TIMESTAMP,
        ),
        ('{"type":"Bounce","timestamp":1678069700,"recipient":[]}', Reason.BAD_ADDRESS),
        ('{"type":"Bounce","timestamp":1678069700,"recipient":[7]}', Reason.BAD_ADDRESS),
        ('{"type":"Bounce","timestamp":"soon","recipient":"a@example.com"}', Reason.BAD_TIMESTAMP),
    ],
)
def test_bad_records(line: str, reason: Reason) -> None:
    with pytest.raises(InvalidInput) as info:
        make_parser("kumo").feed(line)
    assert info.value.reason is reason


def test_malformed_optional_fields_are_ignored() -> None:
    record = {
        "type": "Bounce",
        "timestamp": 1678069700,
        "recipient": "a@example.com",
        "response": {"code": "550", "enhanced_code": {"class": 5}, "content": None},
        "peer_address": None,
        "meta": [],
    }
    (a,) = make_parser("kumo", tenant="t1").feed(orjson.dumps(record))
    assert (a.smtp_code, a.enhanced_code, a.diagnostic, a.tenant) == (None, None, "", "t1")
