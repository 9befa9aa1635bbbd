"""The worker next to what a user could write instead (issue 9), in one run on one pair of
servers, so that every ratio compares figures measured side by side on the same machine.

Servers of its own (bench.common: Kafka and Redis on bench ports, data under var/bench/,
stopped and wiped at the end). Three data sets, each on a topic set of its own (4 partitions),
produced before anything is measured (bench.worker_data: 80 % delivered, 10 % soft, 5 % hard,
5 % block, real reply texts):

- single: BENCH_EVENTS attempts (default 50 000, ~20k recipients), one message each, keyed
  by recipient;
- arrays: BENCH_ARRAY_EVENTS attempts (default 300 000, BENCH_ARRAY_ADDRESSES = 60k
  recipients) packed as `bounceguard ship` packs them: JSON arrays of up to
  BENCH_ARRAY_ITEMS (100) attempts, each array to the partition its recipients' key picks;
- lines: BENCH_LINES attempts (default 50 000) as raw Postfix lines on `mta.log.raw`.

Runs, each a process of its own watched through its consumer group's committed offsets
(bench.runner explains the estimators), in this order:

1. raw aiokafka loop and 2. bare faust agent over the single topic (bench.baselines);
3. the worker (`python -m pipeline worker`) over the single topic;
4. the worker over the arrays, sampled by py-spy during its steady window (BENCH_PYSPY=0:
   no profile); Redis command statistics kept;
5. a bare faust agent over the raw lines;
6. the worker over the raw lines: normalize, then count; done when the raw topic and the
   attempts its lines became are both consumed; sampled by py-spy like 4.

Every worker run has its own app id (consumer group), Redis namespace and topic set, and
starts on an emptied Redis (FLUSHALL) so its Redis CPU and memory are its own; its
suppressions are checked against the data (bench.worker_data's docstring: one per distinct
hard-bounced (address, tenant) pair, no dead letters). Prints; never asserts on time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

import orjson

import pipeline
from bench import baselines, postfix_data, report
from bench.common import (
    BENCH_VAR,
    KAFKA,
    PARTITIONS,
    REDIS_URL,
    ROOT,
    free_port,
    log_problems,
    redact,
    servers,
)
from bench.kafka_io import Message, count, create_topics, end_offsets, produce, read_json
from bench.profile import Profiler
from bench.redis_probe import RedisProbe
from bench.report import Measured
from bench.runner import Target, cumulative_items, run_consumer, stop
from bench.worker_data import Dataset, generate, templates
from pipeline.config import Settings
from pipeline.core.classify import classify
from pipeline.stream.shipper import PartitionBatcher, partition_for
from pipeline.stream.topics import ensure_topics

SINGLE = int(os.environ.get("BENCH_EVENTS", "50000"))
ARRAYS = int(os.environ.get("BENCH_ARRAY_EVENTS", "300000"))
ARRAY_ADDRESSES = int(os.environ.get("BENCH_ARRAY_ADDRESSES", "60000"))
ARRAY_ITEMS = int(os.environ.get("BENCH_ARRAY_ITEMS", "100"))
LINES = int(os.environ.get("BENCH_LINES", "50000"))
PYSPY = os.environ.get("BENCH_PYSPY", "1") != "0"
RAW_TENANT = "default"
"""The worker's tenant for raw lines (BOUNCEGUARD_RAW_TENANT), so the lines' data set too."""


@dataclass
class Case:
    """One data set on the topic set of the worker run that consumes it."""

    name: str
    settings: Settings
    data: Dataset
    target: Target


def _check_templates() -> None:
    """The expected suppression count assumes every hard text is user_unknown, every block
    text is a block and every soft text is soft; fail loudly if the classifier disagrees."""
    for klass, code, enhanced, text in templates():
        verdict = classify(code, enhanced or None, text)
        if verdict.bounce_class.value != klass or (
            klass == "hard" and verdict.category.value != "user_unknown"
        ):
            raise RuntimeError(f"bench data: {text[:60]!r} classifies as {verdict}, not {klass}")


def _settings(tag: str, name: str) -> Settings:
    return Settings.from_env(
        {},
        kafka=KAFKA,
        redis_url=REDIS_URL,
        app_id=f"bg-bench-{tag}-{name}",
        namespace=f"bench{tag}{name}",
        topic_suffix=f"-bench-{tag}-{name}",
        partitions=PARTITIONS,
        web_port=free_port(),
        raw_tenant=RAW_TENANT,
    )


def _generate(name: str, events: int, addresses: int, tenants: tuple[str, ...]) -> Dataset:
    t = time.perf_counter()
    data = generate(events, addresses, tenants=tenants) if tenants else generate(events, addresses)
    n = len(data.kinds)
    mix = ", ".join(f"{k} {v / n:.0%}" for k, v in sorted(data.classes.items()))
    print(
        f"data {name}: {n:,} attempts ({mix}); {len(data.addresses):,} addresses, "
        f"{len(data.hard_pairs):,} hard-bounced (address, tenant) pairs, "
        f"{data.value_bytes / n:.0f} B/attempt JSON; generated in {time.perf_counter() - t:.1f} s",
        flush=True,
    )
    return data


def _produce(name: str, topic: str, messages: list[Message], items: int) -> None:
    seconds = produce(topic, messages)
    print(
        f"produce {name}: {len(messages):,} messages ({items:,} items) in {seconds:.1f} s "
        f"(kafka-python, acks=1)",
        flush=True,
    )


def _single(tag: str) -> Case:
    """Single-attempt messages keyed by recipient."""
    settings = _settings(tag, "single")
    ensure_topics(settings)
    data = _generate("single", SINGLE, 20_000, ())
    topic = settings.topics.attempts
    _produce("single", topic, [(k, v, None) for k, v in data.messages], SINGLE)
    return Case("single", settings, data, Target(settings.app_id, topic, end_offsets(topic)))


def _pack(data: Dataset) -> tuple[list[Message], list[tuple[int, int]]]:
    """`data` as `bounceguard ship` sends it: arrays per partition, each to the partition its
    recipients' key picks. Returns the messages and (partition, attempts) of each."""
    partitions = list(range(PARTITIONS))
    batcher = PartitionBatcher(max_items=ARRAY_ITEMS)
    ready: list[tuple[int, bytes]] = []
    for key, value in data.messages:
        ready += batcher.add(partition_for(key, partitions), value)
    ready += batcher.drain()
    sizes = [(p, len(orjson.loads(body))) for p, body in ready]
    return [(None, body, p) for p, body in ready], sizes


