"""Redis key builders and the shape of what they hold. Every key of one address shares the
Cluster hash tag `{address}`, so one address group is one slot.

Layout (NS = the namespace, e.g. "bg"):
  NS:{addr}:t:<tenant>            string  scope document: tenant scope, and the tenant's
                                          replay guard, pending events and bounce log (the
                                          "home")
  NS:{addr}:t:<tenant>:l:<list>   string  scope document of a list scope (listrak)
  NS:{addr}:g                     string  scope document of the global scope (bsd's setting)
  NS:{addr}:ok                    list    delivered log, only for policies that keep one
                                          (seed 003), short TTL
  NS:{tenant:<t>}:sent:<day>      HLL     delivered identities of a tenant with a rate rule
  NS:{tenant:<t>}:rate:<rule>:<day> set   matching identities (e.g. complaints)
  NS:{tenant:<t>}:alerts          hash    <rule>:<day> -> p (pending) | s (sent)
  NS:{tenant:<t>}:history         zset    the tenant's suppression events, by event time
  NS:schedule:<run>               string  a scheduled job that ran (pipeline.state.schedule)
No key per event: exactly-once lives inside the scope documents.

A scope document: 13 digits (latest delivery, ms of event time, zero-padded: a delivery
rewrites only these bytes), then JSON, then (home only) the bounce log: for each of the tenant's
last N non-delivered events, newest first, "\n<digest>\t<compact entry JSON>"
(pipeline.core.wire.log_entry). The JSON has, each only when set:
  e     latest open or click (ms);  es  the 16 newest open times, newest first
  s     suppression {rule, reason, ts, ev (trigger event id), n (count), t (threshold)}
  bn    bounce count: one entry per send [send, first ts, latest ts, category, digest]
        (+ the latest class, only under policies whose sweep tiers name classes)
  k     rule trackers by rule id (consecutive: as bn; confirmations: [ts, digest];
        retry_window: {campaign: [[ts, digest]...]});  b  consecutive breakers [send, ts]
  lt    latest non-delivered event time counted;  r  reactivation floor (events at or
        before it count no more)
  seen  (home only) the newest non-delivered events as one string of 25-character entries,
        13-digit ts then 12-hex-digit digest, ascending: the replay guard
  p     (home only) {digest: decisions} suppressions not yet confirmed emitted
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.core.models import Scope
from pipeline.core.wire import NO_LIST

HEAD = 13
"""Digits of the delivery time at the start of a scope document."""


@dataclass(frozen=True, slots=True)
class Doc:
    """A scope document as read by Python: delivery time, the JSON fields and the bounce log
    (compact entries, newest first; only a home document has one)."""

    delivered: int
    fields: dict[str, Any]
    log: tuple[bytes, ...] = ()


def read_doc(raw: bytes | str | None) -> Doc:
    """Decode a scope document (an absent key is an empty one)."""
    if not raw:
        return Doc(0, {})
    if isinstance(raw, str):
        raw = raw.encode()
    body, *lines = raw[HEAD:].split(b"\n")
    fields = orjson.loads(body)
    log = tuple(line.partition(b"\t")[2] for line in lines)
    return Doc(int(raw[:HEAD]), fields if isinstance(fields, dict) else {}, log)


def state(ns: str, address: str, tenant: str) -> str:
    """Key of the tenant-scope state hash of `address`."""
    return f"{ns}:{{{address}}}:t:{tenant}"


def scope_state(ns: str, address: str, tenant: str, scope: Scope, list_id: str | None) -> str:
    """Key of the state hash of `address` in `scope` (list, tenant or global)."""
    if scope is Scope.GLOBAL:
        return f"{ns}:{{{address}}}:g"
    if scope is Scope.LIST:
        return f"{state(ns, address, tenant)}:l:{list_id or NO_LIST}"
    return state(ns, address, tenant)


def delivered_log(ns: str, address: str) -> str:
    """Key of the short-lived delivered log of `address`."""
    return f"{ns}:{{{address}}}:ok"


def history(ns: str, tenant: str) -> str:
    """Key of a tenant's suppression history (pipeline.state.history)."""
    return f"{ns}:{{tenant:{tenant}}}:history"


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def scope_pattern(ns: str, tenant: str | None, scope: Scope) -> str:
    """SCAN pattern of every state hash of `scope` (for one tenant, or all of them)."""
    t = "*" if tenant is None else _glob_escape(tenant)
    if scope is Scope.LIST:
        return f"{_glob_escape(ns)}:{{*}}:t:{t}:l:*"
    return f"{_glob_escape(ns)}:{{*}}:t:{t}"


def parse_state(ns: str, key: str) -> tuple[str, str, str | None] | None:
    """Split a tenant- or list-scope state key into (address, tenant, list_id); None when
    `key` is not one (e.g. a tenant pattern that also matched a list key)."""
    prefix = f"{ns}:{{"
    if not key.startswith(prefix) or "}:t:" not in key:
        return None
    address, _, rest = key[len(prefix) :].partition("}:t:")
    tenant, _, list_id = rest.partition(":l:")
    return address, tenant, (list_id or None)


def schedule(ns: str, run: str) -> str:
    """Key of the marker of a scheduled run (pipeline.state.schedule)."""
    return f"{ns}:schedule:{run}"
