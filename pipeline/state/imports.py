"""Recording imported suppressions (`bounceguard import-suppressions`) in the address state.

An imported suppression is stored like one a rule tripped: field `s` of the scope document
(rule `imported`), an entry in the tenant's bounce log, and a pending mark until the caller
confirms with `Store.mark_emitted` that its event reached Kafka (which also adds it to the
tenant's history). So `status` and the API show it, reactivate clears it, and a crash between
Redis and Kafka loses nothing: importing again returns the pending ones (same ids) to emit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from pipeline.core.imports import log_entry
from pipeline.core.models import Suppression
from pipeline.core.plan import Arg, Call
from pipeline.core.wire import digest, to_ms
from pipeline.state import keys
from pipeline.state.store import Store

CALL_ROWS = 500
"""Imports per function call on a standalone Redis (the apply calls' size)."""


@dataclass(slots=True)
class Recorded:
    """What `record_imports` did with each suppression it was given."""

    emit: list[Suppression] = field(default_factory=list)
    """Recorded now, or recorded before and never confirmed: send these, then mark_emitted."""
    already: list[Suppression] = field(default_factory=list)
    """The scope was suppressed already (by a rule, or by this import before)."""
    reactivated: list[Suppression] = field(default_factory=list)
    """The scope was reactivated at or after the row's time: left alone."""


def _item(store: Store, s: Suppression) -> list[Arg]:
    state = {
        "rule": s.rule,
        "reason": s.reason,
        "ts": to_ms(s.ts),
        "ev": s.trigger_event_id,
        "n": s.count,
        "t": s.threshold,
    }
    return [
        keys.scope_state(store.namespace, s.address, s.tenant, s.scope, s.list_id),
        keys.state(store.namespace, s.address, s.tenant),
        digest(s.trigger_event_id),
        orjson.dumps(state),
        log_entry(s),
    ]


def _calls(store: Store, suppressions: Sequence[Suppression]) -> list[Call]:
    """One call per CALL_ROWS on a standalone Redis; on a Cluster one per address, pinned to
    the primary of its slot (the keys of one address share its hash tag)."""
    header = orjson.dumps({"ttl": store.state_ttl, "logn": store.limits.log_size})
    if store.cluster is not None:
        return [
            Call("import", [header, 1, *_item(store, s)], store.route(s.address), s.address)
            for s in suppressions
        ]
    calls = []
    for at in range(0, len(suppressions), CALL_ROWS):
        chunk = suppressions[at : at + CALL_ROWS]
        args: list[Arg] = [header, len(chunk)]
        for s in chunk:
            args += _item(store, s)
        calls.append(Call("import", args))
    return calls


async def record_imports(store: Store, suppressions: Sequence[Suppression]) -> Recorded:
    """Record `suppressions` (from `pipeline.core.imports.imported_suppression`; one per
    address and scope) in their scope documents; say which to emit.

    Idempotent: once the emitted ones are confirmed with `store.mark_emitted`, recording the
    same suppressions again emits nothing (`already`); before that, the same ones come back
    in `emit`. Raises Transient when Redis is unreachable; calling again is safe."""
    out = Recorded()
    if not suppressions:
        return out
    if store.cluster is not None:
        await store.refresh()  # route() needs the slot map (the client reads it lazily)
    calls = _calls(store, suppressions)
    kinds: list[str] = []
    for reply in await store.run(calls):
        kinds += orjson.loads(reply)
    for s, kind in zip(suppressions, kinds, strict=True):
        if kind in ("d", "p"):
            out.emit.append(s)
        elif kind == "a":
            out.already.append(s)
        else:
            out.reactivated.append(s)
    return out
