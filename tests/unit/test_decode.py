"""Untrusted JSON fields through `pipeline.core.decode`: every bad value is an InvalidInput."""

from __future__ import annotations

import pytest

from pipeline.core.decode import attempt_from_mapping, parse_ts
from pipeline.core.errors import InvalidInput, Reason


@pytest.mark.parametrize(
    "value",
    [
        1e20,  # epoch seconds past datetime's range (OverflowError before the fix)
        -1e20,
        2**70,
        "0001-01-01T00:00:00+01:00",  # valid RFC 3339, but out of range once in UTC
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_out_of_range_timestamps_are_bad_timestamps(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_ts(value)
    assert caught.value.reason is Reason.BAD_TIMESTAMP


def test_an_attempt_with_an_out_of_range_ts_is_rejected_as_a_bad_timestamp() -> None:
    doc = {"event_id": "e1", "ts": 1e20, "recipient": "a@example.com", "outcome": "bounced"}
    with pytest.raises(InvalidInput) as caught:
        attempt_from_mapping(doc)
    assert caught.value.reason is Reason.BAD_TIMESTAMP
