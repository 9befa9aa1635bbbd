"""Bad input is rejected whole, with the right reason, by every decoder of our wire formats
(pipeline.core.decode, pipeline.core.messages, pipeline.core.events).

The worker dead-letters a rejected message with its reason; a decoder that returned [] or
skipped a bad element instead would make the message vanish (acked, counted as nothing), or be
half counted, with no trace in the dead-letter topic. Addresses are normalized exactly once,
here, so every spelling of an address counts on the same key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from pipeline.core.decode import MAX_RECORD_BYTES, decode_attempts, normalize_address
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.events import (
    Engagement,
    EngagementAction,
    Feedback,
    FeedbackKind,
    decode_event_line,
)
from pipeline.core.messages import decode_engagement, decode_feedback

RECEIVED = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ATTEMPT = {"event_id": "e", "ts": "2026-03-02T09:00:00Z", "recipient": "a@example.com",
           "outcome": "bounced"}  # fmt: skip
EVENT = {"event_id": "o1", "ts": "2026-03-02T09:00:00Z", "recipient": "a@example.com"}


def rejected(decode: Any, raw: bytes) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        decode(raw)
    return caught.value


def doc(base: dict[str, Any], **changes: Any) -> bytes:
    """`base` with `changes` applied; a change to None deletes the key."""
    out = {**base, **changes}
    return orjson.dumps({k: v for k, v in out.items() if v is not None})


# -- delivery.attempts: all or nothing, with the element's index --------------------------

ARRAY_CASES = [
    (1, {"recipient": "not an address"}, Reason.BAD_ADDRESS),
    (2, {"ts": None}, Reason.MISSING_FIELD),
    (0, {"outcome": "vanished"}, Reason.WRONG_TYPE),
    (1, {"ts": "yesterday"}, Reason.BAD_TIMESTAMP),
    (2, {"smtp_code": 999}, Reason.WRONG_TYPE),
]


@pytest.mark.parametrize(("index", "change", "reason"), ARRAY_CASES)
def test_one_bad_element_rejects_the_whole_array_naming_its_index(
    index: int, change: dict[str, Any], reason: Reason
) -> None:
    """Catches: decode_attempts skipping a bad element instead of rejecting the message (the
    good elements would be counted and the bad one lost without a dead letter)."""
    items = [{**ATTEMPT, "event_id": f"e{i}"} for i in range(3)]
    items[index] = {k: v for k, v in {**items[index], **change}.items() if v is not None}
    error = rejected(decode_attempts, orjson.dumps(items))
    assert error.reason is reason
    assert error.detail.startswith(f"element {index}: ")


def test_an_element_that_is_not_an_object_rejects_the_array() -> None:
    """Catches: a non-object element dropped (or decoded as something) instead of rejected."""
    error = rejected(decode_attempts, orjson.dumps([ATTEMPT, "e2", ATTEMPT]))
    assert (error.reason, error.detail) == (
        Reason.WRONG_TYPE,
        "element 1: an attempt must be a JSON object",
    )


def test_a_good_array_decodes_every_element_in_order() -> None:
    """Catches: an all-or-nothing check that rejects (or reorders) a good array."""
    items = [{**ATTEMPT, "event_id": f"e{i}", "recipient": f"R{i}@Example.COM"} for i in range(3)]
    attempts = decode_attempts(orjson.dumps(items))
    assert [(a.event_id, a.recipient) for a in attempts] == [
        ("e0", "r0@example.com"),
        ("e1", "r1@example.com"),
        ("e2", "r2@example.com"),
    ]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[]", Reason.MISSING_FIELD),
        (b"{", Reason.BAD_JSON),
        (b"\xff\xfe{}", Reason.BAD_ENCODING),
        (b"null", Reason.WRONG_TYPE),
        (b"[" + b" " * MAX_RECORD_BYTES + b"]", Reason.TOO_LARGE),
        (doc(ATTEMPT, recipient="<>"), Reason.BAD_ADDRESS),
    ],
)
def test_a_bad_attempts_message_is_rejected_with_its_reason(raw: bytes, reason: Reason) -> None:
    """Catches: decode_attempts returning [] for a message that holds nothing usable."""
    error = rejected(decode_attempts, raw)
    assert error.reason is reason
    assert not error.detail.startswith("element")


# -- engagement.events and feedback.events (JSON) -----------------------------------------

COMMON_BAD = [
    (b"not json", Reason.BAD_JSON),
    (b"{not json", Reason.BAD_JSON),
    (b"\xc3\x28", Reason.BAD_ENCODING),
    (b"[]", Reason.MISSING_FIELD),
    (b"5", Reason.WRONG_TYPE),
    (b'["o1"]', Reason.WRONG_TYPE),
    (doc(EVENT, event_id=None), Reason.MISSING_FIELD),
    (doc(EVENT, ts=None), Reason.MISSING_FIELD),
    (doc(EVENT, recipient=None), Reason.MISSING_FIELD),
    (doc(EVENT, recipient="nobody"), Reason.BAD_ADDRESS),
    (doc(EVENT, recipient="a@b@example.com"), Reason.BAD_ADDRESS),
    (doc(EVENT, ts="yesterday"), Reason.BAD_TIMESTAMP),
    (doc(EVENT, ts=True), Reason.BAD_TIMESTAMP),
    (doc(EVENT, ts=1e20), Reason.BAD_TIMESTAMP),
    (doc(EVENT, event_id={"id": 1}), Reason.WRONG_TYPE),
    (doc(EVENT, list_id=[1]), Reason.WRONG_TYPE),
    (doc(EVENT, tenant="no spaces allowed"), Reason.WRONG_TYPE),
    (doc(EVENT, type="bogus"), Reason.WRONG_TYPE),
    (doc(ATTEMPT, type="attempt"), Reason.WRONG_TYPE),  # an attempt on the wrong topic
    (b"[" + b" " * MAX_RECORD_BYTES + b"]", Reason.TOO_LARGE),
]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        *COMMON_BAD,
        (doc(EVENT, action="forward"), Reason.WRONG_TYPE),
        (doc(EVENT, type="complaint"), Reason.WRONG_TYPE),  # feedback on the wrong topic
        (orjson.dumps([EVENT, {**EVENT, "recipient": "x"}]), Reason.BAD_ADDRESS),
    ],
)
def test_bad_engagement_messages_are_rejected_with_their_reason(raw: bytes, reason: Reason) -> None:
    """Catches: decode_engagement returning [] (or a partial list) on bad input instead of
    raising InvalidInput with the reason the dead letter reports."""
    assert rejected(decode_engagement, raw).reason is reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        *COMMON_BAD,
        (doc(EVENT, type="engagement"), Reason.WRONG_TYPE),  # an open on the wrong topic
        (doc(EVENT, type="unsubscribed"), Reason.WRONG_TYPE),
        (orjson.dumps([EVENT, {**EVENT, "ts": "soon"}]), Reason.BAD_TIMESTAMP),
        (b"  [5]", Reason.WRONG_TYPE),
    ],
)
def test_bad_feedback_json_messages_are_rejected_with_their_reason(
    raw: bytes, reason: Reason
) -> None:
    """Catches: decode_feedback (JSON path) returning [] on bad input instead of raising
    InvalidInput with the reason (an ARF report may legitimately give []; JSON never)."""
    if raw.lstrip()[:1] not in (b"{", b"["):
        reason = Reason.BAD_ARF  # not JSON-looking: read as a raw ARF report
    assert rejected(lambda r: decode_feedback(r, received=RECEIVED), raw).reason is reason


def test_good_engagement_and_feedback_messages_decode_with_their_defaults() -> None:
    """Catches: decoders that reject everything (the tests above would pass) or lose the
    defaults (engagement -> open, feedback -> complaint, tenant -> default)."""
    [opened, clicked] = decode_engagement(orjson.dumps([EVENT, {**EVENT, "action": "CLICK"}]))
    assert isinstance(opened, Engagement) and isinstance(clicked, Engagement)
    assert (opened.action, clicked.action) == (EngagementAction.OPEN, EngagementAction.CLICK)
    assert (opened.tenant, opened.recipient) == ("default", "a@example.com")
    [complaint, unsubscribe] = decode_feedback(
        orjson.dumps([EVENT, {**EVENT, "type": "unsubscribe", "tenant": "acme"}]),
        received=RECEIVED,
    )
    assert isinstance(complaint, Feedback) and isinstance(unsubscribe, Feedback)
    assert (complaint.kind, unsubscribe.kind) == (FeedbackKind.COMPLAINT, FeedbackKind.UNSUBSCRIBE)
    assert (complaint.tenant, unsubscribe.tenant) == ("default", "acme")
    assert complaint.ts == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"type": "bogus"}, Reason.WRONG_TYPE),
        ({"type": "engagement", "action": "like"}, Reason.WRONG_TYPE),
        ({"recipient": None}, Reason.MISSING_FIELD),
        ({"ts": "noon"}, Reason.BAD_TIMESTAMP),
        ({"type": "complaint", "recipient": "a"}, Reason.BAD_ADDRESS),
    ],
)
def test_bad_replay_lines_are_rejected_with_their_reason(
    change: dict[str, Any], reason: Reason
) -> None:
    """Catches: decode_event_line accepting or misreporting a bad replay line."""
    assert rejected(decode_event_line, doc(ATTEMPT, **change)).reason is reason
    assert rejected(decode_event_line, b"[1]").reason is Reason.WRONG_TYPE


# -- addresses: trimmed, lowercased, IDNA domain in ASCII ---------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("User@Bücher.Example", "user@xn--bcher-kva.example"),
        (" <José@Café.example> ", "josé@xn--caf-dma.example"),  # the local part stays Unicode
        ("a@例え.テスト", "a@xn--r8jz45g.xn--zckzah"),
        ("a@xn--bcher-kva.example", "a@xn--bcher-kva.example"),  # already ASCII: unchanged
        ("Plain.Name@Example.COM", "plain.name@example.com"),
    ],
)
def test_addresses_are_normalized_with_the_domain_in_idna(raw: str, canonical: str) -> None:
    """Catches: normalize_address without IDNA (the Unicode and the punycode spelling of one
    mailbox would be two addresses with two sets of counters)."""
    assert normalize_address(raw) == canonical
    assert normalize_address(raw) == canonical  # the second call is answered from the cache


def test_both_spellings_of_an_idna_address_count_as_one_recipient() -> None:
    """Catches: the same bug seen from an attempt: both spellings must decode alike."""
    unicode_, ascii_ = decode_attempts(
        orjson.dumps(
            [
                {**ATTEMPT, "recipient": "a@bücher.example"},
                {**ATTEMPT, "recipient": "A@XN--BCHER-KVA.example"},
            ]
        )
    )
    assert unicode_.recipient == ascii_.recipient == "a@xn--bcher-kva.example"


@pytest.mark.parametrize(
    "raw",
    [
        "a@" + "ü" * 64 + ".example",  # a label over 63 octets: not valid IDNA
        "a@bü..example",  # an empty label
        "MAILER-DAEMON",
        "a@",
        "<>",
        "a b@example.com",
        "a@example",
        "x" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_implausible_addresses_are_bad_addresses(raw: str) -> None:
    """Catches: an IDNA failure escaping as UnicodeError (the worker would fall back and
    dead-letter it as internal_error) and garbage let into the counters."""
    with pytest.raises(InvalidInput) as caught:
        normalize_address(raw)
    assert caught.value.reason is Reason.BAD_ADDRESS


CONTROL_CHARACTERS = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))]
"""C0, DEL and C1: none belongs in an address (RFC 5321/6531 allow none of them)."""


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize(
    "template",
    ["nul{c}x@example.com", "victim@example.com{c}.zz", "a@exa{c}mple.com"],
)
def test_control_characters_in_an_address_are_bad_addresses(template: str, char: str) -> None:
    """Catches: a NUL (or any C0, DEL, C1 character) let through inside an address: a
    consumer reading the key as a C string would see another address ("victim@example.com")."""
    with pytest.raises(InvalidInput) as caught:
        normalize_address(template.format(c=char))
    assert caught.value.reason is Reason.BAD_ADDRESS
    assert caught.value.detail == "recipient holds a control character"


def test_a_nul_in_a_recipient_rejects_the_attempt_as_bad_address() -> None:
    """Catches: the same hole seen from a `delivery.attempts` message (as kcat sends it)."""
    raw = orjson.dumps({**ATTEMPT, "recipient": "nul\u0000x@example.com"})
    assert rejected(decode_attempts, raw).reason is Reason.BAD_ADDRESS
