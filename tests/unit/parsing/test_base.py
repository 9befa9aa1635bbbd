"""The shared contract: only InvalidInput escapes feed; helpers behave as documented."""

from __future__ import annotations

import contextlib

import pytest

from pipeline.core.decode import MAX_RECORD_BYTES
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.parsing import FORMATS, LogParser, make_parser
from pipeline.core.parsing.base import event_id, normalize_phase, split_reply

SKIP = None
"""The line is legitimately no attempt: feed returns []."""
U, J, E = Reason.UNKNOWN_FORMAT, Reason.BAD_JSON, Reason.BAD_ENCODING
M, W, A = Reason.MISSING_FIELD, Reason.WRONG_TYPE, Reason.BAD_ADDRESS
H = Reason.MISSING_HEADER
# Per garbage line, what each format does with it, in FORMATS order:
#            auto postfix exim pmta kumo sendmail json
GARBAGE: dict[bytes, tuple[Reason | None, ...]] = {
    b"\x00\x01\x02": (U, U, U, U, J, U, J),
    b"\xc3\x28 not utf-8": (E, E, E, E, E, E, E),
    b"{": (J, U, U, U, J, U, J),
    b"[]": (M, U, U, U, U, U, M),  # auto: an empty JSON array of attempts
    b"null": (U, U, U, U, U, U, W),
    b'{"type": 5}': (U, U, U, U, U, U, M),
    b"type": (U, U, U, SKIP, J, U, J),  # PowerMTA: a CSV header line (one column)
    b"d,": (H, U, U, H, J, U, J),  # PowerMTA: a record row, but no header was read
    # sendmail: a syslog line of another program gives no attempt (mail.log is shared)
    b"Jan  1 00:00:00 h postfix/smtp[1]: ABCDE12345: to=<a@example.com>, status=": (
        U, U, U, U, J, SKIP, J,
    ),
    b"2024-01-01 00:00:00 16VDhn-000000001bo-D342 ** ": (A, U, A, U, J, U, J),
    "ü".encode() * 10: (U, U, U, U, J, U, J),
}  # fmt: skip
CASES = [
    pytest.param(fmt, line, expected[FORMATS.index(fmt)], id=f"{fmt}-{n}")
    for n, (line, expected) in enumerate(GARBAGE.items())
    for fmt in FORMATS
]
# One good line per format, to show a rejected line left the parser's state as it was.
GOOD = {
    "postfix": b"Apr  5 14:21:51 kedumba postfix/smtp[2500]: 39D9336AFA81: "
    b"to=<x@openaustralia.org>, relay=aspmx.l.google.com[173.194.79.27]:25, delay=1, "
    b"delays=0.08/0/0.58/0.34, dsn=5.1.1, status=bounced (host aspmx.l.google.com"
    b"[173.194.79.27] said: 550-5.1.1 The email account does not exist (in reply to RCPT "
    b"TO command))",
    "exim": b"2024-01-01 00:00:00 16VDhn-000000001bo-D342 ** x@example.com R=dnslookup "
    b"T=remote_smtp: SMTP error from remote mail server after RCPT TO:<x@example.com>: "
    b"550 5.1.1 user unknown",
    "pmta": b"b,2026-09-21 12:00:02+0000,2026-09-21 11:59:00+0000,b@em.example.com,"
    b"x@gmail.com,,failed,5.1.1 (bad destination mailbox address),smtp;550-5.1.1 The email "
    b"account that you tried to reach does not exist.,gmail-smtp-in.l.google.com "
    b"(142.250.1.1),bad-mailbox,smtp,,smtp,15.204.101.125,142.250.1.1,,1234,db-gmail-pool,"
    b"spring-sale,,gmail.com/db-gmail-pool,",
    "kumo": b'{"type":"Bounce","id":"i1","sender":"s@example.com","recipient":"x@example.com",'
    b'"queue":"q","site":"","size":1,"response":{"code":550,"enhanced_code":null,'
    b'"content":"user unknown","command":null},"timestamp":1704067200}',
    "sendmail": b"Jan  1 00:00:00 h sendmail[1]: ABCDE12345: to=<x@example.com>, delay=00:00:01, "
    b"mailer=esmtp, pri=1, relay=mx.example.com. [192.0.2.1], dsn=5.1.1, stat=User unknown",
    "json": b'{"event_id": "e1", "ts": "2024-01-01T00:00:00Z", "recipient": "x@example.com", '
    b'"outcome": "bounced"}',
}
GOOD["auto"] = GOOD["postfix"]
PMTA_HEADER = (
    b"type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,"
    b"srcType,srcMta,dlvType,dlvSourceIp,dlvDestinationIp,dlvEsmtpAvailable,dlvSize,vmta,jobId,"
    b"envId,queue,vmtaPool"
)
"""PowerMTA's stock header, which the GOOD row follows (rows need a header first)."""


