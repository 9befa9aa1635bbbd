"""delivery.attempts decoding, field by field, with the exact reason and detail of each
rejection (written against `make mutants` survivors; see docs/mutants.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from pipeline.core.decode import (
    MAX_RECORD_BYTES,
    attempt_from_mapping,
    decode_attempts,
    load_json,
    normalize_address,
    parse_ts,
)
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Attempt, Outcome

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BASE = {"event_id": "e1", "ts": "2026-03-02T09:00:00Z", "recipient": "a@example.com"}


def rejected(call: object, *args: object) -> tuple[Reason, str]:
    with pytest.raises(InvalidInput) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.reason, caught.value.detail


def test_every_field_of_an_attempt_is_read_from_its_own_key() -> None:
    doc = {
        **BASE,
        "recipient": " <A@Example.COM> ",
        "outcome": "Bounced",
        "tenant": "t1",
        "list_id": "news",
        "campaign_id": "c1",
        "message_id": "m1",
        "smtp_code": "550",
        "enhanced_code": "5.1.1",
        "diagnostic": "550 5.1.1 user unknown",
        "remote_mta": "mx.example.com",
        "smtp_phase": "RCPT TO",
        "asynchronous": True,
    }
    assert attempt_from_mapping(doc) == Attempt(
        event_id="e1",
        ts=T0,
        recipient="a@example.com",
        outcome=Outcome.BOUNCED,
        tenant="t1",
        list_id="news",
        campaign_id="c1",
        message_id="m1",
        smtp_code=550,
        enhanced_code="5.1.1",
        diagnostic="550 5.1.1 user unknown",
        remote_mta="mx.example.com",
        smtp_phase="RCPT TO",
        asynchronous=True,
    )


def test_asynchronous_must_be_a_json_boolean() -> None:
    """Catches: a "false" string read as true (any non-empty string is truthy)."""
    assert (
        attempt_from_mapping({**BASE, "outcome": "bounced", "asynchronous": None}).asynchronous
        is False
    )
    for bad in ("false", 0, 1):
        with pytest.raises(InvalidInput) as caught:
            attempt_from_mapping({**BASE, "outcome": "bounced", "asynchronous": bad})
        assert (caught.value.reason, "asynchronous" in caught.value.detail) == (
            Reason.WRONG_TYPE,
            True,
        )


def test_absent_optional_fields_are_none_and_numbers_become_text() -> None:
    a = attempt_from_mapping({**BASE, "outcome": "delivered", "list_id": 42, "campaign_id": ""})
    assert a == Attempt("e1", T0, "a@example.com", Outcome.DELIVERED, list_id="42")
    assert (a.tenant, a.diagnostic, a.smtp_code) == ("default", "", None)
    assert attempt_from_mapping({**BASE, "outcome": "expired", "diagnostic": None}).diagnostic == ""
    assert attempt_from_mapping({**BASE, "outcome": "deferred", "smtp_code": ""}).smtp_code is None


@pytest.mark.parametrize(("code", "kept"), [(200, 200), (599, 599), ("421", 421)])
def test_smtp_code_bounds_are_inclusive(code: object, kept: int) -> None:
    assert attempt_from_mapping({**BASE, "outcome": "bounced", "smtp_code": code}).smtp_code == kept


@pytest.mark.parametrize("code", [199, 600, True, "5x0", 550.0, [550]])
def test_bad_smtp_codes(code: object) -> None:
    assert rejected(attempt_from_mapping, {**BASE, "outcome": "bounced", "smtp_code": code}) == (
        Reason.WRONG_TYPE,
        "smtp_code must be an integer from 200 to 599",
    )


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ([1], (Reason.WRONG_TYPE, "an attempt must be a JSON object")),
        ({**BASE}, (Reason.MISSING_FIELD, "outcome is required")),
        (
            {**BASE, "outcome": "lost"},
            (Reason.WRONG_TYPE, "outcome is not one of delivered|deferred|bounced|expired"),
        ),
        (
            {**BASE, "outcome": "bounced", "diagnostic": 5},
            (Reason.WRONG_TYPE, "diagnostic must be a string"),
        ),
        (
            {"event_id": "e1", "recipient": "a@example.com", "outcome": "bounced"},
            (Reason.MISSING_FIELD, "ts is required"),
        ),
        (
            {**BASE, "outcome": "bounced", "tenant": True},
            (Reason.WRONG_TYPE, "tenant must be a string"),
        ),
        (
            {**BASE, "outcome": "bounced", "list_id": {"a": 1}},
            (Reason.WRONG_TYPE, "list_id must be a string"),
        ),
        (
            {**BASE, "outcome": "bounced", "event_id": ""},
            (Reason.MISSING_FIELD, "event_id is required"),
        ),
    ],
)
def test_rejections_name_the_field(doc: object, expected: tuple[Reason, str]) -> None:
    assert rejected(attempt_from_mapping, doc if not isinstance(doc, list) else doc[0]) == expected


def test_address_normalization() -> None:
    assert normalize_address("  <Bob@Example.ORG>  ") == "bob@example.org"
    assert normalize_address("< x@y.com >") == "x@y.com"
    assert normalize_address("user@bücher.example") == "user@xn--bcher-kva.example"
    assert normalize_address("user@bücher.example") == "user@xn--bcher-kva.example"  # memo
    assert rejected(normalize_address, "MAILER-DAEMON") == (
        Reason.BAD_ADDRESS,
        "recipient is not a plausible e-mail address",
    )


def test_an_address_may_have_254_characters_not_255() -> None:
    exact = "l" * 64 + "@" + "d" * 63 + "." + "d" * 63 + "." + "d" * 57 + ".com"
    assert len(exact) == 254
    assert normalize_address(exact) == exact
    assert normalize_address(exact.upper()) == exact
    longer = exact[:-4] + "d.com"
    assert rejected(normalize_address, longer) == (
        Reason.BAD_ADDRESS,
        "recipient is not a plausible e-mail address",
    )


def test_a_bad_idna_domain_is_rejected_with_its_reason() -> None:
    assert rejected(normalize_address, "a@b\u00fccher" + "x" * 70 + ".example") == (
        Reason.BAD_ADDRESS,
        "domain is not valid IDNA",
    )


def test_the_last_at_sign_splits_local_part_and_domain() -> None:
    # only the domain is IDNA-encoded: an @ in the local part stays out of it
    with pytest.raises(InvalidInput):
        normalize_address("a@b@bücher.example")
    assert normalize_address("ab@bücher.example") == "ab@xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-02T09:00:00Z", T0),
        ("2026-03-02T09:00:00z", T0),
        ("2026-03-02T09:00:00", T0),
        ("2026-03-02T10:00:00+01:00", T0),
        (1772442000, T0),
        (1772442000.5, T0 + timedelta(milliseconds=500)),
    ],
)
def test_timestamps(value: object, expected: datetime) -> None:
    ts = parse_ts(value)
    assert ts == expected
    assert ts.tzinfo is UTC


def test_an_offset_timestamp_is_converted_to_utc() -> None:
    ts = parse_ts("2026-03-02T04:00:00-05:00")
    assert (ts.hour, ts.utcoffset(), ts.tzinfo) == (9, timedelta(0), UTC)
    assert ts != datetime(2026, 3, 2, 4, 0, tzinfo=timezone(timedelta(hours=-5))).replace(hour=5)


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (True, "ts must be RFC 3339 text or epoch seconds"),
        ("", "ts must be RFC 3339 text or epoch seconds"),
        (None, "ts must be RFC 3339 text or epoch seconds"),
        ([1], "ts must be RFC 3339 text or epoch seconds"),
        (1e20, "ts is out of range"),
        ("yesterday", "ts is not RFC 3339"),
        ("0001-01-01T00:00:00+01:00", "ts is out of range"),
    ],
)
def test_bad_timestamps(value: object, detail: str) -> None:
    assert rejected(parse_ts, value) == (Reason.BAD_TIMESTAMP, detail)


def test_load_json_limits_and_reasons() -> None:
    at_limit = b'"' + b"x" * (MAX_RECORD_BYTES - 2) + b'"'
    assert len(load_json(at_limit)) == MAX_RECORD_BYTES - 2
    reason, detail = rejected(load_json, at_limit + b" ")
    assert reason is Reason.TOO_LARGE
    assert detail == f"record is {MAX_RECORD_BYTES + 1} bytes (limit {MAX_RECORD_BYTES})"
    assert rejected(load_json, b'{"a": "\xff"}') == (
        Reason.BAD_ENCODING,
        "record is not valid UTF-8",
    )
    reason, detail = rejected(load_json, b"{" + b" " * 300 + b"x")
    assert reason is Reason.BAD_JSON
    assert detail.startswith("unexpected character") and len(detail) <= 200
    reason, detail = rejected(load_json, "{x")
    assert reason is Reason.BAD_JSON


def test_a_long_json_error_is_cut_to_200_characters() -> None:
    with pytest.raises(InvalidInput) as caught:
        load_json(b"[" * 10_000)
    assert len(caught.value.detail) <= 200
    try:
        orjson.loads(b"[" * 10_000)
    except orjson.JSONDecodeError as exc:
        assert caught.value.detail == str(exc)[:200]


def test_decode_attempts_all_or_nothing() -> None:
    one = {**BASE, "outcome": "bounced"}
    assert decode_attempts(orjson.dumps(one)) == [attempt_from_mapping(one)]
    assert rejected(decode_attempts, b"[]") == (Reason.MISSING_FIELD, "empty array")
    assert rejected(decode_attempts, orjson.dumps([one, {**one, "outcome": "x"}])) == (
        Reason.WRONG_TYPE,
        "element 1: outcome is not one of delivered|deferred|bounced|expired",
    )
    assert rejected(decode_attempts, orjson.dumps({**one, "outcome": "x"})) == (
        Reason.WRONG_TYPE,
        "outcome is not one of delivered|deferred|bounced|expired",
    )
