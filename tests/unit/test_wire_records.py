"""The compact records Redis keeps (bounce-log entries, history records) read back as exactly
what was written: a field in the wrong position, a dropped field or a lost ts fails here."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from pipeline.core.classify import classify_attempt
from pipeline.core.events import Feedback, FeedbackKind
from pipeline.core.models import Action, Attempt, Outcome, Scope, Suppression, format_ts
from pipeline.core.wire import (
    expand_entry,
    history_event,
    history_record,
    log_entry,
    to_ms,
)

TS = datetime(2026, 3, 2, 9, 0, 1, 250_000, tzinfo=UTC)


def bounce(**fields: object) -> Attempt:
    base: dict[str, object] = {
        "event_id": "e1",
        "ts": TS,
        "recipient": "a@example.com",
        "outcome": Outcome.BOUNCED,
        "tenant": "acme",
        "list_id": "news",
        "campaign_id": "c7",
        "smtp_code": 550,
        "enhanced_code": "5.1.1",
        "diagnostic": "550 5.1.1 user unknown",
        "remote_mta": "mx.example.com",
    }
    return Attempt(**{**base, **fields})  # type: ignore[arg-type]


def test_a_bounce_log_entry_expands_to_every_field_it_was_built_from() -> None:
    event = bounce()
    assert expand_entry(log_entry(event, classify_attempt(event))) == {
        "event_id": "e1",
        "ts": "2026-03-02T09:00:01.250Z",
        "list_id": "news",
        "campaign_id": "c7",
        "category": "user_unknown",
        "class": "hard",
        "outcome": "bounced",
        "smtp_code": 550,
        "enhanced_code": "5.1.1",
        "diagnostic": "550 5.1.1 user unknown",
        "remote_mta": "mx.example.com",
    }


def test_absent_fields_stay_absent_and_trailing_nulls_are_not_stored() -> None:
    event = bounce(list_id=None, campaign_id=None, remote_mta=None, diagnostic="")
    raw = log_entry(event, classify_attempt(event))
    assert orjson.loads(raw) == ["e1", to_ms(TS), "user_unknown", "hard", "bounced", None, None,
                                 550, "5.1.1"]  # fmt: skip
    assert expand_entry(raw) == {
        "event_id": "e1",
        "ts": "2026-03-02T09:00:01.250Z",
        "category": "user_unknown",
        "class": "hard",
        "outcome": "bounced",
        "smtp_code": 550,
        "enhanced_code": "5.1.1",
        "diagnostic": "",
    }


def test_a_feedback_entry_has_no_outcome_or_smtp_fields() -> None:
    event = Feedback("f1", TS, "a@example.com", FeedbackKind.COMPLAINT, "acme", campaign_id="c7")
    expanded = expand_entry(log_entry(event, event.classification()))
    assert expanded == {
        "event_id": "f1",
        "ts": "2026-03-02T09:00:01.250Z",
        "campaign_id": "c7",
        "category": "complaint",
        "class": "complaint",
        "diagnostic": "",
    }


def test_a_long_server_message_is_cut_at_500_characters() -> None:
    event = bounce(diagnostic="550 " + "x" * 900)
    assert len(expand_entry(log_entry(event, classify_attempt(event)))["diagnostic"]) == 500


def suppression(**fields: object) -> Suppression:
    base: dict[str, object] = {
        "event_id": "s9",
        "action": Action.SUPPRESSED,
        "address": "a@example.com",
        "tenant": "acme",
        "scope": Scope.LIST,
        "list_id": "news",
        "reason": "user_unknown",
        "rule": "immediate_hard",
        "count": 1,
        "threshold": 1,
        "policy": "default",
        "tag": "UnsubscribeService:fbl",
        "trigger_event_id": "e1",
        "ts": TS,
        "evidence": ({"event_id": "e1"},),
    }
    return Suppression(**{**base, **fields})  # type: ignore[arg-type]


def test_a_history_record_reads_back_as_the_event_without_its_evidence() -> None:
    s = suppression()
    want = s.to_json()
    del want["evidence"]
    got = history_event(history_record(s), event_id="s9", tenant="acme", ts_ms=to_ms(TS))
    assert list(got.items()) == list(want.items())  # same fields, same order
    assert b"s9" not in history_record(s) and b"acme" not in history_record(s)


def test_a_whole_second_ts_reads_back_without_a_fraction() -> None:
    whole = TS.replace(microsecond=400)  # sub-millisecond: integer ms drops it
    got = history_event(history_record(suppression(ts=whole)), event_id="s9", tenant="acme",
                        ts_ms=to_ms(whole))  # fmt: skip
    assert got["ts"] == format_ts(whole) == "2026-03-02T09:00:01Z"


def test_an_older_record_stored_as_the_whole_object_still_reads() -> None:
    old = {"event_id": "s1", "action": "suppressed", "tenant": "acme", "ts": "2026-03-02T09:00Z"}
    assert history_event(orjson.dumps(old), event_id="s1", tenant="acme", ts_ms=0) == old


def test_a_delivered_log_entry_keeps_its_tenant() -> None:
    """The delivered log is per address, so its entries carry the tenant (status filters on
    it); the bounce log's arrays do not."""
    raw = b'{"i":"d1","t":1772442000000,"te":"acme","s":250,"d":"250 ok","m":"mx.example.com"}'
    assert expand_entry(raw) == {
        "event_id": "d1",
        "ts": "2026-03-02T09:00:00Z",
        "tenant": "acme",
        "smtp_code": 250,
        "diagnostic": "250 ok",
        "remote_mta": "mx.example.com",
    }
