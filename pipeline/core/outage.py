"""The provider-outage guard's pure half (issue 12; docs/policies.md "Provider-outage guard").

Responsibilities:
- which provider group a recipient's domain belongs to (`provider_group`, data in
  provider_groups.toml);
- the guard argument of one apply call (`guard_arg`): per group the attempts and hard bounces
  of the call by one-minute bucket of event time, and the hard bounces whose suppressions the
  guard function may hold;
- reading what the guard function answered (`read_guard`): the `provider_outage` alerts,
  the held suppressions it released, and what must be confirmed once they reached Kafka.

Detection, hold and release run in Redis, in the function call that records the bounces
(pipeline/state/lua/outage.lua), so they are atomic with the per-address state and decided by
event time: the worker and `bounceguard replay` take the same path.
"""

from __future__ import annotations

import functools
import hashlib
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

import orjson

from pipeline.core.events import Event
from pipeline.core.models import Attempt, BounceClass, Classification, Suppression, format_ts
from pipeline.core.outcomes import suppression_from_decision
from pipeline.core.policies import OutageGuard, PolicyBook
from pipeline.core.wire import NO_LIST, digest, from_ms, to_ms

MINUTE_MS = 60_000
SEP = "\x1f"
"""Joins the parts of an identity or a held record's field (never in an address)."""


@functools.cache
def _domains() -> dict[str, str]:
    path = resources.files(__package__).joinpath("provider_groups.toml")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {d.lower(): name for name, ds in data["groups"].items() for d in ds}


def provider_group(recipient: str) -> str:
    """The provider group of `recipient`'s domain (gmail.com and googlemail.com: "gmail");
    a domain no group names is a group of its own (the domain itself)."""
    return _group_of(recipient.rpartition("@")[2])


@functools.lru_cache(maxsize=65_536)  # receiving domains repeat: most of a batch is a few
def _group_of(domain: str) -> str:
    domain = domain.lower()
    return _domains().get(domain, domain)


def _stable_id(*parts: str) -> str:
    return hashlib.sha256(SEP.join(parts).encode()).hexdigest()[:32]


@functools.cache  # once per guard value, not per event (a sha256 of its JSON)
def config_id(guard: OutageGuard) -> str:
    """A short id of the guard's numbers: tenants with other numbers keep a burst state of
    their own over the same shared counts."""
    return hashlib.sha256(orjson.dumps(guard.wire(), option=orjson.OPT_SORT_KEYS)).hexdigest()[:8]


@dataclass
class _Counts:
    """One group's attempts of the batch: per minute, the identities of its hard bounces and
    of its other attempts."""

    hard: dict[int, list[str]] = field(default_factory=dict)
    other: dict[int, list[str]] = field(default_factory=dict)
    n_hard: int = 0
    n_all: int = 0


def _hard(verdict: Classification | None) -> bool:
    return verdict is not None and verdict.bounce_class is BounceClass.HARD


class _Guards:
    """Per batch: each tenant's guard key part and each recipient's group, looked up once
    (the guard's planning was a third of the planning of a batch when every event asked the
    book and split its address twice)."""

    def __init__(self, book: PolicyBook) -> None:
        self.book = book
        self._configs: dict[str, str | None] = {}

    def key(self, event: Attempt, group: str) -> tuple[str, str] | None:
        """(group, config id) of the guard judging `event`'s tenant (None: guard off)."""
        try:
            config = self._configs[event.tenant]
        except KeyError:
            guard = self.book.for_tenant(event.tenant).outage
            config = self._configs[event.tenant] = None if guard is None else config_id(guard)
        return None if config is None else (group, config)


