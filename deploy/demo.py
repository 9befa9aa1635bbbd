"""`make run`'s feeder: ship the sample MTA logs and attempts, print the suppressions.

Raw Postfix, Exim, PowerMTA and KumoMTA logs (tests/data/logs/) and our own attempt JSONL
(deploy/sample/attempts.jsonl) go through `bounceguard ship`, exactly as an operator would
ship them. Event ids come from the lines themselves, so a second `make run` counts nothing
again: it prints the same suppression events (same ids) that the first run caused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
from kafka import KafkaConsumer

from pipeline.config import Settings

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = [
    (ROOT / "tests/data/logs/postfix.log", "postfix"),
    (ROOT / "tests/data/logs/exim.log", "exim"),
    (ROOT / "tests/data/logs/pmta-acct.csv", "pmta"),
    (ROOT / "tests/data/logs/kumo.jsonl", "kumo"),
    (ROOT / "deploy/sample/attempts.jsonl", "json"),
]
TENANTS = {"demo", "acme"}
QUIET_SECONDS = 4.0


def ship_samples() -> None:
    """Ship every sample file with `bounceguard ship` (tenant demo where a line names none)."""
    for path, fmt in SAMPLES:
        print(f"$ bounceguard ship --format {fmt} --tenant demo {path.relative_to(ROOT)}")
        subprocess.run(
            [sys.executable, "-m", "pipeline", "ship", "--format", fmt, "--tenant", "demo",
             "--progress", "0", "--year", "2026", str(path)],
            check=True, cwd=ROOT,
        )


def read_suppressions(settings: Settings, wait: float) -> list[dict[str, object]]:
    """Suppression events of the demo tenants, read from the start of the topic until no new
    one arrived for QUIET_SECONDS (at most `wait` seconds)."""
    consumer = KafkaConsumer(
        settings.topics.suppressions, bootstrap_servers=settings.kafka, group_id=None,
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    found: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + wait
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline and time.monotonic() - last_new < QUIET_SECONDS:
            for records in consumer.poll(timeout_ms=500).values():
                for rec in records:
                    event = orjson.loads(rec.value)
                    if event["tenant"] in TENANTS and event["event_id"] not in found:
                        found[str(event["event_id"])] = event
                        last_new = time.monotonic()
    finally:
        consumer.close()
    return list(found.values())


def main() -> int:
    """Ship the samples and print the suppression events; exit 1 when none came out."""
    settings = Settings.from_env()
    ship_samples()
    events = read_suppressions(settings, float(os.environ.get("DEMO_WAIT", "45")))
    print(f"\nsuppression events on {settings.topics.suppressions} (tenants demo, acme):")
    for e in sorted(events, key=lambda e: (str(e["tenant"]), str(e["address"]))):
        print(f"  {e['address']:<45} {e['reason']:<16} rule={e['rule']:<18} "
              f"tenant={e['tenant']} id={e['event_id']}")
    print(f"\n{len(events)} suppression event(s). Full JSON of one:")
    if events:
        print(orjson.dumps(events[0], option=orjson.OPT_INDENT_2).decode())
    return 0 if events else 1


if __name__ == "__main__":
    sys.exit(main())
