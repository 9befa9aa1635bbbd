"""create_app(settings) -> faust.App with its topics and agents. No I/O at import."""

from __future__ import annotations

from typing import Any

import faust

from pipeline.config import Settings
from pipeline.stream import agents, monitor, normalize, topics


def create_app(settings: Settings) -> Any:
    """Build the faust app for `settings` with its topics and agents, not yet started (the
    HTTP pages are attached by `pipeline.web`)."""
    app = faust.App(
        settings.app_id,
        broker=settings.kafka_url,
        autodiscover=False,
        web_bind=settings.web_bind,
        web_port=settings.web_port,
        web_host=settings.web_bind,
        topic_partitions=settings.partitions,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=1.0,
        producer_acks=-1,
        # State lives in Redis; faust tables (and their changelog recovery, faust #596) unused.
        store="memory://",
        web_tables_enabled=False,
    )
    declared = topics.declare(app, settings)
    agents.attach(app, settings, declared)
    normalize.attach(app, settings, declared)
    monitor.attach(app, settings)
    return app
