"""Dead letters: bad input goes to `<topic>.deadletter` with its reason, awaited before ack.

The value is a JSON envelope (schemas/deadletter.v1.json): where the input came from, why it
was rejected, and the original bytes (as text when they are UTF-8, else base64). Inputs over
RAW_KEEP bytes keep their first RAW_KEEP bytes plus the full size and a SHA-256, so a 1 MB
garbage line cannot make the dead letter itself too large for the broker.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.core.errors import InvalidInput
from pipeline.core.models import format_ts

RAW_KEEP = 64 * 1024


def envelope(raw: bytes, error: InvalidInput, *, topic: str, partition: int, offset: int) -> bytes:
    """Return the dead-letter JSON for `raw` rejected with `error` at topic[partition]@offset."""
    kept = raw[:RAW_KEEP]
    doc: dict[str, Any] = {
        "reason": error.reason.value,
        "detail": error.detail,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "size": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "truncated": len(raw) > RAW_KEEP,
        "ts": format_ts(datetime.now(UTC)),
    }
    try:
        doc["raw"] = kept.decode("utf-8")
    except UnicodeDecodeError:
        doc["raw_base64"] = base64.b64encode(kept).decode("ascii")
    return orjson.dumps(doc)
