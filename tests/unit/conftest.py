"""Fixtures for the unit tests of the stream glue (the fakes are in tests/unit/fakes.py)."""

from __future__ import annotations

import types

import pytest

from pipeline.stream import retry
from tests.unit.fakes import ticks


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """retry_transient without its 0.1 s+ sleeps (the loop still turns once per retry)."""
    monkeypatch.setattr(retry, "asyncio", types.SimpleNamespace(sleep=lambda _s: ticks(1)))
