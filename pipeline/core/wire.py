"""What the Redis functions are told, and the shapes they answer in (the only code that knows
the short names of `pipeline/state/lua/*.lua`).

Responsibilities:
- time as integer milliseconds of event time (`to_ms`, `from_ms`);
- what "one send" is (`send_key`) and the short digest an event is remembered by (`digest`);
- a *profile*: what every event of one (policy, class, category) tells the apply function
  (`profile`): its kind, the scope letters, the rule ops, whether it counts as a bounce;
- the compact bounce-log entry (`log_entry`) and its public, expanded form (`expand_entry`).

Short names, in one place:
  profile  k kind (d delivered, b bounce or feedback, o open/click), sc scope letters narrow
           to broad (l list, t tenant, g global), ops, cat category, b counts as a bounce,
           cap bounce-count cap, ok keep the delivered log, kc the class, kept in the bounce
           count (only for policies with class tiers)
  op       k kind (imm, con, brk, cnf, rw), id rule id, u scope index (1 = narrowest),
           t threshold, te engaged threshold, ew engaged window ms, re reset on engagement,
           sp span ms, w window ms, pc per campaign, cap entries kept
  entry    a bounce-log entry is a positional array (LOG_FIELDS); a delivered-log entry is an
           object: i event id, t ts ms, te tenant, s smtp code, d diagnostic, m remote MTA
"""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pipeline.core.events import Engagement, Feedback
from pipeline.core.models import (
    Attempt,
    BounceClass,
    Category,
    Classification,
    Scope,
    Suppression,
    format_ts,
)
from pipeline.core.policies import DAY_MS, HOUR_MS, Policy, Rule, RuleKind

DIAGNOSTIC_LOG_CHARS = 500
"""Server message characters kept per bounce-log entry (real replies are shorter)."""
NO_LIST = "-"
"""List key of an event without a list_id under a list-scoped policy."""
MAX_SEND_CHARS = 40
"""Longer send keys (a Message-ID) are stored as their digest: they are only compared."""
SCOPE_LETTERS = {Scope.LIST: "l", Scope.TENANT: "t", Scope.GLOBAL: "g"}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(ts: datetime) -> int:
    """Event time as integer milliseconds since the epoch (what the functions compare).

    Integer arithmetic on the timedelta: `int(ts.timestamp() * 1000)` goes through a float
    and turns .123 s into 122 ms for some timestamps."""
    return (ts - _EPOCH) // _MS


def from_ms(ms: int | float) -> datetime:
    """Inverse of to_ms, as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def digest(event_id: str) -> str:
    """The 12-hex-digit digest an event is remembered by in its address's state (48 bits:
    a collision among the few dozen events one address remembers is out of reach)."""
    return hashlib.blake2b(event_id.encode(), digest_size=6).hexdigest()


def send_key(event: Attempt | Feedback | Engagement) -> str:
    """What "one send" is: the campaign, else the MTA's message id, else the event itself.

    The MTA's retries of one message share the message id, so they count as one send."""
    message_id = event.message_id if isinstance(event, Attempt) else None
    key = event.campaign_id or message_id or event.event_id
    return key if len(key) <= MAX_SEND_CHARS else "#" + digest(key)


def _op(rule: Rule, unit: int) -> dict[str, Any] | None:
    base: dict[str, Any] = {"id": rule.id, "u": unit, "t": rule.threshold, "cap": rule.max_tracked}
    if rule.kind is RuleKind.IMMEDIATE:
        return {**base, "k": "imm"}
    if rule.kind is RuleKind.CONSECUTIVE:
        engaged = rule.engaged_threshold or rule.threshold
        window = int(rule.engaged_days * DAY_MS)
        return {**base, "k": "con", "te": engaged, "ew": window, "re": rule.reset_on_engagement}
    if rule.kind is RuleKind.CONFIRMATIONS:
        return {**base, "k": "cnf", "sp": int(rule.span_hours * HOUR_MS)}
    if rule.kind is RuleKind.RETRY_WINDOW:
        window = int(rule.window_hours * HOUR_MS)
        return {**base, "k": "rw", "w": window, "pc": rule.per_campaign}
    return None  # count_threshold runs in the sweep, tenant_rate on the tenant's keys


def rule_ops(policy: Policy, bounce_class: BounceClass, category: Category) -> list[dict[str, Any]]:
    """The rule operations an event of this class and category feeds under `policy`, in rule
    order; `u` is the 1-based index of the rule's scope in `policy.scopes()`."""
    scopes = policy.scopes()
    ops = []
    for rule in policy.rules:
        unit = scopes.index(policy.scope_of(rule)) + 1
        if rule.matches(bounce_class, category):
            op = _op(rule, unit)
            if op is not None:
                ops.append(op)
        elif rule.kind is RuleKind.CONSECUTIVE and bounce_class in rule.break_classes:
            # A send that ends without a matching event breaks the run (benchmark: a
            # campaign with only a soft bounce is not a "hard bounce" campaign).
            ops.append({"id": rule.id, "u": unit, "cap": rule.max_tracked, "k": "brk"})
    return ops


def bounce_cap(policy: Policy) -> int:
    """Sends kept in a scope's bounce count: enough for every count-threshold rule."""
    caps = [r.max_tracked for r in policy.rules if r.kind is RuleKind.COUNT_THRESHOLD]
    return max([32, *caps])


def tiers_by_class(policy: Policy) -> bool:
    """True when a count-threshold tier of `policy` names classes: its bounce count must then
    remember each send's latest class, not only its category."""
    return any(t.classes for r in policy.rules for t in r.tiers)


