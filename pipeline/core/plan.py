"""Plan a batch for Redis, and read what Redis answered: the pure halves of applying a batch.

`plan_batch` turns a batch of events into the function calls the state layer executes in one
round trip; `read_replies` turns the replies into suppressions, tenant alerts and the events
that failed. Between the two the state layer only sends bytes: it knows no policy.

The unit of a call is the *address group*: every event of one address in the batch, in stream
order, always inside one call (so a call that must be re-sent never reorders an address's
events, and on Redis Cluster a group is one hash slot). Calls hold at most
`Limits.call_events` events (a bigger group gets a call of its own), so no call keeps Redis
busy for long.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.core.classify import classify_attempt
from pipeline.core.events import Engagement, Event, Feedback
from pipeline.core.models import Attempt, BounceClass, Classification, SenderAlert, Suppression
from pipeline.core.outage import Ack, OutageAlert, guard_args, read_guard
from pipeline.core.outcomes import sender_alert, suppression_from_decision
from pipeline.core.policies import DAY_MS, Policy, PolicyBook, Rule, RuleKind
from pipeline.core.wire import (
    ENGAGEMENT,
    NO_LIST,
    delivered_entry,
    digest,
    log_entry,
    profile,
    send_key,
    to_ms,
)

Arg = bytes | str | int
DAY_S = 86_400

Router = Callable[[str], str | None]
"""Redis Cluster routing, for the planner: a hash tag (an address, or `tenant:<t>` for a
tenant's keys) -> the name of the primary that owns its slot now (None: not known yet; the
call may go to any primary, whose probe then skips what is not local)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds every plan obeys (from Settings; see pipeline/config.py)."""

    state_ttl: int = 400 * DAY_S
    """Seconds a scope's state lives after its last counted event."""
    log_size: int = 20
    """Entries kept in each address's bounce log (and delivered log)."""
    delivered_ttl: int = 72 * 3600
    """Seconds the delivered log lives (only for policies that keep one)."""
    ring: int = 32
    """Non-delivered events each (address, tenant) remembers by digest (replay guard)."""
    call_events: int = 500
    """Most events in one function call."""


@dataclass(frozen=True, slots=True)
class Call:
    """One function call: `function` is the unversioned name (apply, rates, ...)."""

    function: str
    args: list[Arg]
    node: str | None = None
    """On Redis Cluster, the primary the call is for (None: standalone, or not known)."""
    route: str | None = None
    """The one hash tag every key of the call carries, when there is one (a rates call:
    `tenant:<t>`): a call refused on a stale slot map can be routed again by it."""


@dataclass(frozen=True, slots=True)
class RateSlot:
    """What one `rates` call is about, to read its answer."""

    tenant: str
    policy: Policy
    rule: Rule
    latest: Attempt | Feedback | None
    """The latest matching event of the batch (None: the call only counts)."""


@dataclass
class BatchPlan:
    """The calls of one batch and what is needed to read their replies."""

    events: list[Event]
    """The batch after dropping in-batch duplicates, in stream order."""
    verdicts: list[Classification | None]
    """Per event of `events`, its classification (None for an open or click)."""
    calls: list[Call] = field(default_factory=list)
    """The apply calls first (one per entry of `numbered`), then one per entry of `rates`."""
    numbered: list[list[Event]] = field(default_factory=list)
    """Per apply call, its events in the order the function numbers them (from 1)."""
    rates: list[RateSlot] = field(default_factory=list)


@dataclass
class Outcome:
    """What a batch tripped, in the order of its events."""

    suppressions: list[Suppression] = field(default_factory=list)
    alerts: list[SenderAlert] = field(default_factory=list)
    failed: list[tuple[Event, str]] = field(default_factory=list)
    """Events the apply function could not process, with its error (dead-letter them)."""
    skipped: list[str] = field(default_factory=list)
    """Addresses whose group a Cluster node skipped untouched (its slot is not served there
    now): their events must be sent again after a slot-map refresh (Store.resend)."""
    outage_alerts: list[OutageAlert] = field(default_factory=list)
    """provider_outage alerts to send (pipeline.core.outage)."""
    acks: list[Ack] = field(default_factory=list)
    """What the guard must be told once the alerts and released suppressions are sent."""
    held: dict[str, int] = field(default_factory=dict)
    """Per provider group touched, its suppressions held now."""


