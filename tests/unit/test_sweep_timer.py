"""The worker's sweep timer (pipeline.stream.agents): an error in one run must not escape.

faust runs a timer as an app task, and mode crashes the whole worker on any exception that
escapes a task (mode.Service._execute_task -> crash), so the timer body has to contain it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest

from pipeline.config import Settings
from pipeline.stream import agents


class FakeApp:
    """Captures the function `app.timer` decorates."""

    def __init__(self) -> None:
        self.timers: list[Callable[[], Awaitable[None]]] = []

    def timer(self, interval: float, on_leader: bool) -> Any:
        def register(fun: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
            self.timers.append(fun)
            return fun

        return register


class FakeEmitter:
    def __init__(self) -> None:
        self.emitted: list[Any] = []

    async def emit(self, applied: Any) -> None:
        self.emitted.append(applied)


def test_a_failing_sweep_does_not_escape_the_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    marked: list[str] = []

    async def not_done(store: Any, run: str) -> bool:
        return False

    async def mark_done(store: Any, run: str, ttl: float) -> None:
        marked.append(run)

    async def broken_sweep(store: Any, at: datetime, *, run: str) -> list[Any]:
        raise RuntimeError("WRONGTYPE Operation against a key holding the wrong kind of value")

    monkeypatch.setattr(agents.schedule, "is_done", not_done)
    monkeypatch.setattr(agents.schedule, "mark_done", mark_done)
    monkeypatch.setattr(agents.queries, "sweep", broken_sweep)
    app, emitter = FakeApp(), FakeEmitter()
    agents._sweep_timer(app, Settings(), object(), emitter)  # type: ignore[arg-type]
    [timer] = app.timers

    asyncio.run(timer())  # must return, not raise

    assert emitter.emitted == []
    assert marked == []  # not marked done: the next check runs the period's sweep again
