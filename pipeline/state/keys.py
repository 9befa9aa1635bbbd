"""Redis key builders. Every key of one address shares the Cluster hash tag `{address}`, so
each script touches one slot (no CROSSSLOT errors on Redis Cluster).

Layout (NS = the namespace, e.g. "bg"):
  NS:{addr}:t:<tenant>     hash   per-tenant counters and suppression state of the address
  NS:{addr}:e:<event_id>   string dedupe marker of one counted event (value: what it decided)
"""

from __future__ import annotations


def state(ns: str, address: str, tenant: str) -> str:
    """Key of the per-tenant state hash of `address`."""
    return f"{ns}:{{{address}}}:t:{tenant}"


def seen(ns: str, address: str, event_id: str) -> str:
    """Key of the dedupe marker of `event_id` (kept under the address's hash tag)."""
    return f"{ns}:{{{address}}}:e:{event_id}"
