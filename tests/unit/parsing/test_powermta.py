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


STOCK_HEADER = (
    "type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,"
    "srcType,srcMta,dlvType,dlvSourceIp,dlvDestinationIp,dlvEsmtpAvailable,dlvSize,vmta,jobId,"
    "envId,queue,vmtaPool"
)
STOCK_ROW = "d,2026-09-21 12:00:01+0000,,b@em.example.com,u1@gmail.com" + "," * 18


def test_rows_before_any_header_are_missing_header_then_read_after_one() -> None:
    """docs/shipping.md, "Partitioning": a parser started after a restart or a rebalance (or
    on a stream that starts mid-file) does not know the file's columns. Its rows are
    MISSING_HEADER dead letters, never read with assumed columns, until the next header."""
    parser = make_parser("pmta")
    for row in (STOCK_ROW, "b,1178807915,a@example.com,x@example.org", "rb,1,2"):
        with pytest.raises(InvalidInput) as info:
            parser.feed(row)
        assert info.value.reason is Reason.MISSING_HEADER
        assert "re-ship the file" in info.value.detail
        assert "@" not in info.value.detail
    assert parser.feed(STOCK_HEADER) == []
    (a,) = parser.feed(STOCK_ROW)
    assert a.recipient == "u1@gmail.com"


def test_a_custom_layout_is_not_misread_before_its_header() -> None:
    """Same cell count as the stock header, other columns (orig where the stock rcpt is):
    assumed stock columns took the sender for the recipient."""
    with pytest.raises(InvalidInput) as info:
        make_parser("auto").feed(
            "b,2026-09-21 12:00:01+0000,,u1@gmail.com,sender@em.example.com" + "," * 18
        )
    assert info.value.reason is Reason.MISSING_HEADER


def test_a_non_record_row_before_any_header_is_unknown_format() -> None:
    with pytest.raises(InvalidInput) as info:
        make_parser("pmta").feed("x,1,2")
    assert info.value.reason is Reason.UNKNOWN_FORMAT


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
