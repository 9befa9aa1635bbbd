"""Process-wide tuning of the long-running commands (the worker, replay)."""

from __future__ import annotations

import gc

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
