"""Settings: read once at start-up from the environment, then passed down explicitly.

Every field names its environment variable (BOUNCEGUARD_ + the field name in upper case) and
its default. Nothing else in the code reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from pipeline.core.dsn import DEFAULT_JOIN_HEADER

PREFIX = "BOUNCEGUARD_"


@dataclass(frozen=True)
class Topics:
    """Kafka topic names (PRODUCT.md "Data flow"); tests give each test its own."""

    raw: str = "mta.log.raw"
    mail: str = "bounce.mail.raw"
    attempts: str = "delivery.attempts"
    engagement: str = "engagement.events"
    feedback: str = "feedback.events"
    suppressions: str = "suppression.events"
    alerts: str = "sender.alerts"
    esp: str = "esp.events.raw"

    def deadletter(self, topic: str) -> str:
        """Return the dead-letter topic of `topic` (`<topic>.deadletter`)."""
        return f"{topic}.deadletter"

    def all(self) -> list[str]:
        """Every topic the worker reads or writes, dead-letter topics included."""
        main = [self.raw, self.mail, self.attempts, self.engagement, self.feedback]
        main.append(self.esp)
        return [*main, self.suppressions, self.alerts, *(self.deadletter(t) for t in main)]

    @classmethod
    def with_suffix(cls, suffix: str) -> Topics:
        """Return every default name with `suffix` appended (isolated topics for tests)."""
        return cls(**{f.name: f"{f.default}{suffix}" for f in fields(cls)})


@dataclass(frozen=True)
class Settings:
    """Worker and CLI settings; see `from_env` for the variable names."""

    kafka: str = "127.0.0.1:9092"
    """BOUNCEGUARD_KAFKA: bootstrap servers, host:port[,host:port]."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    """BOUNCEGUARD_REDIS_URL."""
    app_id: str = "bounceguard"
    """BOUNCEGUARD_APP_ID: faust app id, also the Kafka consumer group."""
    namespace: str = "bg"
    """BOUNCEGUARD_NAMESPACE: prefix of every Redis key (replay uses its own to stay apart)."""
    partitions: int = 4
    """BOUNCEGUARD_PARTITIONS: partition count for topics the worker creates at start."""
    replication: int = 1
    """BOUNCEGUARD_REPLICATION: replication factor of the topics the worker creates (1 for the
    single-node dev broker; 3 on a production cluster, where min.insync.replicas = 2 is set
    with it so that acks=all survives one broker down)."""
    topic_suffix: str = ""
    """BOUNCEGUARD_TOPIC_SUFFIX: appended to every topic name (isolates test runs)."""
    web_bind: str = "127.0.0.1"
    """BOUNCEGUARD_WEB_BIND."""
    web_port: int = 6066
    """BOUNCEGUARD_WEB_PORT."""
    batch_size: int = 500
    """BOUNCEGUARD_BATCH_SIZE: most Kafka messages taken at once by an agent."""
    mail_take: int = 50
    """BOUNCEGUARD_MAIL_TAKE: most bounce mails (bounce.mail.raw) taken at once. Mails are up
    to 4 MiB (core/dsn.py), so the agents' take of 500 could hold ~2 GB; 50 bounds it to
    ~200 MB in the worst case (real DSNs are a few KB)."""
    batch_attempts: int = 5000
    """BOUNCEGUARD_BATCH_ATTEMPTS: most events (attempts, opens, complaints; raw lines for the
    normalize agent) per unit of work: one Redis round trip, acked as one. Bounds memory and
    the work redone after a crash whatever the messages carry (arrays of ~100 attempts)."""
    commit_interval: float = 1.0
    """BOUNCEGUARD_COMMIT_INTERVAL: seconds between offset commits (faust's default is 2.8;
    shorter means less work redone after a crash, for one small request per interval)."""
    batch_within: float = 0.2
    """BOUNCEGUARD_BATCH_WITHIN: seconds to wait for a batch to fill."""
    default_policy: str = "default"
    """BOUNCEGUARD_DEFAULT_POLICY: preset for tenants the policy file does not name."""
    policy_file: str | None = None
    """BOUNCEGUARD_POLICY_FILE: per-tenant policy file (TOML or YAML)."""
    state_ttl_days: int = 400
    """BOUNCEGUARD_STATE_TTL_DAYS: per-address state expires after this many quiet days."""
    bounce_log_size: int = 20
    """BOUNCEGUARD_BOUNCE_LOG_SIZE: entries kept in each address's bounce and delivered logs."""
    delivered_log_hours: int = 72
    """BOUNCEGUARD_DELIVERED_LOG_HOURS: "250 ok" records are kept only this long (seed 003)."""
    sweep_interval_days: float = 90.0
    """BOUNCEGUARD_SWEEP_INTERVAL_DAYS: how often the worker runs the count-threshold sweep
    (listrak's cleanup; 0 = never). Runs on the leader only."""
    api_token: str | None = None
    """BOUNCEGUARD_API_TOKEN: bearer token for the HTTP API's writes; unset = writes refused."""
    session_timeout: float = 10.0
    """BOUNCEGUARD_SESSION_TIMEOUT: consumer session timeout in seconds (kill -9 recovery time)."""
    raw_tenant: str = "default"
    """BOUNCEGUARD_RAW_TENANT: tenant of raw log lines (mta.log.raw) whose wrapper names none,
    and of bounce mails (bounce.mail.raw) whose returned message has no X-BG-Tenant."""
    dsn_join_header: str = DEFAULT_JOIN_HEADER
    """BOUNCEGUARD_DSN_JOIN_HEADER: the header of the returned message in a bounce mail that
    names its send (default X-Bounceguard-Event-Id; the Message-ID when it is absent)."""
    dsn_verp: str | None = None
    """BOUNCEGUARD_DSN_VERP: a regular expression over the address a bounce mail was sent to
    (its return path) whose `id` group names the send, and an optional `tenant` group the
    tenant: VERP, for bounces that quote no returned message (docs/inputs.md). Unset: none."""
    metrics_tenant_cap: int = 50
    """BOUNCEGUARD_METRICS_TENANT_CAP: tenants that get their own metric label value (the first
    seen); later ones are labelled "other", so a tenant explosion cannot explode Prometheus."""
    monitor_interval: float = 10.0
    """BOUNCEGUARD_MONITOR_INTERVAL: seconds between samples of consumer lag and Redis memory
    (group leader only)."""
    fault_point: str | None = None
    """BOUNCEGUARD_FAULT_POINT: crash tests only; the worker kills itself with SIGKILL at this
    step of a batch (pipeline.stream.faults.POINTS). Never set it in production."""
    topics: Topics = field(default_factory=Topics)
    """Derived from topic_suffix."""
    webhook_max_bytes: int = 1_000_000
    """BOUNCEGUARD_WEBHOOK_MAX_BYTES: largest ESP webhook body accepted (413 above). Kept under
    the broker's default message.max.bytes (1 MB): the body goes to esp.events.raw whole."""
    webhook_timeout: float = 10.0
    """BOUNCEGUARD_WEBHOOK_TIMEOUT: seconds a webhook waits for the broker's ack before it
    answers 503 (the provider retries; a copy acked late is deduplicated by its event ids)."""
    sendgrid_public_key: str | None = None
    """BOUNCEGUARD_SENDGRID_PUBLIC_KEY: the Signed Event Webhook's verification key (base64
    DER as the SendGrid console shows it, or PEM); unset = /v1/webhooks/sendgrid refuses all."""
    mailgun_signing_key: str | None = None
    """BOUNCEGUARD_MAILGUN_SIGNING_KEY: Mailgun's HTTP webhook signing key; unset = refuse all."""
    postmark_basic_auth: str | None = None
    """BOUNCEGUARD_POSTMARK_BASIC_AUTH: "user:password" of the Postmark webhook URL's basic
    auth; unset = refuse all."""
    sparkpost_basic_auth: str | None = None
    """BOUNCEGUARD_SPARKPOST_BASIC_AUTH: "user:password" of the SparkPost webhook's basic
    auth; unset = refuse all."""
    sns_cert_file: str | None = None
    """BOUNCEGUARD_SNS_CERT_FILE: PEM file of the SNS signing certificate(s) of your region
    (downloaded once by the operator; nothing is fetched at run time); unset = refuse all."""
    sns_topic_arns: str = ""
    """BOUNCEGUARD_SNS_TOPIC_ARNS: comma-separated ARNs of the SNS topics whose messages are
    accepted (AWS signs every account's topics with the same certificate)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read BOUNCEGUARD_* variables from `env` (default os.environ); `overrides` win."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None or f.name == "topics":
                continue
            default = getattr(cls(), f.name)
            # bool before int: bool is an int subclass, and "false" must not read as True
            if isinstance(default, bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int | float):
                values[f.name] = type(default)(raw)
            else:  # str, or an optional str whose default is None
                values[f.name] = raw
        values.update(overrides)
        settings = cls(**values)
        return replace(settings, topics=Topics.with_suffix(settings.topic_suffix))

    @property
    def kafka_url(self) -> str:
        """Broker URL in faust's form (kafka://host:port;host:port)."""
        return "kafka://" + ";".join(self.kafka.split(","))
