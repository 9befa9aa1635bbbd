"""Fault points for the crash tests: a real kill -9 at a chosen step of a batch.

`BOUNCEGUARD_FAULT_POINT` names one point; a worker that reaches it sends itself SIGKILL, so
the tests exercise what a real crash leaves behind (no finally blocks, no flushes, no acks).
Unset in production: `reach` is then one comparison.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

POINTS = ("after_redis", "after_emit")
"""after_redis: the batch's counters are in Redis, no suppression was sent yet.
after_emit: its suppressions reached Kafka, they are not yet marked emitted in Redis."""


def reach(armed: str | None, point: str) -> None:
    """Kill this process with SIGKILL when `armed` (the configured fault point) is `point`."""
    if armed is not None and armed == point:
        log.warning("fault point reached point=%s; killing the worker", point)
        os.kill(os.getpid(), signal.SIGKILL)
