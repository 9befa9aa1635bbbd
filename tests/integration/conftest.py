"""Real servers for the integration tests: Kafka and Redis started by deploy/*.sh on test ports.

The servers are started once per session on ports of their own (never the `make up` ones), with
a real readiness check (metadata lists a broker; PING). A server that cannot start stops the
whole run with its log tail (pytest.exit): an integration test is never skipped. Each test gets
its own topics, consumer group and Redis namespace, so tests cannot see each other's data.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.net.inet import KafkaNetSocket

from pipeline.config import Settings

ROOT = Path(__file__).resolve().parents[2]
TEST_VAR = ROOT / "var" / "test"
KAFKA_PORT = int(os.environ.get("BG_TEST_KAFKA_PORT", "19192"))
REDIS_PORT = int(os.environ.get("BG_TEST_REDIS_PORT", "16479"))
REDIS_CLUSTER_PORT = int(os.environ.get("BG_TEST_REDIS_CLUSTER_PORT", "17301"))
KAFKA_CLUSTER_PORT = int(os.environ.get("BG_TEST_KAFKA_CLUSTER_PORT", "19951"))


def _server(script: str, action: str, env: dict[str, str], *args: str) -> None:
    proc = subprocess.run(
        [str(ROOT / "deploy" / script), action, *args],
        env={**os.environ, "BG_VAR": str(TEST_VAR), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        pytest.exit(f"{script} {action} failed:\n{proc.stdout}\n{proc.stderr}", returncode=3)


def kafka_ctl(action: str) -> None:
    """Start or stop the session's test broker (for restart tests)."""
    _server("kafka.sh", action, {"KAFKA_PORT": str(KAFKA_PORT), "KAFKA_PARTITIONS": "2"})


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[str]:
    """A real Kafka 3.9 broker (KRaft) on 127.0.0.1:KAFKA_PORT, holding no topic of an earlier
    session; yields bootstrap servers."""
    # Every test makes topics of its own: ~1,800 partitions a full run. Kept from session to
    # session they made each start and stop of the broker (the restart tests) seconds slower
    # (start 11-14 s, stop 7 s with one run's topics; 5.5 s and 2.5 s empty).
    kafka_ctl("stop")  # a broker left running by a run that was killed
    shutil.rmtree(TEST_VAR / f"kafka-{KAFKA_PORT}" / "data", ignore_errors=True)
    kafka_ctl("start")
    yield f"127.0.0.1:{KAFKA_PORT}"
    kafka_ctl("stop")


