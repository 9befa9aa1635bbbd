"""Synthetic `delivery.attempts` traffic for bench_worker: a realistic mix, reproducible.

About 80 % delivered, 10 % soft, 5 % hard, 5 % block, over `addresses` recipients (default
20k) at several tenants (or at one, for raw log lines whose tenant is the worker's default),
with real reply texts per provider (Gmail's 550-5.1.1 and 452 4.2.2, Microsoft's
RecipientNotFound, Yahoo's TSS04, Postfix's "User unknown in virtual mailbox table", ...).
Many texts carry the recipient address or a per-message id, so the classifier's masking
cache sees a new raw text almost every time, as it does in real logs.

The expected outcome under the `default` preset is known by construction:
- every hard text is user_unknown, which suppresses at once: one suppression per distinct
  hard-bounced (address, tenant) pair; once a pair has bounced hard, that tenant sends it
  nothing more (as a sender would), so nothing can reactivate or re-suppress it;
- blocks never suppress;
- a pair never gets more than SOFT_CAP soft bounces, below the 10-consecutive-soft rule.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

TENANTS = ("acme", "globex", "initech", "umbrella", "hooli", "stark")
TENANT_WEIGHTS = (30, 25, 15, 12, 10, 8)
SOFT_CAP = 9
"""Most soft bounces one (address, tenant) pair gets: under the default preset's 10."""
MIX = (("delivered", 80), ("soft", 10), ("hard", 5), ("block", 5))

# (domain, provider family, weight)
DOMAINS = (
    ("gmail.com", "gmail", 34),
    ("googlemail.com", "gmail", 2),
    ("yahoo.com", "yahoo", 12),
    ("outlook.com", "microsoft", 10),
    ("hotmail.com", "microsoft", 9),
    ("live.com", "microsoft", 3),
    ("icloud.com", "generic", 8),
    ("gmx.net", "generic", 5),
    ("web.de", "generic", 4),
    ("example-corp.com", "generic", 7),
    ("mail.example.org", "generic", 6),
)

# Templates: (smtp_code, enhanced_code, outcome, text). Placeholders: {addr} the recipient,
# {id} a per-message id, {ip} the sending IP, {epoch} a unix time, {qid} a queue id.
TEXTS: dict[str, dict[str, list[tuple[int, str, str, str]]]] = {
    "delivered": {
        "gmail": [(250, "2.0.0", "delivered", "250 2.0.0 OK  {epoch} {id} - gsmtp")],
        "yahoo": [(250, "", "delivered", "250 ok dirdel")],
        "microsoft": [
            (
                250,
                "2.6.0",
                "delivered",
                "250 2.6.0 <{id}@mta1.example-esp.net> [InternalId={epoch}, "
                "Hostname=AM0PR01MB1234.eurprd01.prod.exchangelabs.com] "
                "Queued mail for delivery",
            )
        ],
        "generic": [(250, "2.0.0", "delivered", "250 2.0.0 Ok: queued as {qid}")],
    },
    "soft": {
        "gmail": [
            (
                452,
                "4.2.2",
                "deferred",
                "452-4.2.2 The recipient's inbox is out of storage space. Please direct the "
                "recipient to https://support.google.com/mail/?p=OverQuotaTemp {id} - gsmtp",
            )
        ],
        "yahoo": [(452, "4.2.2", "deferred", "452 4.2.2 <{addr}>: Mailbox full")],
        "microsoft": [
            (
                452,
                "4.2.2",
                "deferred",
                "452 4.2.2 <{addr}>: Recipient address rejected: Mailbox full",
            )
        ],
        "generic": [
            (
                452,
                "4.2.2",
                "deferred",
                "452 4.2.2 <{addr}>: Recipient address rejected: Mailbox full",
            )
        ],
    },
    "hard": {
        "gmail": [
            (
                550,
                "5.1.1",
                "bounced",
                "550-5.1.1 The email account that you tried to reach does not exist. Please try "
                "double-checking the recipient's email address for typos or unnecessary spaces. "
                "For more information, go to https://support.google.com/mail/?p=NoSuchUser "
                "{id} - gsmtp",
            )
        ],
        "yahoo": [
            (
                550,
                "5.1.1",
                "bounced",
                "550 5.1.1 <{addr}>: Recipient address rejected: User unknown in virtual "
                "mailbox table",
            )
        ],
        "microsoft": [
            (
                550,
                "5.1.10",
                "bounced",
                "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient {addr} not found by SMTP "
                "address lookup",
            ),
            (
                550,
                "5.5.0",
                "bounced",
                "550 5.5.0 Requested action not taken: mailbox unavailable ({addr})",
            ),
        ],
        "generic": [
            (
                550,
                "5.1.1",
                "bounced",
                "550 5.1.1 <{addr}>: Recipient address rejected: User unknown in virtual "
                "mailbox table",
            )
        ],
    },
    "block": {
        "gmail": [
            (
                550,
                "5.7.1",
                "bounced",
                "550-5.7.1 [{ip}] Our system has detected that this message is likely "
                "unsolicited mail. To reduce the amount of spam sent to Gmail, this message has "
                "been blocked. {id} - gsmtp",
            ),
            (
                451,
                "4.7.650",
                "deferred",
                "451 4.7.650 The mail server [{ip}] has been temporarily rate limited due to IP "
                "reputation.",
            ),
        ],
        "yahoo": [
            (
                421,
                "4.7.0",
                "deferred",
                "421 4.7.0 [TSS04] Messages from {ip} temporarily deferred due to unexpected "
                "volume or user complaints - 4.16.55.1; "
                "see https://postmaster.yahooinc.com/error-codes",
            )
        ],
        "microsoft": [
            (
                550,
                "5.7.1",
                "bounced",
                "550 5.7.1 Unfortunately, messages from [{ip}] weren't sent. Please contact "
                "your Internet service provider since part of their network is on our block "
                "list (S3150).",
            )
        ],
        "generic": [
            (
                554,
                "5.7.1",
                "bounced",
                "554 5.7.1 Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org",
            )
        ],
    },
}


