"""The shared contract: only InvalidInput escapes feed; helpers behave as documented."""

from __future__ import annotations

import contextlib

import pytest

from pipeline.core.decode import MAX_RECORD_BYTES
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.parsing import FORMATS, make_parser
from pipeline.core.parsing.base import event_id, normalize_phase, split_reply

GARBAGE = [
    b"\x00\x01\x02",
    b"\xc3\x28 not utf-8",
    b"{",
    b"[]",
    b"null",
    b'{"type": 5}',
    b"type",
    b"d,",
    b"Jan  1 00:00:00 h postfix/smtp[1]: ABCDE12345: to=<a@example.com>, status=",
    b"2024-01-01 00:00:00 16VDhn-000000001bo-D342 ** ",
    "ü".encode() * 10,
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("line", GARBAGE)
def test_garbage_never_raises_anything_but_invalid_input(fmt: str, line: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        make_parser(fmt, year=2024).feed(line)


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
