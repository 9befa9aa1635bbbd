"""The engine of `bounceguard ship`: a log file -> attempts on `delivery.attempts`.

Responsibilities:
- read a log file line by line, optionally following it like `tail -F` through rotation
  (a new inode at the path: the old file is drained first, then the new one is read from its
  start) and truncation (copytruncate: read again from the start) (`LogReader`);
- parse the lines with one core parser for the whole file, in order;
- batch the attempts per partition and send one JSON array per (partition, batch) to that
  explicit partition (`PartitionBatcher`, `partition_for`). PRODUCT.md allows an array when
  all its attempts map to the partition their recipient key would: `partition_for` is
  kafka-python's (and Java's, and aiokafka's) default murmur2 partitioner, so the count agent
  sees each address's attempts on the same partition, in file order, as if keyed one by one;
- send lines that cannot be parsed to `mta.log.raw.deadletter`, in the worker's envelope
  (source topic = the file name, partition 0, offset = the line number);
- know whether everything was delivered (`Shipper.flush` checks every send's future), and
  retry what failed with backoff, a bounded number of rounds, each partition's messages in
  their order (`Backoff`, `Shipper.flush`).

kafka-python (blocking) is used rather than faust: ship is a plain process with no consumer.
The producer must be idempotent (kafka-python's default) so retries keep per-partition order.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from io import BufferedReader
from typing import Any

from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from pipeline.config import Topics
from pipeline.core.errors import InvalidInput
from pipeline.core.parsing import LogParser
from pipeline.stream.deadletter import envelope

log = logging.getLogger(__name__)

LINE_LIMIT = 1024 * 1024
"""Longest line kept whole; the rest of a longer line is dropped (the parser rejects anything
over 256 KiB as too_large anyway, so the kept prefix is enough for the dead letter)."""
CHUNK = 64 * 1024
MAX_BATCH_BYTES = 512 * 1024
"""Largest array message: well under the broker's default 1 MB message.max.bytes."""


_HASHES: dict[bytes, int] = {}
"""murmur2 of recent keys: kafka-python's is pure Python (a few µs per recipient), and the
same recipients come back all day. Cleared when full, like decode's address cache."""
_HASHES_SIZE = 1 << 16


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    """Return the partition the default Kafka partitioner picks for `key` among `partitions`
    (murmur2 of the key, positive, modulo the count, over the sorted partition ids)."""
    ordered = sorted(partitions)
    hashed = _HASHES.get(key)
    if hashed is None:
        if len(_HASHES) >= _HASHES_SIZE:
            _HASHES.clear()
        hashed = _HASHES[key] = murmur2(key) & 0x7FFFFFFF
    return ordered[hashed % len(ordered)]


class PartitionBatcher:
    """Groups encoded attempts per partition into JSON-array messages, keeping their order.

    `add` returns the messages that became ready: a partition's batch is sent when it holds
    `max_items` attempts, or before an attempt that would push it over `max_bytes`. `drain`
    returns everything still pending (call it when the input is idle or ends).
    """

    def __init__(self, max_items: int = 500, max_bytes: int = MAX_BATCH_BYTES) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: dict[int, list[bytes]] = {}
        self._sizes: dict[int, int] = {}

    def add(self, partition: int, item: bytes) -> list[tuple[int, bytes]]:
        """Queue one encoded attempt for `partition`; return the (partition, message) pairs
        now ready to send, in order."""
        ready = []
        items = self._items.setdefault(partition, [])
        if items and self._sizes[partition] + len(item) + 1 > self.max_bytes:
            ready.append(self._take(partition))
            items = self._items.setdefault(partition, [])
        items.append(item)
        self._sizes[partition] = self._sizes.get(partition, 1) + len(item) + 1
        if len(items) >= self.max_items:
            ready.append(self._take(partition))
        return ready

    def drain(self) -> list[tuple[int, bytes]]:
        """Return every pending batch as (partition, message), leaving none."""
        return [self._take(p) for p in list(self._items)]

    def _take(self, partition: int) -> tuple[int, bytes]:
        items = self._items.pop(partition)
        self._sizes.pop(partition)
        return partition, b"[" + b",".join(items) + b"]"


@dataclass(frozen=True, slots=True)
class Line:
    """One line read from a log file."""

    number: int
    """1-based line number in the file it came from (restarts after rotation/truncation)."""
    data: bytes
    """The line without its newline (at most LINE_LIMIT bytes)."""


