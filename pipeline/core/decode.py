"""Decode our own JSON wire format into models, or raise `InvalidInput` with a reason.

This is the single place that turns untrusted JSON (a `delivery.attempts` message, a replay
line, an attempt JSONL line) into an `Attempt`; the worker, `replay` and the JSON log parser
all go through it, so a bad field is rejected the same way everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Attempt, Outcome

MAX_RECORD_BYTES = 256 * 1024
"""Largest message we try to decode; a bigger one is dead-lettered as too_large."""

# Deliberately loose: one @, no spaces or angle brackets, a dot-free local part is fine, the
# domain needs a dot (or is an IDNA/literal form). Real validation is the MTA's job; this only
# keeps garbage ("<>", "MAILER-DAEMON", "a@") out of the counters.
_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"]{1,64}@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\".]{2,}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""C0 controls (NUL included), DEL and C1 controls: never part of an address (RFC 5321 and
6531 allow none), and a NUL would make a C-string reader of the key see another address."""


_CACHE_SIZE = 1 << 14
"""Addresses (and their canonical forms) remembered by `normalize_address`: the same
recipients come back all day, and the regex and IDNA work is the largest per-event cost of
decoding. Cleared when full (cheaper than an LRU, and a miss only costs the work again).
16,384, not 65,536: the larger cache and the classifier's first-level one were ~30 MB of the
worker's RSS on the bench's arrays run (peak 217-218 MB -> 179-188 MB with these and the
classifier's at 8,192), with no CPU measurably saved (a miss costs ~0.8 us)."""
_normalized: dict[str, str] = {}


def normalize_address(raw: str) -> str:
    """Return the canonical form of an address (trimmed, `<>` stripped, lowercased, IDNA
    domain in ASCII); raise InvalidInput(BAD_ADDRESS) when it is not plausible, and always
    when it holds a control character (C0 including NUL, DEL, C1) after trimming."""
    done = _normalized.get(raw)
    if done is not None:
        return done
    addr = _normalize(raw)
    if len(_normalized) >= _CACHE_SIZE:
        _normalized.clear()
    _normalized[raw] = addr
    return addr


def _normalize(raw: str) -> str:
    addr = raw.strip().strip("<>").strip().lower()
    if _CONTROL.search(addr):
        raise InvalidInput(Reason.BAD_ADDRESS, "recipient holds a control character")
    if "@" in addr:
        local, _, domain = addr.rpartition("@")
        try:
            domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
        except UnicodeError as exc:
            raise InvalidInput(Reason.BAD_ADDRESS, "domain is not valid IDNA") from exc
        addr = f"{local}@{domain}"
    if len(addr) > 254 or not _ADDRESS.match(addr):
        raise InvalidInput(Reason.BAD_ADDRESS, "recipient is not a plausible e-mail address")
    return addr


def parse_ts(value: object) -> datetime:
    """Read an RFC 3339 string (or epoch seconds) as an aware UTC datetime; raise
    InvalidInput(BAD_TIMESTAMP) otherwise. A naive timestamp is taken as UTC."""
    if type(value) is str:  # the common case first: a UTC string ("Z"), one C call
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if ts.tzinfo is UTC:
                return ts
    return _parse_ts(value)


def _parse_ts(value: object) -> datetime:
    if isinstance(value, bool):
        raise InvalidInput(Reason.BAD_TIMESTAMP, "ts must be RFC 3339 text or epoch seconds")
    # Out of datetime's range (epoch 1e20, or year 1 / 9999 shifted across midnight by its
    # offset) raises OverflowError, ValueError or OSError: bad input, not a worker bug.
    out_of_range = (OverflowError, ValueError, OSError)
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except out_of_range as exc:
            raise InvalidInput(Reason.BAD_TIMESTAMP, "ts is out of range") from exc
    if not isinstance(value, str) or not value:
        raise InvalidInput(Reason.BAD_TIMESTAMP, "ts must be RFC 3339 text or epoch seconds")
    try:
        # Python 3.11 reads "Z" itself; only a lowercase "z" needs rewriting.
        ts = datetime.fromisoformat(value if value[-1] != "z" else value[:-1] + "+00:00")
    except ValueError as exc:
        raise InvalidInput(Reason.BAD_TIMESTAMP, "ts is not RFC 3339") from exc
    if ts.tzinfo is UTC:
        return ts
    try:
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except out_of_range as exc:
        raise InvalidInput(Reason.BAD_TIMESTAMP, "ts is out of range") from exc


