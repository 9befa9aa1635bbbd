"""PowerMTA accounting CSV: columns come from each file's header (sources in README)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Outcome
from pipeline.core.parsing import make_parser

from .conftest import attempts_by_line


def test_default_header_file() -> None:
    lines = attempts_by_line(make_parser("pmta", tenant="acme"), "pmta-acct.csv")
    assert lines[1] == []  # the header
    (d,), (b,), (t,) = lines[2], lines[3], lines[4]
    assert (d.outcome, b.outcome, t.outcome) == (
        Outcome.DELIVERED,
        Outcome.BOUNCED,
        Outcome.DEFERRED,
    )
    assert (b.recipient, b.smtp_code, b.enhanced_code) == ("u2@gmail.com", 550, "5.1.1")
    assert b.diagnostic.startswith("550-5.1.1 The email account")  # "smtp;" prefix dropped
    assert b.remote_mta == "gmail-smtp-in.l.google.com"
    assert (b.campaign_id, b.tenant) == ("spring-sale", "acme")
    assert t.enhanced_code == "4.7.0"
    assert lines[5] == []  # f (feedback) rows are not delivery results


def test_port25_bounce_file_with_its_own_column_order() -> None:
    lines = attempts_by_line(make_parser("pmta"), "pmta-bounce.csv")
    (first,), (second,) = lines[2], lines[3]
    assert first.recipient == "xxx@domain.com"
    assert first.enhanced_code == "5.1.2"  # from "5.1.2 (bad destination system: ...)"
    assert first.ts == datetime(2016, 5, 28, 23, 10, 51, tzinfo=UTC)  # timeQueued fallback
    assert first.remote_mta is None
    assert second.remote_mta == "mx1.destindomain.com"


def test_users_guide_file_epoch_times() -> None:
    lines = attempts_by_line(make_parser("pmta"), "pmta-guide.csv")
    assert lines[2][0].ts == datetime.fromtimestamp(1178807903, UTC)
    assert lines[3][0].outcome is Outcome.BOUNCED


def test_real_row_with_quoted_commas_and_an_extra_column() -> None:
    (a,) = attempts_by_line(make_parser("pmta"), "pmta-imprinted.csv")[2]
    assert a.recipient == "vjayprakash@ymail.com"
    assert (a.smtp_code, a.enhanced_code, a.diagnostic) == (250, "2.0.0", "250 ok dirdel")
    assert a.ts == datetime(2014, 8, 24, 10, 30, 14, tzinfo=UTC)


def test_same_row_under_two_headers_reads_the_same() -> None:
    one = make_parser("pmta")
    one.feed("type,rcpt,timeLogged,dsnStatus,jobId,header_X-BG-List")
    (a,) = one.feed("b,a@example.com,1178807915,5.1.1 (bad mailbox),job7,<news.example.com>")
    two = make_parser("pmta")
    two.feed("type,header_List-Id,jobId,dsnStatus,timeLogged,rcpt")
    (b,) = two.feed("b,news.example.com,job7,5.1.1 (bad mailbox),1178807915,a@example.com")
    assert (a.recipient, a.ts, a.enhanced_code, a.campaign_id, a.list_id) == (
        b.recipient,
        b.ts,
        b.enhanced_code,
        b.campaign_id,
        b.list_id,
    )
    assert a.list_id == "news.example.com"


def test_rows_before_any_header_use_the_default_columns() -> None:
    row = "d,2026-09-21 12:00:01+0000,,b@em.example.com,u1@gmail.com" + "," * 18
    (a,) = make_parser("pmta").feed(row)
    assert a.recipient == "u1@gmail.com"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("d,1178807903,orig@port25.com", Reason.UNKNOWN_FORMAT),  # truncated
        ("d,1178807903,orig@port25.com,not-an-address,10.0.0.1,", Reason.BAD_ADDRESS),
        ("d,yesterday,orig@port25.com,user1@domain.com,10.0.0.1,", Reason.BAD_TIMESTAMP),
        ('d,1178807903,"unterminated', Reason.UNKNOWN_FORMAT),
    ],
)
def test_bad_rows(row: str, reason: Reason) -> None:
    parser = make_parser("pmta")
    parser.feed("type,timeLogged,orig,rcpt,dlvSourceIp,bounceCat")
    with pytest.raises(InvalidInput) as info:
        parser.feed(row)
    assert info.value.reason is reason
