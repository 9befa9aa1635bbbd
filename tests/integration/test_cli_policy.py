"""`bounceguard replay | status | report | sweep` against the real test Redis."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from pipeline.cli import main
from pipeline.config import Settings
from pipeline.stream.topics import ensure_topics
from tests.integration.conftest import read_topic

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def line(**fields: Any) -> str:
    base = {"ts": "2026-03-02T09:00:00Z", "recipient": "gone@example.com", "tenant": "acme"}
    return orjson.dumps({**base, **fields}).decode()


def bounce(event_id: str, **fields: Any) -> str:
    return line(
        event_id=event_id,
        outcome="bounced",
        smtp_code=550,
        enhanced_code="5.1.1",
        diagnostic="550 5.1.1 user unknown",
        **fields,
    )


def slow_timeouts(prefix: str) -> list[str]:
    """Two transient failures of slow@example.com on list cart, two campaigns a day apart
    (listrak's cleanup unsubscribes a transient failure at any count)."""
    return [
        line(
            event_id=f"{prefix}{i}",
            ts=f"2026-03-{i + 1:02d}T09:00:00Z",
            outcome="deferred",
            smtp_code=451,
            enhanced_code="4.4.1",
            diagnostic="connection timed out",
            recipient="slow@example.com",
            list_id="cart",
            campaign_id=f"c{i}",
        )
        for i in range(2)
    ]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, [x for x in out.splitlines() if x], err


@pytest.fixture
def common(redis_server: str) -> list[str]:
    return ["--redis", redis_server, "--namespace", f"cli{uuid.uuid4().hex[:8]}"]


def test_replay_prints_in_trip_order_reports_bad_lines_and_is_idempotent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], common: list[str]
) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text(
        "\n".join(
            [
                bounce("e1"),
                "this is not json",
                line(type="complaint", event_id="e2", recipient="spam@example.com"),
                line(event_id="e3", outcome="bounced", recipient="not-an-address"),
                line(type="engagement", event_id="e4", action="click"),
                bounce("e1"),  # the same event again
            ]
        )
        + "\n"
    )
    code, out, err = cli(capsys, "replay", *common, str(data))
    assert code == 0
    events = [orjson.loads(x) for x in out]
    assert [(e["address"], e["rule"]) for e in events] == [
        ("gone@example.com", "immediate_hard"),
        ("spam@example.com", "complaint"),
    ]
    schema = orjson.loads((ROOT / "schemas" / "suppression.event.v1.json").read_bytes())
    for event in events:
        jsonschema.validate(event, schema)
    assert "line 2: bad_json" in err and "line 4: bad_address" in err
    code, out, _ = cli(capsys, "replay", *common, str(data))
    assert (code, out) == (0, [])


def test_replay_listrak_with_sweep_at_the_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], common: list[str]
) -> None:
    rows = [
        line(
            event_id=f"m{i}",
            ts=f"2026-03-{i + 1:02d}T09:00:00Z",
            outcome="deferred",
            smtp_code=452,
            enhanced_code="4.2.2",
            diagnostic="mailbox full",
            list_id="marketing",
            campaign_id=f"c{i}",
        )
        for i in range(8)
    ]
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(rows[:7]) + "\n")
    assert cli(capsys, "replay", "--policy", "listrak", "--sweep", *common, str(data))[1] == []
    data.write_text("\n".join(rows) + "\n")
    _, out, _ = cli(capsys, "replay", "--policy", "listrak", "--sweep", *common, str(data))
    events = [orjson.loads(x) for x in out]
    assert [(e["rule"], e["list_id"], e["count"], e["scope"]) for e in events] == [
        ("bounce_cleanup", "marketing", 8, "list")
    ]
    assert events[0]["ts"] == "2026-03-08T09:00:00Z"


def test_replay_raw_postfix_log(capsys: pytest.CaptureFixture[str], common: list[str]) -> None:
    code, out, _ = cli(
        capsys, "replay", "--format", "postfix", *common, str(ROOT / "tests/data/logs/postfix.log")
    )
    assert code == 0
    assert out, "the sample log has hard bounces"
    assert all(orjson.loads(x)["action"] == "suppressed" for x in out)


def test_status_report_and_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], common: list[str]
) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join([bounce("e1", list_id="cart"), *slow_timeouts("s")]) + "\n")
    listrak = ["--policy", "listrak", *common]
    assert len(cli(capsys, "replay", *listrak, str(data))[1]) == 1

    code, out, _ = cli(
        capsys, "status", *listrak, "Gone@Example.com", "--tenant", "acme", "--list", "cart"
    )
    assert code == 0
    view = orjson.loads("\n".join(out))
    assert view["scopes"]["list"]["suppressed"]["rule"] == "immediate_hard"
    assert view["bounce_log"][0]["diagnostic"] == "550 5.1.1 user unknown"

    _, out, _ = cli(capsys, "report", *listrak, "--tenant", "acme", "--format", "csv")
    assert out[0] == "address,list_id,latest_reason,bounce_count,latest_ts,suppressed"
    assert sorted(x.split(",")[0:4] for x in out[1:]) == [
        ["gone@example.com", "cart", "user_unknown", "1"],
        ["slow@example.com", "cart", "transient", "2"],
    ]

    sweep = ["sweep", *listrak, "--tenant", "acme", "--at", "2026-06-01T00:00:00Z", "--print-only"]
    _, out, _ = cli(capsys, *sweep)
    assert [(orjson.loads(x)["address"], orjson.loads(x)["rule"]) for x in out] == [
        ("slow@example.com", "bounce_cleanup")
    ]
    # --print-only marks nothing emitted: the same run gives the same events (same ids) again.
    assert cli(capsys, *sweep)[1] == out


def test_installed_entry_point_runs(common: list[str], tmp_path: Path) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text(bounce("x1") + "\n")
    exe = Path(sys.executable).with_name("bounceguard")
    proc = subprocess.run(
        [str(exe), "replay", *common, str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(proc.stdout)["rule"] == "immediate_hard"


def test_sweep_delivers_its_events_to_kafka_before_marking_them(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ensure_topics(settings)
    monkeypatch.setenv("BOUNCEGUARD_KAFKA", settings.kafka)
    monkeypatch.setenv("BOUNCEGUARD_TOPIC_SUFFIX", settings.topic_suffix)
    engine = [
        "--policy",
        "listrak",
        "--redis",
        settings.redis_url,
        "--namespace",
        settings.namespace,
    ]
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(slow_timeouts("t")) + "\n")
    assert cli(capsys, "replay", *engine, str(data))[1] == []
    sweep = ["sweep", *engine, "--at", "2026-06-01T00:00:00Z"]
    code, out, _ = cli(capsys, *sweep)
    assert code == 0
    [printed] = [orjson.loads(x) for x in out]
    [delivered] = [
        orjson.loads(v) for v in read_topic(settings.kafka, settings.topics.suppressions, 1)
    ]
    assert delivered == printed
    assert cli(capsys, *sweep)[1] == []  # delivered, so marked: nothing again
