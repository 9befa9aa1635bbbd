"""Format detection (`auto`) over a mixed file of every format and shipper envelopes."""

from __future__ import annotations

import orjson
import pytest

from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Outcome
from pipeline.core.parsing import detect_format, make_parser

from .conftest import LOGS, attempts_by_line


def test_mixed_file() -> None:
    lines = attempts_by_line(make_parser("auto", year=2024), "mixed.log")
    outcomes = {n: [a.outcome for a in attempts] for n, attempts in lines.items()}
    assert outcomes == {
        1: [Outcome.DEFERRED],  # postfix
        2: [],  # postfix qmgr removed
        3: [Outcome.DELIVERED],  # exim
        4: [Outcome.BOUNCED],  # postfix inside a Filebeat/Vector {"message": ...}
        5: [],  # PowerMTA header
        6: [Outcome.DELIVERED],  # PowerMTA row read with that header
        7: [Outcome.DELIVERED],  # KumoMTA
        8: [Outcome.DELIVERED, Outcome.DELIVERED],  # sendmail, two recipients
        9: [Outcome.DEFERRED],
        10: [Outcome.DEFERRED],
        11: [Outcome.EXPIRED],  # postfix state survives the interleaving
        12: [Outcome.BOUNCED],  # exim inside a Fluent Bit {"log": ...}
        13: [Outcome.BOUNCED],  # PowerMTA, header still known
        14: [Outcome.DELIVERED],  # our own attempt JSON
        15: [],  # dovecot line in mail.log
    }


def test_auto_gives_the_same_attempts_as_the_named_format() -> None:
    for fmt, name in [("postfix", "postfix.log"), ("exim", "exim.log"), ("kumo", "kumo.jsonl")]:
        named = attempts_by_line(make_parser(fmt, year=2024), name)
        auto = attempts_by_line(make_parser("auto", year=2024), name)
        assert auto == named, fmt


@pytest.mark.parametrize(
    ("name", "line", "expected"),
    [
        ("postfix.log", 1, "postfix"),
        ("postfix.log", 16, "syslog"),
        ("exim.log", 13, "exim"),
        ("pmta-acct.csv", 1, "pmta"),
        ("pmta-acct.csv", 2, "pmta"),
        ("kumo.jsonl", 3, "kumo"),
        ("sendmail.log", 5, "sendmail"),
        ("attempts.jsonl", 4, "json"),
        ("mixed.log", 4, "envelope"),
    ],
)
def test_detect_format(name: str, line: int, expected: str) -> None:
    text = (LOGS / name).read_text().splitlines()[line - 1]
    assert detect_format(text) == expected


def test_unknown_lines() -> None:
    assert detect_format("hello world") is None
    assert detect_format('{"foo": 1}') is None
    parser = make_parser("auto")
    for line in ("hello world", '{"foo": 1}', '{"message": {"nested": true}}'):
        with pytest.raises(InvalidInput) as info:
            parser.feed(line)
        assert info.value.reason is Reason.UNKNOWN_FORMAT


def test_envelopes_are_unwrapped_once_only() -> None:
    inner = orjson.dumps({"message": "hello"}).decode()
    with pytest.raises(InvalidInput) as info:
        make_parser("auto").feed(orjson.dumps({"message": inner}))
    assert info.value.reason is Reason.UNKNOWN_FORMAT
    assert make_parser("auto").feed(orjson.dumps({"message": "  "})) == []


def test_envelope_around_kumo_json() -> None:
    record = (LOGS / "kumo.jsonl").read_text().splitlines()[1]
    (a,) = make_parser("auto").feed(orjson.dumps({"message": record, "host": "kumo1"}))
    assert a.outcome is Outcome.DELIVERED
