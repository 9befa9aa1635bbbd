"""A DSN (RFC 3464) bounce after a logged 250, through `parse --format dsn` and `replay` on the
real Redis: the asynchronous 5.1.1 suppresses under the default preset, and the same DSN
delivered twice counts once."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from pipeline.cli import main

pytestmark = pytest.mark.integration
DSN = Path(__file__).resolve().parents[1] / "data" / "dsn"


def test_an_asynchronous_bounce_suppresses_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], redis_server: str
) -> None:
    engine = ["--redis", redis_server, "--namespace", f"dsn{uuid.uuid4().hex[:8]}"]
    delivered = {
        "event_id": "pmta-1",
        "ts": "2026-03-02T08:59:59Z",
        "recipient": "jane.doe@example.com",
        "tenant": "acme",
        "outcome": "delivered",
        "smtp_code": 250,
        "message_id": "send-7f3c2a9e01",
    }
    (tmp_path / "log.jsonl").write_bytes(orjson.dumps(delivered) + b"\n")
    assert main(["replay", *engine, str(tmp_path / "log.jsonl")]) == 0
    assert capsys.readouterr().out == ""  # the MTA log alone says "delivered"

    assert main(["parse", "--format", "dsn", str(DSN / "postfix-5.1.1.eml")]) == 0
    attempts = tmp_path / "dsn.jsonl"
    attempts.write_text(capsys.readouterr().out * 2)  # the same DSN delivered twice
    assert main(["replay", *engine, str(attempts)]) == 0
    [line] = capsys.readouterr().out.splitlines()
    event = orjson.loads(line)
    assert (event["address"], event["tenant"], event["rule"], event["reason"]) == (
        "jane.doe@example.com",
        "acme",
        "immediate_hard",
        "user_unknown",
    )
    assert main(["replay", *engine, str(attempts)]) == 0
    assert capsys.readouterr().out == ""  # and again later: nothing
