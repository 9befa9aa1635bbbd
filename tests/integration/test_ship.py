"""`bounceguard ship` against the real broker (and, for suppressions, the real worker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer

from pipeline.config import Settings
from pipeline.stream.shipper import partition_for
from pipeline.stream.topics import ensure_topics
from tests.integration.conftest import ROOT, WorkerProcess, read_topic, settings_env, wait_for

pytestmark = pytest.mark.integration

LOGS = ROOT / "tests" / "data" / "logs"


def ship(settings: Settings, *args: str) -> subprocess.Popen[str]:
    """Start `bounceguard ship ARGS` with the test's settings."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ship", *args],
        env={**os.environ, **settings_env(settings)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_attempts(kafka: str, topic: str, expect: int, timeout: float = 45.0) -> list[Any]:
    """Read (partition, attempts-in-one-message) from `topic` until `expect` attempts came,
    then one more second, so that a duplicate sent late is seen too."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
    )
    out: list[tuple[int, list[dict[str, Any]]]] = []
    try:
        deadline = time.monotonic() + timeout
        extra: float | None = None
        while time.monotonic() < (extra or deadline):
            for batch in consumer.poll(timeout_ms=300).values():
                for rec in batch:
                    doc = orjson.loads(rec.value)
                    out.append((rec.partition, doc if isinstance(doc, list) else [doc]))
            if extra is None and sum(len(a) for _, a in out) >= expect:
                extra = time.monotonic() + 1.0
    finally:
        consumer.close()
    return out


def test_ship_a_file_to_suppressions(
    settings: Settings, worker_factory: Any, tmp_path: Path
) -> None:
    worker: WorkerProcess = worker_factory(settings)
    log = tmp_path / "mail.log"
    log.write_bytes(
        (LOGS / "postfix.log").read_bytes() + b"garbage that is no log line\n\xff\xfe\n"
    )
    proc = ship(settings, str(log), "--year", "2026", "--tenant", "acme")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "done lines=31 attempts=17" in err and "dead_letters=2" in err

    messages = read_attempts(settings.kafka, settings.topics.attempts, 17)
    attempts = [a for _, batch in messages for a in batch]
    assert len(attempts) == 17
    assert len(messages) < 17  # arrays: one message per partition and batch
    for partition, batch in messages:
        for a in batch:
            assert partition_for(a["recipient"].encode(), [0, 1]) == partition
            assert a["tenant"] == "acme"

    dead = [
        orjson.loads(v)
        for v in read_topic(settings.kafka, settings.topics.deadletter(settings.topics.raw), 2)
    ]
    # The dead-letter topic has several partitions, so arrival order is not line order.
    assert sorted((d["source"]["offset"], d["reason"]) for d in dead) == [
        (30, "unknown_format"),
        (31, "bad_encoding"),
    ]
    assert {d["source"]["topic"] for d in dead} == {str(log)}

    events = [orjson.loads(v) for v in read_topic(settings.kafka, settings.topics.suppressions, 2)]
    by_address = {e["address"]: e for e in events}
    assert by_address["anincorrectemailaddress@openaustralia.org"]["reason"] == "user_unknown"
    assert by_address["user@acme.io"]["reason"] == "user_unknown", worker.tail()
    assert {e["tenant"] for e in events} == {"acme"}


BOUNCE = (
    "Mar  2 09:{m:02d}:{s:02d} mx1 postfix/smtp[2500]: Q{n:06X}: to=<user{n}@example.com>, "
    "relay=mx.example.net[192.0.2.1]:25, delay=1, dsn=5.1.1, status=bounced (host "
    "mx.example.net[192.0.2.1] said: 550 5.1.1 User unknown (in reply to RCPT TO command))\n"
)


def bounces(start: int, stop: int) -> bytes:
    return "".join(
        BOUNCE.format(m=(n // 60) % 60, s=n % 60, n=n) for n in range(start, stop)
    ).encode()


def test_ship_follow_through_rotation_delivers_every_line_once(
    settings: Settings, tmp_path: Path
) -> None:
    ensure_topics(settings)
    log = tmp_path / "mail.log"
    log.write_bytes(bounces(0, 200))
    proc = ship(settings, str(log), "--follow", "--year", "2026", "--progress", "0.5")
    try:
        wait_for(lambda: _acked(settings, 200), 45, lambda: "first 200 attempts never came")
        with log.open("ab") as fh:  # the writer goes on, then logrotate moves the file ...
            fh.write(bounces(200, 300))
        os.rename(log, tmp_path / "mail.log.1")
        with (tmp_path / "mail.log.1").open("ab") as fh:  # ... the writer's last old lines
            fh.write(bounces(300, 350))
        log.write_bytes(bounces(350, 500))  # ... and it reopens the path
        time.sleep(0.5)
        with log.open("ab") as fh:
            fh.write(bounces(500, 600))
        messages = read_attempts(settings.kafka, settings.topics.attempts, 600)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    ids = [a["event_id"] for _, batch in messages for a in batch]
    assert len(ids) == 600, err
    assert len(set(ids)) == 600
    recipients = {a["recipient"] for _, batch in messages for a in batch}
    assert recipients == {f"user{n}@example.com" for n in range(600)}
    assert "done lines=600 attempts=600" in err


def _acked(settings: Settings, count: int) -> bool:
    got = read_attempts(settings.kafka, settings.topics.attempts, count, timeout=2)
    return sum(len(batch) for _, batch in got) >= count
