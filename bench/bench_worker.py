"""Worker throughput: the real `bounceguard worker` end to end, next to a raw aiokafka consume
of the same data in the same run (PRODUCT.md: "the benchmark reports events/s next to a raw
Kafka consume of the same data in the same run").

Steps, all on 127.0.0.1 with servers of its own (deploy/kafka.sh and deploy/redis.sh on bench
ports, data under var/bench/, stopped and wiped at the end):

1. create an isolated topic set (unique suffix, 4 partitions) and produce BENCH_EVENTS
   attempts (default 50 000; bench/worker_data.py: 80 % delivered, 10 % soft, 5 % hard,
   5 % block, ~20k recipients, six tenants, real reply texts) with kafka-python, acks=1;
2. baseline: read the topic from the beginning with a raw aiokafka consumer (getmany,
   orjson.loads of every value), best of 3;
3. start `python -m pipeline worker` as a subprocess (own app id / consumer group, Redis
   namespace, web port) and poll the group's committed offsets until they reach the end
   offsets on every partition. Reported: events/s from process start (start-up and group join
   included) and from the first commit on (steady state), worker CPU per event and RSS;
4. check the result cheaply: suppressions emitted == distinct hard-bounced (address, tenant)
   pairs produced (default preset: user unknown suppresses at once, blocks never), and no
   dead letters. Prints OK or MISMATCH; never asserts on time.

faust commits every 2.8 s (broker_commit_interval), so the end of processing is only seen
at that granularity; the steady-state figure measures between two commits and is not skewed
by it. The last suppression event's timestamp gives a second, commit-free end estimate.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition as AioTopicPartition
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from bench.worker_data import Dataset, generate, templates
from pipeline.config import Settings
from pipeline.core.classify import classify
from pipeline.stream.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[1]
BENCH_VAR = ROOT / "var" / "bench"
KAFKA_PORT = int(os.environ.get("BG_BENCH_KAFKA_PORT", "19792"))
REDIS_PORT = int(os.environ.get("BG_BENCH_REDIS_PORT", "17079"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "50000"))
PARTITIONS = 4
RAW_ROUNDS = 3
WORKER_TIMEOUT = 150.0
"""Seconds the worker gets to consume everything before the run is declared failed."""
POLL = 0.05
PYSPY = os.environ.get("BENCH_PYSPY", "")
"""Optional: path of a py-spy binary (or "1" for py-spy on PATH) to sample the worker with;
the profile goes to var/bench/worker-profile.txt and its top frames are printed."""


@dataclass
class WorkerResult:
    """What one worker run measured (seconds are relative to the process start)."""

    total: float
    """Process start until the committed offsets reached the end offsets."""
    healthy: float
    """Process start until GET /health answered 200."""
    first_commit: float
    first_committed: int
    """Events already committed at the first commit seen (the steady-state window starts)."""
    cpu_first: float
    cpu_end: float
    """Worker CPU seconds (user + system) at the first commit and at the end."""
    rss_mb: float
    hwm_mb: float
    start_wall: float
    """time.time() at process start (to place Kafka timestamps)."""


def _deploy(script: str, action: str) -> None:
    env = {
        **os.environ,
        "BG_VAR": str(BENCH_VAR),
        "KAFKA_PORT": str(KAFKA_PORT),
        "KAFKA_PARTITIONS": str(PARTITIONS),
        "REDIS_PORT": str(REDIS_PORT),
    }
    proc = subprocess.run(
        [str(ROOT / "deploy" / script), action],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{script} {action} failed:\n{proc.stdout}\n{proc.stderr}")


def _wipe_data() -> None:
    """Remove the bench servers' data (not their logs): every run starts from an empty broker."""
    shutil.rmtree(BENCH_VAR / f"kafka-{KAFKA_PORT}" / "data", ignore_errors=True)
    redis_dir = BENCH_VAR / f"redis-{REDIS_PORT}"
    if redis_dir.is_dir():
        for path in redis_dir.iterdir():
            if path.name != "redis.log":
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _check_templates() -> None:
    """The expected suppression count assumes every hard text is user_unknown, every block
    text is a block and every soft text is soft; fail loudly if the classifier disagrees."""
    for klass, code, enhanced, text in templates():
        verdict = classify(code, enhanced or None, text)
        if verdict.bounce_class.value != klass or (
            klass == "hard" and verdict.category.value != "user_unknown"
        ):
            raise RuntimeError(f"bench data: {text[:60]!r} classifies as {verdict}, not {klass}")


