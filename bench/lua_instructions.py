"""Machine instructions Redis spends per attempt on the functions library, by event kind:
`python -m bench.lua_instructions [N]` (not part of `make bench`: it needs valgrind, Debian's
`valgrind` package, and takes a few minutes).

Why instructions: Redis CPU time per attempt moves by ±20 % between runs on a shared 2-core
machine (the broker, the worker and other work preempt it and thrash its caches), so a change
of a few percent in the Lua cannot be seen in `make bench`. A redis-server run under
callgrind counts the instructions it executes, which do not depend on what else runs.

What runs: a redis-server of its own under `valgrind --tool=callgrind` (AOF on, appendfsync
always, as deploy/redis.sh runs it; port BG_BENCH_LUA_PORT, default 17189), data under
var/bench/lua/. The bench's attempts (bench.worker_data, N = 100,000 by default) are planned
by the store exactly as the worker plans them (units of 5,000, calls of 500 events, under the
`default` preset, with its provider-outage guard and again without it) and applied, first all
of them, then each kind alone, each time into a flushed Redis.
The counters are zeroed before and dumped after each set (callgrind_control), so start-up
and loading the library are not counted. No suppression is confirmed (`mark_emitted` is not
called), so the figures are the apply and guard calls alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time

import redis

from bench.common import BENCH_VAR
from bench.worker_data import MIX, generate
from pipeline.core.decode import decode_attempts
from pipeline.core.policies import load_preset
from pipeline.state.store import Store

PORT = int(os.environ.get("BG_BENCH_LUA_PORT", "17189"))
DIR = BENCH_VAR / "lua"
UNIT = 5000


def _start() -> subprocess.Popen[bytes]:
    shutil.rmtree(DIR, ignore_errors=True)
    DIR.mkdir(parents=True)
    command = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={DIR}/cg.%p",
        "redis-server", "--port", str(PORT), "--bind", "127.0.0.1", "--dir", str(DIR),
        "--appendonly", "yes", "--appendfsync", "always", "--save", "",
    ]  # fmt: skip
    log = (DIR / "valgrind.log").open("wb")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    client = redis.Redis(port=PORT)
    for _ in range(300):
        try:
            if client.ping():
                return proc
        except redis.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"redis-server under valgrind did not answer; see {DIR}/valgrind.log")


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def _counted(pid: int) -> int:
    """Dump the counters and return the instructions of the dump just written."""
    before = set(DIR.glob("cg.*"))
    _control(pid, "-d")
    total = 0
    for path in set(DIR.glob("cg.*")) - before:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    return total


async def _apply(values: list[bytes], guard: bool) -> None:
    overrides = None if guard else {"outage_guard": {"enabled": False}}
    store = Store.from_url(f"redis://127.0.0.1:{PORT}/0", load_preset("default", overrides))
    try:
        for start in range(0, len(values), UNIT):
            events = [e for raw in values[start : start + UNIT] for e in decode_attempts(raw)]
            plan = store.plan(events)
            store.read(plan, await store.run(plan.calls))
    finally:
        await store.close()


def _measure(pid: int, client: redis.Redis, values: list[bytes], guard: bool) -> float:
    client.flushall()
    asyncio.run(_apply(values[:1], guard))  # loads the library, outside the count
    client.flushall()
    _control(pid, "-z")
    asyncio.run(_apply(values, guard))
    return _counted(pid) / len(values)


def main(argv: list[str]) -> int:
    """Print instructions per attempt for the whole mix and for each kind alone."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)")
        return 1
    n = int(argv[0]) if argv else 100_000
    data = generate(n)
    values = [v for _, v in data.messages]
    sets = {"all": values}
    for kind, _weight in MIX:
        sets[kind] = [v for v, k in zip(values, data.kinds, strict=True) if k == kind]
    proc = _start()
    client = redis.Redis(port=PORT)
    try:
        print(f"redis-server under callgrind, {n:,} bench attempts, default preset")
        print(f"  {'attempts':<12} {'count':>8} {'instructions/attempt':>22} {'guard off':>10}")
        for name, chosen in sets.items():
            on = _measure(proc.pid, client, chosen, guard=True)
            off = _measure(proc.pid, client, chosen, guard=False)
            print(f"  {name:<12} {len(chosen):>8,} {on:>22,.0f} {off:>10,.0f}", flush=True)
    finally:
        with contextlib.suppress(redis.ConnectionError):  # it closes the connection
            client.shutdown(nosave=True)
        proc.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
