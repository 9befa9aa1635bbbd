"""What shippers put on `mta.log.raw`, and how the normalize agent unwraps it (`unwrap`)."""

from __future__ import annotations

import orjson
import pytest

from pipeline.core.errors import InvalidInput, Reason
from pipeline.stream.normalize import RawLine, unwrap

LINE = "Apr  5 14:21:51 kedumba postfix/smtp[2500]: 39D9336AFA81: to=<a@example.com>, status=sent"


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        # Vector file source: message, host, file.
        (
            {"message": LINE, "host": "kedumba", "file": "/var/log/mail.log", "tenant": "acme"},
            RawLine(LINE, "acme", "kedumba|/var/log/mail.log"),
        ),
        # Filebeat: host.name, log.file.path, fields.tenant.
        (
            {
                "message": LINE,
                "host": {"name": "kedumba"},
                "log": {"file": {"path": "/var/log/mail.log"}},
                "fields": {"tenant": "beta"},
            },
            RawLine(LINE, "beta", "kedumba|/var/log/mail.log"),
        ),
        # Fluent Bit tail: the line is `log`, the path key as configured.
        ({"log": LINE, "path": "/var/log/mail.log"}, RawLine(LINE, None, "|/var/log/mail.log")),
        ({"log": LINE}, RawLine(LINE, None, None)),
    ],
)
def test_shipper_wrappers(doc: dict[str, object], expected: RawLine) -> None:
    assert unwrap(orjson.dumps(doc)) == expected


@pytest.mark.parametrize(
    "value",
    [
        LINE.encode(),
        b'{"type":"Bounce","recipient":"a@example.com","message":"x"}',  # a KumoMTA record
        b'{"event_id":"e","outcome":"bounced","message":"x"}',  # our own attempt JSON
        b"[1, 2]",
    ],
)
def test_anything_else_is_the_line_itself(value: bytes) -> None:
    assert unwrap(value) == RawLine(value, None, None)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b'{"message": "cut', Reason.BAD_JSON),
        (b'{"message": "\xff"}', Reason.BAD_ENCODING),
        (b'{"message": "' + b"x" * 300_000 + b'"}', Reason.TOO_LARGE),
        (b'{"message": "x", "tenant": 7}', Reason.WRONG_TYPE),
    ],
)
def test_broken_wrappers(value: bytes, reason: Reason) -> None:
    with pytest.raises(InvalidInput) as info:
        unwrap(value)
    assert info.value.reason is reason