def redis_ctl(action: str) -> None:
    """Start or stop the session's test Redis (for outage and restart tests)."""
    _server("redis.sh", action, {"REDIS_PORT": str(REDIS_PORT)})


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A real Redis on 127.0.0.1:REDIS_PORT; yields its URL."""
    redis_ctl("start")
    yield f"redis://127.0.0.1:{REDIS_PORT}/0"
    redis_ctl("stop")


def redis_cluster_ctl(action: str, *args: str) -> None:
    """Run deploy/redis-cluster.sh `action` (start, stop, start-node PORT) on the test ports."""
    _server("redis-cluster.sh", action, {"REDIS_CLUSTER_PORT": str(REDIS_CLUSTER_PORT)}, *args)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[str]:
    """A real Redis Cluster (3 primaries, 3 replicas) on 127.0.0.1:REDIS_CLUSTER_PORT..+5;
    yields its URL (two seed nodes)."""
    redis_cluster_ctl("start")
    seeds = f"127.0.0.1:{REDIS_CLUSTER_PORT},127.0.0.1:{REDIS_CLUSTER_PORT + 1}"
    yield f"redis+cluster://{seeds}"
    redis_cluster_ctl("stop")


def kafka_cluster_ctl(action: str) -> None:
    """Start or stop the 3-broker test cluster (deploy/kafka-cluster.sh)."""
    _server("kafka-cluster.sh", action, {"KAFKA_CLUSTER_PORT": str(KAFKA_CLUSTER_PORT)})


def kafka_cluster_whole() -> bool:
    """True when all 3 brokers of the test cluster run and each lists all 3 (`status`)."""
    proc = subprocess.run(
        [str(ROOT / "deploy" / "kafka-cluster.sh"), "status"],
        env={**os.environ, "BG_VAR": str(TEST_VAR), "KAFKA_CLUSTER_PORT": str(KAFKA_CLUSTER_PORT)},
        capture_output=True,
        timeout=60,
        check=False,
    )
    return proc.returncode == 0


@pytest.fixture(scope="session")
def _kafka_cluster_session() -> Iterator[None]:
    """Stops the test cluster at the end of the session, if a module left it running."""
    yield
    kafka_cluster_ctl("stop")


@pytest.fixture(scope="module")
def kafka_cluster(_kafka_cluster_session: None) -> Iterator[str]:
    """A real 3-broker Kafka 3.9 cluster (KRaft) on 127.0.0.1; yields bootstrap servers.

    Whole at the start of every module that uses it: started if it is not running (`start`
    is a no-op while all 3 brokers are ready), and stopped at the module's end when one of
    its brokers is dead (a module's fault tests may kill one), so the next module gets a
    fresh cluster. One left whole is shared by the next module (a start costs ~10 s); the
    modules use topics and groups of their own. Its users, test_cluster_faults.py and
    test_cluster_kafka.py, are named to run one after the other: the three brokers (~4 % of
    a core each when idle) do not idle through the modules between them."""
    kafka_cluster_ctl("start")
    yield ",".join(f"127.0.0.1:{KAFKA_CLUSTER_PORT + 2 * n}" for n in range(3))
    if not kafka_cluster_whole():
        kafka_cluster_ctl("stop")


def _close_refused_sockets() -> None:
    """Make kafka-python close the socket of a connection that fails.

    kafka-python 3.0.12's `KafkaNetSocket.sock_connect` (kafka/net/inet.py) raises on a
    refused connection (a killed broker) without closing its socket; the socket lives on in
    a reference cycle until some later collection, in whatever test runs then, where pytest
    (warnings are errors) fails that unrelated test with "unclosed socket"."""
    real = KafkaNetSocket.sock_connect

    async def sock_connect(self: Any, net: Any, sock: socket.socket, *args: Any, **kw: Any) -> Any:
        try:
            return await real(self, net, sock, *args, **kw)
        except BaseException:
            sock.close()
            raise

    KafkaNetSocket.sock_connect = sock_connect  # type: ignore[method-assign]


_close_refused_sockets()


@pytest.fixture
def redis_client(redis_server: str) -> Iterator[redis.Redis]:
    """A sync client on the test Redis, flushed before the test."""
    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    yield client
    client.close()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def isolated_settings(
    kafka: str, redis_url: str, *, app: str = "test", ns: str = "t", **overrides: Any
) -> Settings:
    """Settings isolated for one test: own topics, consumer group (`bg-<app>-<tag>`), Redis
    namespace (`<ns><tag>`) and web port, fast session timeout and batching; `overrides`
    win."""
    tag = uuid.uuid4().hex[:10]
    fields: dict[str, Any] = {
        "kafka": kafka,
        "redis_url": redis_url,
        "app_id": f"bg-{app}-{tag}",
        "namespace": f"{ns}{tag}",
        "topic_suffix": f"-{tag}",
        "partitions": 2,
        "web_port": free_port(),
        "session_timeout": 6.0,
        "batch_within": 0.1,
    }
    return Settings.from_env({}, **{**fields, **overrides})


_FINISHED: list[str] = []
"""Topic suffixes of the `settings` of finished tests whose topics are still on the broker."""


def delete_topics(kafka: str, suffixes: list[str]) -> None:
    """Delete every topic on `kafka` whose name holds one of `suffixes` (a test's tag: its
    own topics, dead-letter topics and faust's leader topic)."""
    admin = KafkaAdminClient(bootstrap_servers=kafka)
    try:
        doomed = [t for t in admin.list_topics() if any(s in t for s in suffixes)]
        if doomed:
            admin.delete_topics(doomed, timeout_ms=30_000)
    finally:
        admin.close()


@pytest.fixture
def settings(kafka_broker: str, redis_server: str) -> Iterator[Settings]:
    """Settings isolated for one test (isolated_settings) on the session's broker and Redis.

    The topics of the tests before are deleted first: the broker then holds a few tests'
    partitions instead of the whole run's, which keeps its restarts (test_crash, test_faults,
    test_webhooks, test_import) seconds shorter. Deleted here rather than at this test's
    teardown, because only then is every worker and subprocess of those tests surely gone."""
    if _FINISHED:
        delete_topics(kafka_broker, _FINISHED)
        _FINISHED.clear()
    made = isolated_settings(kafka_broker, redis_server)
    yield made
    _FINISHED.append(made.topic_suffix)


def settings_env(settings: Settings) -> dict[str, str]:
    """The BOUNCEGUARD_* environment that reproduces `settings` in a subprocess."""
    keys = [
        "kafka",
        "redis_url",
        "app_id",
        "namespace",
        "topic_suffix",
        "partitions",
        "replication",
        "web_port",
        "session_timeout",
        "batch_within",
        "default_policy",
    ]
    return {f"BOUNCEGUARD_{k.upper()}": str(getattr(settings, k)) for k in keys}


@dataclass
class WorkerProcess:
    """A `bounceguard worker` subprocess and its log file."""

    proc: subprocess.Popen[bytes]
    log: Path
    settings: Settings
    extra: dict[str, Any] = field(default_factory=dict)

    def tail(self, lines: int = 60) -> str:
        """Last lines of the worker's log."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL with kill=True) and wait for the process to end."""
        if self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `bounceguard worker` subprocesses; every one is killed (-9) at teardown."""
    yield from _worker_factory(tmp_path)


@pytest.fixture(scope="module")
def module_worker_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., WorkerProcess]]:
    """worker_factory for workers one test module shares (killed after its last test)."""
    yield from _worker_factory(tmp_path_factory.mktemp("workers"))


def _worker_factory(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(settings: Settings, **env: str) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("wb") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline", "worker", "--loglevel", "info"],
                env={**os.environ, **settings_env(settings), **env},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(proc, log, settings)
        started.append(worker)
        wait_for(
            lambda: _healthy(settings.web_port, settings.web_bind) or proc.poll() is not None,
            60,
            worker.tail,
        )
        if proc.poll() is not None:
            pytest.fail(f"worker exited with {proc.returncode}:\n{worker.tail()}")
        return worker

    yield start
    # kill -9: the test is over and nothing reads its workers any more; a graceful stop
    # (~1 s of faust shutdown per worker, some 70 a run) checked nothing. Tests that are
    # about a stop call WorkerProcess.stop themselves.
    for worker in started:
        worker.stop(kill=True)


def _healthy(port: int, host: str = "127.0.0.1") -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def wait_for(cond: Callable[[], bool], timeout: float, describe: Callable[[], str] = str) -> None:
    """Poll `cond` until true; fail the test with `describe()` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met after {timeout}s\n{describe()}")
        time.sleep(0.2)


@pytest.fixture
def producer(kafka_broker: str) -> Iterator[KafkaProducer]:
    """A kafka-python producer (acks=all) on the test broker."""
    prod = KafkaProducer(bootstrap_servers=kafka_broker, acks="all", linger_ms=5)
    yield prod
    prod.close(timeout=10)


def send(
    producer: KafkaProducer, topic: str, value: bytes | dict[str, Any], key: str | None = None
) -> None:
    """Produce one message and wait for the broker's ack."""
    body = value if isinstance(value, bytes) else orjson.dumps(value)
    producer.send(topic, key=key.encode() if key else None, value=body).get(timeout=30)


def read_topic(kafka: str, topic: str, expect: int, timeout: float = 45.0) -> list[bytes]:
    """Read `topic` from the beginning until `expect` messages arrived or `timeout` passed;
    then read on for one more second, so that an unexpected extra message is seen too."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=500,
        enable_auto_commit=False,
    )
    out: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        extra_until: float | None = None
        while time.monotonic() < (extra_until or deadline):
            for batch in consumer.poll(timeout_ms=300).values():
                out.extend(rec.value for rec in batch)
            if len(out) >= expect and extra_until is None:
                extra_until = time.monotonic() + 1.0
    finally:
        consumer.close()
    return out