@dataclass
class Dataset:
    """The produced messages and what the default preset must make of them."""

    messages: list[tuple[bytes, bytes]] = field(default_factory=list)
    """(key, value) in produce order; key = recipient."""
    kinds: list[str] = field(default_factory=list)
    """The class (MIX name) of each message, in the same order."""
    classes: Counter[str] = field(default_factory=Counter)
    hard_pairs: set[tuple[str, str]] = field(default_factory=set)
    """Distinct (address, tenant) pairs that bounced hard: the expected suppressions."""
    addresses: set[str] = field(default_factory=set)
    text_variants: set[str] = field(default_factory=set)

    @property
    def value_bytes(self) -> int:
        """Total size of the values."""
        return sum(len(v) for _, v in self.messages)


def templates() -> list[tuple[str, int, str, str]]:
    """Every (class, smtp_code, enhanced_code, text) template, for a classifier sanity check."""
    return [
        (klass, code, enhanced, text)
        for klass, families in TEXTS.items()
        for variants in families.values()
        for code, enhanced, _outcome, text in variants
    ]


def generate(
    events: int,
    addresses: int = 20_000,
    seed: int = 20260302,
    tenants: Sequence[str] = TENANTS,
) -> Dataset:
    """Build `events` attempts over `addresses` recipients at `tenants` (weighted by
    TENANT_WEIGHTS when they are TENANTS, evenly otherwise); deterministic for a seed."""
    rng = random.Random(seed)
    weights_t = TENANT_WEIGHTS if tuple(tenants) == TENANTS else [1] * len(tenants)
    domains = [d for d, _f, _w in DOMAINS]
    family = {d: f for d, f, _w in DOMAINS}
    people = [
        f"{rng.choice(('ann', 'bob', 'carol', 'dan', 'eve', 'finn', 'gia'))}.{n}@"
        f"{rng.choices(domains, weights=[w for _d, _f, w in DOMAINS])[0]}"
        for n in range(addresses)
    ]
    # Each recipient is on one tenant's list; 1 in 10 also on a second tenant's.
    home = rng.choices(tenants, weights=weights_t, k=addresses)
    other = [rng.choice(tenants) for _ in range(addresses)]
    classes = [c for c, _w in MIX]
    weights = [w for _c, w in MIX]
    soft: Counter[tuple[str, str]] = Counter()
    data = Dataset()
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    for i in range(events):
        while True:
            n = rng.randrange(addresses)
            tenant = other[n] if rng.random() < 0.1 else home[n]
            addr = people[n]
            if (addr, tenant) not in data.hard_pairs:  # senders stop mailing hard bounces
                break
        klass = rng.choices(classes, weights=weights)[0]
        if klass == "soft":
            if soft[addr, tenant] >= SOFT_CAP:
                klass = "delivered"
            else:
                soft[addr, tenant] += 1
        code, enhanced, outcome, text = rng.choice(TEXTS[klass][family[addr.split("@")[1]]])
        ts = start + timedelta(milliseconds=20 * i)
        diagnostic = text.format(
            addr=addr,
            id=f"{rng.getrandbits(48):012x}.{rng.randrange(1000)}",
            ip=f"192.0.2.{rng.randrange(1, 32)}",
            epoch=int(ts.timestamp()),
            qid=f"{rng.getrandbits(40):010X}",
        )
        if klass == "hard":
            data.hard_pairs.add((addr, tenant))
        attempt = {
            "event_id": f"bench-{seed}-{i}",
            "ts": ts.isoformat().replace("+00:00", "Z"),
            "recipient": addr,
            "tenant": tenant,
            "list_id": "newsletter",
            "campaign_id": f"{tenant}-campaign-{i // 5000}",
            "message_id": f"{rng.getrandbits(64):016x}",
            "outcome": outcome,
            "smtp_code": code,
            "enhanced_code": enhanced or None,
            "diagnostic": diagnostic,
            "remote_mta": f"mx.{addr.split('@')[1]}",
            "smtp_phase": "RCPT TO" if klass in ("hard", "soft") else "DATA",
        }
        data.messages.append((addr.encode(), orjson.dumps(attempt)))
        data.kinds.append(klass)
        data.classes[klass] += 1
        data.addresses.add(addr)
        data.text_variants.add(diagnostic)
    return data
