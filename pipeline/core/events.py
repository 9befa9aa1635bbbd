"""Engagement and feedback events, and decoding of mixed event lines (replay input).

`engagement.events` carries opens and clicks (they mark a contact engaged and, where a preset
says so, reset its counters); `feedback.events` carries spam complaints (FBL / ARF) and
unsubscribes. A replay line is a JSON object whose `type` says which of the three it is:
`attempt` (the default), `engagement` (`action` open|click), `complaint` or `unsubscribe`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.core.decode import attempt_from_mapping, load_json, normalize_address, parse_ts
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import (
    Attempt,
    BounceClass,
    Category,
    Classification,
    check_tenant,
    format_ts,
)


class EngagementAction(enum.StrEnum):
    """What the contact did."""

    OPEN = "open"
    CLICK = "click"


class FeedbackKind(enum.StrEnum):
    """What the feedback says."""

    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"


@dataclass(frozen=True, slots=True)
class Engagement:
    """One open or click (engagement.events)."""

    event_id: str
    ts: datetime
    recipient: str
    action: EngagementAction
    tenant: str = "default"
    list_id: str | None = None
    campaign_id: str | None = None

    def __post_init__(self) -> None:
        check_tenant(self.tenant)

    def to_json(self) -> dict[str, Any]:
        """Return the wire form, as a replay line."""
        return {
            "type": "engagement",
            "event_id": self.event_id,
            "ts": format_ts(self.ts),
            "recipient": self.recipient,
            "action": self.action.value,
            "tenant": self.tenant,
            "list_id": self.list_id,
            "campaign_id": self.campaign_id,
        }


@dataclass(frozen=True, slots=True)
class Feedback:
    """One spam complaint or unsubscribe (feedback.events)."""

    event_id: str
    ts: datetime
    recipient: str
    kind: FeedbackKind
    tenant: str = "default"
    list_id: str | None = None
    campaign_id: str | None = None

    def __post_init__(self) -> None:
        check_tenant(self.tenant)

    def classification(self) -> Classification:
        """The verdict policies judge it by: category and class both name the kind."""
        if self.kind is FeedbackKind.COMPLAINT:
            return Classification(Category.COMPLAINT, BounceClass.COMPLAINT, "feedback")
        return Classification(Category.UNSUBSCRIBE, BounceClass.UNSUBSCRIBE, "feedback")

    def to_json(self) -> dict[str, Any]:
        """Return the wire form, as a replay line."""
        return {
            "type": self.kind.value,
            "event_id": self.event_id,
            "ts": format_ts(self.ts),
            "recipient": self.recipient,
            "tenant": self.tenant,
            "list_id": self.list_id,
            "campaign_id": self.campaign_id,
        }


Event = Attempt | Engagement | Feedback
"""Anything the policy engine consumes."""


def _text(obj: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise InvalidInput(Reason.MISSING_FIELD, f"{key} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(Reason.WRONG_TYPE, f"{key} must be a string")
    return str(value)


def _common(obj: Mapping[str, Any]) -> dict[str, Any]:
    if "ts" not in obj:
        raise InvalidInput(Reason.MISSING_FIELD, "ts is required")
    return {
        "event_id": _text(obj, "event_id", required=True),
        "ts": parse_ts(obj["ts"]),
        "recipient": normalize_address(_text(obj, "recipient", required=True) or ""),
        "tenant": _text(obj, "tenant") or "default",
        "list_id": _text(obj, "list_id"),
        "campaign_id": _text(obj, "campaign_id"),
    }


def event_from_mapping(obj: object) -> Event:
    """Build an Attempt, Engagement or Feedback from one decoded JSON object by its `type`
    (default `attempt`). Raises InvalidInput naming the first bad field."""
    if not isinstance(obj, Mapping):
        raise InvalidInput(Reason.WRONG_TYPE, "an event must be a JSON object")
    kind = obj.get("type") or "attempt"
    if kind == "attempt":
        return attempt_from_mapping(obj)
    if kind == "engagement":
        try:
            action = EngagementAction(str(obj.get("action") or "open").lower())
        except ValueError as exc:
            raise InvalidInput(Reason.WRONG_TYPE, "action must be open or click") from exc
        return Engagement(action=action, **_common(obj))
    if kind in ("complaint", "unsubscribe"):
        return Feedback(kind=FeedbackKind(kind), **_common(obj))
    raise InvalidInput(
        Reason.WRONG_TYPE, "type must be attempt, engagement, complaint or unsubscribe"
    )


def decode_event_line(raw: bytes | str) -> Event:
    """Decode one replay line (a JSON object); raise InvalidInput when it is bad."""
    return event_from_mapping(load_json(raw))
