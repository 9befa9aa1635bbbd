"""Our own attempt JSON goes through the lead's decoder unchanged."""

from __future__ import annotations

import pytest

from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.parsing import make_parser

from .conftest import attempts_by_line


def test_attempt_lines_and_arrays() -> None:
    lines = attempts_by_line(make_parser("json", tenant="ignored"), "attempts.jsonl")
    assert [len(lines[n]) for n in sorted(lines)] == [1, 1, 1, 2]
    assert {a.tenant for a in lines[4]} == {"acme"}  # the JSON is authoritative
    assert lines[1][0].to_json()["event_id"] == "877925b8fe627d7b288a23e78bfc431e"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{", Reason.BAD_JSON),
        (
            b'{"event_id":"x","ts":"2024-01-01T00:00:00Z","outcome":"delivered"}',
            Reason.MISSING_FIELD,
        ),
        (b"\xff\xfe", Reason.BAD_ENCODING),
    ],
)
def test_bad_lines(line: bytes, reason: Reason) -> None:
    with pytest.raises(InvalidInput) as info:
        make_parser("json").feed(line)
    assert info.value.reason is reason
