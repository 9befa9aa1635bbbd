"""Reading and sweeping the per-address state: status, the bounced-contacts report, and the
count-threshold sweep (listrak's cleanup).

The sweep and the report find a tenant's addresses with SCAN over the scope-document key
pattern (keys.scope_pattern): no index to keep in step, and both run rarely (the sweep every
90 days). On a Redis Cluster the SCAN covers every primary, and the sweep's writes go one
call per primary (pipeline.state.fanout); a key the SCAN yields twice (its slot moved while
it ran) counts once in what they return.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from pipeline.core.models import Scope, Suppression, format_ts
from pipeline.core.outcomes import suppression_from_decision
from pipeline.core.plan import Arg
from pipeline.core.policies import Policy, Rule, RuleKind
from pipeline.core.wire import digest, expand_entry, from_ms, to_ms
from pipeline.state import fanout, keys
from pipeline.state.errors import redis_errors
from pipeline.state.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BouncedContact:
    """One row of the seed-000 export: address, list, latest bounce reason, bounce count."""

    address: str
    tenant: str
    list_id: str | None
    latest_reason: str
    bounce_count: int
    latest_ts: datetime
    suppressed: str | None
    """The rule that suppressed the contact in this scope, or None."""

    def to_json(self) -> dict[str, Any]:
        """Return the row as a JSON object."""
        return {
            "address": self.address,
            "tenant": self.tenant,
            "list_id": self.list_id,
            "latest_reason": self.latest_reason,
            "bounce_count": self.bounce_count,
            "latest_ts": format_ts(self.latest_ts),
            "suppressed": self.suppressed,
        }


def live_bounces(doc: keys.Doc) -> list[list[Any]]:
    """The bounce-count entries of a scope that no delivery or reactivation has reset (as
    the functions see them): one per send, [send, first ts, latest ts, category, digest]."""
    reset = max(doc.delivered, int(doc.fields.get("r") or 0))
    return [e for e in doc.fields.get("bn") or [] if e[2] > reset]


async def _state_keys(store: Store, tenant: str | None, scope: Scope) -> AsyncIterator[list[str]]:
    """Pages of (deduplicated within the page) state keys of one scope, list or tenant."""
    async for page in fanout.scan(store, keys.scope_pattern(store.namespace, tenant, scope)):
        wanted = []
        for key in page:
            parsed = keys.parse_state(store.namespace, key)
            if parsed is not None and (scope is Scope.LIST) == (parsed[2] is not None):
                wanted.append(key)
        if wanted:
            yield sorted(set(wanted))


def _sweep_rule(policy: Policy) -> Rule | None:
    return next((r for r in policy.rules if r.kind is RuleKind.COUNT_THRESHOLD), None)


def _sweep_mins(rule: Rule) -> dict[str, Any]:
    """The sweep's header for `rule`: minimum by category (m), by class (c), other (o); the
    first tier naming a reason wins (Rule.min_count_for)."""
    by_category: dict[str, int] = {}
    by_class: dict[str, int] = {}
    for tier in rule.tiers:
        for category in tier.categories:
            by_category.setdefault(category.value, tier.min_count)
        for bounce_class in tier.classes:
            by_class.setdefault(bounce_class.value, tier.min_count)
    return {"m": by_category, "c": by_class, "o": rule.other_min_count}


def sweep_id(rule: Rule, run: str) -> str:
    """The trigger id of one sweep run: the same run gives the same suppression ids."""
    return f"sweep:{rule.id}:{run}"


async def sweep(
    store: Store, at: datetime, tenant: str | None = None, run: str | None = None
) -> list[Suppression]:
    """Run every count-threshold rule over the state of `tenant` (or of all tenants) as of
    `at` and return the suppressions it trips, ordered by address. `run` names the run
    (default: `at` in RFC 3339); re-running the same run before `mark_emitted` returns the
    same suppressions (same ids); after it, none."""
    out: dict[str, Suppression] = {}  # by event id: a scope scanned twice decides alike
    for scope in (Scope.LIST, Scope.TENANT):
        async for page in _state_keys(store, tenant, scope):
            for s in await _sweep_page(store, page, at, run or format_ts(at)):
                out[s.event_id] = s
    return sorted(out.values(), key=lambda s: (s.address, s.tenant, s.list_id or ""))


async def _sweep_page(store: Store, page: list[str], at: datetime, run: str) -> list[Suppression]:
    ns = store.namespace
    rules: dict[str, dict[str, Any]] = {}
    entries: list[fanout.Entry] = []
    found = []
    for key in page:
        address, tenant, list_id = keys.parse_state(ns, key) or ("", "", None)
        policy = store.book.for_tenant(tenant)
        rule = _sweep_rule(policy)
        if rule is None or policy.scope_of(rule) is not (Scope.LIST if list_id else Scope.TENANT):
            continue
        trigger = sweep_id(rule, run)
        rules[rule.id] = _sweep_mins(rule)
        u = policy.scopes().index(policy.scope_of(rule)) + 1
        home = keys.state(ns, address, tenant)
        args: list[Arg] = [key, home, rule.id, u, digest(trigger), trigger]
        entries.append((address, args))
        found.append((policy, address, tenant, list_id, trigger))
    if not found:
        return []
    header = orjson.dumps({"at": to_ms(at), "ttl": store.state_ttl, "R": rules})
    out, newer = [], 0
    for held, reply in await fanout.run_split(store, "sweep", [header], entries):
        for index, kind, *decided in _entries(reply):
            if kind == "n":
                newer += 1
                continue
            out += _suppressions(found[held[int(index) - 1]], decided[0], at)
    if newer:
        log.info("sweep as of %s: %d scopes have state after that time; left alone", run, newer)
    return out


def _suppressions(entry: tuple[Any, ...], decisions: list[Any], at: datetime) -> list[Suppression]:
    """The suppression events of one swept scope's decisions."""
    policy, address, tenant, list_id, trigger = entry
    out = []
    for decision in decisions:
        out.append(
            suppression_from_decision(
                policy,
                decision,
                address=address,
                tenant=tenant,
                list_id=list_id,
                trigger_event_id=trigger,
                ts=at,
            )
        )
    return out


