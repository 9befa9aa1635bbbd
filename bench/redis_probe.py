"""What Redis spent on one worker run: CPU, memory and per-command statistics from INFO.

`RedisProbe.start()` empties Redis (FLUSHALL, so the memory figure is this run's alone) and
resets the command statistics; `finish()` reads the deltas. The CPU is Redis's main process
(used_cpu_sys + used_cpu_user), not its fork children (AOF rewrites), which INFO counts
apart and `RedisUsage.child_cpu` reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from bench.common import REDIS_URL


@dataclass(frozen=True)
class CommandStat:
    """One INFO commandstats entry."""

    name: str
    calls: int
    usec: int
    usec_per_call: float


@dataclass(frozen=True)
class RedisUsage:
    """Deltas over one run."""

    cpu: float
    """Seconds of CPU of the Redis server process."""
    child_cpu: float
    """Seconds of CPU of Redis's children (AOF rewrite), if any ran."""
    memory: int
    """used_memory after minus before, bytes."""
    keys: int
    """Keys in db 0 after the run."""
    commands: list[CommandStat]
    """Commands since the reset, most total time first."""


def _cpu(info: dict[str, Any]) -> tuple[float, float]:
    main = float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    children = float(info["used_cpu_sys_children"]) + float(info["used_cpu_user_children"])
    return main, children


class RedisProbe:
    """Measures one run; call start() before the run and finish() after it."""

    def __init__(self) -> None:
        self._r = redis.Redis.from_url(REDIS_URL)
        self._cpu = (0.0, 0.0)
        self._memory = 0

    def start(self) -> None:
        """Empty Redis, reset its command statistics, and take the baseline."""
        self._r.flushall()
        self._r.config_resetstat()
        self._cpu = _cpu(self._r.info("cpu"))
        self._memory = int(self._r.info("memory")["used_memory"])

    def finish(self) -> RedisUsage:
        """The deltas since start()."""
        main, children = _cpu(self._r.info("cpu"))
        memory = int(self._r.info("memory")["used_memory"])
        stats = self._r.info("commandstats")
        commands = [
            CommandStat(
                name.removeprefix("cmdstat_"),
                int(v["calls"]),
                int(v["usec"]),
                float(v["usec_per_call"]),
            )
            for name, v in stats.items()
        ]
        commands.sort(key=lambda c: c.usec, reverse=True)
        return RedisUsage(
            cpu=main - self._cpu[0],
            child_cpu=children - self._cpu[1],
            memory=memory - self._memory,
            keys=int(self._r.dbsize()),
            commands=commands,
        )

    def close(self) -> None:
        """Close the connection."""
        self._r.close()