def engaged_ttl(book: PolicyBook) -> int:
    """Seconds an open keeps a scope alive: the longest engaged window of any policy."""
    days = [r.engaged_days for p in book.policies() for r in p.rules]
    return int(max([1.0, *days]) * DAY_S)


def unique(events: Sequence[Event]) -> list[Event]:
    """Drop in-batch duplicates: an event is (recipient, event_id); the first copy wins."""
    if len({(e.recipient, e.event_id) for e in events}) == len(events):
        return list(events)  # the common case: one C-level pass, no per-event branches
    seen: set[tuple[str, str]] = set()
    out = []
    for event in events:
        identity = (event.recipient, event.event_id)
        if identity not in seen:
            seen.add(identity)
            out.append(event)
    return out


def _verdict(event: Event) -> Classification | None:
    if isinstance(event, Attempt):
        return classify_attempt(event)
    if isinstance(event, Feedback):
        return event.classification()
    return None


class _Group:
    """One address's events of a batch, in stream order, and their apply arguments."""

    __slots__ = ("args", "events", "profiles")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.args: list[Arg] = []
        self.profiles: list[int] = []

    def add(self, event: Event, verdict: Classification | None, index: int, prof: Any) -> None:
        """Append `event` with its profile `index` and fields, in the apply function's order
        (see lua/apply.lua)."""
        self.events.append(event)
        self.profiles.append(index)
        args = self.args
        args += (index, event.tenant, event.list_id or NO_LIST, to_ms(event.ts))
        kind = prof["k"]
        if kind == "b":
            assert verdict is not None and not isinstance(event, Engagement)
            event_id = event.event_id
            args += (send_key(event), event_id, digest(event_id), log_entry(event, verdict))
        elif kind == "d" and prof["ok"]:
            assert isinstance(event, Attempt)
            args.append(delivered_entry(event))


def plan_batch(
    events: Sequence[Event],
    book: PolicyBook,
    ns: str,
    limits: Limits,
    *,
    router: Router | None = None,
    rates: bool = True,
) -> BatchPlan:
    """Plan `events` (in stream order): in-batch duplicates dropped, each event classified
    once, grouped per address, cut into calls. Pure; raises nothing on valid events.

    With a `router` (Redis Cluster) no call mixes primaries: the groups are cut per node, and
    the apply function probes each group's keys first and skips a group its node does not
    serve (reply "s"). `rates=False` plans no rates call (a re-send of skipped groups: the
    first send counted the tenant's events already)."""
    kept = unique(events)
    verdicts = [_verdict(e) for e in kept]
    plan = BatchPlan(kept, verdicts)
    # Keyed by the policy's id, not the policy: hashing a frozen Policy hashes all its rules.
    profiles: dict[tuple[int, Any, Any], int] = {}
    table: list[dict[str, Any]] = []
    groups: dict[str, _Group] = {}
    policies: dict[str, Policy] = {}
    for event, verdict in zip(kept, verdicts, strict=True):
        policy = policies.get(event.tenant)
        if policy is None:
            policy = policies[event.tenant] = book.for_tenant(event.tenant)
        pid = id(policy)
        key = (pid, verdict.bounce_class, verdict.category) if verdict else (pid, None, None)
        index = profiles.get(key)
        if index is None:
            kind = verdict.bounce_class if verdict else ENGAGEMENT
            table.append(profile(policy, kind, verdict.category if verdict else None))
            index = profiles[key] = len(table)
        group = groups.get(event.recipient)
        if group is None:
            group = groups[event.recipient] = _Group()
        group.add(event, verdict, index, table[index - 1])
    header = orjson.dumps(
        {
            "ns": ns,
            "ttl": limits.state_ttl,
            "ettl": engaged_ttl(book),
            "okttl": limits.delivered_ttl,
            "logn": limits.log_size,
            "ringn": limits.ring,
            "P": table,
            **({"pr": 1} if router is not None else {}),
        }
    )
    if router is None:
        _cut_calls(plan, header, groups, limits.call_events, None)
        _guard_calls(plan, book, ns, groups)
    else:
        by_node: dict[str | None, dict[str, _Group]] = {}
        for address, items in groups.items():
            by_node.setdefault(router(address), {})[address] = items
        for node, node_groups in by_node.items():
            _cut_calls(plan, header, node_groups, limits.call_events, node)
    if rates:
        _plan_rates(plan, book, ns, router)
    return plan