def _produce(kafka: str, topic: str, data: Dataset) -> float:
    """Send every message (acks=1, linger, big batches); return the seconds until flushed."""
    producer = KafkaProducer(
        bootstrap_servers=kafka,
        acks=1,
        linger_ms=20,
        batch_size=256 * 1024,
    )
    try:
        start = time.perf_counter()
        futures = [producer.send(topic, key=k, value=v) for k, v in data.messages]
        producer.flush(timeout=120)
        elapsed = time.perf_counter() - start
    finally:
        producer.close(timeout=10)
    failed = [f for f in futures if f.failed()]
    if failed:
        raise RuntimeError(f"{len(failed)} sends failed, first: {failed[0].exception!r}")
    return elapsed


def _end_offsets(kafka: str, topic: str) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=kafka)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends: dict[TopicPartition, int] = consumer.end_offsets(tps)
        return ends
    finally:
        consumer.close()


async def _read(kafka: str, topic: str, expect: int) -> tuple[float, list[Any], int]:
    """Read `topic` from the beginning until `expect` records arrived; orjson.loads every
    value. Returns (seconds from the first fetch to the last record, parsed values, the
    latest record timestamp in ms)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka, group_id=None, enable_auto_commit=False, client_id="bench-raw"
    )
    await consumer.start()
    try:
        tps = [AioTopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        values: list[Any] = []
        latest = 0
        start = time.perf_counter()
        deadline = start + 60
        while len(values) < expect:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                values.extend(orjson.loads(r.value) for r in records)
                latest = max(latest, records[-1].timestamp)
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{topic}: read {len(values)} of {expect} records in 60 s")
        return time.perf_counter() - start, values, latest
    finally:
        await consumer.stop()


def _proc_stat(pid: int) -> tuple[float, float, float]:
    """(CPU seconds, RSS MB, peak RSS MB) of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )

    def mb(key: str) -> float:
        return int(status[key].split()[0]) / 1024

    return cpu, mb("VmRSS"), mb("VmHWM")


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _worker_env(settings: Settings) -> dict[str, str]:
    keys = ["kafka", "redis_url", "app_id", "namespace", "topic_suffix", "partitions", "web_port"]
    env = {f"BOUNCEGUARD_{k.upper()}": str(getattr(settings, k)) for k in keys}
    return {**os.environ, **env, "BOUNCEGUARD_DEFAULT_POLICY": "default"}