class LogReader:
    """Reads the lines of one file, following it like `tail -F` when `follow` is true.

    Iterating yields `Line`s in file order and `None` whenever the reader has caught up with
    the writer (a good moment for the caller to flush). Without `follow` it ends at the end of
    the file (a last line without a newline counts). With `follow` it ends only when `stop()`
    returns true; a partial line still being written at that moment is not emitted. A missing
    file is waited for in follow mode, and raises FileNotFoundError otherwise.
    """

    def __init__(
        self,
        path: str,
        *,
        follow: bool = False,
        from_end: bool = False,
        poll: float = 0.2,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.path = path
        self.follow = follow
        self.from_end = from_end
        self.poll = poll
        self.stop = stop
        self._buf = b""
        self._number = 0
        self._skipping = False  # inside the dropped tail of an overlong line

    def __iter__(self) -> Iterator[Line | None]:
        fh = yield from self._open_first()
        if fh is None:
            return
        try:
            while True:
                # read1: what is there now, up to CHUNK (read() would wait for a pipe to
                # fill CHUNK bytes, holding back lines that are already written)
                chunk = fh.read1(CHUNK)
                if chunk:
                    yield from self._split(chunk)
                    if not self.follow and len(chunk) < CHUNK:
                        yield None  # caught up with a pipe's writer: let the caller flush
                    if not self.stop():
                        continue
                if not self.follow or self.stop():
                    if not self.follow:
                        yield from self._rest()
                    return
                yield None
                fh = yield from self._after_eof(fh)
        finally:
            fh.close()

    def _open_first(self) -> Generator[None, None, BufferedReader | None]:
        """Generator returning the opened file (waiting for it in follow mode), or None."""
        while True:
            try:
                fh = open(self.path, "rb")  # noqa: SIM115 - closed by __iter__
            except FileNotFoundError:
                if not self.follow:
                    raise
                if self.stop():
                    return None
                yield None
                time.sleep(self.poll)
                continue
            if self.from_end:
                fh.seek(0, os.SEEK_END)
            return fh

    def _after_eof(self, fh: BufferedReader) -> Generator[Line, None, BufferedReader]:
        """At the end of `fh` in follow mode: switch to a rotated-in file, rewind a truncated
        one, or wait; return the file to read next (a generator, for the drained lines)."""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            current = None  # moved away, new one not created yet: keep reading the old one
        mine = os.fstat(fh.fileno())
        if current is not None and (current.st_ino, current.st_dev) != (mine.st_ino, mine.st_dev):
            try:
                new = open(self.path, "rb")  # noqa: SIM115 - closed by __iter__
            except FileNotFoundError:
                # Gone again between stat and open (a second rotation): keep the old file
                # and look again after the poll.
                time.sleep(self.poll)
                return fh
            # Rotated: what the writer added to the old file since our last read comes first.
            while chunk := fh.read1(CHUNK):
                yield from self._split(chunk)
            yield from self._rest()
            fh.close()
            self._number = 0
            log.info("log rotated, reading the new file")
            return new
        if mine.st_size < fh.tell():
            log.info("log truncated, reading it again from the start")
            fh.seek(0)
            self._buf, self._number, self._skipping = b"", 0, False
            return fh
        time.sleep(self.poll)
        return fh

    def _split(self, chunk: bytes) -> Iterator[Line]:
        data = self._buf + chunk
        *lines, self._buf = data.split(b"\n")
        for raw in lines:
            if self._skipping:
                self._skipping = False  # the newline ending an overlong line
                continue
            yield self._line(raw)
        if len(self._buf) > LINE_LIMIT and not self._skipping:
            yield self._line(self._buf[:LINE_LIMIT])
            self._skipping = True
        if self._skipping:
            self._buf = b""

    def _rest(self) -> Iterator[Line]:
        if self._buf and not self._skipping:
            yield self._line(self._buf)
        self._buf, self._skipping = b"", False

    def _line(self, raw: bytes) -> Line:
        self._number += 1
        return Line(self._number, raw.removesuffix(b"\r"))


@dataclass(frozen=True, slots=True)
class Backoff:
    """How `Shipper.flush` retries failed sends: up to `retries` rounds, waiting `first`
    seconds before the first, doubling up to `cap` (1, 2, 4, 8, 16, 30: about a minute in all,
    on top of the producer's own retries within its 120 s delivery timeout)."""

    retries: int = 6
    first: float = 1.0
    cap: float = 30.0

    def delay(self, round_: int) -> float:
        """Seconds to wait before retry round `round_` (1-based)."""
        return float(min(self.first * 2 ** (round_ - 1), self.cap))


@dataclass(slots=True)
class _Send:
    """One message handed to the producer, kept until its delivery is known."""

    topic: str
    value: bytes
    partition: int | None
    future: Any = None
    """The producer's future; None when `send` itself raised (`error` names the exception)."""
    error: str = ""

    def failed(self) -> bool:
        """True when the message is not known to be delivered (call after a flush)."""
        return self.future is None or not self.future.is_done or bool(self.future.failed())

    def error_name(self) -> str:
        """The failure's exception type name (never its text: it may quote the payload)."""
        exc = getattr(self.future, "exception", None)
        return self.error or (type(exc).__name__ if exc is not None else "not delivered")


@dataclass
class ShipStats:
    """Counts for progress and the final summary."""

    lines: int = 0
    attempts: int = 0
    skipped: int = 0
    dead: int = 0
    messages: int = 0
    failed: int = 0


class Shipper:
    """Parses lines with one parser and produces their attempts with a kafka-python producer.

    Not thread-safe; call `ship` for each line in file order, `flush` when the input is idle
    or ends. Returning from `ship` promises nothing about delivery; `flush` does, retrying
    what failed (`backoff`, waiting with `sleep`). A `send` that raises (the producer's buffer
    stayed full for `max_block_ms`: the broker is away) makes `ship` flush, and so retry, at
    once.
    """

    def __init__(
        self,
        producer: Any,
        topics: Topics,
        parser: LogParser,
        *,
        source: str,
        batch_size: int = 500,
        backoff: Backoff = Backoff(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.producer = producer
        self.backoff = backoff
        self.sleep = sleep
        self.topics = topics
        self.parser = parser
        self.source = source
        self.stats = ShipStats()
        self.batcher = PartitionBatcher(max_items=batch_size)
        found = producer.partitions_for(topics.attempts)
        if not found:
            raise LookupError(f"topic {topics.attempts} does not exist")
        self.partitions = sorted(found)
        self._sent: list[_Send] = []
        self._held: set[tuple[str, int | None]] = set()
        """(topic, partition)s whose send raised since the last flush: their later messages
        wait behind it, unsent, so the retry keeps the partition's order."""

    def ship(self, line: Line) -> None:
        """Parse one line and queue its attempts (or its dead letter) for sending."""
        self.stats.lines += 1
        self._queue(line)
        if self._held:
            self.flush()

    def _queue(self, line: Line) -> None:
        try:
            attempts = self.parser.feed(line.data)
        except InvalidInput as exc:
            self.stats.dead += 1
            body = envelope(line.data, exc, topic=self.source, partition=0, offset=line.number)
            self._send(self.topics.deadletter(self.topics.raw), body, None)
            return
        if not attempts:
            self.stats.skipped += 1
        for attempt in attempts:
            self.stats.attempts += 1
            partition = partition_for(attempt.recipient.encode(), self.partitions)
            for ready in self.batcher.add(partition, attempt.to_wire()):
                self._send(self.topics.attempts, ready[1], ready[0])

    def flush(self, timeout: float | None = None) -> bool:
        """Send every pending batch and wait for the broker's acks; retry the messages that
        failed, up to `backoff.retries` rounds with a growing wait, logging each round at
        WARNING (counts and the error type, never a payload). Return True when every message
        sent so far was delivered; messages still failing after the last round are dropped,
        logged at ERROR and counted in `stats.failed`.

        A message is sent again only when its own send failed, so each is delivered once (as
        far as the producer can tell; a copy would dedupe downstream by event id). Retries
        keep each partition's order: see `_resend`.
        """
        for partition, message in self.batcher.drain():
            self._send(self.topics.attempts, message, partition)
        failed = self._settle(timeout)
        for round_ in range(1, self.backoff.retries + 1):
            if not failed:
                break
            delay = self.backoff.delay(round_)
            log.warning(
                "send failed messages=%d error=%s; retry %d/%d in %.1fs",
                len(failed),
                failed[0].error_name(),
                round_,
                self.backoff.retries,
                delay,
            )
            self.sleep(delay)
            failed = self._resend(failed, timeout)
        if failed:
            self.stats.failed += len(failed)
            log.error(
                "send failed messages=%d error=%s retries=%d; dropped",
                len(failed),
                failed[0].error_name(),
                self.backoff.retries,
            )
        return self.stats.failed == 0

    def _resend(self, failed: list[_Send], timeout: float | None) -> list[_Send]:
        """Send `failed` (in send order) again in waves of one message per (topic, partition),
        so a partition's messages arrive in their order: a partition whose message fails stops
        for this round. Return what is still undelivered, each partition's in order."""
        queues: dict[tuple[str, int | None], deque[_Send]] = {}
        for item in failed:
            queues.setdefault((item.topic, item.partition), deque()).append(item)
        left: list[_Send] = []
        while queues:
            for queue in queues.values():
                self._submit(queue.popleft())
            for item in self._settle(timeout):
                left.append(item)
                left.extend(queues.pop((item.topic, item.partition)))
            queues = {key: queue for key, queue in queues.items() if queue}
        return left

    def _settle(self, timeout: float | None) -> list[_Send]:
        """Wait for every message in flight; return those not delivered, in send order."""
        self.producer.flush(timeout=timeout)
        sent, self._sent = self._sent, []
        self._held.clear()
        return [item for item in sent if item.failed()]

    def _send(self, topic: str, value: bytes, partition: int | None) -> None:
        self.stats.messages += 1
        self._submit(_Send(topic, value, partition))

    def _submit(self, item: _Send) -> None:
        """Hand `item` to the producer. A send that raises is kept as failed and holds back
        its partition's later messages (kept as failed, unsent) until the next flush."""
        key = (item.topic, item.partition)
        if key in self._held:
            item.future, item.error = None, "held"
        else:
            try:
                item.future = self.producer.send(
                    item.topic, value=item.value, partition=item.partition
                )
                item.error = ""
            except KafkaError as exc:
                item.future, item.error = None, type(exc).__name__
                self._held.add(key)
        self._sent.append(item)
