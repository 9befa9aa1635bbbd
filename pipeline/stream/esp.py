"""The ESP agent: webhook bodies (`esp.events.raw`) -> attempts (`delivery.attempts`),
complaints/unsubscribes (`feedback.events`) and opens/clicks (`engagement.events`).

Responsibilities:
- map each message, one authenticated webhook body as the provider posted it (the web layer,
  pipeline.web.webhooks, put it there; its Kafka key is `<provider>:<hash>`), with the pure
  mapper `pipeline.core.esp.parse_esp`;
- produce the attempts as the normalize agent does (NormalizeBatch's body: arrays per
  partition keyed by recipient), each feedback event as one JSON message keyed by its
  recipient to `feedback.events`, where the feedback agent judges it, and each open or click
  likewise to `engagement.events`;
- dead-letter what cannot be mapped to `esp.events.raw.deadletter` with its reason.

Order inside a unit: the normalize agent's (pipeline.stream.normalize): dead letters awaited,
then every attempt and feedback event produced and awaited, then the unit acked. A crash
before the ack maps the bodies again to the same provider event ids, which the policy agents'
replay guard makes no-ops; so does a provider's retry of a webhook already acked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson

from pipeline.config import Settings
from pipeline.core.decode import check_not_empty
from pipeline.core.errors import InvalidInput
from pipeline.core.esp import parse_esp
from pipeline.core.events import Engagement, Feedback
from pipeline.core.models import Attempt
from pipeline.stream import deadletter, metrics
from pipeline.stream.batch import run_batches
from pipeline.stream.normalize import NormalizeBatch
from pipeline.stream.topics import AppTopics


class EspBatch(NormalizeBatch):
    """The ESP agent's body: NormalizeBatch's units, produce and fallback, with `parse_esp`
    in place of the log parsers; feedback events go to `feedback.events`, opens and clicks
    to `engagement.events`."""

    name = "esp_events"
    results = metrics.RAW_ESP_EVENTS
    produced = metrics.ESP_EVENTS_PRODUCED

    def parse(self, event: Any) -> list[Any]:
        """Return the attempts and feedback events of one webhook body ([] when none
        matters); raise InvalidInput: MISSING_FIELD for an empty message, WRONG_TYPE for a
        key that names no provider, else parse_esp's reason."""
        raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
        check_not_empty(raw)
        key = event.key.decode("ascii", errors="replace") if event.key else ""
        provider = key.partition(":")[0]  # "<provider>:<hash of the body>" (web.webhooks)
        return parse_esp(provider, raw, tenant=self.default_tenant)

    async def _produce(self, attempts: Sequence[Attempt]) -> None:
        """Send the attempts as NormalizeBatch does, the feedback and engagement events
        (which `parse` mixes in) to their topics keyed by recipient; await every delivery."""
        events: Sequence[Any] = attempts
        await super()._produce([e for e in events if isinstance(e, Attempt)])
        futures = []
        for e in events:
            if isinstance(e, Feedback | Engagement):
                topic = self.topics.feedback if isinstance(e, Feedback) else self.topics.engagement
                futures.append(
                    await topic.send(key=e.recipient.encode(), value=orjson.dumps(e.to_json()))
                )
        await asyncio.gather(*futures)

    def _source_topic(self) -> Any:
        return self.topics.esp

    async def _dead_letter(self, event: Any, error: InvalidInput) -> None:
        await deadletter.send_dead_letter(self.topics.esp_deadletter, event, error)


def attach(app: Any, settings: Settings, topics: AppTopics) -> None:
    """Attach the ESP agent (`esp.events.raw` -> `delivery.attempts`, `feedback.events`,
    `engagement.events`)."""
    batch = EspBatch(
        app, topics, default_tenant=settings.raw_tenant, max_lines=settings.batch_attempts
    )

    @app.agent(topics.esp, concurrency=1)  # type: ignore[untyped-decorator]
    async def esp_events(stream: Any) -> None:
        await run_batches(stream, batch, take=settings.mail_take, within=settings.batch_within)
