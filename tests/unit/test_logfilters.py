"""The worker's log filters (pipeline.stream.logfilters), driven with a fake clock: a Kafka
outage is one line when it starts, a summary now and then, one line when it is over; a
request aiohttp refused with a 4xx is one WARNING line without its traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest
from aiohttp.http_exceptions import LineTooLong

from pipeline.stream.logfilters import BadRequestFilter, KafkaTroubleFilter, install


class Clock:
    """Monotonic seconds that a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Capture(logging.Handler):
    """A handler that keeps the records it writes (after its filters)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, level: int = logging.WARNING) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]


@pytest.fixture
def capture() -> Iterator[tuple[Capture, Clock, KafkaTroubleFilter]]:
    clock = Clock()
    kafka = KafkaTroubleFilter(every=30.0, quiet=10.0, clock=clock)
    handler = Capture()
    install([handler], [kafka])
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.DEBUG)
    yield handler, clock, kafka
    root.removeHandler(handler)
    root.setLevel(old)


def outage(clock: Clock, seconds: float, per_second: int = 60) -> None:
    """What aiokafka and kafka-python log while the broker is down, for `seconds`."""
    client = logging.getLogger("aiokafka.client")
    fetcher = logging.getLogger("aiokafka.consumer.fetcher")
    monitor = logging.getLogger("kafka.client_async")
    for _ in range(int(seconds * per_second / 3)):
        client.error("Unable connect to node with id %s: %s", 1, "[Errno 111] refused")
        fetcher.error("Failed fetch messages from %s: %s", 1, "NodeNotReadyError")
        monitor.warning("No node available for metadata refresh - backoff/retry")
        clock.now += 3 / per_second


def test_an_outage_is_one_line_then_a_summary_every_30s_then_one_line(
    capture: tuple[Capture, Clock, KafkaTroubleFilter],
) -> None:
    """Catches: every reconnect error written (about 60 lines a second), a filter that never
    says the trouble is over, or one that drops the errors without a summary."""
    handler, clock, kafka = capture
    outage(clock, 65)
    lines = handler.lines()
    assert len(lines) == 3, lines
    assert lines[0] == "Unable connect to node with id 1: [Errno 111] refused"
    assert [r.levelname for r in handler.records] == ["ERROR", "WARNING", "WARNING"]
    for summary in lines[1:]:
        assert summary.startswith("kafka clients still failing:")
        assert "Unable connect to node with id %s: %s" in summary  # the template, counted
    kafka.flush()  # the broker is back: no more errors, but not yet `quiet` seconds of it
    assert len(handler.records) == 3
    clock.now += 10
    kafka.flush()
    kafka.flush()
    assert len(handler.records) == 4
    over = handler.records[-1]
    assert over.levelno == logging.INFO
    assert over.getMessage().startswith("kafka clients reconnected: errors stopped after 65s")


def test_a_second_outage_starts_with_its_own_first_line(
    capture: tuple[Capture, Clock, KafkaTroubleFilter],
) -> None:
    """Catches: a burst that never ends (the next outage would be silent) when no timer
    called flush in between."""
    handler, clock, _ = capture
    outage(clock, 5)
    clock.now += 60
    outage(clock, 5)
    lines = handler.lines(logging.INFO)
    assert len(lines) == 3, lines
    assert lines[1].startswith("kafka clients reconnected")
    assert lines[2] == "Unable connect to node with id 1: [Errno 111] refused"


def test_other_loggers_and_kafka_info_pass_unchanged(
    capture: tuple[Capture, Clock, KafkaTroubleFilter],
) -> None:
    """Catches: a filter that holds back our own errors or the clients' INFO lines."""
    handler, clock, _ = capture
    outage(clock, 5)
    logging.getLogger("pipeline.stream.retry").warning("retrying step=%s", "produce")
    logging.getLogger("kafkaesque").error("not a Kafka client")
    logging.getLogger("aiokafka.consumer.group_coordinator").info("Discovered coordinator 1")
    assert handler.lines(logging.INFO)[1:] == [
        "retrying step=produce",
        "not a Kafka client",
        "Discovered coordinator 1",
    ]


def test_a_record_written_by_two_handlers_is_counted_once() -> None:
    """Catches: a shared filter judging one record once per handler (the second handler
    would see the burst's first line as a repeat and drop it)."""
    clock = Clock()
    kafka = KafkaTroubleFilter(clock=clock)
    first, second = Capture(), Capture()
    install([first, second], [kafka])
    logger = logging.getLogger("aiokafka.test.two")
    logger.propagate = False
    logger.addHandler(first)
    logger.addHandler(second)
    try:
        logger.error("Unable connect to node with id %s", 1)
    finally:
        logger.removeHandler(first)
        logger.removeHandler(second)
        logger.propagate = True
    assert first.lines() == second.lines() == ["Unable connect to node with id 1"]


def _refused_header_record() -> logging.LogRecord:
    """The record aiohttp.server writes for a 100 kB Authorization header."""
    try:
        raise LineTooLong(b"Bearer s3cret" + b"x" * 100, "8190")
    except LineTooLong:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "aiohttp.server",
        logging.ERROR,
        __file__,
        1,
        "Error handling request from %s",
        ("127.0.0.1",),
        exc_info,
    )


def test_a_request_refused_with_a_4xx_is_one_warning_without_its_bytes() -> None:
    """Catches: the refused header logged at ERROR with a traceback quoting its first bytes
    (a bearer token in the log)."""
    record = _refused_header_record()
    handler = Capture()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    install([handler], [BadRequestFilter()])
    handler.handle(record)
    [line] = [handler.format(r) for r in handler.records]
    assert line == "WARNING bad HTTP request refused remote=127.0.0.1 status=400 error=LineTooLong"
    assert "s3cret" not in line and "Traceback" not in line


def test_a_server_error_keeps_its_traceback() -> None:
    """Catches: a filter that hides real bugs of a page (a 500 must stay an ERROR with its
    traceback)."""
    try:
        raise KeyError("bug")
    except KeyError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request", (), exc_info
    )
    assert BadRequestFilter().filter(record)
    assert record.levelno == logging.ERROR and record.exc_info is exc_info