def _arrays(tag: str) -> Case:
    """Arrays of ~ARRAY_ITEMS attempts, as `ship` produces them."""
    settings = _settings(tag, "arrays")
    ensure_topics(settings)
    data = _generate("arrays", ARRAYS, ARRAY_ADDRESSES, ())
    messages, sizes = _pack(data)
    topic = settings.topics.attempts
    _produce("arrays", topic, messages, ARRAYS)
    target = Target(settings.app_id, topic, end_offsets(topic), cumulative_items(sizes, PARTITIONS))
    return Case("arrays", settings, data, target)


def _lines(tag: str) -> Case:
    """Raw Postfix lines keyed by MTA host; done once their attempts are consumed too."""
    settings = _settings(tag, "normalize")
    ensure_topics(settings)
    data = _generate("lines", LINES, 20_000, (RAW_TENANT,))
    raw = postfix_data.lines(data, list(range(PARTITIONS)))
    postfix_data.check(raw, data.kinds)
    topic = settings.topics.raw
    size = sum(len(v) for _k, v in raw) / len(raw)
    print(f"data lines: as Postfix smtp lines, {size:.0f} B/line", flush=True)
    _produce("lines", topic, [(k, v, None) for k, v in raw], LINES)
    target = Target(settings.app_id, topic, end_offsets(topic), then=settings.topics.attempts)
    return Case("normalize", settings, data, target)


def _env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a measured process: this one's, with the worktree's packages first
    (another checkout may be installed editable in the venv) and `extra`."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def _baseline(kind: str, case: Case, tag: str, out: str) -> Measured:
    """Run baseline `kind` over `case`'s input topic in a consumer group of its own. Over raw
    lines it is rated as the normalize run is (first commit until all consumed)."""
    group = f"bench-{tag}-{kind}-{case.name}"
    target = replace(case.target, group=group, then=None)
    log = BENCH_VAR / f"{kind}-{case.name}.log"
    cmd = baselines.command(kind, target.topic, group, out)
    proc, run = run_consumer(cmd, _env({}), log, target)
    run.stop_s = stop(proc)
    if kind == "faust-lines":
        return Measured("bare faust agent, raw lines", "lines", run, use_window=True)
    label = "raw aiokafka loop" if kind == "raw" else "bare faust agent"
    return Measured(f"{label}, single", "attempts", run)


def _worker_env(settings: Settings) -> dict[str, str]:
    keys = ["kafka", "redis_url", "app_id", "namespace", "topic_suffix", "partitions", "web_port"]
    env = {f"BOUNCEGUARD_{k.upper()}": str(getattr(settings, k)) for k in keys}
    return _env(
        {**env, "BOUNCEGUARD_DEFAULT_POLICY": "default", "BOUNCEGUARD_RAW_TENANT": RAW_TENANT}
    )