def primed(fmt: str) -> LogParser:
    """A new parser for `fmt` that has read what GOOD[fmt] needs before it (a CSV header)."""
    parser = make_parser(fmt, year=2024)
    if fmt == "pmta":
        assert parser.feed(PMTA_HEADER) == []
    return parser


def test_the_garbage_table_covers_every_format() -> None:
    assert all(len(expected) == len(FORMATS) for expected in GARBAGE.values())
    assert set(GOOD) == set(FORMATS)


@pytest.mark.parametrize(("fmt", "line", "expected"), CASES)
def test_garbage_is_rejected_with_its_reason_and_never_yields_an_attempt(
    fmt: str, line: bytes, expected: Reason | None
) -> None:
    """Catches: a parser that skips garbage it should dead-letter (returns [] instead of
    UNKNOWN_FORMAT: the line vanishes without a trace), rejects it with the wrong reason,
    crashes on it (a parser bug turned into UNKNOWN_FORMAT "parser failed", see
    LogParser.feed), or makes an attempt out of it."""
    parser = make_parser(fmt, year=2024)
    if expected is SKIP:
        assert parser.feed(line) == []
        return
    with pytest.raises(InvalidInput) as info:
        parser.feed(line)
    assert info.value.reason is expected
    assert "parser failed" not in info.value.detail


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_rejected_line_leaves_the_parser_as_it_was(fmt: str) -> None:
    """Catches: a parser whose state is changed by a line it rejects (feed's contract): the
    good line after the garbage must read exactly as it reads on a fresh parser."""
    fresh = primed(fmt).feed(GOOD[fmt])
    assert len(fresh) == 1
    parser = primed(fmt)
    for line, expected in GARBAGE.items():
        if expected[FORMATS.index(fmt)] is not SKIP:
            with contextlib.suppress(InvalidInput):
                parser.feed(line)
    assert parser.feed(GOOD[fmt]) == fresh


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_utf8_and_oversize(fmt: str) -> None:
    parser = make_parser(fmt, year=2024)
    with pytest.raises(InvalidInput) as info:
        parser.feed(b"Mar  2 09:00:00 \xff\xfe")
    assert info.value.reason is Reason.BAD_ENCODING
    with pytest.raises(InvalidInput) as info:
        parser.feed(b"x" * (MAX_RECORD_BYTES + 1))
    assert info.value.reason is Reason.TOO_LARGE
    assert parser.feed(b"\r\n") == []


def test_unknown_format_name() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        make_parser("qmail")


def test_event_id_is_stable_and_separated() -> None:
    assert event_id("postfix", "a", "b") == event_id("postfix", "a", "b")
    assert event_id("postfix", "ab", "") != event_id("postfix", "a", "b")
    assert len(event_id("exim", None)) == 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("550-5.1.1 The email account", (550, "5.1.1")),
        ("250 ok", (250, None)),
        ("Connection refused", (None, None)),
        ("  421 4.7.0 [TSS04] try later", (421, "4.7.0")),
    ],
)
def test_split_reply(text: str, expected: tuple[int | None, str | None]) -> None:
    assert split_reply(text) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("RCPT TO:<a@b.example>", "RCPT TO"),
        ("pipelined RCPT TO", "RCPT TO"),
        (".", "end of DATA"),
        ("end of data", "end of DATA"),
        ("MAIL FROM:<a@b> SIZE=12", "MAIL FROM"),
        ("the initial server greeting", "CONNECT"),
        ("XYZZY", None),
        (None, None),
    ],
)
def test_normalize_phase(raw: str | None, expected: str | None) -> None:
    assert normalize_phase(raw) == expected
