"""The normalize agent: raw MTA log lines (`mta.log.raw`) -> attempts (`delivery.attempts`).

Responsibilities:
- unwrap what shippers send: a bare log line (rsyslog omkafka, `bounceguard ship`'s raw mode),
  or a JSON object whose `message` (Vector, Filebeat) or `log` (Fluent Bit) field is the line,
  with optional `tenant`, `host` and `file` fields (`unwrap`);
- parse the line with the core parsers (`auto`), one stateful parser per log stream;
- produce the attempts to `delivery.attempts` as JSON arrays per partition, each to the
  partition its recipients' key picks, so one address's events stay in order on one
  partition for the count agent (and pay faust's per-message cost once per array);
- dead-letter what cannot be read to `mta.log.raw.deadletter` with its reason; an empty
  message too (missing_field, the rule of every input topic: decode.check_not_empty).

Partitioning (a requirement on shippers): PowerMTA's CSV header and Postfix's memory of
deferred recipients (for the recipient-less `status=expired` line) span lines, so every line of
one log file must reach the same parser in file order. A parser is kept per (partition, tenant,
source), where source is the wrapper's host and file, else the Kafka message key. So shippers
must key raw lines by host or by file (never round-robin): then one file stays on one
partition, in order. Lines of several files on one partition are fine when each names its
host/file (wrapper) or key. After a restart or a rebalance the parsers start empty: the rows
of a PowerMTA file whose header was read before the committed offset are dead-lettered as
`missing_header` until its next header, and an `expired` line whose deferrals were read before
is skipped (docs/shipping.md, "After a restart or a rebalance", says why and what to do).

Order inside a unit (STYLE.md, as in `apply.py`; the loop is pipeline.stream.batch):
  1. Parse every line (while the previous unit is being produced). A bad one goes to the
     dead-letter topic; await delivery.
  2. Produce the attempts and await every delivery (retried with backoff on Kafka errors).
  3. Return, and only then are the unit's messages acked.
A crash between 2 and 3 re-reads the unit and produces its attempts again with the same event
ids (they come from the log line), so the count agent's replay guard makes the copies no-ops.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import Settings
from pipeline.core.decode import check_not_empty, load_json
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Attempt
from pipeline.core.parsing import LogParser, make_parser
from pipeline.core.parsing.kumomta import KNOWN_TYPES
from pipeline.core.parsing.syslog import Clock, utc_now
from pipeline.stream import deadletter, metrics
from pipeline.stream.batch import run_batches
from pipeline.stream.retry import retry_transient
from pipeline.stream.shipper import PartitionBatcher, partition_for
from pipeline.stream.topics import AppTopics

log = logging.getLogger(__name__)

MAX_STREAMS = 4096
"""Parsers kept at once (LRU): each holds at most a CSV header or a bounded Postfix memory."""
_LINE_KEYS = ("message", "log")
_MAX_TENANT = 200


@dataclass(frozen=True, slots=True)
class RawLine:
    """One log line taken out of a `mta.log.raw` message."""

    line: bytes | str
    """The log line itself (the message, or its wrapper's `message`/`log` field)."""
    tenant: str | None
    """The wrapper's tenant, when it names one."""
    source: str | None
    """The wrapper's host and file (`host|file`), when it names them."""


def unwrap(value: bytes) -> RawLine:
    """Return the log line in one raw-topic message `value`.

    A JSON object with a string `message` or `log` field (and no attempt or KumoMTA record
    shape) is a shipper's wrapper: the field is the line; `tenant` (or Filebeat's
    `fields.tenant`), `host` (or `host.name`) and `file` (or `path`, Filebeat's
    `log.file.path`) are read when present. Anything else is the line itself (the parser
    decides what it is). Raises InvalidInput for a JSON-looking message that does not decode
    (BAD_JSON, BAD_ENCODING, TOO_LARGE) or a wrapper `tenant` that is not a short string
    (WRONG_TYPE).
    """
    if value.lstrip()[:1] != b"{":
        return RawLine(value, None, None)
    doc = load_json(value)
    if not isinstance(doc, Mapping) or not _is_wrapper(doc):
        return RawLine(value, None, None)
    line = next(doc[k] for k in _LINE_KEYS if isinstance(doc.get(k), str))
    host = _text(doc.get("host")) or _text(_field(doc, "host", "name"))
    path = _text(doc.get("file")) or _text(doc.get("path"))
    path = path or _text(_field(doc, "log", "file", "path"))
    source = f"{host or ''}|{path or ''}" if host or path else None
    return RawLine(line, _tenant(doc), source)


def _is_wrapper(doc: Mapping[str, Any]) -> bool:
    if "event_id" in doc and "outcome" in doc:
        return False  # our own attempt JSON
    if doc.get("type") in KNOWN_TYPES:
        return False  # a KumoMTA log record
    return any(isinstance(doc.get(k), str) for k in _LINE_KEYS)


def _field(doc: Mapping[str, Any], *path: str) -> Any:
    """doc[path[0]][path[1]]..., or None where a level is missing or not an object."""
    node: Any = doc
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _tenant(doc: Mapping[str, Any]) -> str | None:
    value = doc.get("tenant", _field(doc, "fields", "tenant"))
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > _MAX_TENANT:
        raise InvalidInput(Reason.WRONG_TYPE, f"tenant must be a string of <= {_MAX_TENANT}")
    return value


@dataclass
class LineUnit:
    """Consecutive raw-topic messages, parsed: per message its attempts or its error."""

    messages: list[Any] = field(default_factory=list)
    parsed: list[list[Attempt] | InvalidInput] = field(default_factory=list)


class NormalizeBatch:
    """The normalize agent's body (see pipeline.stream.batch.BatchBody).

    Holds the stateful parsers, one per (partition, tenant, source), least recently used
    dropped first beyond MAX_STREAMS. Classic syslog stamps have no year: each line's is
    inferred from `clock()` (processing time) as it is parsed, so a December line read in
    January is December of last year (`pipeline.core.parsing.syslog.stamp_near`).

    The bounce-mail agent (pipeline.stream.mail) is this body with another `parse`, source
    topic and counters: the unit/ack order and the fallback below are shared, not copied.
    """

    name = "normalize"
    """The agent's name in log lines."""
    results: Any = metrics.RAW_LINES
    """Counter of messages read, by result: attempts, skipped, dead_letter."""
    produced: Any = metrics.ATTEMPTS_PRODUCED
    """Counter of the attempts produced to delivery.attempts."""

    def __init__(
        self,
        app: Any,
        topics: AppTopics,
        *,
        default_tenant: str = "default",
        max_lines: int = 5000,
        clock: Clock = utc_now,
    ) -> None:
        self.app = app
        self.topics = topics
        self.default_tenant = default_tenant
        self.max_lines = max_lines
        self.clock = clock
        self._parsers: OrderedDict[tuple[int, str, str], LogParser] = OrderedDict()
        self._partitions: list[int] | None = None

    def units(self, messages: Sequence[Any]) -> Iterator[LineUnit]:
        """Parse `messages` in units of at most `max_lines` lines (step 1's CPU half)."""
        if messages:
            topic = self._source_topic().get_topic_name()
            metrics.EVENTS_CONSUMED.labels(topic).inc(len(messages))
        unit = LineUnit()
        for message in messages:
            unit.messages.append(message)
            try:
                unit.parsed.append(self.parse(message))
            except InvalidInput as exc:
                unit.parsed.append(exc)
            if len(unit.messages) >= self.max_lines:
                yield unit
                unit = LineUnit()
        if unit.messages:
            yield unit

    def messages_of(self, unit: LineUnit) -> Sequence[Any]:
        """The faust events of `unit`."""
        return unit.messages

    async def finish(self, unit: LineUnit) -> None:
        """Dead-letter the bad lines, produce the attempts as arrays per partition and await
        every delivery. Never raises except on cancellation."""
        metrics.BATCH_SIZE.observe(len(unit.messages))
        try:
            await self._finish(unit)
        except Exception as exc:
            # Not reachable by bad input (parsing catches per line); a bug or a non-retriable
            # broker answer. Dead-letter rather than let faust skip the batch (faust #315).
            # Type only at ERROR: the exception's text may quote an address (STYLE.md 10).
            log.debug("normalize batch failure", exc_info=True)
            if len(unit.messages) == 1:
                log.error("%s failed error=%s; dead-lettering it", self.name, type(exc).__name__)
                await self._dead_letter(
                    unit.messages[0], InvalidInput(Reason.INTERNAL, "internal error")
                )
                return
            # One line at a time (already parsed: the parsers are not fed twice), so only the
            # line that fails is dead-lettered.
            log.error(
                "%s batch failed error=%s; retrying one by one", self.name, type(exc).__name__
            )
            for message, parsed in zip(unit.messages, unit.parsed, strict=True):
                await self.finish(LineUnit([message], [parsed]))

    async def _finish(self, unit: LineUnit) -> None:
        attempts: list[Attempt] = []
        dead = []
        skipped = 0
        for message, parsed in zip(unit.messages, unit.parsed, strict=True):
            if isinstance(parsed, InvalidInput):
                dead.append(self._dead_letter(message, parsed))
            elif parsed:
                attempts.extend(parsed)
            else:
                skipped += 1
        # tallied per unit, not per line: a labels() lookup per line was a measurable share
        tally = (("dead_letter", len(dead)), ("skipped", skipped))
        for result, n in (("attempts", len(unit.messages) - len(dead) - skipped), *tally):
            if n:
                self.results.labels(result).inc(n)
        await asyncio.gather(*dead)  # step 1
        await retry_transient("produce", lambda: self._produce(attempts))  # step 2
        self.produced.inc(len(attempts))

    def parse(self, event: Any) -> list[Attempt]:
        """Return the attempts of one raw-topic event; raise InvalidInput only: MISSING_FIELD
        for an empty message, the parser's reason for a bad line (an unexpected error is a
        bug and becomes INTERNAL, so the line is dead-lettered, not lost)."""
        try:
            raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
            check_not_empty(raw)
            line = unwrap(raw)
            source = line.source or (event.key.decode(errors="replace") if event.key else "")
            parser = self._parser(event.message.partition, line.tenant, source)
            return parser.feed(line.line)
        except InvalidInput:
            raise
        except Exception as exc:
            # Type only at ERROR: a parser's exception text may quote the line (an address).
            log.error("normalize failed on one line error=%s", type(exc).__name__)
            log.debug("normalize failure", exc_info=True)
            raise InvalidInput(Reason.INTERNAL, type(exc).__name__) from exc

    def _parser(self, partition: int, tenant: str | None, source: str) -> LogParser:
        tenant = tenant or self.default_tenant
        key = (partition, tenant, source)
        parser = self._parsers.get(key)
        if parser is None:
            parser = self._parsers[key] = make_parser("auto", tenant=tenant, clock=self.clock)
            if len(self._parsers) > MAX_STREAMS:
                self._parsers.popitem(last=False)
        else:
            self._parsers.move_to_end(key)
        return parser

    async def _produce(self, attempts: Sequence[Attempt]) -> None:
        """Send `attempts` as JSON arrays, one or more per partition, each to the partition
        its recipients' key would pick (as `bounceguard ship` does): the count agent reads
        an address's attempts in order on one partition, at a fraction of the per-message
        cost of one message each."""
        if not attempts:
            return
        partitions = await self._attempt_partitions()
        batcher = PartitionBatcher()
        ready: list[tuple[int, bytes]] = []
        for a in attempts:
            partition = partition_for(a.recipient.encode(), partitions)
            ready += batcher.add(partition, a.to_wire())
        ready += batcher.drain()
        futures = [
            await self.topics.attempts.send(value=body, partition=partition)
            for partition, body in ready
        ]
        await asyncio.gather(*futures)

    async def _attempt_partitions(self) -> list[int]:
        """The partitions of `delivery.attempts`, from the producer's metadata (cached: a
        topic's partition count changes only with a redeploy, which restarts the workers)."""
        if self._partitions is None:
            # faust's Producer keeps the aiokafka producer behind _ensure_producer; aiokafka's
            # partitions_for waits for the topic's metadata.
            producer = self.app.producer._ensure_producer()
            found = await producer.partitions_for(self.topics.attempts.get_topic_name())
            self._partitions = sorted(found)
        return self._partitions

    def _source_topic(self) -> Any:
        """The faust topic this body consumes (metrics label)."""
        return self.topics.raw

    async def _dead_letter(self, event: Any, error: InvalidInput) -> None:
        await deadletter.send_dead_letter(self.topics.raw_deadletter, event, error)


def attach(app: Any, settings: Settings, topics: AppTopics) -> None:
    """Attach the normalize agent (`mta.log.raw` -> `delivery.attempts`) to `app`."""
    batch = NormalizeBatch(
        app, topics, default_tenant=settings.raw_tenant, max_lines=settings.batch_attempts
    )

    @app.agent(topics.raw, concurrency=1)  # type: ignore[untyped-decorator]
    async def normalize(stream: Any) -> None:
        await run_batches(stream, batch, take=settings.batch_size, within=settings.batch_within)
