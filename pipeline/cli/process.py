"""Process-wide tuning of the long-running commands (the worker, replay)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

GC_THRESHOLD = (50_000, 20, 20)
"""Allocations between young collections, and young/middle collections between older ones.

CPython's default (700, 10, 10) collects every 700 container allocations; the hot path
allocates several per attempt (lists, tuples, futures) while the heap holds faust's,
aiokafka's and two units' worth of live objects, so collecting was about a third of the
planning time (measured: README, Benchmarks). The hot path makes few reference cycles, so
collecting 70 times less often keeps little garbage waiting."""


def tune_gc() -> None:
    """Move everything alive after start-up out of the collector's sight (gc.freeze: those
    objects live as long as the process) and collect rarely (GC_THRESHOLD)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


@contextlib.contextmanager
def tuned_gc() -> Iterator[None]:
    """tune_gc() for the duration of a command that may run inside another process (tests
    call `main(["replay", ...])`): the collector's thresholds and frozen objects are put back
    on exit, so the caller's garbage (sockets it leaked, say) is collected when it expects."""
    before = gc.get_threshold()
    tune_gc()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
