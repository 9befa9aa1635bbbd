"""The monitor's Kafka admin and Redis clients are closed when the worker shuts down (issue 15
item 4): faust's `on_before_shutdown` closes them, after a sample in progress, and the timer
samples no more. The app is built as `bounceguard worker` builds it, never started."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

import pytest
import redis.asyncio as aioredis

from pipeline.config import Settings
from pipeline.stream import monitor
from pipeline.stream.app import create_app


class FakeProbe(monitor.LagProbe):
    """A lag reader that records its calls instead of talking to Kafka."""

    def __init__(self, calls: list[str]) -> None:
        super().__init__(Settings())
        self.calls = calls

    def read(self, topics: Collection[str]) -> dict[Any, int]:
        self.calls.append("read")
        return {}

    def close(self) -> None:
        self.calls.append("probe.close")


class FakeApp:
    """What the monitor reads of the faust app: its topics (none subscribed here)."""

    topics: tuple[Any, ...] = ()


class FakeRedis:
    """The two calls the monitor makes on its Redis client."""

    def __init__(self, calls: list[str], release: asyncio.Event | None = None) -> None:
        self.calls = calls
        self.release = release
        self.entered = asyncio.Event()

    async def info(self, section: str) -> dict[str, int]:
        self.calls.append("info")
        self.entered.set()
        if self.release is not None:
            await self.release.wait()
        return {"used_memory": 1, "maxmemory": 2}

    async def aclose(self) -> None:
        self.calls.append("redis.aclose")


def test_the_workers_shutdown_closes_the_monitors_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """Catches: the clients left open at shutdown (the hook missing from monitor.attach, or
    monitor.attach missing from create_app)."""
    calls: list[str] = []
    monkeypatch.setattr(monitor.LagProbe, "close", lambda self: calls.append("probe.close"))

    async def aclose(self: Any) -> None:
        calls.append("redis.aclose")

    monkeypatch.setattr(aioredis.Redis, "aclose", aclose)
    runtime = create_app(Settings.from_env({}))
    asyncio.run(runtime.app.on_before_shutdown.send())
    assert sorted(calls) == ["probe.close", "redis.aclose"]


def test_close_waits_for_a_sample_in_progress_and_stops_the_timer() -> None:
    calls: list[str] = []

    async def scenario() -> None:
        release = asyncio.Event()
        redis = FakeRedis(calls, release)
        sampler = monitor.Monitor(FakeApp(), Settings(), FakeProbe(calls), redis)
        tick = asyncio.create_task(sampler.sample())
        await asyncio.wait_for(redis.entered.wait(), 5)  # the tick is inside its Redis call
        closing = asyncio.create_task(sampler.close())
        await asyncio.sleep(0.01)
        assert "redis.aclose" not in calls  # not under the running sample
        release.set()
        await asyncio.gather(tick, closing)
        await sampler.sample()  # a tick after shutdown does nothing
        await sampler.close()  # and a second close neither

    asyncio.run(scenario())
    assert calls == ["read", "info", "probe.close", "redis.aclose"]


def test_a_failing_close_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(FakeRedis):
        async def aclose(self) -> None:
            raise ConnectionError("gone")

    calls: list[str] = []
    sampler = monitor.Monitor(FakeApp(), Settings(), FakeProbe(calls), Broken(calls))
    asyncio.run(sampler.close())
    assert calls == ["probe.close"]
    assert "monitor redis close failed error=ConnectionError" in caplog.text
