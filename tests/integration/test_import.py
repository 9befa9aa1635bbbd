"""`bounceguard import-suppressions` on the real Kafka and Redis: one event per valid row, none
on a second import, the address then reads as suppressed (and can be reactivated), an address
the worker suppressed already is skipped, and an import cut short by Kafka loses nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from pipeline.cli import main
from pipeline.config import Settings
from pipeline.core.policies import load_preset
from pipeline.state.store import Store
from pipeline.stream.topics import ensure_topics
from tests.integration.conftest import free_port, read_topic

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[1] / "data" / "imports"
GOOD_SENDGRID = ["nobody@example.com", "full@example.com", "odd@example.com"]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, [x for x in out.splitlines() if x], err


@pytest.fixture
def engine(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Topics created, the command pointed at the test broker and this test's namespace."""
    ensure_topics(settings)
    monkeypatch.setenv("BOUNCEGUARD_KAFKA", settings.kafka)
    monkeypatch.setenv("BOUNCEGUARD_TOPIC_SUFFIX", settings.topic_suffix)
    return ["--redis", settings.redis_url, "--namespace", settings.namespace]


def emitted(settings: Settings, expect: int) -> list[dict[str, object]]:
    raw = read_topic(settings.kafka, settings.topics.suppressions, expect, timeout=30)
    return [orjson.loads(v) for v in raw]


def summary(err: str) -> dict[str, int]:
    last = err.strip().splitlines()[-1]
    return {k: int(v) for k, v in (part.split("=") for part in last.split())}


def test_import_emits_once_then_nothing_and_the_address_reads_suppressed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: Settings, engine: list[str]
) -> None:
    data = tmp_path / "bounces.csv"
    shutil.copy(DATA / "sendgrid.csv", data)
    argv = ["import-suppressions", *engine, "--tenant", "acme", "--format", "sendgrid", str(data)]

    code, out, err = cli(capsys, *argv)
    assert code == 1  # one bad row; the others imported
    assert "line 4: missing_field: the address is empty" in err
    assert "@" not in err  # no address on stderr
    assert summary(err) == dict(rows=4, imported=3, already=0, reactivated=0, skipped=0, bad=1)
    assert out == []
    events = emitted(settings, 3)
    assert sorted(e["address"] for e in events) == sorted(GOOD_SENDGRID)
    assert {(e["rule"], e["scope"], e["tenant"]) for e in events} == {
        ("imported", "tenant", "acme")
    }
    assert {e["address"]: e["reason"] for e in events}["nobody@example.com"] == "user_unknown"

    code, _, err = cli(capsys, *argv)
    assert code == 1
    assert summary(err)["imported"] == 0
    assert summary(err)["already"] == 3
    # the command returns after the acks, and read_topic reads on for a second after the 3rd
    assert len(emitted(settings, 3)) == 3

    code, out, _ = cli(capsys, "status", *engine, "nobody@example.com", "--tenant", "acme")
    assert code == 0
    view = orjson.loads("\n".join(out))
    suppressed = view["scopes"]["tenant"]["suppressed"]
    assert (suppressed["rule"], suppressed["reason"]) == ("imported", "user_unknown")
    assert suppressed["ts"] == "2026-03-02T09:00:00Z"
    assert view["bounce_log"][0]["event_id"] == suppressed["trigger_event_id"]
    assert "sendgrid" in view["bounce_log"][0]["diagnostic"]


async def _reactivate(settings: Settings, address: str) -> object:
    store = Store.from_url(settings.redis_url, load_preset("default"), namespace=settings.namespace)
    try:
        event = await store.reactivate(
            address, "acme", request_id="r-1", ts=datetime(2026, 5, 1, tzinfo=UTC)
        )
        if event is not None:
            await store.mark_emitted([event])
        return event
    finally:
        await store.close()


def test_a_reactivated_address_stays_active_when_the_old_export_comes_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: Settings, engine: list[str]
) -> None:
    data = tmp_path / "bounces.csv"
    shutil.copy(DATA / "sendgrid.csv", data)
    argv = ["import-suppressions", *engine, "--tenant", "acme", "--format", "sendgrid", str(data)]
    assert summary(cli(capsys, *argv)[2])["imported"] == 3
    assert asyncio.run(_reactivate(settings, "nobody@example.com")) is not None

    _, out, _ = cli(capsys, "status", *engine, "nobody@example.com", "--tenant", "acme")
    assert orjson.loads("\n".join(out))["scopes"]["tenant"]["suppressed"] is None
    err = cli(capsys, *argv)[2]
    assert summary(err)["reactivated"] == 1
    assert summary(err)["already"] == 2
    assert summary(err)["imported"] == 0


def test_an_address_the_worker_suppressed_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: Settings, engine: list[str]
) -> None:
    attempt = {
        "event_id": "e-1",
        "ts": "2026-03-01T09:00:00Z",
        "recipient": "two@example.com",
        "tenant": "acme",
        "outcome": "bounced",
        "smtp_code": 550,
        "enhanced_code": "5.1.1",
        "diagnostic": "550 5.1.1 user unknown",
    }
    attempts = tmp_path / "a.jsonl"
    attempts.write_bytes(orjson.dumps(attempt) + b"\n")
    assert len(cli(capsys, "replay", *engine, str(attempts))[1]) == 1
    argv = ["import-suppressions", *engine, "--tenant", "acme"]
    code, _, err = cli(capsys, *argv, "--at", "2026-04-01T00:00:00Z", str(DATA / "plain.txt"))
    assert code == 1  # line 4 is no address
    assert summary(err) == dict(rows=4, imported=2, already=1, reactivated=0, skipped=0, bad=1)
    events = emitted(settings, 2)
    assert sorted(e["address"] for e in events) == ["four@example.com", "one@example.com"]
    assert {e["ts"] for e in events} == {"2026-04-01T00:00:00Z"}  # --at: rows without a date


def test_an_import_cut_short_by_kafka_emits_the_same_events_on_the_next_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
    engine: list[str],
) -> None:
    argv = ["import-suppressions", *engine, "--tenant", "acme", "--format", "postmark"]
    argv.append(str(DATA / "postmark.csv"))
    # In a process of its own: kafka-python leaves sockets of a broker it never reached open.
    env = {**os.environ, "BOUNCEGUARD_KAFKA": f"127.0.0.1:{free_port()}"}  # nobody listens
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert "re-run" in proc.stderr

    code, _, err = cli(capsys, *argv)
    assert code == 0
    assert summary(err)["imported"] == 3  # recorded by the first run, emitted by this one
    assert len(emitted(settings, 3)) == 3
    assert summary(cli(capsys, *argv)[2])["imported"] == 0
