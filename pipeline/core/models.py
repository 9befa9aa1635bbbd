"""The values that flow through bounceguard.

Every model is a frozen, slotted dataclass: cheap to build on the hot path, safe to share,
and hashable where it matters. Conversion to and from JSON lives next to each model so the
wire format is defined in one place (see `schemas/` for the JSON Schemas).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from pipeline.core.errors import InvalidInput, Reason

# A tenant names Redis keys (`NS:{addr}:t:<tenant>`) and metric labels: no ":" that could
# make one tenant's key read as another's list key, no braces (hash tags), no "*" (SCAN
# patterns), no "@" (an address in a label), no spaces.
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


_GOOD_TENANTS: set[str] = set()
"""Tenants already checked (a platform has few; bounded below): every event is checked."""


def check_tenant(tenant: str) -> None:
    """Raise InvalidInput(WRONG_TYPE) unless `tenant` is 1-128 of [A-Za-z0-9._+-], starting
    with a letter or digit."""
    if tenant in _GOOD_TENANTS:
        return
    if type(tenant) is not str or _TENANT.fullmatch(tenant) is None:
        raise InvalidInput(
            Reason.WRONG_TYPE, "tenant must be 1-128 letters, digits or . _ + - characters"
        )
    if len(_GOOD_TENANTS) < 4096:
        _GOOD_TENANTS.add(tenant)


class Outcome(enum.StrEnum):
    """What the MTA says happened to one delivery attempt."""

    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    EXPIRED = "expired"


class BounceClass(enum.StrEnum):
    """Coarse class of a result; policies count by class, reports group by category."""

    DELIVERED = "delivered"
    SOFT = "soft"
    HARD = "hard"
    BLOCK = "block"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    AUTO_REPLY = "auto_reply"
    UNKNOWN = "unknown"


class Category(enum.StrEnum):
    """Fine-grained reason of a result (PRODUCT.md: extend, never rename)."""

    DELIVERED = "delivered"
    AUTO_REPLY = "auto_reply"
    USER_UNKNOWN = "user_unknown"
    INVALID_ADDRESS = "invalid_address"
    BAD_DOMAIN = "bad_domain"
    INACTIVE_MAILBOX = "inactive_mailbox"
    MAILBOX_FULL = "mailbox_full"
    MESSAGE_TOO_LARGE = "message_too_large"
    RELAY_DENIED = "relay_denied"
    DNS_FAILURE = "dns_failure"
    TRANSIENT = "transient"
    THROTTLED = "throttled"
    GREYLISTED = "greylisted"
    SPAM_BLOCK = "spam_block"
    SPAM_CONTENT = "spam_content"
    POLICY = "policy"
    ATTACHMENT_REJECTED = "attachment_rejected"
    VIRUS = "virus"
    CHALLENGE_RESPONSE = "challenge_response"
    GENERAL_HARD = "general_hard"
    GENERAL_SOFT = "general_soft"
    UNDETERMINED = "undetermined"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"


@dataclass(frozen=True, slots=True)
class Classification:
    """The classifier's verdict on one SMTP result."""

    category: Category
    """Fine-grained reason."""
    bounce_class: BounceClass
    """Coarse class that policies count."""
    rule: str
    """Id of the rule that decided (for explanations and the classifier's tests)."""


class Attempt(msgspec.Struct, frozen=True, gc=False):
    """One normalized delivery attempt (schemas/delivery.attempt.v1.json).

    A frozen msgspec Struct, not a dataclass like the other models: attempts are the one
    model built per event at volume, and a frozen dataclass's `__init__` (one
    `object.__setattr__` per field) cost ~2 µs of the worker's ~60 µs per attempt; a Struct is
    built in C (~0.3 µs), and is as immutable, comparable and hashable. `gc=False`: its fields
    (text, numbers, a datetime, enums) can hold no reference cycle, so the garbage collector
    need not track the thousands of attempts a unit holds (it scanned them on every
    collection)."""

    event_id: str
    """Producer-assigned unique id; the dedupe key for exactly-once counting."""
    ts: datetime
    """Event time (timezone-aware, UTC) of the attempt; every window uses this, never wall time."""
    recipient: str
    """Recipient address, normalized (lowercase, trimmed)."""
    outcome: Outcome
    """What the MTA reported."""
    tenant: str = "default"
    """Sending customer; policies and scopes are per tenant."""
    list_id: str | None = None
    """Mailing list the message was sent to, when known."""
    campaign_id: str | None = None
    """Campaign (one send to a list), when known."""
    message_id: str | None = None
    """MTA queue id or Message-ID; groups the MTA's retries of one message."""
    smtp_code: int | None = None
    """Basic SMTP reply code, e.g. 550."""
    enhanced_code: str | None = None
    """RFC 3463 enhanced status code, e.g. "5.1.1"."""
    diagnostic: str = ""
    """The remote server's reply text."""
    remote_mta: str | None = None
    """Host that answered, when the log has it."""
    smtp_phase: str | None = None
    """SMTP command the reply answered (e.g. "RCPT TO"), when the log has it."""
    asynchronous: bool = False
    """Reported after the fact by a bounce mail (a DSN or a plain-text notice), not by the
    log of the SMTP session: the MTA may have logged "delivered" for the same message."""

    def __post_init__(self) -> None:
        check_tenant(self.tenant)

    def to_wire(self) -> bytes:
        """The wire form as JSON bytes, encoded by msgspec in C (what normalize and `ship`
        produce: ~4x cheaper than orjson over `to_json`). Same fields and values as
        `to_json`, except that `ts` keeps its microseconds ("...T09:00:00.123456Z"), which
        every reader truncates to the same millisecond."""
        return _WIRE_ENCODER.encode(self)

    def to_json(self) -> dict[str, Any]:
        """Return the wire form (schemas/delivery.attempt.v1.json); `ts` as RFC 3339 UTC."""
        return {
            "event_id": self.event_id,
            "ts": format_ts(self.ts),
            "recipient": self.recipient,
            "outcome": self.outcome.value,
            "tenant": self.tenant,
            "list_id": self.list_id,
            "campaign_id": self.campaign_id,
            "message_id": self.message_id,
            "smtp_code": self.smtp_code,
            "enhanced_code": self.enhanced_code,
            "diagnostic": self.diagnostic,
            "remote_mta": self.remote_mta,
            "smtp_phase": self.smtp_phase,
            "asynchronous": self.asynchronous,
        }


