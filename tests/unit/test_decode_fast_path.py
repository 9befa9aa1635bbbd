"""decode_attempts' fast path (msgspec) against the checked path: for any message, both give
the same attempts or the same rejection (reason and detail). The values are drawn from what
each field may hold in real and hostile messages, well-typed or not."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.decode import decode_attempts, decode_attempts_checked
from pipeline.core.errors import InvalidInput

HOSTILE = st.one_of(
    st.none(), st.booleans(), st.integers(-1, 1000), st.floats(allow_nan=False),
    st.sampled_from(["", " ", "Bad Tenant", "a:b", "\x00", "é"]), st.just([]), st.just({}),
)  # fmt: skip
TYPED: dict[str, list[Any]] = {
    # Values of the right JSON type, edge cases included ("" and null where optional).
    "event_id": ["e1", "e2", ""],
    "ts": ["2026-03-02T09:00:00Z", "2026-03-02T09:00:00.123+02:00", "2026-03-02T09:00:00",
           "2026-03-02T09:00:00z", "yesterday", "", 1_772_442_000, 1_772_442_000.5],
    "recipient": ["a@example.com", " <A@Example.COM> ", "a@", "a@b\x01.com", "jo@bücher.de", ""],
    "outcome": ["delivered", "bounced", "Bounced", "deferred", "expired", "lost", ""],
    "tenant": ["t1", "", None, 7, "Bad Tenant"],
    "list_id": ["news", "", None, 7],
    "campaign_id": ["c1", "", None],
    "message_id": ["m1", "", None],
    "smtp_code": [250, 550, 199, 600, "550", "5x0", "", None],
    "enhanced_code": ["5.1.1", "", None],
    "diagnostic": ["550 5.1.1 unknown user", "", None],
    "remote_mta": ["mx.example.com", "", None],
    "smtp_phase": ["RCPT TO", "", None],
    "asynchronous": [False, True, None, "true", 1],
}  # fmt: skip


@st.composite
def attempts(draw: st.DrawFn) -> dict[str, Any]:
    """An attempt whose fields are each a typed value (mostly), absent, or hostile."""
    doc: dict[str, Any] = {}
    for name, values in TYPED.items():
        choice = draw(st.sampled_from(["first"] * 4 + ["typed"] * 4 + ["drop", "hostile"]))
        if choice == "first":
            doc[name] = values[0]
        elif choice == "typed":
            doc[name] = draw(st.sampled_from(values))
        elif choice == "hostile":
            doc[name] = draw(HOSTILE)
    return doc


WELL_FORMED = {name: values[0] for name, values in TYPED.items()}


def outcome(decode: Any, raw: bytes) -> object:
    try:
        return decode(raw)
    except InvalidInput as exc:
        return (exc.reason, exc.detail)


@settings(max_examples=1000, deadline=None)
@given(st.lists(attempts(), min_size=0, max_size=4), st.booleans())
def test_fast_and_checked_paths_agree(items: list[dict[str, Any]], single: bool) -> None:
    raw = orjson.dumps(items[0] if single and items else items)
    assert outcome(decode_attempts, raw) == outcome(decode_attempts_checked, raw)


def test_the_fast_path_is_taken_for_a_well_formed_array() -> None:
    """Catches: a fast path that always falls back (correct, but the cost comes back)."""
    import pipeline.core.decode as decode

    calls = []
    original = decode.decode_attempts_checked
    decode.decode_attempts_checked = lambda raw: calls.append(raw) or original(raw)  # type: ignore[assignment]
    try:
        raw = orjson.dumps([WELL_FORMED, {**WELL_FORMED, "event_id": "e2", "tenant": "t1"}])
        assert [a.event_id for a in decode.decode_attempts(raw)] == ["e1", "e2"]
        assert calls == []
        decode.decode_attempts(orjson.dumps({**WELL_FORMED, "smtp_code": "550"}))
        assert len(calls) == 1
    finally:
        decode.decode_attempts_checked = original  # type: ignore[assignment]


def test_to_wire_is_to_json_with_microseconds_and_decodes_back_to_the_same_attempt() -> None:
    """Catches: a wire encoding (what normalize and ship produce) that drops or renames a
    field, writes an enum as its name, or a ts the checked path would not read back."""
    from datetime import UTC, datetime

    from pipeline.core.models import Attempt, Outcome

    full = Attempt(
        "e1", datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC), "a@example.com",
        Outcome.DEFERRED, "t1", "news", "c1", "m1", 451, "4.7.1", "451 try later",
        "mx.example.com", "RCPT TO", True,
    )  # fmt: skip
    for attempt in (full, Attempt("e2", datetime(2026, 3, 2, tzinfo=UTC), "b@example.com",
                                  Outcome.DELIVERED)):  # fmt: skip
        wire = orjson.loads(attempt.to_wire())
        assert wire.pop("ts") == attempt.ts.isoformat().replace("+00:00", "Z")
        expected = attempt.to_json()
        expected.pop("ts")
        assert wire == expected
        assert decode_attempts(attempt.to_wire()) == [attempt]
        assert decode_attempts_checked(attempt.to_wire()) == [attempt]
