"""Every topic declared once, and created on the broker before the worker starts.

The worker's input and output topics are created here with kafka-python's admin client (faust
only auto-declares its internal topics), with the configured partition count. Keys are the
normalized recipient address so one address's events stay in order on one partition.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from pipeline.config import Settings

log = logging.getLogger(__name__)


def ensure_topics(settings: Settings, timeout_ms: int = 30_000) -> list[str]:
    """Create every topic of `settings.topics` that is missing; return the names created."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka,
        client_id=f"{settings.app_id}-admin",
        request_timeout_ms=timeout_ms,
    )
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in settings.topics.all() if t not in existing]
        created = []
        for name in wanted:
            try:
                admin.create_topics([new_topic(name, settings)], timeout_ms=timeout_ms)
                created.append(name)
            except TopicAlreadyExistsError:
                pass  # another worker won the race: fine
        if created:
            log.info("topics created count=%d partitions=%d", len(created), settings.partitions)
            _await_metadata(settings, created, timeout_ms / 1000)
        return created
    finally:
        admin.close()


def _await_metadata(settings: Settings, names: list[str], timeout: float) -> None:
    """Wait (up to `timeout` s) until the broker's metadata shows every partition of `names`.

    A consumer group joined before that gets an empty assignment ("Ignoring missing topic")
    and reads nothing until a metadata refresh minutes later: a worker that created its
    topics must not join before they are visible."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka, client_id=f"{settings.app_id}-meta")
    try:
        deadline = time.monotonic() + timeout
        while True:
            topics = consumer.topics()  # always a fresh metadata request
            ready = all(
                name in topics
                and len(consumer.partitions_for_topic(name) or ()) >= settings.partitions
                for name in names
            )
            if ready or time.monotonic() > deadline:
                return
            time.sleep(0.1)
    finally:
        consumer.close()


def new_topic(name: str, settings: Settings) -> NewTopic:
    """The topic spec: configured partitions and replication; with replicas, acks=all must
    reach two of them (min.insync.replicas=2) so an acked event survives a broker loss."""
    configs = {"min.insync.replicas": "2"} if settings.replication >= 3 else {}
    return NewTopic(name, settings.partitions, settings.replication, topic_configs=configs)


@dataclass(frozen=True)
class AppTopics:
    """The faust topic objects of one app, declared once (raw bytes in and out: we decode
    ourselves so that bad input becomes a dead letter instead of a faust serializer error)."""

    raw: Any
    raw_deadletter: Any
    mail: Any
    mail_deadletter: Any
    attempts: Any
    attempts_deadletter: Any
    engagement: Any
    engagement_deadletter: Any
    feedback: Any
    feedback_deadletter: Any
    suppressions: Any
    alerts: Any
    esp: Any
    esp_deadletter: Any


def declare(app: Any, settings: Settings) -> AppTopics:
    """Declare the app's topics on `app` (a faust.App); no I/O."""

    def raw(name: str) -> Any:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )

    names = settings.topics
    return AppTopics(
        raw=raw(names.raw),
        raw_deadletter=raw(names.deadletter(names.raw)),
        mail=raw(names.mail),
        mail_deadletter=raw(names.deadletter(names.mail)),
        attempts=raw(names.attempts),
        attempts_deadletter=raw(names.deadletter(names.attempts)),
        engagement=raw(names.engagement),
        engagement_deadletter=raw(names.deadletter(names.engagement)),
        feedback=raw(names.feedback),
        feedback_deadletter=raw(names.deadletter(names.feedback)),
        suppressions=raw(names.suppressions),
        alerts=raw(names.alerts),
        esp=raw(names.esp),
        esp_deadletter=raw(names.deadletter(names.esp)),
    )
