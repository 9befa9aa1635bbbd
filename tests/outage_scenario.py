"""A simulated provider outage (issue 12's "Done when"), as attempt dicts in phases, for the
integration tests and replay: pure, seeded, no servers.

Event time, T0 = the burst's start:
  baseline  T0-24h .. T0-20min  2,400 gmail attempts, 0.5 % hard (12 dead addresses)
  burst     T0 .. T0+10min      5,000 gmail/googlemail addresses, 30 % hard (550 5.1.1);
                                1,000 attempts at example.net, 3 % hard, as usual
  after     T0+12min            a delivery to 300 of the burst's hard-bounced addresses
  end       T0+30min            300 deliveries to other gmail addresses (the burst ends)
  settle    T0+95min            one dead gmail address (past the 60 min grace)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
UNKNOWN = (
    "550-5.1.1 The email account that you tried to reach does not exist. Please try "
    "double-checking the recipient's email address for typos or unnecessary spaces. - gsmtp"
)


def _ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def attempt(recipient: str, at: datetime, *, hard: bool, eid: str) -> dict[str, Any]:
    """One attempt: a 550 5.1.1 hard bounce, or a 250 delivery."""
    base: dict[str, Any] = {"event_id": eid, "ts": _ts(at), "recipient": recipient,
                            "tenant": "acme", "list_id": "news"}  # fmt: skip
    if hard:
        return {**base, "outcome": "bounced", "smtp_code": 550, "enhanced_code": "5.1.1",
                "diagnostic": UNKNOWN}  # fmt: skip
    return {**base, "outcome": "delivered", "smtp_code": 250, "enhanced_code": "2.0.0",
            "diagnostic": "250 2.0.0 OK"}  # fmt: skip


@dataclass
class Outage:
    """The phases, and the addresses each expectation is about."""

    phases: list[list[dict[str, Any]]] = field(default_factory=list)
    baseline_dead: set[str] = field(default_factory=set)
    held: set[str] = field(default_factory=set)
    """Burst addresses that hard-bounced (their suppressions must be held)."""
    delivered_since: set[str] = field(default_factory=set)
    """Of `held`, those with a delivery afterwards (discarded)."""
    other_dead: set[str] = field(default_factory=set)
    single_dead: str = "dead-after@gmail.com"

    @property
    def released(self) -> set[str]:
        """Held addresses released after the grace."""
        return self.held - self.delivered_since

    def all_events(self) -> list[dict[str, Any]]:
        """Every phase in order (what replay reads)."""
        return [e for phase in self.phases for e in phase]


def outage(seed: int = 12, burst: int = 5000, delivered: int = 300) -> Outage:
    """Build the scenario (module docstring); every phase sorted by event time."""
    rnd = random.Random(seed)
    out = Outage()
    n = 0

    def eid() -> str:
        nonlocal n
        n += 1
        return f"ev{seed}-{n:06d}"

    base = []
    for i in range(2400):
        at = T0 - timedelta(hours=24) + timedelta(seconds=i * 35.5)
        hard = i % 200 == 7
        address = f"base{i}@gmail.com"
        if hard:
            out.baseline_dead.add(address)
        base.append(attempt(address, at, hard=hard, eid=eid()))
    storm = []
    hard_ones = set(rnd.sample(range(burst), burst * 3 // 10))
    for i in range(burst):
        domain = "googlemail.com" if i % 10 == 0 else "gmail.com"
        address = f"user{i}@{domain}"
        if i in hard_ones:
            out.held.add(address)
        at = T0 + timedelta(milliseconds=rnd.randrange(600_000))
        storm.append(attempt(address, at, hard=i in hard_ones, eid=eid()))
    for i in range(1000):
        address = f"member{i}@example.net"
        hard = i % 100 < 3
        if hard:
            out.other_dead.add(address)
        at = T0 + timedelta(milliseconds=rnd.randrange(600_000))
        storm.append(attempt(address, at, hard=hard, eid=eid()))
    after = []
    out.delivered_since = set(rnd.sample(sorted(out.held), delivered))
    for i, address in enumerate(sorted(out.delivered_since)):
        at = T0 + timedelta(minutes=12, milliseconds=i * 100)
        after.append(attempt(address, at, hard=False, eid=eid()))
    for i in range(300):
        at = T0 + timedelta(minutes=30, milliseconds=i * 200)
        after.append(attempt(f"later{i}@gmail.com", at, hard=False, eid=eid()))
    settle = [attempt(out.single_dead, T0 + timedelta(minutes=95), hard=True, eid=eid())]
    for phase in (base + storm, after, settle):
        phase.sort(key=lambda e: e["ts"])
        out.phases.append(phase)
    return out
