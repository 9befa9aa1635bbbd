"""One and two workers on the clusters, next to one worker on one Kafka and one Redis, in one
run on one machine (issue 10, item 5).

Servers of its own, under var/bench/ and stopped at the end: first the bench's single broker
and Redis (bench.common.servers), then a Redis Cluster (3 primaries + 3 replicas, ports
BG_BENCH_REDIS_CLUSTER_PORT..+5, default 17311) and 3 Kafka brokers (RF 3,
min.insync.replicas=2; BG_BENCH_KAFKA_CLUSTER_PORT, default 19961). One data set
(bench.worker_data: BENCH_CLUSTER_EVENTS attempts, default 150 000, over 30 000 recipients,
packed in arrays as `bounceguard ship` packs them) is produced to a topic set of its own
(4 partitions) for each run:

1. single: one worker on the single broker and Redis;
2. cluster x1: one worker on both clusters;
3. cluster x2: two workers, one consumer group, on both clusters.

Each run is watched through its group's committed offsets (bench.runner's estimators: the
steady window from the first commit to the last before the final one). Over that window:
attempts/s, and CPU µs per attempt of every worker, of the Redis servers (the primaries,
and the replicas apart) and of the brokers, from /proc. Its suppressions are checked
against the data (one per hard-bounced (address, tenant) pair, no dead letters).

What the figures are for, on a 2-core machine where the servers compete with the workers:
not the absolute rate, but that a worker's CPU per attempt does not grow by more than 10 %
from one worker to two (the work splits, it does not multiply), and that Redis CPU per
attempt on Cluster stays within 1.5x of the single Redis (the per-primary calls cost about
what one call did). The provider-outage guard is off in every run (`_policy_file`). Prints;
never asserts.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from bench.bench_worker import _pack, _worker_env
from bench.common import (
    BENCH_VAR,
    KAFKA,
    PARTITIONS,
    REDIS_PORT,
    REDIS_URL,
    _deploy,
    free_port,
    log_problems,
    proc_stat,
    server_pids,
    servers,
    tail,
)
from bench.kafka_io import GroupOffsets, count, end_offsets, produce, read_json
from bench.runner import Target, cumulative_items, stop
from bench.worker_data import Dataset, generate
from pipeline.config import Settings
from pipeline.stream.topics import ensure_topics

EVENTS = int(os.environ.get("BENCH_CLUSTER_EVENTS", "150000"))
ADDRESSES = int(os.environ.get("BENCH_CLUSTER_ADDRESSES", "30000"))
RC_PORT = int(os.environ.get("BG_BENCH_REDIS_CLUSTER_PORT", "17311"))
KC_PORT = int(os.environ.get("BG_BENCH_KAFKA_CLUSTER_PORT", "19961"))
RC_URL = f"redis+cluster://127.0.0.1:{RC_PORT},127.0.0.1:{RC_PORT + 1}"
KC = ",".join(f"127.0.0.1:{KC_PORT + 2 * n}" for n in range(3))
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "300"))


@dataclass
class Sample:
    """Progress and CPU seconds at one observed commit."""

    t: float
    items: int
    cpu: dict[str, float]


@dataclass
class Figures:
    """What one run measured over its steady window."""

    label: str
    rate: float
    """Attempts per second."""
    us: dict[str, float]
    """CPU µs per attempt by process (worker 1, worker 2, primaries, replicas, brokers)."""
    check: str
    ok: bool
    workers: list[str] = field(default_factory=list)


def _cluster_ctl(action: str) -> None:
    ports = {"REDIS_CLUSTER_PORT": str(RC_PORT), "KAFKA_CLUSTER_PORT": str(KC_PORT)}
    _deploy("redis-cluster.sh", action, **ports)
    _deploy("kafka-cluster.sh", action, **ports)


@contextlib.contextmanager
def clusters() -> Iterator[None]:
    """Start fresh bench clusters; stop them (and remove their data) on the way out."""
    _cluster_ctl("stop")
    try:
        _cluster_ctl("start")
        yield
    finally:
        _cluster_ctl("stop")


def _pids(on_cluster: bool) -> dict[str, list[int]]:
    """Server pids by role, from the pid files deploy/*.sh write."""
    if not on_cluster:
        found = server_pids()
        return {"redis": [found["Redis"]], "brokers": [found["broker"]]}

    def pid(path: str) -> int:
        return int((BENCH_VAR / path).read_text())

    redis = [pid(f"redis-cluster-{RC_PORT + i}/redis.pid") for i in range(6)]
    brokers = [pid(f"kafka-cluster-{KC_PORT + 2 * n}/kafka.pid") for n in range(3)]
    # a fresh cluster: the first three nodes are the primaries (redis-cli --cluster create)
    return {"redis": redis[:3], "replicas": redis[3:], "brokers": brokers}


def _settings(tag: str, name: str, on_cluster: bool) -> Settings:
    return Settings.from_env(
        {},
        kafka=KC if on_cluster else KAFKA,
        redis_url=RC_URL if on_cluster else REDIS_URL,
        app_id=f"bg-bench-{tag}-{name}",
        namespace=f"bench{tag}{name}",
        topic_suffix=f"-bench-{tag}-{name}",
        partitions=PARTITIONS,
        replication=3 if on_cluster else 1,
        web_port=free_port(),
    )


def _cpu(pids: dict[str, list[int]], workers: dict[str, int]) -> dict[str, float]:
    out = {name: proc_stat(pid).cpu for name, pid in workers.items()}
    for role, found in pids.items():
        out[role] = sum(proc_stat(p).cpu for p in found)
    return out


def _watch(
    procs: dict[str, subprocess.Popen[bytes]],
    logs: dict[str, str],
    target: Target,
    bootstrap: str,
    pids: dict[str, list[int]],
) -> list[Sample]:
    """Samples at every commit the group is seen to make, until everything is committed."""
    offsets = GroupOffsets(bootstrap)
    samples: list[Sample] = []
    start = time.perf_counter()
    try:
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited {proc.returncode}:\n{tail(BENCH_VAR / logs[name])}"
                    )
            if time.perf_counter() - start > TIMEOUT:
                raise RuntimeError(f"not done after {TIMEOUT:.0f} s")
            committed = offsets.committed(target.group)
            items = target.items(committed)
            done = items > 0 and target.done(committed)
            if items > (samples[-1].items if samples else 0) or done:
                cpu = _cpu(pids, {n: p.pid for n, p in procs.items()})
                samples.append(Sample(time.perf_counter() - start, items, cpu))
            if done:
                return samples
            time.sleep(0.05)
    finally:
        offsets.close()


def _policy_file() -> Path:
    """The default preset with the provider-outage guard off, for every run alike: the data's
    hard bounces (5 %, event times minutes apart) now and then reach the guard's 10 % share
    in one provider's minute, and suppressions it holds would fail the check (they wait for
    the guard's grace, in event time, which the data never reaches)."""
    path = BENCH_VAR / "cluster-policies.toml"
    path.write_text('preset = "default"\n[default.outage_guard]\nenabled = false\n')
    return path


def _wait_stable(settings: Settings, members: int) -> None:
    """Wait until the worker group is Stable with `members` members (RuntimeError after
    TIMEOUT)."""
    deadline = time.perf_counter() + TIMEOUT
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka, client_id="bench-group")
    try:
        while time.perf_counter() < deadline:
            with contextlib.suppress(KafkaError):
                info = admin.describe_groups([settings.app_id])[settings.app_id]
                if info["group_state"] == "Stable" and len(info["members"]) == members:
                    return
            time.sleep(0.2)
    finally:
        admin.close()
    raise RuntimeError(f"group {settings.app_id} not stable with {members} members")


def _steady(samples: Sequence[Sample], total: int) -> tuple[Sample, Sample]:
    """The first commit and the last one before the final (the whole window if too short)."""
    busy = [s for s in samples[:-1] if s.items < total]
    return (busy[0], busy[-1]) if len(busy) >= 2 else (samples[0], samples[-1])


def _check(settings: Settings, data: Dataset) -> tuple[str, bool]:
    topics = settings.topics
    found = read_json(topics.suppressions, settings.kafka)
    pairs = {(s["address"], s["tenant"]) for s in found if s["action"] == "suppressed"}
    dead = count(topics.deadletter(topics.attempts), settings.kafka)
    ok = 0 < len(found) == len(data.hard_pairs) and pairs == data.hard_pairs and dead == 0
    verdict = "OK" if ok else "MISMATCH"
    expected = len(data.hard_pairs)
    return (
        f"{len(found):,} suppressions (expected {expected:,}), {dead} dead letters: {verdict}",
        ok,
    )


def _run(label: str, tag: str, data: Dataset, workers: int, on_cluster: bool) -> Figures:
    """Produce the data to a topic set of its own, run `workers` workers over it, measure."""
    name = f"{'c' if on_cluster else 's'}{workers}"
    settings = _settings(tag, name, on_cluster)
    ensure_topics(settings)
    messages, sizes = _pack(data)
    topic = settings.topics.attempts
    env = {
        **_worker_env(settings),
        "BOUNCEGUARD_REPLICATION": str(settings.replication),
        "BOUNCEGUARD_POLICY_FILE": str(_policy_file()),
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, str] = {}
    try:
        for n in range(workers):
            who = f"worker {n + 1}"
            logs[who] = f"cluster-{name}-{n + 1}.log"
            port = {"BOUNCEGUARD_WEB_PORT": str(free_port())}
            cmd = [sys.executable, "-m", "pipeline", "worker", "--loglevel", "info"]
            with (BENCH_VAR / logs[who]).open("wb") as out:
                procs[who] = subprocess.Popen(
                    cmd, env={**env, **port}, stdout=out, stderr=subprocess.STDOUT
                )
        # the data comes once every worker has its partitions: no rebalance inside the window
        _wait_stable(settings, workers)
        produce(topic, messages, settings.kafka)
        ends = end_offsets(topic, settings.kafka)
        target = Target(settings.app_id, topic, ends, cumulative_items(sizes, PARTITIONS))
        samples = _watch(procs, logs, target, settings.kafka, _pids(on_cluster))
    finally:
        for proc in procs.values():
            stop(proc)
    a, b = _steady(samples, target.total)
    n = b.items - a.items
    us = {k: (b.cpu[k] - a.cpu[k]) / n * 1e6 for k in b.cpu}
    check, ok = _check(settings, data)
    problems = [log_problems(BENCH_VAR / log)[:2] for log in logs.values()]
    check += "; logs: " + ", ".join(f"{e} error/{w} warning lines" for e, w in problems)
    return Figures(label, n / (b.t - a.t), us, check, ok, list(procs))


def _print(fig: Figures) -> None:
    workers = sum(fig.us[w] for w in fig.workers)
    parts = ", ".join(f"{k} {v:.1f}" for k, v in fig.us.items())
    print(f"{fig.label}: {fig.rate:,.0f} attempts/s; CPU µs/attempt: {parts} "
          f"(workers together {workers:.1f})\n  {fig.check}", flush=True)  # fmt: skip


def _summary(single: Figures | None, one: Figures | None, two: Figures | None) -> None:
    print("\nsummary (steady windows, this run):")
    if one and two:
        w1 = sum(one.us[w] for w in one.workers)
        w2 = sum(two.us[w] for w in two.workers)
        grow = (w2 / w1 - 1) * 100
        print(f"  scaling: two workers {two.rate / one.rate:.2f}x the attempts/s of one")
        met = "met" if grow <= 10 else "NOT met"
        print(f"  worker CPU per attempt, one -> two workers: {w1:.1f} -> {w2:.1f} µs "
              f"({grow:+.0f} %; target at most +10 %): {met}")  # fmt: skip
    if single and one:
        ratio = one.us["redis"] / single.us["redis"]
        print(f"  Redis CPU per attempt, cluster primaries vs one Redis: {one.us['redis']:.1f} vs "
              f"{single.us['redis']:.1f} µs ({ratio:.2f}x; target at most 1.5x): "
              f"{'met' if ratio <= 1.5 else 'NOT met'}")  # fmt: skip
    checks = [f.check.split(";")[0] for f in (single, one, two) if f]
    print("  suppression checks: " + " | ".join(checks))


def _attempt(fn: Callable[..., Figures], *args: object) -> Figures | None:
    try:
        fig = fn(*args)
    except Exception as exc:  # one failed run is reported; the others still run
        print(f"{args[0]}: FAILED: {type(exc).__name__}: {exc}", flush=True)
        return None
    _print(fig)
    return fig


def run() -> None:
    """Start the servers, run the three measurements, print; stop and wipe the servers."""
    started = time.perf_counter()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs; load average {load}; bench Redis {REDIS_PORT}")
    data = generate(EVENTS, ADDRESSES)
    print(f"data: {EVENTS:,} attempts over {len(data.addresses):,} addresses, "
          f"{len(data.hard_pairs):,} hard-bounced pairs, in arrays", flush=True)  # fmt: skip
    tag = uuid.uuid4().hex[:8]
    with servers():
        single = _attempt(_run, "single Redis + broker, 1 worker", tag, data, 1, False)
    with clusters():
        print(f"clusters up after {time.perf_counter() - started:.0f} s", flush=True)
        one = _attempt(_run, "clusters, 1 worker", tag, data, 1, True)
        two = _attempt(_run, "clusters, 2 workers", tag, data, 2, True)
    _summary(single, one, two)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    run()
