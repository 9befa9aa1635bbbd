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


def import_trigger(*, tenant: str, scope: str, list_id: str | None, address: str) -> str:
    """Return the trigger id of an imported suppression: "import:" and 24 hex digits of
    (tenant, scope, list, address), so the same address imported again into the same scope
    is the same trigger (and the same event id), whatever file or row it came from. The
    address is hashed, not spelled out, since the id ends up in logs and the history."""
    parts = (tenant, scope, list_id or "", address)
    return "import:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]
