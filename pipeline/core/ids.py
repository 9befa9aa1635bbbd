"""Deterministic ids, so that anything re-emitted after a crash is recognisably the same."""

from __future__ import annotations

import hashlib


def suppression_event_id(
    *,
    action: str,
    address: str,
    tenant: str,
    scope: str,
    list_id: str | None,
    rule: str,
    trigger: str,
) -> str:
    """Return a stable 32-hex-digit id for one suppression-change event.

    The same (action, address, tenant, scope, list, rule, trigger event) always gives the same
    id, so a consumer can drop a re-emitted duplicate by id alone.
    """
    parts = (action, address, tenant, scope, list_id or "", rule, trigger)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