def _cut_calls(
    plan: BatchPlan,
    header: bytes,
    groups: dict[str, _Group],
    call_events: int,
    node: str | None,
) -> None:
    args: list[Arg] = []
    numbered: list[Event] = []
    n_groups = 0

    def close() -> None:
        if numbered:
            plan.calls.append(Call("apply", [header, n_groups, *args], node))
            plan.numbered.append(list(numbered))

    for address, group in groups.items():
        if numbered and len(numbered) + len(group.events) > call_events:
            close()
            args, numbered, n_groups = [], [], 0
        args += (address, len(group.events))
        args += group.args
        numbered += group.events
        n_groups += 1
    close()


def _guard_calls(plan: BatchPlan, book: PolicyBook, ns: str, groups: dict[str, _Group]) -> None:
    """Turn each apply call into a guard call (the provider-outage guard wraps the apply
    function: pipeline/state/lua/outage.lua). Standalone Redis only: the guard's per-group
    keys live in a slot of their own, which a Cluster call pinned to an address's node
    cannot reach (docs/policies.md)."""
    if not any(p.outage for p in book.policies()):
        return  # no tenant is guarded: nothing to count either
    verdicts = {id(e): v for e, v in zip(plan.events, plan.verdicts, strict=True)}
    profiles = [[p for a in _addresses(ev) for p in groups[a].profiles] for ev in plan.numbered]
    args = guard_args(plan.numbered, verdicts, profiles, book, ns)
    for n, arg in enumerate(args):
        if arg is not None:
            plan.calls[n] = Call("guard", [*arg, *plan.calls[n].args], plan.calls[n].node)


def _addresses(events: list[Event]) -> list[str]:
    """The addresses of a call's events, each once, in call order (its groups' order)."""
    return list(dict.fromkeys(e.recipient for e in events))


def _plan_rates(plan: BatchPlan, book: PolicyBook, ns: str, router: Router | None) -> None:
    """One `rates` call per (tenant, tenant-rate rule) with events in this batch."""
    by_tenant: dict[str, list[tuple[Event, Classification]]] = defaultdict(list)
    rated = {t for t in {e.tenant for e in plan.events} if _rated(book, t)}
    if not rated:
        return
    for event, verdict in zip(plan.events, plan.verdicts, strict=True):
        if verdict is not None and event.tenant in rated:
            by_tenant[event.tenant].append((event, verdict))
    for tenant, items in by_tenant.items():
        policy = book.for_tenant(tenant)
        for rule in (r for r in policy.rules if r.kind is RuleKind.TENANT_RATE):
            _plan_rate(plan, ns, tenant, policy=policy, rule=rule, items=items, router=router)


def _rated(book: PolicyBook, tenant: str) -> bool:
    return book.for_tenant(tenant).has_kind(RuleKind.TENANT_RATE)