def _batch_counts(
    attempts: Sequence[tuple[Attempt, str, tuple[str, str] | None]],
    verdicts: Mapping[int, Classification | None],
) -> tuple[list[Any], list[str], dict[tuple[str, str], list[int]]]:
    """The batch's attempts and hard bounces per group and minute as the guard function reads
    them (C, then the identities in the same order: per bucket its hard bounces first), and
    the minutes (ascending) per (group, guard numbers) that guarded tenants have events in
    (`attempts`: each with its group and guard key)."""
    counts: dict[str, _Counts] = {}
    minutes: dict[tuple[str, str], set[int]] = {}
    for event, group, guard in attempts:
        minute = to_ms(event.ts) // MINUTE_MS
        c = counts.get(group)
        if c is None:
            c = counts[group] = _Counts()
        identity = f"{event.recipient}{SEP}{event.event_id}"
        c.n_all += 1
        if _hard(verdicts[id(event)]):
            c.n_hard += 1
            c.hard.setdefault(minute, []).append(identity)
            c.other.setdefault(minute, [])
        else:
            c.other.setdefault(minute, []).append(identity)
        if guard is not None:
            minutes.setdefault(guard, set()).add(minute)
    wire: list[Any] = []
    ids: list[str] = []
    for group, c in counts.items():
        buckets = []
        for minute, other in c.other.items():
            hard = c.hard.get(minute, [])
            buckets.append([str(minute), str(minute // 60), len(hard) + len(other), len(hard)])
            ids += hard
            ids += other
        wire.append([group, c.n_all, c.n_hard, buckets])
    return wire, ids, {key: sorted(m) for key, m in minutes.items()}


def event_guard(book: PolicyBook, event: Attempt, group: str) -> tuple[str, str] | None:
    """(group, config id) of the guard judging `event`'s tenant (None: guard off)."""
    guard = book.for_tenant(event.tenant).outage
    return None if guard is None else (group, config_id(guard))


def _holdable(state: int, event: Attempt, profile: int) -> list[Any]:
    """What the guard needs to hold one hard bounce's decisions (see guard_args, E)."""
    list_id = event.list_id or NO_LIST
    return [state, event.recipient, event.tenant, list_id, digest(event.event_id),
            event.event_id, to_ms(event.ts), profile]  # fmt: skip


def guard_args(
    calls: Sequence[Sequence[Event]],
    verdicts: Mapping[int, Classification | None],
    profiles: Sequence[Sequence[int]],
    book: PolicyBook,
    ns: str,
) -> list[list[bytes | str] | None]:
    """The guard function's own arguments (before the apply ones) for each apply call of one
    batch (`calls`: its events, numbered from 1 as the apply function numbers them; `verdicts`
    keyed by id(event); `profiles` their profile indexes); None for a call with no attempt.

    The whole batch's counts ride on the first guarded call, and the first call of each
    group walks it through the batch's minutes of event time (later calls read the state it
    left): the batch is counted before any of its bounces is judged, so a burst that starts
    inside a batch holds from its first bounce, however the batch is cut into calls. Only
    the last call reports (pending alerts, held counts, releases) for every (group, guard
    numbers) of the batch (R).

    [guard JSON, E JSON, identities...]: guard JSON {ns, C: [[group, attempts, hard,
    [[minute, hour, n attempts, n hard]]]], G: [[group, config id, numbers, minutes, first
    and last ms of its hard bounces in the call (when it has some)]], R (last call only):
    [[group, config id]], last}; E: {number: [G index, address, tenant, list, digest, event
    id, ms, profile]}; the identities (recipient\x1fevent id) are plain arguments, each
    bucket's hard bounces first, so the function passes them to PFADD without decoding JSON."""
    guards = _Guards(book)
    keyed = [
        [(n, e, g, guards.key(e, g)) for n, e in enumerate(events, start=1)
         if isinstance(e, Attempt) for g in (provider_group(e.recipient),)]
        for events in calls
    ]  # fmt: skip
    counts, ids, minutes = _batch_counts([x[1:] for call in keyed for x in call], verdicts)
    walked: dict[tuple[str, str], None] = {}  # the first call of a group walks its minutes
    bodies: list[tuple[dict[str, Any], dict[str, list[Any]], list[str]] | None] = []
    for profs, attempts in zip(profiles, keyed, strict=True):
        states: dict[tuple[str, str], int] = {}
        spec: list[list[Any]] = []
        held: dict[str, list[Any]] = {}
        for number, event, _group, key in attempts:
            if key is None:
                continue
            if key not in states:
                guard = book.for_tenant(event.tenant).outage
                assert guard is not None
                spec.append([key[0], key[1], guard.wire(), [] if key in walked else minutes[key]])
                walked[key] = None
                states[key] = len(spec)
            if _hard(verdicts[id(event)]):
                held[str(number)] = _holdable(states[key], event, profs[number - 1])
                _span(spec[states[key] - 1], to_ms(event.ts))
        if not spec and not (counts and attempts):
            bodies.append(None)
            continue
        bodies.append(({"ns": ns, "C": counts, "G": spec}, held, ids))
        counts, ids = [], []
    # Only the batch's last guard call settles groups past their grace: once every event of
    # the batch (a delivery that discards a held suppression) has been applied.
    last = [b for b in bodies if b is not None]
    if last:
        body = last[-1][0]
        body["last"] = 1
        own = [(g[0], g[1]) for g in body["G"]]
        body["R"] = [list(k) for k in dict.fromkeys(own + list(walked))]
    return [None if b is None else [orjson.dumps(b[0]), orjson.dumps(b[1]), *b[2]] for b in bodies]


def _span(spec: list[Any], ms: int) -> None:
    """Widen the spec's range of hard-bounce times (its items 5 and 6) to `ms`."""
    if len(spec) == 4:
        spec += [ms, ms]
    else:
        spec[4], spec[5] = min(spec[4], ms), max(spec[5], ms)


@dataclass(frozen=True, slots=True)
class OutageAlert:
    """One `provider_outage` event on `sender.alerts`: a burst of one provider group started
    or ended (keyed by `provider:<group>`: it is about every tenant sending there)."""

    event_id: str
    """Deterministic: one per group, guard numbers, phase and burst start."""
    phase: str
    """"start" or "end"."""
    group: str
    config: str
    window_minutes: int
    attempts: int
    hard: int
    share: float
    baseline: float
    held: int
    """Suppressions held for the group so far."""
    since: datetime
    """Event time the burst is held from (the start of the window that tripped it)."""
    ts: datetime
    """Event time of the batch that started (ended) it."""

    @property
    def key(self) -> str:
        """The Kafka key of the event."""
        return f"provider:{self.group}"

    def to_json(self) -> dict[str, Any]:
        """The wire form of the `sender.alerts` event."""
        return {
            "event_id": self.event_id,
            "kind": "provider_outage",
            "phase": self.phase,
            "group": self.group,
            "window_minutes": self.window_minutes,
            "attempts": self.attempts,
            "hard": self.hard,
            "share": self.share,
            "baseline": self.baseline,
            "held": self.held,
            "since": format_ts(self.since),
            "ts": format_ts(self.ts),
        }


def outage_alert(raw: Mapping[str, Any]) -> OutageAlert:
    """An alert as the guard function returns it ({k, ph, g, c, w, A, H, b, held, sn, t})."""
    group, config, phase, since = str(raw["g"]), str(raw["c"]), str(raw["ph"]), int(raw["sn"])
    attempts, hard = int(raw["A"]), int(raw["H"])
    return OutageAlert(
        event_id=_stable_id("provider_outage", group, config, phase, str(since)),
        phase=phase,
        group=group,
        config=config,
        window_minutes=int(raw["w"]),
        attempts=attempts,
        hard=hard,
        share=round(hard / attempts, 4) if attempts else 0.0,
        baseline=round(float(raw["b"]), 4),
        held=int(raw["held"]),
        since=from_ms(since),
        ts=from_ms(int(raw["t"])),
    )


def held_suppressions(record: Mapping[str, Any], book: PolicyBook) -> list[Suppression]:
    """The suppressions a held record ({a, t, l, id, ts, d = decisions}) stands for: the very
    events (same ids) the apply function would have had emitted."""
    list_id = None if record["l"] == NO_LIST else str(record["l"])
    policy = book.for_tenant(str(record["t"]))
    return [
        suppression_from_decision(
            policy,
            decision,
            address=str(record["a"]),
            tenant=str(record["t"]),
            list_id=list_id,
            trigger_event_id=str(record["id"]),
            ts=from_ms(int(record["ts"])),
        )
        for decision in record["d"]
    ]


Ack = tuple[str, str, str]
"""What to confirm once emitted: ("a", "<group>\\x1f<config>", alert key) or
("r", group, held field)."""


@dataclass
class GuardReply:
    """The guard function's answer beside the apply entries."""

    entries: list[Any]
    alerts: list[OutageAlert] = field(default_factory=list)
    released: list[Suppression] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    held: dict[str, int] = field(default_factory=dict)
    """Per group of the call, its suppressions held now."""


def _list(value: Any) -> list[Any]:
    """A JSON array from Lua (cjson writes an empty one as `{}`)."""
    return value if isinstance(value, list) else []


def read_guard(reply: bytes | str, book: PolicyBook) -> GuardReply:
    """Read a guard reply {o: apply entries, a: pending alerts, r: released records, h}."""
    answer = orjson.loads(reply)
    out = GuardReply(_list(answer.get("o")), held=dict(answer.get("h") or {}))
    for raw in _list(answer.get("a")):
        out.alerts.append(outage_alert(raw))
        out.acks.append(("a", f"{raw['g']}{SEP}{raw['c']}", str(raw["k"])))
    for group, fld, record in _list(answer.get("r")):
        out.released += held_suppressions(orjson.loads(record), book)
        out.acks.append(("r", str(group), str(fld)))
    return out
