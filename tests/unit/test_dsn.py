"""Delivery status notifications (RFC 3464) -> attempts; samples and sources in tests/data/dsn."""

from __future__ import annotations

import base64
import mailbox
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.cli import main
from pipeline.core.classify import classify_attempt
from pipeline.core.dsn import MAX_DSN_BYTES, parse_dsn
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Attempt, Outcome

DSN = Path(__file__).resolve().parents[1] / "data" / "dsn"


def sample(name: str, crlf: bool = False) -> bytes:
    raw = (DSN / name).read_bytes()
    return raw.replace(b"\n", b"\r\n") if crlf else raw


@pytest.mark.parametrize("crlf", [False, True])
def test_postfix_bounce_joins_its_send_by_our_header(crlf: bool) -> None:
    [attempt] = parse_dsn(sample("postfix-5.1.1.eml", crlf))  # the delivered one: nothing
    assert attempt == Attempt(
        event_id=attempt.event_id,
        ts=datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC),  # no Last-Attempt-Date: the report's Date
        recipient="jane.doe@example.com",
        outcome=Outcome.BOUNCED,
        tenant="acme",
        list_id="news.acme.example",  # List-Id, X-BG-List absent
        campaign_id="2026-03",
        message_id="send-7f3c2a9e01",  # X-Bounceguard-Event-Id wins over Message-ID
        smtp_code=550,
        enhanced_code="5.1.1",
        diagnostic="550-5.1.1 The email account that you tried to reach does not exist. Please "
        "try double-checking the recipient's email address for typos or unnecessary spaces.",
        remote_mta="gmail-smtp-in.l.google.com",
        asynchronous=True,  # a bounce mail, not the SMTP session's log
    )
    verdict = classify_attempt(attempt)
    assert (verdict.category.value, verdict.bounce_class.value) == ("user_unknown", "hard")


def test_a_configured_join_header_and_the_message_id_fallback() -> None:
    raw = sample("postfix-5.1.1.eml")
    [by_campaign] = parse_dsn(raw, join_header="X-BG-Campaign")
    assert by_campaign.message_id == "2026-03"
    [by_message_id] = parse_dsn(raw, join_header="X-Not-There")
    assert by_message_id.message_id == "c-2026-03.jane@acme.example"


def test_the_same_dsn_twice_gives_the_same_ids_and_another_dsn_others() -> None:
    raw = sample("postfix-5.1.1.eml")
    assert parse_dsn(raw) == parse_dsn(raw)
    other = raw.replace(
        b"<20260302090005.4Qk7Tn0v3Jz9sQ@mx1", b"<20260303090005.4Qk7Tn0v3Jz9sQ@mx1"
    )
    assert parse_dsn(other)[0].event_id != parse_dsn(raw)[0].event_id
    assert parse_dsn(raw)[0].event_id.startswith("dsn:")


def test_rfc3464_simple_dsn_failed_after_a_delay_is_expired() -> None:
    [attempt] = parse_dsn(sample("rfc3464-simple-joined.eml"))
    assert attempt.recipient == "louisl@larry.slip.umd.edu"
    assert attempt.outcome is Outcome.EXPIRED  # Action failed, Status 4.0.0
    assert (attempt.smtp_code, attempt.enhanced_code) == (426, "4.0.0")
    assert attempt.diagnostic == "426 connection timed out"
    assert attempt.ts == datetime(1994, 7, 7, 21, 15, 49, tzinfo=UTC)  # Last-Attempt-Date
    assert attempt.message_id == "199407021710.RAA00001@CS.UTK.EDU"
    assert attempt.tenant == "default"


def test_rfc3464_simple_dsn_as_published_names_no_send() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_dsn(sample("rfc3464-simple.eml"))
    assert caught.value.reason is Reason.UNATTRIBUTED
    assert "X-Bounceguard-Event-Id" in caught.value.detail


