"""`make run`'s feeder: produce the sample attempts, print the suppression events they cause.

Each run gets a tenant of its own (acme-<run>) and event ids of its own, so a second
`make run` shows the same suppressions again instead of nothing (the worker remembers
what it already counted). Lines that are not valid attempts are produced as they are and
end on the dead-letter topic.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from pipeline.config import Settings

SAMPLE = Path(__file__).with_name("sample") / "attempts.jsonl"


def main() -> int:
    """Feed the sample, then print suppressions for this run's tenant for up to 30 s."""
    settings = Settings.from_env()
    run = time.strftime("%H%M%S")
    tenant = f"acme-{run}"
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka, group_id=None)
    parts = [TopicPartition(settings.topics.suppressions, p)
             for p in consumer.partitions_for_topic(settings.topics.suppressions) or []]
    consumer.assign(parts)
    consumer.seek_to_end()
    start = {p: consumer.position(p) for p in parts}
    producer = KafkaProducer(bootstrap_servers=settings.kafka, acks="all")
    sent = bad = 0
    for line in SAMPLE.read_bytes().splitlines():
        try:
            doc = orjson.loads(line)
            doc["event_id"] = f"{doc['event_id']}-{run}"
            doc["tenant"] = tenant
            producer.send(settings.topics.attempts, key=doc["recipient"].encode(),
                          value=orjson.dumps(doc))
            sent += 1
        except orjson.JSONDecodeError:
            producer.send(settings.topics.attempts, value=line)
            bad += 1
    producer.flush()
    producer.close()
    print(f"fed {sent} attempts and {bad} broken line(s) to {settings.topics.attempts} "
          f"(tenant {tenant})\n\nsuppression events:")
    for p, offset in start.items():
        consumer.seek(p, offset)
    seen = 0
    deadline = time.monotonic() + float(os.environ.get("DEMO_WAIT", "30"))
    while time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for rec in records:
                event = orjson.loads(rec.value)
                if event["tenant"] == tenant:
                    seen += 1
                    print(orjson.dumps(event, option=orjson.OPT_INDENT_2).decode())
        if seen >= 3:
            deadline = min(deadline, time.monotonic() + 2)
    consumer.close()
    print(f"\n{seen} suppression event(s) for tenant {tenant}.")
    return 0 if seen else 1


if __name__ == "__main__":
    sys.exit(main())
