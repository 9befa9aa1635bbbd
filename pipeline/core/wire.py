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
           cap bounce-count cap, ok keep the delivered log
  op       k kind (imm, con, brk, cnf, rw), id rule id, u scope index (1 = narrowest),
           t threshold, te engaged threshold, ew engaged window ms, re reset on engagement,
           sp span ms, w window ms, pc per campaign, cap entries kept
  entry    i event id, t ts ms, te tenant, l list, c campaign, k category, K class,
           o outcome, s smtp code, x enhanced code, d diagnostic, m remote MTA
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
    return {
        "k": "b",
        "sc": letters,
        "ops": rule_ops(policy, kind, category),
        "cat": category.value,
        "b": policy.counts_as_bounce(kind, category),
        "cap": bounce_cap(policy),
    }


def log_entry(event: Attempt | Feedback, verdict: Classification) -> bytes:
    """The compact bounce-log record of one event (also the evidence of what it trips)."""
    entry: dict[str, Any] = {
        "i": event.event_id,
        "t": to_ms(event.ts),
        "te": event.tenant,
        "k": verdict.category.value,
        "K": verdict.bounce_class.value,
    }
    if event.list_id is not None:
        entry["l"] = event.list_id
    if event.campaign_id is not None:
        entry["c"] = event.campaign_id
    if isinstance(event, Attempt):
        entry["o"] = event.outcome.value
        if event.smtp_code is not None:
            entry["s"] = event.smtp_code
        if event.enhanced_code is not None:
            entry["x"] = event.enhanced_code
        if event.diagnostic:
            entry["d"] = event.diagnostic[:DIAGNOSTIC_LOG_CHARS]
        if event.remote_mta is not None:
            entry["m"] = event.remote_mta
    return orjson.dumps(entry)


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


def expand_entry(raw: bytes | str | dict[str, Any]) -> dict[str, Any]:
    """The public form of a log entry (status API, evidence): full field names, RFC 3339 ts."""
    entry = raw if isinstance(raw, dict) else orjson.loads(raw)
    out: dict[str, Any] = {"event_id": entry.get("i"), "ts": format_ts(from_ms(entry["t"]))}
    for name, short in _EXPANDED[1:]:
        if short in entry:
            out[name] = entry[short]
    out.setdefault("diagnostic", "")
    return out
