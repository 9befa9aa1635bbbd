"""What the normalize agent does with a PowerMTA file after it lost the file's header (a worker
restart or a rebalance starts its parsers empty: docs/shipping.md, "Partitioning"). The rows
go to `mta.log.raw.deadletter` as `missing_header`, none is read with assumed columns, and the
next header (the next file) is read normally. Kafka is faked here."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.stream import normalize
from tests.unit.test_no_address_in_logs import Event, process

HEADER = b"type,timeLogged,orig,rcpt,dsnStatus,dsnDiag,header_X-BG-Tenant"
ROW = b"b,1789000000,news@em.example.com,{who}@example.org,5.1.1 (bad mailbox),smtp;550 5.1.1,t1"


@dataclass
class Topic:
    """A faust topic that records the values sent (deliveries complete at once)."""

    name: str
    sent: list[bytes] = field(default_factory=list)

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, *, value: bytes, key: Any = None, partition: int | None = None) -> Any:
        self.sent.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@dataclass
class Topics:
    raw: Topic = field(default_factory=lambda: Topic("mta.log.raw"))
    attempts: Topic = field(default_factory=lambda: Topic("delivery.attempts"))
    raw_deadletter: Topic = field(default_factory=lambda: Topic("mta.log.raw.deadletter"))


class Worker(normalize.NormalizeBatch):
    """The agent's body with the attempts topic's partitions known (no producer metadata)."""

    async def _attempt_partitions(self) -> list[int]:
        return [0]


def recipients(topic: Topic) -> list[str]:
    return [a["recipient"] for value in topic.sent for a in orjson.loads(value)]


def feed(worker: Worker, *lines: bytes) -> None:
    events = [Event(line, key=b"pmta1|acct.csv") for line in lines]
    asyncio.run(process(worker, events))


def test_rows_after_a_restart_are_dead_lettered_missing_header_until_the_next_header() -> None:
    topics = Topics()
    before = Worker(None, topics)  # type: ignore[arg-type]
    feed(before, HEADER, ROW.replace(b"{who}", b"a"))
    assert recipients(topics.attempts) == ["a@example.org"]

    after = Worker(None, topics)  # type: ignore[arg-type]  # restarted: parsers empty
    feed(after, ROW.replace(b"{who}", b"b"), ROW.replace(b"{who}", b"c"))
    dead = [orjson.loads(value) for value in topics.raw_deadletter.sent]
    assert [d["reason"] for d in dead] == ["missing_header", "missing_header"]
    assert all("re-ship the file" in d["detail"] for d in dead)
    assert [d["raw"] for d in dead] == [
        ROW.replace(b"{who}", who).decode() for who in (b"b", b"c")
    ]  # kept whole, for a re-ship or a replay
    assert recipients(topics.attempts) == ["a@example.org"]  # nothing misread

    feed(after, HEADER, ROW.replace(b"{who}", b"d"))  # the next file starts with its header
    assert recipients(topics.attempts) == ["a@example.org", "d@example.org"]
