"""Dead letters: bad input goes to `<topic>.deadletter` with its reason, awaited before ack.

The value is a JSON envelope (schemas/deadletter.v1.json): where the input came from, why it
was rejected, and the original bytes (as text when they are UTF-8, else base64). Inputs over
RAW_KEEP bytes keep their first RAW_KEEP bytes plus the full size and a SHA-256, so a 1 MB
garbage line cannot make the dead letter itself too large for the broker.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.core.errors import InvalidInput
from pipeline.core.models import format_ts
from pipeline.stream import metrics
from pipeline.stream.retry import retry_transient

log = logging.getLogger(__name__)

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


async def send_dead_letter(
    topic: Any, event: Any, error: InvalidInput, *, raw: bytes | None = None
) -> None:
    """Send faust `event` (raw bytes value) to dead-letter `topic` with `error`'s reason and
    wait for the broker's ack, retrying transient Kafka errors; count it in the metrics.
    `raw` replaces the message's bytes (one event of an array message)."""
    msg = event.message
    value = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
    value = value if raw is None else raw
    body = envelope(value, error, topic=msg.topic, partition=msg.partition, offset=msg.offset)

    async def send() -> None:
        fut = await topic.send(key=event.key, value=body)
        await fut

    await retry_transient("deadletter", send)
    metrics.DEAD_LETTERS.labels(msg.topic, error.reason.value).inc()
    log.info(
        "dead-lettered topic=%s partition=%d offset=%d reason=%s",
        msg.topic,
        msg.partition,
        msg.offset,
        error.reason.value,
    )
