"""Run one consumer process (the worker or a baseline) and watch its consumer group's committed
offsets until it has consumed everything; measure rate and CPU from the commits.

How a rate is read off the commits: a consumer commits what it has processed every commit
interval (1 s for the worker and the bare faust agent, every batch for the raw loop), and a
commit reflects the progress at the moment it is made. So between two commits observed while
the consumer is still busy, items/s and CPU/item are exact (`Run.steady`: from the first
commit to the last one before the final; start-up and group join excluded). The final commit
comes up to one interval after the work ended, so a window that ends there is biased low by
up to one interval (`Run.window`: from the first commit until everything was committed, the
figure the normalize path is defined by, because it must include the attempts its lines
became being consumed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    ROOT,
    CpuSnapshot,
    ProcStat,
    cpu_shares,
    cpu_snapshot,
    proc_stat,
    server_pids,
    tail,
)
from bench.kafka_io import GroupOffsets, end_offsets

POLL = 0.05
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "300"))
"""Seconds one consumer gets to consume everything before the run is declared failed."""

Offsets = dict[tuple[str, int], int]


@dataclass
class Target:
    """What a run must consume: `topic` to `ends` for `group`, then (if `then` is set) the
    topic `then` to its end offsets as they are once `topic` is done."""

    group: str
    topic: str
    ends: Offsets
    cumulative: dict[int, list[int]] | None = None
    """Per partition, items in its first k messages (index k); None: one item a message."""
    then: str | None = None

    @property
    def total(self) -> int:
        """Items in `topic`."""
        return self.items(self.ends)

    def items(self, committed: Offsets) -> int:
        """Items of `topic` below the committed offsets."""
        mine = {p: o for (t, p), o in committed.items() if t == self.topic}
        if self.cumulative is None:
            return sum(mine.values())
        return sum(self.cumulative[p][o] for p, o in mine.items())

    def done(self, committed: Offsets) -> bool:
        """True once everything is committed (`then` included)."""
        if any(committed.get(tp, 0) < end for tp, end in self.ends.items()):
            return False
        if self.then is None:
            return True
        return all(committed.get(tp, 0) >= end for tp, end in end_offsets(self.then).items())


def cumulative_items(partitions: Sequence[tuple[int, int]], count: int) -> dict[int, list[int]]:
    """Per-partition prefix sums for `Target.cumulative` from (partition, items) per message in
    produce order (per-partition order is offset order: one producer, acks, no retries lost)."""
    sums: dict[int, list[int]] = {p: [0] for p in range(count)}
    for partition, items in partitions:
        sums[partition].append(sums[partition][-1] + items)
    return sums


@dataclass(frozen=True)
class Sample:
    """The consumer's progress as seen at one commit."""

    t: float
    """Seconds since the process started."""
    items: int
    cpu: float


@dataclass
class Run:
    """What watching one consumer saw."""

    items: int
    samples: list[Sample] = field(default_factory=list)
    """One per observed commit, the last at completion."""
    healthy: float | None = None
    """Seconds until GET /health answered 200 (the worker only)."""
    end: ProcStat | None = None
    stop_s: float = float("nan")
    start_wall: float = 0.0
    cpu_use: dict[str, float] = field(default_factory=dict)
    """Average CPUs used from the first commit to completion: "consumer", the servers,
    "bench" (this process, polling), "other" (the rest of the machine: py-spy when it runs,
    anything else running on it)."""

    @property
    def total(self) -> float:
        """Seconds from process start until everything was committed."""
        return self.samples[-1].t

    def steady(self) -> tuple[float, float]:
        """(items/s, CPU µs/item) between the first commit and the last before the final one;
        the window estimate when there were fewer than two such commits."""
        busy = [s for s in self.samples[:-1] if s.items < self.items]
        if len(busy) < 2:
            return self.window()
        return _rate(busy[0], busy[-1])

    def window(self) -> tuple[float, float]:
        """(items/s, CPU µs/item) from the first commit until all was committed."""
        if len(self.samples) < 2:
            return float("nan"), float("nan")
        return _rate(self.samples[0], self.samples[-1])


def _rate(a: Sample, b: Sample) -> tuple[float, float]:
    n, dt = b.items - a.items, b.t - a.t
    if n <= 0 or dt <= 0:
        return float("nan"), float("nan")
    return n / dt, (b.cpu - a.cpu) / n * 1e6


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def run_consumer(
    cmd: Sequence[str],
    env: dict[str, str],
    log: Path,
    target: Target,
    *,
    health_port: int | None = None,
    on_first_commit: Callable[[int], None] | None = None,
) -> tuple[subprocess.Popen[bytes], Run]:
    """Start `cmd` (output to `log`) and watch it until `target` is consumed. Returns the
    still running process (stop it with `stop`) and what was seen. Raises RuntimeError with
    the log's tail if the process exits or times out; it is killed then."""
    with log.open("wb") as out:
        start_wall, start = time.time(), time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    offsets = GroupOffsets()
    try:
        run = _watch(proc, offsets, target, log, start, health_port, on_first_commit)
        run.start_wall = start_wall
        return proc, run
    except BaseException:
        proc.kill()
        proc.wait(timeout=10)
        raise
    finally:
        offsets.close()


def _watch(
    proc: subprocess.Popen[bytes],
    offsets: GroupOffsets,
    target: Target,
    log: Path,
    start: float,
    health_port: int | None,
    on_first_commit: Callable[[int], None] | None,
) -> Run:
    run = Run(items=target.total)
    pids = {"consumer": proc.pid, **server_pids(), "bench": os.getpid()}
    first: CpuSnapshot | None = None
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd_name(proc)} exited with {proc.returncode}:\n{tail(log)}")
        if time.perf_counter() - start > TIMEOUT:
            raise RuntimeError(f"{cmd_name(proc)} not done after {TIMEOUT:.0f} s:\n{tail(log)}")
        if run.healthy is None and health_port is not None and _healthy(health_port):
            run.healthy = time.perf_counter() - start
        committed = offsets.committed(target.group)
        now = time.perf_counter() - start
        items = target.items(committed)
        last = run.samples[-1].items if run.samples else 0
        done = items > 0 and target.done(committed)
        if items > last or done:
            stat = proc_stat(proc.pid)
            run.samples.append(Sample(now, items, stat.cpu))
            if first is None:
                first = cpu_snapshot(pids)
                if on_first_commit is not None:
                    on_first_commit(proc.pid)
            if done:
                run.end, run.cpu_use = stat, cpu_shares(first, cpu_snapshot(pids))
                return run
        time.sleep(POLL)


def cmd_name(proc: subprocess.Popen[bytes]) -> str:
    """A short name of the process for messages (`python -m NAME`)."""
    args = [str(a) for a in proc.args] if isinstance(proc.args, list) else [str(proc.args)]
    return " ".join(args[1:4])


def stop(proc: subprocess.Popen[bytes]) -> float:
    """SIGTERM the process and wait for it (SIGKILL after 30 s); return the seconds it took."""
    start = time.perf_counter()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return time.perf_counter() - start
