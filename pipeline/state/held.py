"""The provider-outage guard's held suppressions in Redis (issue 12): list them, settle them
on an operator's word, and confirm what the guard returned once it reached Kafka.

The guard itself runs inside the batch's function call (lua/outage.lua, planned by
pipeline.core.plan); this module is the operator's door to what it holds. Standalone Redis
only, like the guard (docs/policies.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.core.models import Suppression
from pipeline.core.outage import Ack, held_suppressions, provider_group
from pipeline.core.plan import Call
from pipeline.state.errors import redis_errors

if TYPE_CHECKING:
    from pipeline.state.store import Store


def guard_confirm_call(ns: str, acks: Sequence[Ack]) -> Call:
    """The call that tells the guard its alerts and released suppressions reached Kafka."""
    alerts = [(a, b) for kind, a, b in acks if kind == "a"]
    released = [(a, b) for kind, a, b in acks if kind == "r"]
    args: list[Any] = [ns, len(alerts)]
    for pair in alerts:
        args += pair
    args.append(len(released))
    for pair in released:
        args += pair
    return Call("guard_confirm", args)


@dataclass(frozen=True)
class HeldGroup:
    """One provider group's held suppressions, for the operator."""

    group: str
    held: list[dict[str, Any]]
    """Each held record: address, tenant, list, trigger event id, ts (ms), decisions."""
    stats: dict[str, int] = field(default_factory=dict)
    """Totals so far: held, released, discarded."""

    def to_json(self, *, addresses: bool = True) -> dict[str, Any]:
        """The API/CLI form; `addresses=False` gives counts only."""
        out: dict[str, Any] = {"group": self.group, "count": len(self.held), "stats": self.stats}
        if addresses:
            out["held"] = [_record(r) for r in self.held]
        return out


def _record(r: dict[str, Any]) -> dict[str, Any]:
    rules = [d["rule"] for d in r["d"]]
    return {
        "address": r["a"],
        "tenant": r["t"],
        "event_id": r["id"],
        "ts_ms": r["ts"],
        "rules": rules,
    }


DOMAIN = re.compile(r"[a-z0-9][a-z0-9._-]{0,252}")


def group_of(domain: str) -> str:
    """The provider group of a receiving domain (or of a group's name: "gmail"); ValueError
    when `domain` is not a domain name."""
    if not DOMAIN.fullmatch(domain.lower()):
        raise ValueError(f"not a domain: {domain[:80]!r}")
    return provider_group(f"x@{domain}")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _prefix(ns: str, group: str) -> str:
    return f"{ns}:{{og:{group}}}"


async def groups(store: Store) -> list[str]:
    """The provider groups that hold suppressions now, sorted."""
    with redis_errors():
        members = await store.client.smembers(f"{store.namespace}:og:groups")
    return sorted(_text(m) for m in members)


async def held(store: Store, domain: str | None = None) -> list[HeldGroup]:
    """What is held now: for `domain`'s provider group (a domain or a group name), or for
    every group. Raises Transient when Redis is unreachable, ValueError on a bad domain."""
    names = [group_of(domain)] if domain else await groups(store)
    out = []
    with redis_errors():
        for name in names:
            raw = await store.client.hgetall(_prefix(store.namespace, name) + ":held")
            stats = await store.client.hgetall(_prefix(store.namespace, name) + ":stats")
            records = [orjson.loads(v) for v in raw.values()]
            records.sort(key=lambda r: (r["ts"], r["a"]))
            out.append(HeldGroup(name, records, {_text(k): int(v) for k, v in stats.items()}))
    return out


@dataclass
class Settled:
    """What an operator's release or discard did."""

    group: str
    released: int
    discarded: int
    suppressions: list[Suppression]
    """To emit (every release of the group not yet confirmed), then `Store.mark_emitted`
    with `acks`."""
    acks: list[Ack]


async def settle(store: Store, domain: str, mode: str) -> Settled:
    """Release (mode "release": those whose address received a delivery since are discarded)
    or discard (mode "discard") what `domain`'s group holds. The returned suppressions must
    be emitted and then confirmed (`store.mark_emitted(s, acks=...)`); until then a repeat
    call returns them again, with the same ids. Raises Transient; ValueError on a bad mode
    or domain."""
    if mode not in ("release", "discard"):
        raise ValueError(f"mode must be release or discard, not {mode!r}")
    group = group_of(domain)
    [reply] = await store.run([Call("guard_settle", [store.namespace, group, mode])])
    answer = orjson.loads(reply)
    suppressions: list[Suppression] = []
    acks: list[Ack] = []
    pending = answer.get("r")
    for g, fld, record in pending if isinstance(pending, list) else []:
        suppressions += held_suppressions(orjson.loads(record), store.book)
        acks.append(("r", str(g), str(fld)))
    return Settled(group, int(answer["released"]), int(answer["discarded"]), suppressions, acks)