def _plan_rate(
    plan: BatchPlan,
    ns: str,
    tenant: str,
    *,
    policy: Policy,
    rule: Rule,
    items: list[tuple[Event, Classification]],
    router: Router | None,
) -> None:
    sent: dict[int, list[str]] = defaultdict(list)
    matching: dict[int, list[str]] = defaultdict(list)
    latest: Attempt | Feedback | None = None
    for event, verdict in items:
        assert not isinstance(event, Engagement)
        day = to_ms(event.ts) // DAY_MS
        identity = f"{event.recipient}\x1f{event.event_id}"
        if verdict.bounce_class is BounceClass.DELIVERED:
            sent[day].append(identity)
        elif rule.matches(verdict.bounce_class, verdict.category):
            matching[day].append(identity)
            latest = event if latest is None or event.ts >= latest.ts else latest
    if not sent and not matching:
        return
    window = max(1, round(rule.window_days))
    args: list[Arg] = [ns, tenant, rule.id, to_ms(latest.ts) // DAY_MS if latest else -1, window]
    args += [repr(rule.max_rate), rule.threshold, (window * 2 + 1) * DAY_S]
    for days in (sent, matching):
        args.append(len(days))
        for day, ids in days.items():
            args += [day, len(ids), *ids]
    tag = f"tenant:{tenant}"
    plan.calls.append(Call("rates", args, router(tag) if router else None, tag))
    plan.rates.append(RateSlot(tenant, policy, rule, latest))


def _entries(reply: Any) -> list[Any]:
    """An apply reply: a JSON array (Lua's cjson writes an empty one as `{}`)."""
    decoded = reply if isinstance(reply, list) else orjson.loads(reply)
    return decoded if isinstance(decoded, list) else []


def _read_guard(outcome: Outcome, book: PolicyBook, reply: Any, seen: set[str]) -> list[Any]:
    """Take the guard's part of a guard call's reply into `outcome`; return the apply part."""
    guarded = read_guard(reply, book)
    fresh = {a.event_id for a in guarded.alerts}  # a later call's copy is more recent
    outcome.outage_alerts[:] = [a for a in outcome.outage_alerts if a.event_id not in fresh]
    outcome.outage_alerts += guarded.alerts
    outcome.acks += [a for a in guarded.acks if a not in outcome.acks]
    outcome.held.update(guarded.held)
    for s in guarded.released:
        if s.event_id not in seen:
            seen.add(s.event_id)
            outcome.suppressions.append(s)
    return guarded.entries


def read_replies(plan: BatchPlan, book: PolicyBook, replies: Sequence[Any]) -> Outcome:
    """Turn the replies of `plan.calls` (same order) into an Outcome: suppressions in event
    order without repeats (same id), alerts, and the events that failed."""
    outcome = Outcome()
    seen: set[str] = set()
    n_apply = len(plan.numbered)
    for n, (events, raw) in enumerate(zip(plan.numbered, replies[:n_apply], strict=True)):
        guarded = plan.calls[n].function == "guard"
        reply = _read_guard(outcome, book, raw, seen) if guarded else raw
        for index, kind, payload in _entries(reply):
            event = events[int(index) - 1]
            if kind == "s":
                outcome.skipped.append(event.recipient)
                continue
            if kind == "x":
                outcome.failed.append((event, str(payload)))
                continue
            assert not isinstance(event, Engagement)
            policy = book.for_tenant(event.tenant)
            for decision in payload:
                s = suppression_from_decision(
                    policy,
                    decision,
                    address=event.recipient,
                    tenant=event.tenant,
                    list_id=event.list_id,
                    trigger_event_id=event.event_id,
                    ts=event.ts,
                )
                if s.event_id not in seen:
                    seen.add(s.event_id)
                    outcome.suppressions.append(s)
    for slot, reply in zip(plan.rates, replies[n_apply:], strict=True):
        answer = orjson.loads(reply)
        if answer["alert"] and slot.latest is not None:
            outcome.alerts.append(
                sender_alert(
                    slot.policy,
                    slot.rule,
                    tenant=slot.tenant,
                    count=int(answer["count"]),
                    sent=int(answer["sent"]),
                    ts=slot.latest.ts,
                )
            )
    return outcome
