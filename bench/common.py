"""Shared by the benchmark modules: the bench servers (Kafka and Redis of their own on bench
ports, data under var/bench/), process statistics from /proc, and log redaction.

Every server binds 127.0.0.1. The ports default to 19892 (Kafka; its controller takes the
next one) and 17179 (Redis), away from the test suite's and `make run`'s; BG_BENCH_KAFKA_PORT
and BG_BENCH_REDIS_PORT override them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_VAR = ROOT / "var" / "bench"
KAFKA_PORT = int(os.environ.get("BG_BENCH_KAFKA_PORT", "19892"))
REDIS_PORT = int(os.environ.get("BG_BENCH_REDIS_PORT", "17179"))
PARTITIONS = 4
KAFKA = f"127.0.0.1:{KAFKA_PORT}"
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _deploy(script: str, action: str, **ports: str) -> None:
    env = {
        **os.environ,
        "BG_VAR": str(BENCH_VAR),
        "KAFKA_PORT": str(KAFKA_PORT),
        "KAFKA_PARTITIONS": str(PARTITIONS),
        "REDIS_PORT": str(REDIS_PORT),
        **ports,
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


@contextmanager
def servers() -> Iterator[None]:
    """Start fresh bench Kafka and Redis; stop them and wipe their data on the way out (also
    stops the leftovers of an interrupted run first, before wiping their data)."""
    BENCH_VAR.mkdir(parents=True, exist_ok=True)
    _deploy("kafka.sh", "stop")
    _deploy("redis.sh", "stop")
    _wipe_data()
    try:
        _deploy("redis.sh", "start")
        _deploy("kafka.sh", "start")
        yield
    finally:
        _deploy("kafka.sh", "stop")
        _deploy("redis.sh", "stop")
        _wipe_data()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a worker's web server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class ProcStat:
    """One reading of a live process's /proc entries."""

    cpu: float
    """User + system CPU seconds so far."""
    rss_mb: float
    hwm_mb: float
    """Peak RSS (VmHWM)."""


def proc_stat(pid: int) -> ProcStat:
    """Read CPU seconds, RSS and peak RSS of a live process (raises OSError once it is gone)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )

    def mb(key: str) -> float:
        return int(status[key].split()[0]) / 1024

    return ProcStat(cpu, mb("VmRSS"), mb("VmHWM"))


def redact(text: str) -> str:
    """`text` with every e-mail address replaced (log tails are printed; addresses never)."""
    return _ADDRESS.sub("<address>", text)


_PROBLEM = re.compile(r"\[(ERROR|CRITICAL|WARNING)\]|^Traceback")


def log_problems(log: Path) -> tuple[int, int, list[str]]:
    """(error lines, warning lines, the first 10 of either, redacted) of a faust-style log
    (`[ERROR]`, `[CRITICAL]`, `[WARNING]` levels; a traceback start counts as an error)."""
    errors, warnings, first = 0, 0, list[str]()
    for line in log.read_text(errors="replace").splitlines():
        match = _PROBLEM.search(line)
        if match is None:
            continue
        if match.group(1) == "WARNING":
            warnings += 1
        else:
            errors += 1
        if len(first) < 10:
            first.append(redact(line[:300]))
    return errors, warnings, first


def tail(log: Path, lines: int = 30) -> str:
    """For an error message: the log's first error and warning lines, then its last `lines`
    lines, redacted."""
    first = log_problems(log)[2]
    last = redact("\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
    head = ("first error/warning lines:\n" + "\n".join(first) + "\n") if first else ""
    return f"{head}last lines of {log}:\n{last}"


def server_pids() -> dict[str, int]:
    """The bench servers' pids by name ("broker", "Redis"), from their pid files."""
    files = {
        "broker": BENCH_VAR / f"kafka-{KAFKA_PORT}" / "kafka.pid",
        "Redis": BENCH_VAR / f"redis-{REDIS_PORT}" / "redis.pid",
    }
    pids = {}
    for name, path in files.items():
        with contextlib.suppress(OSError, ValueError):
            pids[name] = int(path.read_text())
    return pids


@dataclass(frozen=True)
class CpuSnapshot:
    """Machine-wide busy CPU and the CPU of some processes at one moment."""

    at: float
    """time.perf_counter()."""
    busy: float
    """CPU seconds all CPUs spent not idle since boot (/proc/stat)."""
    procs: dict[str, float]


def cpu_snapshot(pids: Mapping[str, int]) -> CpuSnapshot:
    """Read /proc/stat and the CPU seconds of `pids` (name -> pid); gone processes skipped."""
    at = time.perf_counter()
    jiffies = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = jiffies[3] + jiffies[4]  # idle + iowait; fields 9-10 (guest) are inside user
    busy = (sum(jiffies) - idle) / os.sysconf("SC_CLK_TCK")
    procs = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            procs[name] = proc_stat(pid).cpu
    return CpuSnapshot(at, busy, procs)


def cpu_shares(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """Average CPUs (cores) each process of `after` used between the snapshots (a process
    missing from `before` started in between, from 0), and "other": the rest of the
    machine's busy time."""
    seconds = after.at - before.at
    if seconds < 0.1:
        return {}  # no window to speak of (everything came in one commit)
    shares = {n: (cpu - before.procs.get(n, 0.0)) / seconds for n, cpu in after.procs.items()}
    shares["other"] = (after.busy - before.busy) / seconds - sum(shares.values())
    return shares