def _check(case: Case) -> tuple[str, bool]:
    """The suppression check: one suppression per distinct hard-bounced (address, tenant)
    pair of the data, nothing else, and no dead letters. Returns (what was found, passed)."""
    topics = case.settings.topics
    suppressions = read_json(topics.suppressions)
    pairs = {(s["address"], s["tenant"]) for s in suppressions if s["action"] == "suppressed"}
    dead = count(topics.deadletter(topics.attempts)) + count(topics.deadletter(topics.raw))
    expected = case.data.hard_pairs
    ok = 0 < len(suppressions) == len(expected) and pairs == expected and dead == 0
    found = (
        f"suppressions: {len(suppressions):,} emitted, {len(pairs):,} distinct pairs, "
        f"expected {len(expected):,}; dead letters: {dead} -> {'OK' if ok else 'MISMATCH'}"
    )
    return found, ok


def _worker(case: Case, label: str, unit: str, profiler: Profiler | None = None) -> Measured:
    """Run the worker over `case` on an emptied Redis; measure it, Redis and its output.
    `profiler` (if any) samples it from its first commit until everything is consumed."""
    probe = RedisProbe()
    log = BENCH_VAR / f"worker-{case.name}.log"
    cmd = [sys.executable, "-m", "pipeline", "worker", "--loglevel", "info"]
    try:
        probe.start()
        on_first = profiler.start if profiler else None
        try:
            proc, run = run_consumer(
                cmd,
                _worker_env(case.settings),
                log,
                case.target,
                health_port=case.settings.web_port,
                on_first_commit=on_first,
            )
        finally:
            if profiler is not None:
                profiler.stop()
        run.stop_s = stop(proc)
        usage = probe.finish()
    finally:
        probe.close()
    measured = Measured(label, unit, run, use_window=unit == "lines", redis=usage)
    measured.addresses = len(case.data.addresses)
    found, measured.check_ok = _check(case)
    errors, warnings, _first = log_problems(log)
    measured.check = f"{found}; log: {errors} error, {warnings} warning lines ({log.name})"
    return measured


def _attempt(label: str, fn: Callable[[], Measured]) -> Measured | None:
    """Run one measurement; print its block, or why it failed (the other runs go on)."""
    try:
        m = fn()
    except Exception as exc:  # a failed run is reported; the others still run
        print(f"{label}: FAILED: {type(exc).__name__}: {redact(str(exc))}\n", flush=True)
        return None
    report.print_run(m)
    return m


def _header() -> None:
    head = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(f"code: {head or 'not a git checkout'}; pipeline from {pipeline.__file__}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"machine: {os.cpu_count()} CPUs shared by broker, Redis, the measured process and "
        f"this one; load average {load} before the servers start"
    )


def _bench() -> None:
    _check_templates()
    tag = uuid.uuid4().hex[:8]
    single, arrays, lines = _single(tag), _arrays(tag), _lines(tag)
    out = f"bench.baseline.out-{tag}"
    create_topics([out])
    print(flush=True)
    profiler = Profiler(BENCH_VAR / "worker-arrays.pyspy.txt") if PYSPY else None
    profiler_lines = Profiler(BENCH_VAR / "worker-normalize.pyspy.txt") if PYSPY else None
    raw_loop = _attempt("raw loop", lambda: _baseline("raw", single, tag, out))
    bare = _attempt("bare faust", lambda: _baseline("faust", single, tag, out))
    w_single = _attempt("worker single", lambda: _worker(single, "worker, single", "attempts"))
    w_arrays = _attempt(
        "worker arrays", lambda: _worker(arrays, "worker, arrays", "attempts", profiler)
    )
    bare_lines = _attempt("bare faust lines", lambda: _baseline("faust-lines", lines, tag, out))
    w_lines = _attempt(
        "worker normalize", lambda: _worker(lines, "worker, normalize", "lines", profiler_lines)
    )
    done = [m for m in (raw_loop, bare, w_single, w_arrays, bare_lines, w_lines) if m]
    report.print_table(done)
    report.print_profile(profiler.profile if profiler else None, "arrays")
    report.print_profile(profiler_lines.profile if profiler_lines else None, "normalize")
    report.print_commands(w_arrays.redis if w_arrays else None)
    rows = report.targets(w_arrays, w_single, bare, w_lines, bare_lines)
    runs = {"single": w_single, "arrays": w_arrays, "normalize": w_lines}
    checks = [(name, m.verdict if m else "FAILED") for name, m in runs.items()]
    report.print_summary(rows, checks)


def run() -> None:
    """Start the bench servers, run every measurement, print, stop and wipe the servers."""
    started = time.perf_counter()
    _header()
    with servers():
        print(f"servers up in {time.perf_counter() - started:.1f} s", flush=True)
        _bench()
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    run()