def test_rfc3464_multi_recipient_dsn_one_attempt_per_failed_or_delayed_recipient() -> None:
    found = parse_dsn(sample("rfc3464-multi.eml"), tenant="ietf")
    assert [(a.recipient, a.outcome, a.enhanced_code, a.remote_mta) for a in found] == [
        ("arathib@vnet.ibm.com", Outcome.BOUNCED, "5.0.0", "vnet.ibm.com"),
        ("johnh@hpnjld.njd.hp.com", Outcome.DEFERRED, "4.0.0", None),
        ("wsnell@sdcc13.ucsd.edu", Outcome.BOUNCED, "5.0.0", "sdcc13.ucsd.edu"),
    ]
    # a folded Diagnostic-Code is one line; no Diagnostic-Code: the Status comment
    assert found[0].diagnostic == "550 'arathib@vnet.IBM.COM' is not a registered gateway user"
    assert found[1].diagnostic == "hpnjld.njd.jp.com: host name lookup failure"
    assert classify_attempt(found[2]).category.value == "user_unknown"
    # no time field at all: the report's own Date
    assert {a.ts for a in found} == {datetime(1994, 7, 8, 13, 21, 47, tzinfo=UTC)}
    assert {a.tenant for a in found} == {"ietf"}  # no X-BG-Tenant: the caller's
    assert len({a.event_id for a in found}) == 3


def test_rfc3464_delayed_dsn_is_a_deferral() -> None:
    [attempt] = parse_dsn(sample("rfc3464-delayed.eml"))
    assert (attempt.recipient, attempt.outcome) == ("thomas@de-montfort.ac.uk", Outcome.DEFERRED)
    assert attempt.diagnostic == "unknown temporary failure"


def test_relayed_and_expanded_recipients_are_no_attempts() -> None:
    assert parse_dsn(sample("relayed-only.eml")) == []
    # nothing failed: nothing to attribute, so no returned message is needed either
    cut = sample("relayed-only.eml").replace(b"Message-ID: <sent-1@acme.example>", b"")
    assert parse_dsn(cut) == []


def test_without_a_date_the_arrival_date_stands_in() -> None:
    raw = sample("postfix-5.1.1.eml").replace(b"\nDate: Mon,  2 Mar 2026 10:00:05", b"\nX-D: x")
    [attempt] = parse_dsn(raw)
    assert attempt.ts == datetime(2026, 3, 2, 8, 59, 58, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (sample("not-a-dsn.eml"), Reason.BAD_DSN),
        (b"", Reason.BAD_DSN),
        (b"\xff\xfe garbage \x00", Reason.BAD_DSN),
        (b"x" * (MAX_DSN_BYTES + 1), Reason.TOO_LARGE),
    ],
)
def test_what_is_no_dsn(raw: bytes, reason: Reason) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_dsn(raw)
    assert caught.value.reason is reason


def report(status: str, returned: str = "Message-ID: <m-1@acme.example>\n") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.net\nMessage-Id: <r-1@mx.example.net>\n"
        "Date: Mon, 2 Mar 2026 10:00:00 +0000\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        f"--b\nContent-Type: text/plain\n\nsorry\n\n--b\n{status}\n"
        f"--b\nContent-Type: text/rfc822-headers\n\n{returned}\n--b--\n"
    ).encode()


BLOCKS = (
    "Reporting-MTA: dns; mx.example.net\n\n"
    "Final-Recipient: rfc822; gone@example.com\nAction: failed\nStatus: 5.1.1\n"
    "Diagnostic-Code: smtp; 550 5.1.1 user unknown\n"
)


def test_a_base64_delivery_status_part_is_read_too() -> None:
    encoded = base64.encodebytes(BLOCKS.encode()).decode()
    part = f"Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n{encoded}"
    [attempt] = parse_dsn(report(part))
    assert (attempt.recipient, attempt.enhanced_code) == ("gone@example.com", "5.1.1")


def test_recipients_that_cannot_be_read() -> None:
    x400 = BLOCKS.replace("rfc822; gone@example.com", "x400; /RFC-822=gone/O=example/")
    with pytest.raises(InvalidInput) as caught:
        parse_dsn(report(f"Content-Type: message/delivery-status\n\n{x400}"))
    assert caught.value.reason is Reason.BAD_ADDRESS
    # the Original-Recipient stands in when the final one is no rfc822 address
    both = x400.replace("Action:", "Original-Recipient: rfc822;Gone@Example.com\nAction:")
    [attempt] = parse_dsn(report(f"Content-Type: message/delivery-status\n\n{both}"))
    assert attempt.recipient == "gone@example.com"