_WIRE_ENCODER = msgspec.json.Encoder()


def format_ts(ts: datetime) -> str:
    """Format an aware datetime as RFC 3339 in UTC with a `Z` suffix (milliseconds kept; no
    fraction when they are 0, so a time read back from integer ms formats the same)."""
    utc = ts if ts.tzinfo is UTC else ts.astimezone(UTC)
    if utc.year < 1000:  # isoformat pads the year to 4 digits, strftime's %Y does not
        if utc.microsecond >= 1000:
            return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    # isoformat is C and ~4x cheaper than strftime (this runs for every attempt normalize
    # produces and every event emitted).
    ms = utc.microsecond // 1000
    text = utc.isoformat(timespec="seconds")[:19]
    return f"{text}.{ms:03d}Z" if ms else text + "Z"


class Scope(enum.StrEnum):
    """Where a suppression applies."""

    LIST = "list"
    """Only the list the mail was sent to (a Marketing unsubscribe leaves other lists alone)."""
    TENANT = "tenant"
    """Every list of the tenant."""
    GLOBAL = "global"
    """Every tenant (bsd's global inactive-mailbox setting)."""


class Action(enum.StrEnum):
    """What a suppression-change event says happened."""

    SUPPRESSED = "suppressed"
    REACTIVATED = "reactivated"


@dataclass(frozen=True, slots=True)
class Suppression:
    """One suppression-change event on `suppression.events` (schemas/suppression.event.v1.json)."""

    event_id: str
    """Deterministic id (pipeline.core.ids): a re-emitted event carries the same id."""
    action: Action
    """suppressed or reactivated."""
    address: str
    """The recipient address (normalized)."""
    tenant: str
    """Tenant whose policy decided."""
    scope: Scope
    """Where the suppression applies."""
    list_id: str | None
    """The list, when scope is list; otherwise None."""
    reason: str
    """Category that decided (e.g. user_unknown), or "manual" for a reactivation."""
    rule: str
    """Id of the policy rule that tripped (e.g. "immediate_hard")."""
    count: int
    """The counter value that tripped the rule."""
    threshold: int
    """The rule's threshold."""
    policy: str
    """Name of the policy (preset) in force."""
    tag: str | None
    """Tag the seed asks for (e.g. "UnsubscribeService:fbl"), or None."""
    trigger_event_id: str
    """event_id of the attempt (or request) that tripped it."""
    ts: datetime
    """Event time of the trigger."""
    evidence: tuple[dict[str, Any], ...] = ()
    """The attempts that led to it: event_id, ts, category, smtp_code, enhanced_code, diagnostic."""

    def to_json(self) -> dict[str, Any]:
        """Return the wire form (schemas/suppression.event.v1.json)."""
        return {
            "event_id": self.event_id,
            "action": self.action.value,
            "address": self.address,
            "tenant": self.tenant,
            "scope": self.scope.value,
            "list_id": self.list_id,
            "reason": self.reason,
            "rule": self.rule,
            "count": self.count,
            "threshold": self.threshold,
            "policy": self.policy,
            "tag": self.tag,
            "trigger_event_id": self.trigger_event_id,
            "ts": format_ts(self.ts),
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True, slots=True)
class SenderAlert:
    """One tenant-level alert on `sender.alerts` (e.g. complaint rate over its limit)."""

    event_id: str
    """Deterministic id: one alert per tenant, rule and day of event time."""
    tenant: str
    """The sending tenant the alert is about."""
    rule: str
    """Id of the tenant-rate rule that tripped (e.g. "complaint_rate")."""
    policy: str
    """Name of the policy (preset) in force."""
    count: int
    """Matching events (e.g. complaints) inside the window."""
    sent: int
    """Delivered messages inside the window."""
    rate: float
    """count / sent (count when nothing was delivered)."""
    max_rate: float
    """The rule's limit."""
    window_days: float
    """Length of the window, in days of event time, ending on the day of `ts`."""
    ts: datetime
    """Event time of the event that tripped it."""

    def to_json(self) -> dict[str, Any]:
        """Return the wire form of a `sender.alerts` event."""
        return {
            "event_id": self.event_id,
            "kind": "tenant_rate",
            "tenant": self.tenant,
            "rule": self.rule,
            "policy": self.policy,
            "count": self.count,
            "sent": self.sent,
            "rate": self.rate,
            "max_rate": self.max_rate,
            "window_days": self.window_days,
            "ts": format_ts(self.ts),
        }
