"""Every Prometheus metric, declared once. Labels never carry an address or free text."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Counter: events read from a topic, before decoding.
EVENTS_CONSUMED = Counter("bounceguard_events_consumed_total", "Events read from Kafka", ["topic"])
# Counter: attempts counted, by outcome class and category (both closed enums).
ATTEMPTS = Counter("bounceguard_attempts_total", "Attempts decoded and counted", ["outcome"])
# Counter: dead letters sent, by source topic and reason (errors.Reason values).
DEAD_LETTERS = Counter(
    "bounceguard_dead_letters_total", "Inputs sent to a dead-letter topic", ["topic", "reason"]
)
# Counter: suppression-change events emitted, by policy, rule, reason and scope.
SUPPRESSIONS = Counter(
    "bounceguard_suppressions_total",
    "Suppression events emitted",
    ["policy", "rule", "reason", "scope"],
)
# Counter: batches retried after a transient Redis or Kafka error (the batch was not acked).
RETRIES = Counter("bounceguard_batch_retries_total", "Batches retried after a transient error")
# Histogram: events per batch; buckets follow take_events' sizes (1 .. batch_size=500).
BATCH_SIZE = Histogram(
    "bounceguard_batch_size",
    "Events per processed batch",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
)
# Counter: raw log lines read by the normalize agent, by result: "attempts" (gave at least one
# attempt), "skipped" (well formed, no delivery result) or "dead_letter" (sent to the DLQ).
RAW_LINES = Counter("bounceguard_raw_lines_total", "Raw log lines normalized", ["result"])
# Counter: attempts the normalize agent produced to delivery.attempts.
ATTEMPTS_PRODUCED = Counter(
    "bounceguard_attempts_produced_total", "Attempts produced from raw log lines"
)