ENGAGEMENT = "engagement"
"""The profile "class" of opens and clicks."""


@functools.lru_cache(maxsize=4096)
def profile(policy: Policy, kind: BounceClass | str, category: Category | None) -> dict[str, Any]:
    """What every event of this class (or ENGAGEMENT) and category tells the apply function
    under `policy`. Cached: a policy has a few dozen distinct profiles."""
    letters = [SCOPE_LETTERS[s] for s in policy.scopes()]
    if kind == ENGAGEMENT:
        return {"k": "o", "sc": letters}
    if kind is BounceClass.DELIVERED:
        return {"k": "d", "sc": letters, "ok": policy.keep_delivered_log}
    assert isinstance(kind, BounceClass) and category is not None
    out = {
        "k": "b",
        "sc": letters,
        "ops": rule_ops(policy, kind, category),
        "cat": category.value,
        "b": policy.counts_as_bounce(kind, category),
        "cap": bounce_cap(policy),
    }
    if tiers_by_class(policy):
        out["kc"] = kind.value
    return out


LOG_FIELDS = (
    ("event_id", "i"),
    ("ts", "t"),
    ("category", "k"),
    ("class", "K"),
    ("outcome", "o"),
    ("list_id", "l"),
    ("campaign_id", "c"),
    ("smtp_code", "s"),
    ("enhanced_code", "x"),
    ("diagnostic", "d"),
    ("remote_mta", "m"),
)
"""Positions of a bounce-log entry (a JSON array, trailing nulls dropped). No tenant: the log
lives in the tenant's own document. An array instead of an object saves the key names, about
45 bytes of every entry."""


def log_entry(event: Attempt | Feedback, verdict: Classification) -> bytes:
    """The compact bounce-log record of one event (also the evidence of what it trips): the
    values of LOG_FIELDS in order, as a JSON array without trailing nulls."""
    values: list[Any] = [
        event.event_id,
        to_ms(event.ts),
        verdict.category.value,
        verdict.bounce_class.value,
        None,
        event.list_id,
        event.campaign_id,
    ]
    if isinstance(event, Attempt):
        values[4] = event.outcome.value
        values += [
            event.smtp_code,
            event.enhanced_code,
            event.diagnostic[:DIAGNOSTIC_LOG_CHARS] if event.diagnostic else None,
            event.remote_mta,
        ]
    while values[-1] is None:
        values.pop()
    return orjson.dumps(values)


def delivered_entry(event: Attempt) -> bytes:
    """The compact record of one delivery ("250 ok"), for policies that keep them briefly."""
    entry: dict[str, Any] = {"i": event.event_id, "t": to_ms(event.ts), "te": event.tenant}
    if event.smtp_code is not None:
        entry["s"] = event.smtp_code
    if event.diagnostic:
        entry["d"] = event.diagnostic[:DIAGNOSTIC_LOG_CHARS]
    if event.remote_mta is not None:
        entry["m"] = event.remote_mta
    return orjson.dumps(entry)


_EXPANDED = (
    ("event_id", "i"),
    ("tenant", "te"),
    ("list_id", "l"),
    ("campaign_id", "c"),
    ("category", "k"),
    ("class", "K"),
    ("outcome", "o"),
    ("smtp_code", "s"),
    ("enhanced_code", "x"),
    ("diagnostic", "d"),
    ("remote_mta", "m"),
)


def expand_entry(raw: bytes | str | list[Any] | dict[str, Any]) -> dict[str, Any]:
    """The public form of a log entry (status API, evidence): full field names, RFC 3339 ts.

    Takes a bounce-log entry (a JSON array, see LOG_FIELDS) or a delivered-log entry (a JSON
    object with the short names), raw or decoded. Absent fields are left out, except the
    diagnostic, which is "" when the event had none."""
    entry = orjson.loads(raw) if isinstance(raw, bytes | str) else raw
    if isinstance(entry, list):
        pairs = zip(LOG_FIELDS, entry, strict=False)
        entry = {short: v for (_, short), v in pairs if v is not None}
    out: dict[str, Any] = {"event_id": entry.get("i"), "ts": format_ts(from_ms(entry["t"]))}
    for name, short in _EXPANDED[1:]:
        if short in entry:
            out[name] = entry[short]
    out.setdefault("diagnostic", "")
    return out


HISTORY_FIELDS = (
    "action",
    "address",
    "scope",
    "list_id",
    "reason",
    "rule",
    "count",
    "threshold",
    "policy",
    "tag",
    "trigger_event_id",
)
"""Positions of a history record (a JSON array). The event id, tenant and ts are not in it:
the member starts with the id, the key names the tenant, the score is the ts."""


def history_record(s: Suppression) -> bytes:
    """A suppression as its tenant's history keeps it: the values of HISTORY_FIELDS, without the
    evidence (the bounce log and the event on Kafka have it; keeping it twice was a third of
    the history's memory)."""
    event = s.to_json()
    return orjson.dumps([event[name] for name in HISTORY_FIELDS])


def history_event(record: bytes | str, *, event_id: str, tenant: str, ts_ms: int) -> dict[str, Any]:
    """The event a history record stands for, in the wire form's field order without evidence.
    Also reads the older records that were the whole JSON object."""
    body = orjson.loads(record)
    if isinstance(body, dict):
        return body
    values = dict(zip(HISTORY_FIELDS, body, strict=True))
    return {
        "event_id": event_id,
        **{k: values[k] for k in HISTORY_FIELDS[:2]},
        "tenant": tenant,
        **{k: values[k] for k in HISTORY_FIELDS[2:]},
        "ts": format_ts(from_ms(ts_ms)),
    }
