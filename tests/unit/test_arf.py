"""ARF feedback reports (RFC 5965) -> ArfReport; samples and their sources in tests/data/arf."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.core.arf import MAX_ARF_BYTES, ArfReport, parse_arf
from pipeline.core.errors import InvalidInput, Reason

ARF = Path(__file__).resolve().parents[1] / "data" / "arf"


def sample(name: str, crlf: bool = False) -> bytes:
    raw = (ARF / name).read_bytes()
    return raw.replace(b"\n", b"\r\n") if crlf else raw


@pytest.mark.parametrize("crlf", [False, True])
def test_rfc5965_example_with_optional_fields(crlf: bool) -> None:
    report = parse_arf(sample("rfc5965-b2.eml", crlf))
    # The enclosed message's To:/Message-ID sit after a blank line in the RFC's example, so
    # they are body text: the recipient comes from Original-Rcpt-To alone.
    assert report == ArfReport(
        feedback_type="abuse",
        original_rcpt_to="user@example.com",
        original_mail_from="somespammer@example.net",
        arrival_date=datetime(2005, 3, 8, 18, 0, tzinfo=UTC),  # 14:00 EDT
        source_ip="192.0.2.1",
        reported_domain="example.net",
        user_agent="SomeGenerator/1.0",
        original_message_id=None,
    )


def test_rfc5965_example_with_required_fields_only() -> None:
    report = parse_arf(sample("rfc5965-b1.eml"))
    assert report.feedback_type == "abuse"
    assert report.user_agent == "SomeGenerator/1.0"
    assert report.original_rcpt_to is None  # "To: <Undisclosed Recipients>" is no address
    assert report.original_mail_from is None
    assert report.arrival_date is None
    assert report.original_message_id == "8787KJKJ3K4J3K4J3K4J3.mail@example.net"


def test_yahoo_report_with_rfc822_headers_and_our_headers() -> None:
    report = parse_arf(sample("yahoo-via-ses.eml"))
    assert report.user_agent == "Yahoo!-Mail-Feedback/2.0"
    assert report.original_rcpt_to == "johndoe@yahoo.co.uk"
    assert report.original_mail_from == ("01xxxxxxxxxxxxxxx2b0e-000000@eu-west-1.amazonses.com")
    assert report.arrival_date == datetime(2019, 10, 21, 15, 34, 36, tzinfo=UTC)  # Received-Date
    assert report.reported_domain == "amazonses.com"
    assert report.original_message_id == "0102016dee000000-aaaa-bbbb@eu-west-1.amazonses.com"
    assert (report.tenant, report.list_id, report.campaign_id) == (
        "shop",
        "newsletter.shop.example",
        "autumn-2019",
    )


def test_microsoft_recipient_header_when_the_rest_is_redacted() -> None:
    report = parse_arf(sample("jmrp-redacted.eml"))
    assert report.original_rcpt_to == "kijitora@example.com"
    assert report.source_ip == "203.0.113.245"
    assert (report.tenant, report.list_id, report.campaign_id) == ("neko", "cats", None)
    assert report.original_message_id == "0000000000fffffffff0000000000000@example.com"


def test_to_of_the_enclosed_message_when_original_rcpt_to_is_missing() -> None:
    raw = sample("yahoo-via-ses.eml").replace(b"Original-Rcpt-To: johndoe@yahoo.co.uk\n", b"")
    raw = raw.replace(b"To: johndoe@yahoo.co.uk", b"To: John Doe <John.Doe@Yahoo.co.uk>")
    assert parse_arf(raw).original_rcpt_to == "john.doe@yahoo.co.uk"


def test_a_report_forwarded_as_an_attachment() -> None:
    inner = sample("rfc5965-b2.eml")
    outer = (
        b"From: postmaster@isp.example\nSubject: Fwd: complaint\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="fwd"\n\n--fwd\nContent-Type: text/plain\n\n'
        b"See attached.\n\n--fwd\nContent-Type: message/rfc822\n\n" + inner + b"\n--fwd--\n"
    )
    assert parse_arf(outer).original_rcpt_to == "user@example.com"


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (sample("sisimai-arf-22.eml"), "not a multipart/report"),
        (b"From: a@b.example\nSubject: hi\n\nplain mail\n", "not a multipart/report"),
        (b"", "not a multipart/report"),
        (b"\xff\xfe\x00garbage", "not a multipart/report"),
        (
            sample("rfc5965-b2.eml").replace(b"message/feedback-report", b"text/plain"),
            "without a message/feedback-report",
        ),
        (
            sample("rfc5965-b2.eml").replace(b"Feedback-Type: abuse\n", b""),
            "no Feedback-Type",
        ),
    ],
)
def test_not_an_arf_report(raw: bytes, detail: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_arf(raw)
    assert info.value.reason is Reason.BAD_ARF
    assert detail in info.value.detail


def test_too_large() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_arf(b"x" * (MAX_ARF_BYTES + 1))
    assert info.value.reason is Reason.TOO_LARGE


def test_feedback_type_is_lowercased_and_unfolded_fields_read() -> None:
    raw = (
        sample("rfc5965-b2.eml")
        .replace(b"Feedback-Type: abuse", b"Feedback-Type: Not-Spam")
        .replace(b"Source-IP: 192.0.2.1", b"Source-IP:\n   192.0.2.1")
    )
    report = parse_arf(raw)
    assert (report.feedback_type, report.source_ip) == ("not-spam", "192.0.2.1")


def test_a_bad_date_is_none_not_an_error() -> None:
    raw = sample("rfc5965-b2.eml").replace(b"Arrival-Date: Thu, 8 Mar 2005", b"Arrival-Date: soon")
    assert parse_arf(raw).arrival_date is None
