"""The two consumers a user could write instead of the worker, each run as a process of its
own so that it is measured exactly as the worker is (committed offsets, /proc CPU):

- `faust`: a minimal faust app (its own app id, which is its consumer group; same broker)
  whose agent takes batches with `stream.take_events(batch_size, within=batch_within)`,
  orjson.loads every value, makes one Redis round trip per batch (INCRBY of the batch's size
  on one key) and produces one small message per batch (that size);
- `faust-lines`: the same app over raw log lines: decode each value, split it, produce one
  message per batch (no Redis);
- `raw`: an aiokafka loop: getmany(max_records=batch_size), orjson.loads every value, the
  same INCRBY, commit after each batch.

Where a setting bears on throughput it is the worker's (pipeline.config.Settings, so the
BOUNCEGUARD_* overrides apply to both): batch size and wait, commit interval, producer acks,
the uvloop event loop.

Run as `python -m bench.baselines KIND --topic T --group G [--out O]` (see `command`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Any

import orjson
import uvloop
from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis

from bench.common import KAFKA, PARTITIONS, REDIS_URL
from pipeline.config import Settings

KINDS = ("faust", "faust-lines", "raw")


def command(kind: str, topic: str, group: str, out: str | None = None) -> list[str]:
    """The argv that runs baseline `kind` on `topic` as consumer group `group` (`out`: the
    topic the faust kinds produce their one message per batch to)."""
    args = [sys.executable, "-m", "bench.baselines", kind, "--topic", topic, "--group", group]
    return args + (["--out", out] if out else [])


def _loads_all(events: Sequence[Any]) -> int:
    for event in events:
        orjson.loads(event.value)
    return len(events)


def _split_all(events: Sequence[Any]) -> int:
    for event in events:
        event.value.decode().split(" ")
    return len(events)


def _raw_topic(app: Any, name: str) -> Any:
    """A topic of raw bytes (keys and values), as the worker declares its own."""
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


def _faust(args: argparse.Namespace, settings: Settings) -> None:
    # Imported here, in this order, as `bounceguard worker` does: the loop policy is set
    # before faust creates anything (and the orchestrator, which imports this module for
    # `command`, never loads faust).
    import mode.loop  # noqa: PLC0415

    mode.loop.use("uvloop")
    import faust  # noqa: PLC0415

    app = faust.App(
        args.group,
        broker=f"kafka://{KAFKA}",
        autodiscover=False,
        web_enabled=False,
        store="memory://",
        topic_partitions=PARTITIONS,
        producer_acks=-1,
        broker_commit_interval=settings.commit_interval,
    )
    source, out = _raw_topic(app, args.topic), _raw_topic(app, args.out)
    lines = args.kind == "faust-lines"

    @app.agent(source)
    async def consume(stream: Any) -> None:
        r = Redis.from_url(REDIS_URL)
        take = stream.take_events(settings.batch_size, within=settings.batch_within)
        async for events in take:
            n = _split_all(events) if lines else _loads_all(events)
            if not lines:
                await r.incrby(f"bench:{args.group}", n)
            await out.send(value=b"%d" % n)

    faust.Worker(app, loglevel="warning").execute_from_commandline()


async def _raw(args: argparse.Namespace, settings: Settings) -> None:
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=KAFKA,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    r = Redis.from_url(REDIS_URL)
    await consumer.start()
    try:
        while not stopping.is_set():
            timeout = int(settings.batch_within * 1000)
            batches = await consumer.getmany(timeout_ms=timeout, max_records=settings.batch_size)
            n = sum(_loads_all(records) for records in batches.values())
            if n:
                await r.incrby(f"bench:{args.group}", n)
                await consumer.commit()
    finally:
        await consumer.stop()
        await r.aclose()


def main(argv: Sequence[str]) -> int:
    """Run one baseline until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.baselines")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.kind == "raw":
        uvloop.run(_raw(args, settings))
    else:
        _faust(args, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
