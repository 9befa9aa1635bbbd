"""Redis key builders. Every key of one address shares the Cluster hash tag `{address}`, so
each script touches one slot (no CROSSSLOT errors on Redis Cluster).

Layout (NS = the namespace, e.g. "bg"):
  NS:{addr}:t:<tenant>            hash    tenant-scope state: counters, suppression, dlv, eng
  NS:{addr}:t:<tenant>:l:<list>   hash    list-scope state (listrak), same fields
  NS:{addr}:g                     hash    global-scope state (bsd's global setting)
  NS:{addr}:e:<event_id>          string  dedupe marker of one counted event (its decision)
  NS:{addr}:log                   list    bounce log: last N non-delivered events, newest first
  NS:{addr}:ok                    list    delivered log: last N "250 ok" records, short TTL
  NS:{tenant:<tenant>}:rate       hash    per-day delivered / complaint counts of a tenant
  NS:{tenant:<tenant>}:history    zset    the tenant's suppression events, by event time
"""

from __future__ import annotations

from pipeline.core.models import Scope
from pipeline.core.policy_plan import NO_LIST


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


def seen(ns: str, address: str, event_id: str) -> str:
    """Key of the dedupe marker of `event_id` (kept under the address's hash tag)."""
    return f"{ns}:{{{address}}}:e:{event_id}"


def bounce_log(ns: str, address: str) -> str:
    """Key of the bounce log of `address`."""
    return f"{ns}:{{{address}}}:log"


def delivered_log(ns: str, address: str) -> str:
    """Key of the short-lived delivered log of `address`."""
    return f"{ns}:{{{address}}}:ok"


def tenant_rate(ns: str, tenant: str) -> str:
    """Key of a tenant's per-day rate counters (its own hash tag, one slot per tenant)."""
    return f"{ns}:{{tenant:{tenant}}}:rate"


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