def test_a_per_message_block_alone_is_no_dsn() -> None:
    only = "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n"
    with pytest.raises(InvalidInput) as caught:
        parse_dsn(report(only))
    assert caught.value.reason is Reason.BAD_DSN


def test_a_bad_tenant_in_the_returned_message_is_refused() -> None:
    part = f"Content-Type: message/delivery-status\n\n{BLOCKS}"
    with pytest.raises(InvalidInput) as caught:
        parse_dsn(report(part, "Message-ID: <m@x>\nX-BG-Tenant: a:b\n"))
    assert caught.value.reason is Reason.WRONG_TYPE


def parse_cli(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, list[dict], str]:
    code = main(["parse", "--format", "dsn", str(path)])
    out, err = capsys.readouterr()
    return code, [orjson.loads(x) for x in out.splitlines()], err


def test_parse_reads_an_eml(capsys: pytest.CaptureFixture[str]) -> None:
    code, found, err = parse_cli(capsys, DSN / "postfix-5.1.1.eml")
    assert code == 0
    assert [a["recipient"] for a in found] == ["jane.doe@example.com"]
    assert err.strip() == "mails=1 attempts=1 skipped=0 bad=0"


NAMES = ["postfix-5.1.1.eml", "rfc3464-simple.eml", "relayed-only.eml", "rfc3464-multi.eml"]


def test_parse_reads_an_mbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    box = mailbox.mbox(str(tmp_path / "bounces.mbox"))
    for name in NAMES:
        box.add(sample(name))
    box.close()
    code, found, err = parse_cli(capsys, tmp_path / "bounces.mbox")
    assert code == 0
    assert len(found) == 4
    assert "message 2: unattributed:" in err
    assert err.splitlines()[-1] == "mails=4 attempts=4 skipped=1 bad=1"


def test_parse_reads_a_maildir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    box = mailbox.Maildir(str(tmp_path / "Maildir"))
    for name in NAMES:
        box.add(sample(name))
    box.close()
    code, found, err = parse_cli(capsys, tmp_path / "Maildir")
    assert code == 0
    assert sorted(a["recipient"] for a in found) == [
        "arathib@vnet.ibm.com",
        "jane.doe@example.com",
        "johnh@hpnjld.njd.hp.com",
        "wsnell@sdcc13.ucsd.edu",
    ]
    assert err.splitlines()[-1] == "mails=4 attempts=4 skipped=1 bad=1"


def test_parse_of_a_missing_path_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = parse_cli(capsys, tmp_path / "nope")
    assert code == 2
    assert "cannot read" in err


def test_a_quoted_printable_delivery_status_part_is_read_too() -> None:
    folded = BLOCKS.replace("user unknown", "user=\n unknown=3D")
    head = "Content-Type: message/delivery-status\nContent-Transfer-Encoding: quoted-printable"
    part = f"{head}\n\n{folded}"
    [attempt] = parse_dsn(report(part))
    assert attempt.diagnostic == "550 5.1.1 user unknown="


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=20))
def test_a_damaged_report_raises_invalid_input_only(flips: list[tuple[int, int]]) -> None:
    raw = bytearray(sample("postfix-5.1.1.eml"))
    for at, value in flips:
        raw[at % len(raw)] = value
    try:
        found = parse_dsn(bytes(raw))
    except InvalidInput:
        return
    assert all(isinstance(a, Attempt) for a in found)


def test_parse_joins_by_the_workers_header_setting_unless_told(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """BOUNCEGUARD_DSN_JOIN_HEADER (the bounce.mail.raw agent's) is the default; the option wins."""
    monkeypatch.setenv("BOUNCEGUARD_DSN_JOIN_HEADER", "X-BG-Campaign")
    _, [attempt], _ = parse_cli(capsys, DSN / "postfix-5.1.1.eml")
    assert attempt["message_id"] == "2026-03"
    args = ["parse", "--format", "dsn", "--join-header", "X-Bounceguard-Event-Id"]
    assert main([*args, str(DSN / "postfix-5.1.1.eml")]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert orjson.loads(line)["message_id"] == "send-7f3c2a9e01"
