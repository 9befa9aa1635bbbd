"""Read-only previews for the operator console: what the next count-threshold sweep (listrak's
cleanup) would unsubscribe, without marking anything.

`queries.sweep` decides inside the sweep function, which writes the suppression it trips, so
it cannot preview. This module reads the same scope documents and applies the same test as
sweep.lua (`sweep_one`): a scope already suppressed, or with state newer than `at`, is left
out; otherwise the latest live bounce's reason picks the minimum (a category a tier names,
then the latest class, then the other minimum) and the live bounce count must reach it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.core.models import BounceClass, Category, Scope
from pipeline.core.policies import Policy, Rule, RuleKind
from pipeline.core.wire import from_ms, to_ms
from pipeline.state import fanout, keys
from pipeline.state.queries import live_bounces
from pipeline.state.store import Store


@dataclass(frozen=True, slots=True)
class SweepCandidate:
    """One scope the next sweep would suppress: who, where, why, and the numbers."""

    address: str
    list_id: str | None
    reason: str
    count: int
    threshold: int
    latest_ts: datetime


def sweep_rule(policy: Policy) -> Rule | None:
    """The policy's count-threshold rule (the one the sweep runs), or None."""
    return next((r for r in policy.rules if r.kind is RuleKind.COUNT_THRESHOLD), None)


def _need(rule: Rule, latest: list[Any]) -> int:
    """The minimum count for a latest bounce entry [send, first, latest, category, dg, class]."""
    try:
        category = Category(latest[3])
    except ValueError:
        return rule.other_min_count
    cls = None
    if len(latest) > 5 and latest[5]:
        try:
            cls = BounceClass(latest[5])
        except ValueError:
            cls = None
    return rule.min_count_for(category, cls)


def judge(rule: Rule, doc: keys.Doc, at_ms: int) -> tuple[int, int, list[Any]] | None:
    """(count, threshold, latest entry) when the sweep as of `at_ms` would suppress the scope
    in `doc`, else None (mirrors sweep.lua's sweep_one, without its pending check)."""
    if doc.fields.get("s") is not None or not doc.fields.get("bn"):
        return None
    reset = max(doc.delivered, int(doc.fields.get("r") or 0))
    if reset > at_ms or any(e[2] > at_ms for e in doc.fields["bn"]):
        return None
    live = [e for e in live_bounces(doc) if e[1] <= at_ms]
    if not live:
        return None
    latest = max(live, key=lambda e: e[2])
    need = _need(rule, latest)
    if need == 0 or len(live) < need:
        return None
    return len(live), need, latest


async def sweep_preview(store: Store, tenant: str, at: datetime) -> list[SweepCandidate]:
    """The scopes of `tenant` that a sweep as of `at` would suppress, ordered by address then
    list; [] when the tenant's policy has no count-threshold rule. Writes nothing; raises
    Transient when Redis is unreachable."""
    policy = store.book.for_tenant(tenant)
    rule = sweep_rule(policy)
    if rule is None:
        return []
    scope = policy.scope_of(rule)
    if scope is Scope.GLOBAL:
        return []  # the sweep keeps no global counters (queries.sweep scans list and tenant)
    found: dict[str, SweepCandidate] = {}  # by key: a key scanned twice is one candidate
    async for page in fanout.scan(store, keys.scope_pattern(store.namespace, tenant, scope)):
        wanted = [k for k in sorted(set(page)) if _in_scope(store.namespace, k, scope)]
        if not wanted:
            continue
        for key, raw in zip(wanted, await fanout.read_many(store, wanted), strict=True):
            verdict = judge(rule, keys.read_doc(raw), to_ms(at))
            parsed = keys.parse_state(store.namespace, key)
            if verdict is None or parsed is None:
                continue
            count, need, latest = verdict
            found[key] = SweepCandidate(
                parsed[0], parsed[2], str(latest[3]), count, need, from_ms(latest[2])
            )
    return sorted(found.values(), key=lambda c: (c.address, c.list_id or ""))


def _in_scope(ns: str, key: str, scope: Scope) -> bool:
    parsed = keys.parse_state(ns, key)
    return parsed is not None and (scope is Scope.LIST) == (parsed[2] is not None)


@dataclass(frozen=True, slots=True)
class StateCounts:
    """A tenant's scopes by state: bouncing (a live bounce count) but active, and suppressed
    by rule (benchmark's `confirmed_bounce` is its "Confirmed Bounce" list)."""

    bouncing_active: int
    suppressed_by_rule: dict[str, int]


async def tenant_counts(store: Store, tenant: str) -> StateCounts:
    """Count the scope documents of `tenant` (list and tenant scope; an address suppressed in
    two lists counts twice) by state. Writes nothing; raises Transient when Redis is
    unreachable."""
    seen: dict[str, str | None] = {}  # key -> rule, or None for bouncing but active
    for scope in (Scope.LIST, Scope.TENANT):
        pattern = keys.scope_pattern(store.namespace, tenant, scope)
        async for page in fanout.scan(store, pattern):
            wanted = [k for k in sorted(set(page)) if _in_scope(store.namespace, k, scope)]
            raws = await fanout.read_many(store, wanted) if wanted else []
            for key, raw in zip(wanted, raws, strict=True):
                doc = keys.read_doc(raw)
                suppression = doc.fields.get("s")
                if suppression:
                    seen[key] = str(suppression.get("rule"))
                elif live_bounces(doc):
                    seen[key] = None
    by_rule: dict[str, int] = {}
    for rule in seen.values():
        if rule is not None:
            by_rule[rule] = by_rule.get(rule, 0) + 1
    return StateCounts(sum(1 for r in seen.values() if r is None), dict(sorted(by_rule.items())))
