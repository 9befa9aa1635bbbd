"""Scenario fixtures: the real policy engine (Store + Lua) on the real test Redis.

`engine(preset)` gives an `Engine` on its own namespace; its `send` applies a batch of events
the way the worker does (apply, then mark_emitted) and returns the suppressions it tripped.
Event builders take a category name and produce an attempt with a reply text the classifier
puts in that category (checked, so a classifier change shows up here by name).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from pipeline.core.classify import classify_attempt
from pipeline.core.events import Engagement, EngagementAction, Event, Feedback, FeedbackKind
from pipeline.core.models import Attempt, Outcome, SenderAlert, Suppression
from pipeline.core.policies import Policy, PolicyBook, load_preset
from pipeline.state.store import Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ADDR = "contact@example.com"

# category -> (outcome, smtp code, enhanced code, reply text)
REPLIES: dict[str, tuple[Outcome, int | None, str | None, str]] = {
    "delivered": (Outcome.DELIVERED, 250, "2.0.0", "250 2.0.0 OK queued"),
    "user_unknown": (Outcome.BOUNCED, 550, "5.1.1", "Recipient address rejected: User unknown"),
    "invalid_address": (Outcome.BOUNCED, 553, "5.1.3", "bad recipient address syntax"),
    "bad_domain": (Outcome.BOUNCED, 550, "5.4.4", "Host or domain name not found"),
    "inactive_mailbox": (Outcome.BOUNCED, 550, "5.2.1", "account disabled"),
    "general_hard": (Outcome.BOUNCED, None, None, "permanent failure"),
    "relay_denied": (Outcome.BOUNCED, 550, "5.7.1", "Relaying denied"),
    "mailbox_full": (Outcome.DEFERRED, 452, "4.2.2", "mailbox full"),
    "transient": (Outcome.DEFERRED, 451, "4.4.1", "connection timed out"),
    "general_soft": (Outcome.DEFERRED, None, None, "unrouteable"),
    "greylisted": (Outcome.DEFERRED, 450, "4.2.0", "Recipient address rejected: Greylisted"),
    "dns_failure": (Outcome.DEFERRED, 451, "4.4.3", "Temporary DNS lookup failure"),
    "spam_content": (Outcome.BOUNCED, 554, "5.7.1", "message content rejected as spam"),
    "spam_block": (Outcome.BOUNCED, 554, "5.7.1", "blocked spam"),
    "challenge_response": (Outcome.BOUNCED, None, None, "challenge response required"),
    # An auto-reply reported back for a sent message (RFC 3834), not a 250: a 250 with
    # "out of office" text is classified as a plain delivery.
    "auto_reply": (Outcome.BOUNCED, None, None, "Auto-Submitted: auto-replied: Out of Office"),
}
_ids = itertools.count()


def at(hours: float = 0, days: float = 0) -> datetime:
    """T0 plus an offset."""
    return T0 + timedelta(hours=hours, days=days)


def attempt(
    category: str,
    ts: datetime = T0,
    *,
    campaign: str | None = None,
    address: str = ADDR,
    tenant: str = "acme",
    list_id: str | None = None,
    message_id: str | None = None,
    event_id: str | None = None,
) -> Attempt:
    """An attempt the classifier puts in `category` (asserted)."""
    outcome, code, enhanced, text = REPLIES[category]
    made = Attempt(
        event_id=event_id or f"a{next(_ids)}",
        ts=ts,
        recipient=address,
        outcome=outcome,
        tenant=tenant,
        list_id=list_id,
        campaign_id=campaign,
        message_id=message_id,
        smtp_code=code,
        enhanced_code=enhanced,
        diagnostic=text,
    )
    assert classify_attempt(made).category.value == category, classify_attempt(made)
    return made


def feedback(
    kind: str,
    ts: datetime = T0,
    *,
    address: str = ADDR,
    tenant: str = "acme",
    list_id: str | None = None,
) -> Feedback:
    """A complaint or an unsubscribe."""
    return Feedback(f"f{next(_ids)}", ts, address, FeedbackKind(kind), tenant, list_id)


def engagement(
    ts: datetime = T0,
    *,
    address: str = ADDR,
    tenant: str = "acme",
    list_id: str | None = None,
    campaign: str | None = None,
) -> Engagement:
    """An open."""
    return Engagement(
        f"o{next(_ids)}", ts, address, EngagementAction.OPEN, tenant, list_id, campaign
    )


class Engine:
    """A Store on the test Redis, driven synchronously from tests."""

    def __init__(self, url: str, policies: Policy | PolicyBook, namespace: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = Store.from_url(url, policies, namespace=namespace)
        self.namespace = namespace
        self.alerts: list[SenderAlert] = []

    def run(self, coro: Any) -> Any:
        """Run a coroutine on this engine's loop."""
        return self.loop.run_until_complete(coro)

    def send(self, *events: Event, confirm: bool = True) -> list[Suppression]:
        """Apply one batch like the worker (then mark_emitted unless confirm=False)."""
        applied = self.run(self.store.apply(list(events)))
        if confirm:
            self.run(self.store.mark_emitted(applied.suppressions, applied.alerts))
        self.alerts.extend(applied.alerts)
        return list(applied.suppressions)

    def each(self, *events: Event) -> list[Suppression]:
        """Apply events one batch each; all suppressions, in order."""
        out: list[Suppression] = []
        for event in events:
            out.extend(self.send(event))
        return out

    def close(self) -> None:
        self.run(self.store.close())
        self.loop.close()


@pytest.fixture
def engine(redis_server: str, redis_client: redis.Redis) -> Iterator[Callable[..., Engine]]:
    """Factory: engine("bsd") or engine(policy_or_book); each on its own namespace."""
    made: list[Engine] = []

    def make(policy: str | Policy | PolicyBook, namespace: str | None = None) -> Engine:
        policies = load_preset(policy) if isinstance(policy, str) else policy
        eng = Engine(redis_server, policies, namespace or f"p{uuid.uuid4().hex[:8]}")
        made.append(eng)
        return eng

    yield make
    for eng in made:
        eng.close()