def check_not_empty(raw: bytes) -> None:
    """Raise InvalidInput(MISSING_FIELD) when one input message `raw` is empty: zero bytes or
    only ASCII whitespace (a null Kafka value arrives as b""). The one rule for every input
    topic, applied before any decoder, so an empty message is dead-lettered with the same
    reason on `mta.log.raw` as on the policy topics."""
    if not raw.strip():
        raise InvalidInput(Reason.MISSING_FIELD, "empty message")


def load_json(raw: bytes | str) -> Any:
    """Parse JSON bytes, mapping size, encoding and syntax problems to InvalidInput."""
    if len(raw) > MAX_RECORD_BYTES:
        raise InvalidInput(
            Reason.TOO_LARGE, f"record is {len(raw)} bytes (limit {MAX_RECORD_BYTES})"
        )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson refuses invalid UTF-8 too; tell the two apart only on the error path.
        if isinstance(raw, bytes):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                raise InvalidInput(Reason.BAD_ENCODING, "record is not valid UTF-8") from bad
        raise InvalidInput(Reason.BAD_JSON, str(exc)[:200]) from exc


def optional_text(value: object, key: str) -> str | None:
    """The stream's rule for an optional text field (tenant, list_id, campaign_id...): None
    or "" is absent (None); a string is itself; an integer (not a bool) is its decimal text;
    anything else raises InvalidInput(WRONG_TYPE) naming `key`. The HTTP API reads its
    fields through this too, so both accept and refuse the same values."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(Reason.WRONG_TYPE, f"{key} must be a string")
    return str(value)


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if type(value) is str:  # the common case first: one check instead of four
        return value or None
    return optional_text(value, key)


def _opt_bool(obj: Mapping[str, Any], key: str) -> bool:
    """An optional boolean field: absent or null is False; anything but a JSON boolean
    raises InvalidInput(WRONG_TYPE) naming `key` (a "false" string is not false)."""
    value = obj.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInput(Reason.WRONG_TYPE, f"{key} must be a boolean")
    return value


def _req_str(obj: Mapping[str, Any], key: str) -> str:
    value = _opt_str(obj, key)
    if value is None:
        raise InvalidInput(Reason.MISSING_FIELD, f"{key} is required")
    return value


def _smtp_code(obj: Mapping[str, Any]) -> int | None:
    value = obj.get("smtp_code")
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 200 <= value <= 599:
        raise InvalidInput(Reason.WRONG_TYPE, "smtp_code must be an integer from 200 to 599")
    return value


_OUTCOMES = {o.value: o for o in Outcome}


def attempt_from_mapping(obj: object) -> Attempt:
    """Build an Attempt from one decoded JSON object (schemas/delivery.attempt.v1.json).

    Required: event_id, ts, recipient, outcome. Raises InvalidInput naming the first bad field.
    """
    if not isinstance(obj, Mapping):
        raise InvalidInput(Reason.WRONG_TYPE, "an attempt must be a JSON object")
    outcome = _OUTCOMES.get(_req_str(obj, "outcome").lower())
    if outcome is None:
        raise InvalidInput(Reason.WRONG_TYPE, "outcome is not one of " + "|".join(Outcome))
    diagnostic = obj.get("diagnostic") or ""
    if not isinstance(diagnostic, str):
        raise InvalidInput(Reason.WRONG_TYPE, "diagnostic must be a string")
    if "ts" not in obj:
        raise InvalidInput(Reason.MISSING_FIELD, "ts is required")
    return Attempt(
        event_id=_req_str(obj, "event_id"),
        ts=parse_ts(obj["ts"]),
        recipient=normalize_address(_req_str(obj, "recipient")),
        outcome=outcome,
        tenant=_opt_str(obj, "tenant") or "default",
        list_id=_opt_str(obj, "list_id"),
        campaign_id=_opt_str(obj, "campaign_id"),
        message_id=_opt_str(obj, "message_id"),
        smtp_code=_smtp_code(obj),
        enhanced_code=_opt_str(obj, "enhanced_code"),
        diagnostic=diagnostic,
        remote_mta=_opt_str(obj, "remote_mta"),
        smtp_phase=_opt_str(obj, "smtp_phase"),
        asynchronous=_opt_bool(obj, "asynchronous"),
    )


class _Wire(msgspec.Struct):
    """An attempt exactly as a well-formed producer writes it (`ship`, normalize, the
    schema's examples): strict JSON types, checked in C by msgspec. Anything else (an epoch
    `ts` is fine, a numeric tenant or a "550" smtp_code is not) fails here and takes the
    checked path, which accepts the same inputs as before and names the bad field."""

    event_id: str
    ts: str | int | float
    recipient: str
    outcome: str
    tenant: str | None = None
    list_id: str | None = None
    campaign_id: str | None = None
    message_id: str | None = None
    smtp_code: int | None = None
    enhanced_code: str | None = None
    diagnostic: str | None = None
    remote_mta: str | None = None
    smtp_phase: str | None = None
    asynchronous: bool = False


_WIRE = msgspec.json.Decoder(list[_Wire] | _Wire)


def _from_wire(w: _Wire) -> Attempt:
    """The Attempt of a well-typed element; raises (anything) when a value needs the checked
    path's judgement (empty required text, an unknown outcome, a code out of range)."""
    outcome = _OUTCOMES[w.outcome]
    code = w.smtp_code
    if not w.event_id or (code is not None and not 200 <= code <= 599):
        raise ValueError("not the fast path")
    return Attempt(
        w.event_id,
        parse_ts(w.ts),
        normalize_address(w.recipient),
        outcome,
        w.tenant or "default",
        w.list_id or None,
        w.campaign_id or None,
        w.message_id or None,
        code,
        w.enhanced_code or None,
        w.diagnostic or "",
        w.remote_mta or None,
        w.smtp_phase or None,
        w.asynchronous,
    )


