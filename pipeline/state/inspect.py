"""Reading and sweeping the per-address state: status, the bounced-contacts report, and the
count-threshold sweep (listrak's cleanup).

The sweep and the report find a tenant's addresses with SCAN over the state-hash key pattern
(keys.scope_pattern): no index to keep in step, and both run rarely (the sweep every 90 days).
On Redis Cluster run them against each primary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from pipeline.core.errors import Transient
from pipeline.core.models import Scope, Suppression, format_ts
from pipeline.core.policies import Policy, Rule, RuleKind
from pipeline.core.policy_plan import from_ms, suppression_from_decision, to_ms
from pipeline.state import keys
from pipeline.state.store import REDIS_DOWN, Store, execute

SCAN_PAGE = 500
"""Keys asked for per SCAN call (and script calls per pipelined sweep round trip)."""


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


def live_bounces(fields: dict[str, str]) -> list[dict[str, Any]]:
    """The bounce-count entries of a state hash that a delivery has not reset (as the
    scripts see them): one per send, {s, f, l, c, e}."""
    delivered = float(fields.get("dlv", 0))
    entries: list[dict[str, Any]] = orjson.loads(fields.get("bn", "[]"))
    return [e for e in entries if e["l"] > delivered]


async def _scan(store: Store, pattern: str) -> AsyncIterator[list[str]]:
    cursor = 0
    while True:
        try:
            cursor, found = await store.client.scan(cursor, match=pattern, count=SCAN_PAGE)
        except REDIS_DOWN as exc:
            raise Transient(f"redis unreachable: {exc}") from exc
        names = [k.decode() if isinstance(k, bytes) else str(k) for k in found]
        if names:
            yield names
        if cursor == 0:
            return


async def _state_keys(store: Store, tenant: str | None, scope: Scope) -> AsyncIterator[list[str]]:
    """Pages of (deduplicated within the page) state keys of one scope, list or tenant."""
    async for page in _scan(store, keys.scope_pattern(store.namespace, tenant, scope)):
        wanted = []
        for key in page:
            parsed = keys.parse_state(store.namespace, key)
            if parsed is not None and (scope is Scope.LIST) == (parsed[2] is not None):
                wanted.append(key)
        if wanted:
            yield sorted(set(wanted))


def _sweep_rule(policy: Policy) -> Rule | None:
    return next((r for r in policy.rules if r.kind is RuleKind.COUNT_THRESHOLD), None)


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
    out: list[Suppression] = []
    for scope in (Scope.LIST, Scope.TENANT):
        async for page in _state_keys(store, tenant, scope):
            out.extend(await _sweep_page(store, page, at, run or format_ts(at)))
    return sorted(out, key=lambda s: (s.address, s.tenant, s.list_id or ""))


async def _sweep_page(store: Store, page: list[str], at: datetime, run: str) -> list[Suppression]:
    pipe = store.client.pipeline(transaction=False)
    calls = []
    for key in page:
        address, tenant, list_id = keys.parse_state(store.namespace, key) or ("", "", None)
        policy = store.book.for_tenant(tenant)
        rule = _sweep_rule(policy)
        if rule is None or policy.scope_of(rule) is not (Scope.LIST if list_id else Scope.TENANT):
            continue
        trigger = sweep_id(rule, run)
        mins = {c.value: t.min_count for t in rule.tiers for c in t.categories}
        script_keys = [key, keys.seen(store.namespace, address, trigger)]
        script_keys.append(keys.bounce_log(store.namespace, address))
        u = policy.scopes().index(policy.scope_of(rule)) + 1
        args: list[bytes | str | int] = [to_ms(at), orjson.dumps(mins), rule.other_min_count]
        args += [rule.id, u, store.dedupe_ttl]
        await store.scripts["sweep_step"](keys=script_keys, args=args, client=pipe)
        calls.append((policy, address, tenant, list_id, trigger))
    if not calls:
        return []
    out = []
    for (policy, address, tenant, list_id, trigger), reply in zip(
        calls, await execute(pipe), strict=True
    ):
        for decision in orjson.loads(reply)["decided"] or ():
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


async def report(store: Store, tenant: str) -> list[BouncedContact]:
    """The seed-000 export for `tenant`: every contact with a live bounce count, per list
    (list-scoped policies) or per tenant, ordered by latest reason then count (as the seed
    sorts it: "Sort on Bounce Reason. Then by Bounce Count")."""
    rows: list[BouncedContact] = []
    for scope in (Scope.LIST, Scope.TENANT):
        async for page in _state_keys(store, tenant, scope):
            pipe = store.client.pipeline(transaction=False)
            for key in page:
                pipe.hgetall(key)
            for key, raw in zip(page, await execute(pipe), strict=True):
                row = _row(store.namespace, key, raw)
                if row is not None:
                    rows.append(row)
    return sorted(rows, key=lambda r: (r.latest_reason, -r.bounce_count, r.address))


def _decode(raw: dict[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }


def _row(ns: str, key: str, raw: dict[Any, Any]) -> BouncedContact | None:
    parsed = keys.parse_state(ns, key)
    fields = _decode(raw)
    live = live_bounces(fields)
    if parsed is None or not live:
        return None
    latest = max(live, key=lambda e: e["l"])
    return BouncedContact(
        address=parsed[0],
        tenant=parsed[1],
        list_id=parsed[2],
        latest_reason=str(latest["c"]),
        bounce_count=len(live),
        latest_ts=from_ms(latest["l"]),
        suppressed=fields.get("suppressed"),
    )


async def status(
    store: Store, address: str, tenant: str, list_id: str | None = None
) -> dict[str, Any]:
    """Everything known about one address for one tenant: the state of each scope the
    tenant's policy uses (counters, suppression, last delivery and engagement), and the
    bounce and delivered logs, newest first. Times are RFC 3339."""
    policy = store.book.for_tenant(tenant)
    scope_keys = store.scope_keys(policy, address, tenant, list_id)
    pipe = store.client.pipeline(transaction=False)
    for key in scope_keys:
        pipe.hgetall(key)
    pipe.lrange(keys.bounce_log(store.namespace, address), 0, -1)
    pipe.lrange(keys.delivered_log(store.namespace, address), 0, -1)
    replies = await execute(pipe)
    scopes = {
        scope.value: _scope_view(_decode(raw), scope, list_id)
        for scope, raw in zip(policy.scopes(), replies, strict=False)
    }
    return {
        "address": address,
        "tenant": tenant,
        "policy": policy.name,
        "scopes": scopes,
        "bounce_log": [orjson.loads(x) for x in replies[-2]],
        "delivered_log": [orjson.loads(x) for x in replies[-1]],
    }


def _ts(ms: str | None) -> str | None:
    return format_ts(from_ms(float(ms))) if ms else None


def _scope_view(fields: dict[str, str], scope: Scope, list_id: str | None) -> dict[str, Any]:
    live = live_bounces(fields)
    latest = max(live, key=lambda e: e["l"]) if live else None
    suppression = None
    if "suppressed" in fields:
        suppression = {
            "rule": fields["suppressed"],
            "reason": fields.get("reason"),
            "count": int(fields.get("sup_count", 0)),
            "threshold": int(fields.get("sup_threshold", 0)),
            "ts": _ts(fields.get("sup_ts")),
            "trigger_event_id": fields.get("sup_ev"),
        }
    counters = {k[2:]: orjson.loads(v) for k, v in fields.items() if k.startswith("r:")}
    return {
        "list_id": list_id if scope is Scope.LIST else None,
        "suppressed": suppression,
        "bounce_count": len(live),
        "latest_reason": latest["c"] if latest else None,
        "last_delivery": _ts(fields.get("dlv")),
        "last_engagement": _ts(fields.get("eng")),
        "counters": counters,
    }
