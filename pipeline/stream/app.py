"""create_app(settings) -> Runtime: the faust app with its topics and agents, the Redis store
and the emitter they share. No I/O at import or creation (connections open on first use)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from pipeline.config import Settings
from pipeline.core.policies import load_book
from pipeline.state.store import Store
from pipeline.stream import agents, esp, mail, monitor, normalize, topics
from pipeline.stream.apply import Emitter


@dataclass(frozen=True)
class Runtime:
    """What the entry points need of a built worker: the app to run, the store and emitter
    the HTTP API shares with the agents."""

    app: Any
    store: Store
    emitter: Emitter
    topics: topics.AppTopics


def create_app(settings: Settings) -> Runtime:
    """Build the worker for `settings`: the faust app with its topics and agents, not yet
    started (the HTTP pages are attached by `pipeline.web`). Tenants are judged by the policy
    file (BOUNCEGUARD_POLICY_FILE) or else the default preset; a bad file raises here."""
    app = faust.App(
        settings.app_id,
        broker=settings.kafka_url,
        autodiscover=False,
        web_bind=settings.web_bind,
        web_port=settings.web_port,
        web_host=settings.web_bind,
        topic_partitions=settings.partitions,
        # faust creates its own topics (the assignor's leader topic) with this factor, not the
        # broker's default: left at 1, one broker down can take that topic's only replica.
        topic_replication_factor=settings.replication,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=1.0,
        # acks=all: a suppression or dead letter counts as sent once every in-sync replica
        # has it (with min.insync.replicas=2 on a cluster, two brokers), never on one alone.
        producer_acks=-1,
        broker_commit_interval=settings.commit_interval,
        # faust buffers up to 4096 messages per partition by default: with arrays of 100
        # attempts (~40 kB each) that alone was most of the worker's RSS. One take's worth.
        stream_buffer_maxsize=settings.batch_size,
        # State lives in Redis; faust tables (and their changelog recovery, faust #596) unused.
        store="memory://",
        web_tables_enabled=False,
    )
    declared = topics.declare(app, settings)
    store = Store.from_url(
        settings.redis_url,
        load_book(settings.default_policy, settings.policy_file),
        namespace=settings.namespace,
        state_ttl_days=settings.state_ttl_days,
        bounce_log_size=settings.bounce_log_size,
        delivered_log_hours=settings.delivered_log_hours,
    )
    emitter = Emitter(
        store, declared.suppressions, declared.alerts, fault_point=settings.fault_point
    )
    agents.attach(app, settings, declared, store, emitter)
    normalize.attach(app, settings, declared)
    mail.attach(app, settings, declared)
    esp.attach(app, settings, declared)
    monitor.attach(app, settings)
    return Runtime(app, store, emitter, declared)