def decode_attempts(raw: bytes | str) -> list[Attempt]:
    """Decode one `delivery.attempts` message: a JSON object or an array of them.

    All-or-nothing: one bad element rejects the message (it is dead-lettered whole, with the
    index of the element in the detail), so a batch is never half counted.
    """
    if len(raw) <= MAX_RECORD_BYTES:
        # The fast path: most messages are well-formed. Whatever it refuses, for whatever
        # reason, is decoded again by the checked path below, which decides (and names the
        # first bad field), so both paths accept and reject exactly the same messages.
        try:
            wire = _WIRE.decode(raw)
            if isinstance(wire, _Wire):
                return [_from_wire(wire)]
            if wire:
                return [_from_wire(w) for w in wire]
        except Exception:  # noqa: S110 - the checked path decides
            pass
    return decode_attempts_checked(raw)


def decode_attempts_checked(raw: bytes | str) -> list[Attempt]:
    """`decode_attempts` without its fast path: every field checked in Python (the reference
    the fast path is tested against, and what decides every message the fast path refuses)."""
    doc = load_json(raw)
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise InvalidInput(Reason.MISSING_FIELD, "empty array")
    attempts = []
    for index, item in enumerate(items):
        try:
            attempts.append(attempt_from_mapping(item))
        except InvalidInput as exc:
            if len(items) == 1:
                raise
            raise InvalidInput(exc.reason, f"element {index}: {exc.detail}") from exc
    return attempts