def _entries(reply: Any) -> list[Any]:
    decoded = orjson.loads(reply)
    return decoded if isinstance(decoded, list) else []


async def report(store: Store, tenant: str) -> list[BouncedContact]:
    """The seed-000 export for `tenant`: every contact with a live bounce count, per list
    (list-scoped policies) or per tenant, ordered by latest reason then count (as the seed
    sorts it: "Sort on Bounce Reason. Then by Bounce Count")."""
    rows: dict[str, BouncedContact] = {}  # by key: a key scanned twice is one contact
    for scope in (Scope.LIST, Scope.TENANT):
        async for page in _state_keys(store, tenant, scope):
            raws = await fanout.read_many(store, page)
            for key, raw in zip(page, raws, strict=True):
                row = _row(store.namespace, key, keys.read_doc(raw))
                if row is not None:
                    rows[key] = row
    return sorted(rows.values(), key=lambda r: (r.latest_reason, -r.bounce_count, r.address))


def _row(ns: str, key: str, doc: keys.Doc) -> BouncedContact | None:
    parsed = keys.parse_state(ns, key)
    live = live_bounces(doc)
    if parsed is None or not live:
        return None
    latest = max(live, key=lambda e: e[2])
    suppression = doc.fields.get("s")
    return BouncedContact(
        address=parsed[0],
        tenant=parsed[1],
        list_id=parsed[2],
        latest_reason=str(latest[3]),
        bounce_count=len(live),
        latest_ts=from_ms(latest[2]),
        suppressed=suppression["rule"] if suppression else None,
    )


async def status(
    store: Store, address: str, tenant: str, list_id: str | None = None
) -> dict[str, Any]:
    """Everything known about one address for one tenant: the state of each scope the
    tenant's policy uses (counters, suppression, last delivery and engagement), and this
    tenant's bounce and delivered logs, newest first. Times are RFC 3339."""
    policy = store.book.for_tenant(tenant)
    ns = store.namespace
    scope_keys = [keys.scope_state(ns, address, tenant, s, list_id) for s in policy.scopes()]
    home = keys.state(ns, address, tenant)
    with redis_errors():
        pipe = store.client.pipeline(transaction=False)
        # MGET by name: redis-py's cluster pipeline refuses its mget() method, though one
        # address's keys share one slot (keys.py) and so one node
        pipe.execute_command("MGET", home, *scope_keys)
        pipe.lrange(keys.delivered_log(ns, address), 0, -1)
        [home_raw, *raws], delivered = await pipe.execute()
    scopes = {
        scope.value: _scope_view(keys.read_doc(raw), scope, list_id)
        for scope, raw in zip(policy.scopes(), raws, strict=True)
    }
    bounces = [{**expand_entry(entry), "tenant": tenant} for entry in keys.read_doc(home_raw).log]
    return {
        "address": address,
        "tenant": tenant,
        "policy": policy.name,
        "scopes": scopes,
        "bounce_log": bounces,
        "delivered_log": _delivered(delivered, tenant),
    }


def _delivered(raws: list[bytes], tenant: str) -> list[dict[str, Any]]:
    """Expanded entries of `tenant` in an address's delivered log (kept per address)."""
    out = []
    for raw in raws:
        entry = expand_entry(raw)
        entry.setdefault("outcome", "delivered")  # the log stores none: all are deliveries
        if entry.get("tenant", tenant) == tenant:
            out.append(entry)
    return out


def _ts(ms: int | float | None) -> str | None:
    return format_ts(from_ms(ms)) if ms else None


def _scope_view(doc: keys.Doc, scope: Scope, list_id: str | None) -> dict[str, Any]:
    live = live_bounces(doc)
    latest = max(live, key=lambda e: e[2]) if live else None
    s = doc.fields.get("s")
    suppression = None
    if s:
        suppression = {
            "rule": s["rule"],
            "reason": s.get("reason"),
            "count": int(s.get("n", 0)),
            "threshold": int(s.get("t", 0)),
            "ts": _ts(s.get("ts")),
            "trigger_event_id": s.get("ev"),
        }
    return {
        "list_id": list_id if scope is Scope.LIST else None,
        "suppressed": suppression,
        "bounce_count": len(live),
        "latest_reason": latest[3] if latest else None,
        "last_delivery": _ts(doc.delivered),
        "last_engagement": _ts(doc.fields.get("e")),
        "counters": dict(doc.fields.get("k") or {}),
    }
