"""Filters on the worker's log handlers (installed by `bounceguard worker`): third-party
records that flood the log or quote request bytes are turned into short lines of ours.

`KafkaTroubleFilter`: while the broker is unreachable, aiokafka (the agents' consumer and
producer) and kafka-python (the lag monitor) log every reconnect attempt, about 60 ERROR and
WARNING lines a second. The filter turns such a burst of WARNING-or-worse records from those
loggers into

  - the first record, unchanged: the line when the connection is lost;
  - while the burst lasts, every `every` seconds one WARNING summary of the records held
    back (how many, the most frequent logger and message templates);
  - once no such record came for `quiet` seconds, one INFO line that the errors stopped
    (the clients reconnected), with the count held back since the last summary.

The last line is written by `flush`, which the worker calls from a timer (`attach`).

`BadRequestFilter`: aiohttp logs a request its parser refuses and answers with a 4xx (a
100 kB header: "Got more than 8190 bytes") at ERROR, with a traceback whose text quotes the
first bytes of the header, i.e. a bearer token. The filter turns it into one WARNING line
with the status and the exception's type only.

A filter is shared by every handler it is installed on: a record is judged once (the
decision rides on the record), so two handlers never count it twice.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)

KAFKA_LOGGERS = ("aiokafka", "kafka")
"""Logger name roots of the Kafka clients (aiokafka.*, kafka.*)."""
SUMMARY_EVERY = 30.0
"""Seconds between two summaries while a Kafka burst lasts."""
QUIET_AFTER = 10.0
"""Seconds without a Kafka client error after which the burst is over."""
FLUSH_EVERY = 2.0
"""Seconds between two `flush` calls of the worker's timer."""
_MARK = "_bg_kept"
_TOP = 3


def _is_kafka(name: str) -> bool:
    """True for a logger of the Kafka clients (the roots and their children)."""
    return any(name == root or name.startswith(root + ".") for root in KAFKA_LOGGERS)


def _as_warning(record: logging.LogRecord, msg: str, args: tuple[Any, ...]) -> None:
    """Rewrite `record` in place into one WARNING line `msg % args`, without a traceback."""
    record.msg, record.args = msg, args
    record.levelno, record.levelname = logging.WARNING, "WARNING"
    record.exc_info, record.exc_text, record.stack_info = None, None, None


@dataclass
class _Burst:
    """One run of Kafka client errors with no `quiet` gap."""

    started: float
    last: float
    summarized: float
    held: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Records held back since the last summary, by (logger, message template)."""


class KafkaTroubleFilter(logging.Filter):
    """Rate-limit the Kafka clients' WARNING-or-worse records (see the module docstring).

    Records of other loggers, and Kafka records below WARNING, always pass unchanged.
    `clock` gives monotonic seconds (injectable for tests)."""

    def __init__(
        self,
        *,
        every: float = SUMMARY_EVERY,
        quiet: float = QUIET_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.every, self.quiet, self.clock = every, quiet, clock
        self._burst: _Burst | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        """True to write `record` (perhaps rewritten into a summary), False to hold it back."""
        if record.levelno < logging.WARNING or not _is_kafka(record.name):
            return True
        kept = record.__dict__.get(_MARK)
        if kept is None:
            kept = record.__dict__[_MARK] = self._judge(record, self.clock())
        return bool(kept)

    def _judge(self, record: logging.LogRecord, now: float) -> bool:
        burst = self._burst
        if burst is None or now - burst.last >= self.quiet:
            self._end(now)
            self._burst = _Burst(started=now, last=now, summarized=now)
            return True  # the line when the trouble starts
        burst.last = now
        burst.held[(record.name, str(record.msg))] += 1
        if now - burst.summarized < self.every:
            return False
        top = "; ".join(f"{n}x {name}: {msg}" for (name, msg), n in burst.held.most_common(_TOP))
        held, seconds = burst.held.total(), now - burst.summarized
        _as_warning(
            record,
            "kafka clients still failing: %d repeated records held back in %.0fs (%s)",
            (held, seconds, top),
        )
        burst.summarized = now
        burst.held.clear()
        return True

    def flush(self) -> None:
        """End the burst once `quiet` seconds passed without a Kafka client error: write the
        one line that the errors stopped. Call it every few seconds (the worker's timer)."""
        self._end(self.clock())

    def _end(self, now: float) -> None:
        burst = self._burst
        if burst is None or now - burst.last < self.quiet:
            return
        self._burst = None
        log.info(
            "kafka clients reconnected: errors stopped after %.0fs, %d repeated records "
            "held back since the last line",
            burst.last - burst.started,
            burst.held.total(),
        )


class BadRequestFilter(logging.Filter):
    """Turn aiohttp's record of a request it refused with a 4xx (HttpProcessingError with a
    400-499 code, e.g. a header over its limit) into one WARNING line: the client's address,
    the status and the exception's type; never the traceback or the exception's text (it
    quotes the request's bytes). Every other record passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always True (nothing is dropped); rewrites the records described above."""
        if record.name != "aiohttp.server" or not record.exc_info:
            return True
        exc = record.exc_info[1]
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            _as_warning(
                record,
                "bad HTTP request refused remote=%s status=%d error=%s",
                (remote, exc.code, type(exc).__name__),
            )
        return True


def install(handlers: Iterable[logging.Handler], filters: Iterable[logging.Filter]) -> None:
    """Add every filter of `filters` to every handler of `handlers`."""
    wanted = list(filters)
    for handler in handlers:
        for each in wanted:
            handler.addFilter(each)


def attach(app: Any) -> list[logging.Filter]:
    """Create the worker's filters and register on faust `app` the timer that flushes the
    Kafka one; return them for `install` once the worker has set up its log handlers."""
    kafka = KafkaTroubleFilter()

    @app.timer(interval=FLUSH_EVERY)  # type: ignore[untyped-decorator]
    async def flush_kafka_trouble() -> None:
        kafka.flush()

    return [kafka, BadRequestFilter()]
