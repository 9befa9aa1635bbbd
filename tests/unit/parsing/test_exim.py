"""Exim parser against real main-log lines (tests/data/logs/exim.log, sources in README)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Outcome
from pipeline.core.parsing import make_parser

from .conftest import attempts_by_line

HOLISTIC = "holistic.fict.example"
GMAIL = "gmail-smtp-in.l.google.com"
GMX_RCPT = "udbbwscdnbegrmloghuf@london.com"


@pytest.fixture
def lines() -> dict[int, list]:
    return attempts_by_line(make_parser("exim"), "exim.log")


@pytest.mark.parametrize(
    ("number", "outcome", "recipient", "code", "enhanced", "phase", "remote"),
    [
        (2, Outcome.DELIVERED, "monk@holistic.fict.example", None, None, None, HOLISTIC),
        (3, Outcome.DEFERRED, "marvin@endrest.example", None, None, None, None),
        (4, Outcome.BOUNCED, "ace400@pb.example", 553, "5.3.0", "RCPT TO", "pbmail3.py.example"),
        (5, Outcome.BOUNCED, "jim@trek99.example", None, None, None, None),
        (7, Outcome.DEFERRED, GMX_RCPT, 450, "4.3.2", "RCPT TO", "mx0.gmx.com"),
        (8, Outcome.EXPIRED, "fwxvparobkymnbyemevz@london.com", None, None, None, None),
        (13, Outcome.DELIVERED, "monk@" + HOLISTIC, 250, "2.0.0", "end of DATA", HOLISTIC),
        (14, Outcome.DELIVERED, "kryten@" + HOLISTIC, 250, "2.0.0", "end of DATA", HOLISTIC),
        (15, Outcome.BOUNCED, "ace400@pb.example", 550, "5.1.1", "RCPT TO", GMAIL),
    ],
)  # fmt: skip
def test_table(
    lines: dict[int, list],
    number: int,
    outcome: Outcome,
    recipient: str,
    code: int | None,
    enhanced: str | None,
    phase: str | None,
    remote: str | None,
) -> None:
    (a,) = lines[number]
    assert (a.outcome, a.recipient, a.smtp_code, a.enhanced_code, a.smtp_phase, a.remote_mta) == (
        outcome,
        recipient,
        code,
        enhanced,
        phase,
        remote,
    )


def test_both_message_id_lengths(lines: dict[int, list]) -> None:
    assert lines[4][0].message_id == "17SXDU-000189-00"  # classic 6-6-2
    assert lines[13][0].message_id == "16VDhn-000000001bo-D342"  # Exim >= 4.97: 6-11-4


def test_diagnostics(lines: dict[int, list]) -> None:
    assert lines[3][0].diagnostic == "Connection refused"
    assert lines[4][0].diagnostic == "553 5.3.0 <ace400@pb.example>...Addressee unknown"
    assert lines[5][0].diagnostic == "unknown mail domain"
    assert lines[13][0].diagnostic == "250 2.0.0 Ok: queued as 4TDh3R0dKmz9sWB"


def test_timezone_suffix_is_applied(lines: dict[int, list]) -> None:
    assert lines[15][0].ts == datetime(2024, 1, 15, 9, 22, 41, tzinfo=UTC)
    assert lines[2][0].ts == datetime(2002, 10, 31, 9, 0, 10, tzinfo=UTC)  # no zone: UTC


@pytest.mark.parametrize("number", [1, 6, 9, 10, 11, 12, 16])
def test_arrivals_completions_and_skipped_retries_give_nothing(
    lines: dict[int, list], number: int
) -> None:
    assert lines[number] == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("2002-10-31 09:00:10 not-an-exim-id => a@b.example", Reason.UNKNOWN_FORMAT),
        ("2002-10-31 09:00:10 16ZCW1-0005MB-00 => /var/mail/x R=local", Reason.BAD_ADDRESS),
        ("2002-13-31 09:00:10 16ZCW1-0005MB-00 => a@b.example R=x", Reason.BAD_TIMESTAMP),
        ("Mar  2 09:00:00 mx postfix/smtp[1]: not exim", Reason.UNKNOWN_FORMAT),
    ],
)
def test_bad_lines(line: str, reason: Reason) -> None:
    with pytest.raises(InvalidInput) as info:
        make_parser("exim").feed(line)
    assert info.value.reason is reason


def test_pipe_delivery_counts_against_the_address() -> None:
    (a,) = make_parser("exim").feed(
        "2024-01-15 10:21:07 16VDhn-000000001bo-D342 => |/usr/bin/procmail <bob@example.com> "
        "R=userforward T=address_pipe"
    )
    assert a.recipient == "bob@example.com"
