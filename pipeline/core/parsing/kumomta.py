"""KumoMTA JSON log records -> attempts.

One JSON object per line (KumoMTA `docs/reference/log_record.md`). Record types read:
`Delivery` -> delivered, `Bounce` and `OOB` (an out-of-band DSN) -> bounced,
`TransientFailure` -> deferred, `Expiration` -> expired. `Reception`, `Rejection`, `Delayed`,
`AdminBounce` (an operator's action says nothing about the address), `AdminRebind`, `XferIn`,
`XferOut` and `Feedback` (a complaint: it belongs on `feedback.events`, not in the bounce
counters) give no attempt.

`recipient` is a string or, for multi-recipient batches (KumoMTA 2025.12.02+), a list: one
attempt per recipient. Tenant, list and campaign come from `meta.tenant`, `meta.list_id`
(or `meta.list`), `meta.campaign`; when meta lacks them, campaign and tenant are read from the
queue name `campaign:tenant@domain`; the factory tenant is the last resort.
Records carry no unique id, so the event id is built from nodeid, id, type, time, recipient
and num_attempts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from pipeline.core.decode import load_json, normalize_address, parse_ts
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Attempt, Outcome
from pipeline.core.parsing.base import LogParser, event_id, host_of, normalize_phase

_OUTCOMES = {
    "Delivery": Outcome.DELIVERED,
    "Bounce": Outcome.BOUNCED,
    "OOB": Outcome.BOUNCED,
    "TransientFailure": Outcome.DEFERRED,
    "Expiration": Outcome.EXPIRED,
}
KNOWN_TYPES = frozenset(
    {*_OUTCOMES, "Reception", "Rejection", "Delayed", "AdminBounce", "AdminRebind"}
    | {"DeferredInjectionRebind", "XferIn", "XferOut", "Feedback", "Any"}
)
"""Record types KumoMTA documents; used by format detection."""


class KumoMtaParser(LogParser):
    """KumoMTA JSON log records; see the module docstring."""

    fmt: ClassVar[str] = "kumo"

    def _parse(self, text: str) -> list[Attempt]:
        record = load_json(text)
        if not isinstance(record, Mapping) or not isinstance(record.get("type"), str):
            raise InvalidInput(Reason.UNKNOWN_FORMAT, "not a KumoMTA log record (no type)")
        return self.from_record(record)

    def from_record(self, record: Mapping[str, Any]) -> list[Attempt]:
        """Attempts of one decoded record (also used by format detection, which has already
        decoded the JSON); raises InvalidInput like `feed`."""
        outcome = _OUTCOMES.get(str(record.get("type")))
        if outcome is None:
            return []
        ts = _record_ts(record)
        response = record.get("response")
        response = response if isinstance(response, Mapping) else {}
        peer = record.get("peer_address")
        remote = host_of(peer.get("name")) if isinstance(peer, Mapping) else None
        tenant, list_id, campaign = _labels(record, self.tenant)
        code = response.get("code")
        diagnostic = response.get("content")
        command = response.get("command")
        attempts = []
        for recipient in _recipients(record.get("recipient")):
            attempts.append(
                Attempt(
                    event_id=_event_id(record, recipient, ts),
                    ts=ts,
                    recipient=recipient,
                    outcome=outcome,
                    tenant=tenant,
                    list_id=list_id,
                    campaign_id=campaign,
                    message_id=_text(record.get("id")),
                    smtp_code=code if isinstance(code, int) and 200 <= code <= 599 else None,
                    enhanced_code=_enhanced(response.get("enhanced_code")),
                    diagnostic=diagnostic if isinstance(diagnostic, str) else "",
                    remote_mta=remote,
                    smtp_phase=normalize_phase(command) if isinstance(command, str) else None,
                )
            )
        return attempts


def _event_id(record: Mapping[str, Any], recipient: str, ts: datetime) -> str:
    return event_id(
        "kumo",
        record.get("nodeid"),
        record.get("id"),
        record.get("type"),
        ts.isoformat(),
        recipient,
        record.get("num_attempts"),
    )


def _recipients(value: object) -> list[str]:
    """Normalized recipients of a record: a string or a non-empty list of strings."""
    items = value if isinstance(value, list) else [value]
    texts = [item for item in items if isinstance(item, str)]
    if not texts or len(texts) != len(items):
        raise InvalidInput(Reason.BAD_ADDRESS, "recipient must be a string or a list of them")
    return [normalize_address(item) for item in texts]


def _record_ts(record: Mapping[str, Any]) -> datetime:
    """`event_time` (RFC 3339, newer versions) else `timestamp` (epoch seconds)."""
    if isinstance(record.get("event_time"), str):
        return parse_ts(record["event_time"])
    if "timestamp" not in record:
        raise InvalidInput(Reason.BAD_TIMESTAMP, "record has neither event_time nor timestamp")
    return parse_ts(record["timestamp"])


def _enhanced(value: object) -> str | None:
    """`{"class": 5, "subject": 1, "detail": 1}` -> "5.1.1"; None when absent or malformed."""
    if not isinstance(value, Mapping):
        return None
    parts = [value.get(k) for k in ("class", "subject", "detail")]
    if not all(isinstance(p, int) and not isinstance(p, bool) for p in parts):
        return None
    return ".".join(str(p) for p in parts)


def _labels(record: Mapping[str, Any], default_tenant: str) -> tuple[str, str | None, str | None]:
    """(tenant, list_id, campaign_id) from meta, then the queue name, then the default."""
    meta = record.get("meta")
    meta = meta if isinstance(meta, Mapping) else {}
    queue_campaign, queue_tenant = _from_queue(record.get("queue"))
    tenant = _text(meta.get("tenant")) or queue_tenant or default_tenant
    list_id = _text(meta.get("list_id")) or _text(meta.get("list"))
    campaign = _text(meta.get("campaign")) or queue_campaign
    return tenant, list_id, campaign


def _from_queue(queue: object) -> tuple[str | None, str | None]:
    """`campaign:tenant@domain` -> (campaign, tenant); parts that are absent give None."""
    if not isinstance(queue, str) or "@" not in queue:
        return None, None
    prefix = queue.rsplit("@", 1)[0]
    campaign, sep, tenant = prefix.rpartition(":")
    return (campaign or None) if sep else None, tenant or None


def _text(value: object) -> str | None:
    """A non-empty string or number as text; None otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value) or None
