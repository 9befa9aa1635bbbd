"""Sendmail parser against real syslog lines (tests/data/logs/sendmail.log)."""

from __future__ import annotations

import pytest

from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Outcome
from pipeline.core.parsing import make_parser

from .conftest import attempts_by_line


@pytest.fixture
def lines() -> dict[int, list]:
    return attempts_by_line(make_parser("sendmail", year=2016), "sendmail.log")


def test_several_recipients_in_one_to_field(lines: dict[int, list]) -> None:
    attempts = lines[3]
    assert [a.recipient for a in attempts] == ["sent3@example2.com", "sent4@example2.com"]
    assert {a.outcome for a in attempts} == {Outcome.DELIVERED}
    assert attempts[0].diagnostic == "ok:  Message 40279895 accepted"
    assert attempts[0].event_id != attempts[1].event_id
    assert attempts[0].message_id == "u31FFPtp032300"


def test_deferred_with_reply(lines: dict[int, list]) -> None:
    (a,) = lines[2]
    assert (a.outcome, a.smtp_code, a.enhanced_code, a.diagnostic) == (
        Outcome.DEFERRED,
        451,
        "4.3.5",
        "451 4.3.5 Server configuration problem",
    )
    assert a.remote_mta == "93.184.216.34"


def test_user_unknown_is_a_bounce(lines: dict[int, list]) -> None:
    (a,) = lines[5]  # sm-mta, ctladdr with "(65534/65534)", relay "whatever.com. [ip]"
    assert (a.outcome, a.enhanced_code, a.diagnostic) == (Outcome.BOUNCED, "5.1.1", "User unknown")
    assert a.remote_mta == "whatever.com"
    (b,) = lines[8]  # to= without angle brackets
    assert b.recipient == "dude1@mydomain.com"


@pytest.mark.parametrize("number", [1, 4, 6, 7, 9])
def test_from_done_and_dsn_lines_give_nothing(lines: dict[int, list], number: int) -> None:
    assert lines[number] == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "Oct 25 13:43:06 localhost sm-mta[7087]: v9PDh53r007087: to=MAILER-DAEMON, "
            "delay=00:00:00, mailer=local, pri=30000, dsn=5.1.1, stat=User unknown",
            Reason.BAD_ADDRESS,
        ),
        ("Oct 25 13:43:06 localhost sm-mta[7087]: v9PDh53r007087: to=<a@b.example>, dsn=5",
         Reason.UNKNOWN_FORMAT),
        ("just some text", Reason.UNKNOWN_FORMAT),
    ],
)  # fmt: skip
def test_bad_lines(line: str, reason: Reason) -> None:
    with pytest.raises(InvalidInput) as info:
        make_parser("sendmail", year=2017).feed(line)
    assert info.value.reason is reason
