"""Postfix parser against real log lines (tests/data/logs/postfix.log, sources in README)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Outcome
from pipeline.core.parsing import make_parser

from .conftest import attempts_by_line


@pytest.fixture
def lines() -> dict[int, list]:
    return attempts_by_line(make_parser("postfix", year=2024), "postfix.log")


def test_rcpt_phase_said_text_and_codes(lines: dict[int, list]) -> None:
    (a,) = lines[4]
    assert a.outcome is Outcome.BOUNCED
    assert a.recipient == "anincorrectemailaddress@openaustralia.org"
    assert (a.smtp_code, a.enhanced_code, a.smtp_phase) == (550, "5.1.1", "RCPT TO")
    assert a.remote_mta == "aspmx.l.google.com"
    assert a.diagnostic.startswith("550-5.1.1 The email account that you tried to reach")
    assert "in reply to" not in a.diagnostic
    assert a.message_id == "39D9336AFA81"
    assert a.ts == datetime(2024, 4, 5, 14, 21, 51, tzinfo=UTC)


@pytest.mark.parametrize(
    ("number", "outcome", "code", "enhanced", "phase"),
    [
        (1, Outcome.DEFERRED, 451, "4.3.0", "RCPT TO"),
        (6, Outcome.DEFERRED, None, "4.4.1", None),
        (17, Outcome.DELIVERED, None, "2.0.0", None),  # pipe to dovecot
        (18, Outcome.DELIVERED, 250, "2.0.0", None),
        (19, Outcome.BOUNCED, 554, "5.7.1", "RCPT TO"),
        (20, Outcome.DELIVERED, None, "2.0.0", None),  # local
        (21, Outcome.BOUNCED, 550, "5.1.1", None),  # reply without "host ... said:"
        (22, Outcome.BOUNCED, 550, "5.7.1", "end of DATA"),  # multi-line Gmail reply
        (23, Outcome.DELIVERED, 250, "2.1.5", None),  # tls= field before dsn=
        (24, Outcome.BOUNCED, None, "5.4.4", None),  # relay=none DNS failure
        (25, Outcome.DELIVERED, None, "2.0.0", None),  # lmtp
        (26, Outcome.DEFERRED, 450, "4.2.0", "RCPT TO"),  # greylisting
        (27, Outcome.DEFERRED, None, "4.4.2", "RCPT TO"),  # "while sending RCPT TO"
    ],
)
def test_table(
    lines: dict[int, list],
    number: int,
    outcome: Outcome,
    code: int | None,
    enhanced: str,
    phase: str | None,
) -> None:
    (a,) = lines[number]
    assert (a.outcome, a.smtp_code, a.enhanced_code, a.smtp_phase) == (
        outcome,
        code,
        enhanced,
        phase,
    )


def test_transport_names_are_not_remote_hosts(lines: dict[int, list]) -> None:
    assert lines[17][0].remote_mta is None  # relay=dovecot
    assert lines[20][0].remote_mta is None  # relay=local
    assert lines[24][0].remote_mta is None  # relay=none


@pytest.mark.parametrize("number", [2, 3, 5, 7, 8, 12, 13, 14, 15, 16, 28, 29])
def test_lines_without_a_delivery_result_give_nothing(lines: dict[int, list], number: int) -> None:
    assert lines[number] == []


def test_expired_emits_one_attempt_per_remembered_recipient(lines: dict[int, list]) -> None:
    (expired,) = lines[11]
    assert expired.outcome is Outcome.EXPIRED
    assert expired.recipient == "order@arobor.ru"
    assert expired.message_id == "C93CEB08A046"
    assert expired.ts == datetime(2024, 12, 28, 13, 39, 28, tzinfo=UTC)
    # carries the last deferral reason, like the DSN Postfix sends back
    assert expired.diagnostic.endswith("Connection timed out")
    assert expired.event_id not in {a.event_id for a in lines[9] + lines[10]}


def test_expired_skips_recipients_already_delivered_or_bounced() -> None:
    parser = make_parser("postfix", year=2024)
    stem = "Mar  1 10:00:00 mx postfix/smtp[1]: ABCDE12345: "
    parser.feed(stem + "to=<a@example.com>, relay=none, dsn=4.4.1, status=deferred (timeout)")
    parser.feed(stem + "to=<b@example.com>, relay=none, dsn=4.4.1, status=deferred (timeout)")
    parser.feed(
        stem + "to=<b@example.com>, relay=mx[192.0.2.1]:25, dsn=2.0.0, status=sent (250 ok)"
    )
    expired = parser.feed(
        "Mar  6 10:00:00 mx postfix/qmgr[2]: ABCDE12345: from=<s@example.org>, status=expired, "
        "returned to sender"
    )
    assert [a.recipient for a in expired] == ["a@example.com"]
    # a second expired line for the same queue id has nothing left to report
    assert (
        parser.feed("Mar  6 10:00:01 mx postfix/qmgr[2]: ABCDE12345: from=<>, status=expired, x")
        == []
    )


def test_expired_without_earlier_lines_gives_nothing() -> None:
    parser = make_parser("postfix", year=2024)
    line = "Dec 28 13:39:28 mx postfix/qmgr[22753]: C93CEB08A046: from=<ina@somedomain.com>, "
    assert parser.feed(line + "status=expired, returned to sender") == []


def test_memory_is_bounded() -> None:
    parser = make_parser("postfix", year=2024)
    parser.max_queue_ids = 2  # type: ignore[misc]
    for qid in ("AAAAA1", "AAAAA2", "AAAAA3"):
        parser.feed(
            f"Mar  1 10:00:00 mx postfix/smtp[1]: {qid}: to=<a@example.com>, relay=none, "
            "dsn=4.4.1, status=deferred (timeout)"
        )
    expired = "Mar  6 10:00:00 mx postfix/qmgr[2]: {}: from=<>, status=expired, returned to sender"
    assert parser.feed(expired.format("AAAAA1")) == []  # evicted, oldest first
    assert len(parser.feed(expired.format("AAAAA3"))) == 1


def test_event_ids_are_deterministic_and_distinct() -> None:
    first = attempts_by_line(make_parser("postfix", year=2024), "postfix.log")
    again = attempts_by_line(make_parser("postfix", year=2024), "postfix.log")
    ids = [a.event_id for n in sorted(first) for a in first[n]]
    assert ids == [a.event_id for n in sorted(again) for a in again[n]]
    assert len(ids) == len(set(ids))


def test_rfc3339_stamp_is_converted_to_utc(lines: dict[int, list]) -> None:
    assert lines[24][0].ts == datetime(2024, 3, 2, 8, 0, 2, 123456, tzinfo=UTC)


def test_year_comes_from_the_factory() -> None:
    (a,) = make_parser("postfix", year=2019).feed(
        "Jun 17 10:22:33 mail postfix/smtp[12345]: E1234567890ABC: to=<user@acme.io>, "
        "relay=mail.acme.io[192.0.2.1]:25, dsn=5.1.1, status=bounced (550 5.1.1 user unknown)"
    )
    assert a.ts.year == 2019


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("garbage that is no log line", Reason.UNKNOWN_FORMAT),
        (
            "Mar  2 09:00:00 mx postfix/smtp[1]: ABCDE12345: to=<user@example.com>, relay=none",
            Reason.UNKNOWN_FORMAT,  # truncated before status=
        ),
        (
            "Mar  2 09:00:00 mx postfix/smtp[1]: ABCDE12345: to=<>, relay=none, status=bounced (x)",
            Reason.BAD_ADDRESS,
        ),
        (
            "Feb 30 09:00:00 mx postfix/smtp[1]: ABCDE12345: to=<a@example.com>, status=sent (ok)",
            Reason.BAD_TIMESTAMP,
        ),
        (
            "Mar  2 09:00:00 mx postfix/smtp[1]: ABCDE12345: to=<a@example.com>, status=weird (x)",
            Reason.UNKNOWN_FORMAT,
        ),
    ],
)
def test_bad_lines(line: str, reason: Reason) -> None:
    with pytest.raises(InvalidInput) as info:
        make_parser("postfix", year=2024).feed(line)
    assert info.value.reason is reason


def test_address_verification_probes_are_not_attempts() -> None:
    line = (
        "Mar  2 09:00:00 mx postfix/smtp[1]: ABCDE12345: to=<a@example.com>, relay=none, "
        "dsn=5.1.1, status=undeliverable (unknown user)"
    )
    assert make_parser("postfix", year=2024).feed(line) == []