def _run_worker(
    settings: Settings, ends: dict[TopicPartition, int], log: Path
) -> tuple[subprocess.Popen[bytes], WorkerResult]:
    """Start the worker and wait until its group has committed every end offset."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka, client_id="bench-admin")
    try:
        with log.open("wb") as out:
            start_wall = time.time()
            start = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline", "worker", "--loglevel", "info"],
                env=_worker_env(settings),
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        spy = _start_pyspy(proc.pid)
        try:
            return proc, _wait_committed(proc, admin, settings, ends, log, start, start_wall)
        except BaseException:
            proc.kill()
            proc.wait(timeout=10)
            raise
        finally:
            _stop_pyspy(spy)
    finally:
        admin.close()


def _wait_committed(
    proc: subprocess.Popen[bytes],
    admin: KafkaAdminClient,
    settings: Settings,
    ends: dict[TopicPartition, int],
    log: Path,
    start: float,
    start_wall: float,
) -> WorkerResult:
    group = settings.app_id
    topic = settings.topics.attempts
    healthy: float | None = None
    first: tuple[float, int, float] | None = None
    while True:
        now = time.perf_counter() - start
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{_tail(log)}")
        if now > WORKER_TIMEOUT:
            raise RuntimeError(f"worker not done after {WORKER_TIMEOUT:.0f} s:\n{_tail(log)}")
        if healthy is None and _healthy(settings.web_port):
            healthy = time.perf_counter() - start
        try:
            offsets = admin.list_group_offsets(group).get(group, {})
        except KafkaError:  # group or coordinator not there yet
            offsets = {}
        now = time.perf_counter() - start
        committed = {tp: max(om.offset, 0) for tp, om in offsets.items() if tp.topic == topic}
        done_events = sum(committed.values())
        if first is None and done_events > 0:
            first = (now, done_events, _proc_stat(proc.pid)[0])
        if first is not None and all(committed.get(tp, 0) >= end for tp, end in ends.items()):
            cpu, rss, hwm = _proc_stat(proc.pid)
            return WorkerResult(
                total=now,
                healthy=healthy if healthy is not None else float("nan"),
                first_commit=first[0],
                first_committed=first[1],
                cpu_first=first[2],
                cpu_end=cpu,
                rss_mb=rss,
                hwm_mb=hwm,
                start_wall=start_wall,
            )
        time.sleep(POLL)


def _start_pyspy(pid: int) -> subprocess.Popen[bytes] | None:
    if not PYSPY:
        return None
    binary = "py-spy" if PYSPY == "1" else PYSPY
    output = str(BENCH_VAR / "worker-profile.txt")
    args = ["record", "--pid", str(pid), "--nonblocking", "--rate", "250"]
    return subprocess.Popen(
        [binary, *args, "--format", "raw", "--output", output],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop_pyspy(spy: subprocess.Popen[bytes] | None) -> None:
    """Stop sampling (SIGINT makes py-spy write its output)."""
    if spy is None:
        return
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait(timeout=10)


def _print_profile(top: int = 15) -> None:
    """Summarize the py-spy profile: the frames with the most samples, self and total."""
    path = BENCH_VAR / "worker-profile.txt"
    if not PYSPY or not path.exists():
        return
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        samples += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            total[frame] += int(count)
    print(f"py-spy: {samples} samples of the worker, start-up included ({path})")
    for title, counter in (("self", own), ("total", total)):
        print(f"  top {top} by {title}:")
        for frame, count in counter.most_common(top):
            print(f"    {count / samples:6.1%}  {frame}")


def _stop(proc: subprocess.Popen[bytes]) -> float:
    """SIGTERM the worker and wait for it; return the seconds it took to exit."""
    start = time.perf_counter()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return time.perf_counter() - start


def _count(kafka: str, topic: str) -> int:
    return sum(_end_offsets(kafka, topic).values())


def _bench(kafka: str, redis_url: str) -> None:
    _check_templates()
    tag = uuid.uuid4().hex[:8]
    settings = Settings.from_env(
        {},
        kafka=kafka,
        redis_url=redis_url,
        app_id=f"bg-bench-{tag}",
        namespace=f"bench{tag}",
        topic_suffix=f"-bench-{tag}",
        partitions=PARTITIONS,
        web_port=_free_port(),
    )
    ensure_topics(settings)
    topic = settings.topics.attempts

    t = time.perf_counter()
    data = generate(EVENTS)
    gen_s = time.perf_counter() - t
    n = len(data.messages)
    mix = ", ".join(f"{k} {v / n:.0%}" for k, v in sorted(data.classes.items()))
    print(
        f"data: {n} attempts ({mix}); {len(data.addresses)} addresses, "
        f"{len(data.hard_pairs)} hard-bounced (address, tenant) pairs, "
        f"{len(data.text_variants)} distinct reply texts, "
        f"{data.value_bytes / n:.0f} B/value; generated in {gen_s:.1f} s",
        flush=True,
    )

    produce_s = _produce(kafka, topic, data)
    ends = _end_offsets(kafka, topic)
    if sum(ends.values()) != n:
        raise RuntimeError(f"{topic} holds {sum(ends.values())} records, expected {n}")
    print(f"produce: {n / produce_s:,.0f} events/s (kafka-python, acks=1)", flush=True)

    raw = [asyncio.run(_read(kafka, topic, n))[0] for _ in range(RAW_ROUNDS)]
    raw_s = min(raw)
    print(
        f"raw aiokafka consume: {n / raw_s:,.0f} events/s (best of {RAW_ROUNDS}; "
        + ", ".join(f"{n / s:,.0f}" for s in raw)
        + ")",
        flush=True,
    )

    log = BENCH_VAR / "worker.log"
    proc, w = _run_worker(settings, ends, log)
    stop_s = _stop(proc)

    supp_topic = settings.topics.suppressions
    _, suppressions, last_ms = asyncio.run(_read(kafka, supp_topic, _count(kafka, supp_topic)))
    last_supp = last_ms / 1000 - w.start_wall
    dead = _count(kafka, settings.topics.deadletter(topic))
    pairs = {(s["address"], s["tenant"]) for s in suppressions if s["action"] == "suppressed"}

    steady_events = n - w.first_committed
    steady_s = w.total - w.first_commit
    worker_total = n / w.total
    worker_steady = steady_events / steady_s if steady_s > 0 else float("nan")
    cpu_us = (w.cpu_end - w.cpu_first) / steady_events * 1e6 if steady_events else float("nan")

    print(
        f"worker: /health after {w.healthy:.1f} s, first commit after {w.first_commit:.1f} s "
        f"({w.first_committed} events), all committed after {w.total:.1f} s "
        f"(last suppression sent after {last_supp:.1f} s); SIGTERM exit took {stop_s:.1f} s"
    )
    print(
        f"worker: CPU {cpu_us:.0f} us/event (steady state), {w.cpu_end:.1f} s CPU in all; "
        f"RSS {w.rss_mb:.0f} MB at the end (peak {w.hwm_mb:.0f} MB); log {log}"
    )
    print()
    rows = [
        ("produce (kafka-python, acks=1)", n / produce_s, ""),
        ("raw aiokafka consume + orjson", n / raw_s, "1.00"),
        ("worker, incl. start-up + join", worker_total, f"{worker_total / (n / raw_s):.3f}"),
        ("worker, steady (first commit on)", worker_steady, f"{worker_steady / (n / raw_s):.3f}"),
    ]
    print(f"  {'path':<34} {'events/s':>10}  {'x raw':>6}")
    for name, rate, ratio in rows:
        print(f"  {name:<34} {rate:>10,.0f}  {ratio:>6}")
    print()
    _print_profile()
    expected = len(data.hard_pairs)
    ok = len(suppressions) > 0 and len(suppressions) == expected and pairs == data.hard_pairs
    print(
        f"suppressions: {len(suppressions)} emitted, {len(pairs)} distinct pairs, "
        f"expected {expected}; dead letters: {dead} -> "
        + ("OK" if ok and dead == 0 else "MISMATCH")
    )


def run() -> None:
    """Start the bench servers, run the benchmark, stop and wipe the servers."""
    BENCH_VAR.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # Leftovers of an interrupted run: stop them before wiping their data.
    _deploy("kafka.sh", "stop")
    _deploy("redis.sh", "stop")
    _wipe_data()
    try:
        _deploy("redis.sh", "start")
        _deploy("kafka.sh", "start")
        print(f"servers up in {time.perf_counter() - started:.1f} s", flush=True)
        _bench(f"127.0.0.1:{KAFKA_PORT}", f"redis://127.0.0.1:{REDIS_PORT}/0")
    finally:
        _deploy("kafka.sh", "stop")
        _deploy("redis.sh", "stop")
        _wipe_data()
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    run()
