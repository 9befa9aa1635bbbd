"""The console's sweep preview (pipeline/state/preview.py) against the sweep itself: the same
state in the real test Redis, built by `bounceguard replay`, must give the preview exactly
the scopes `bounceguard sweep --print-only` then suppresses, with the same numbers."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.cli.replay import with_store
from pipeline.state import preview
from tests.integration import test_cli_policy
from tests.integration.test_cli_policy import cli, line

pytestmark = pytest.mark.integration
common = test_cli_policy.common
"""The fixture of that module: a Redis URL and a namespace of this test's own."""
AT = "2026-06-01T00:00:00Z"
RESULTS = {
    "full": (452, "4.2.2", "452 4.2.2 Mailbox full", "deferred"),
    "timeout": (451, "4.4.1", "connection timed out", "deferred"),
    "grey": (451, "4.7.1", "451 4.7.1 Greylisted, please try again later", "deferred"),
    "spam": (550, "5.7.1", "550 5.7.1 Message rejected as spam by Content Filtering", "bounced"),
    "dns": (550, "5.1.2", "550 5.1.2 Host or domain name not found", "bounced"),
    "disabled": (
        550,
        "5.2.1",
        "550 5.2.1 The email account that you tried to reach is disabled",
        "bounced",
    ),
}
# address, list, [result per campaign]: counts just under and at each tier's minimum, a
# delivery that resets, two lists of one address, a reason in no tier (needs more than 8)
CASES: list[tuple[str, str, list[str]]] = [
    ("full7@example.com", "news", ["full"] * 7),
    ("full8@example.com", "news", ["full"] * 8),
    ("grey8@example.com", "cart", ["grey"] * 8),
    ("timeout1@example.com", "news", ["timeout"]),
    ("dns1@example.com", "cart", ["dns"]),
    ("spam8@example.com", "news", ["spam"] * 8),
    ("spam9@example.com", "news", ["spam"] * 9),
    ("reset@example.com", "news", ["timeout", "timeout", "ok"]),
    ("two@example.com", "news", ["full"] * 8),
    ("two@example.com", "cart", ["disabled", "full"]),
]


def events() -> list[str]:
    """The CASES as attempt lines, one campaign a day."""
    out = []
    for address, list_id, results in CASES:
        for day, name in enumerate(results, start=1):
            fields: dict[str, Any] = {"outcome": "delivered", "smtp_code": 250}
            if name != "ok":
                code, enhanced, text, outcome = RESULTS[name]
                fields = {
                    "outcome": outcome,
                    "smtp_code": code,
                    "enhanced_code": enhanced,
                    "diagnostic": text,
                }
            out.append(
                line(
                    event_id=f"{address}-{list_id}-{day}",
                    ts=f"2026-03-{day:02d}T09:00:00Z",
                    recipient=address,
                    list_id=list_id,
                    campaign_id=f"{list_id}{day}",
                    **fields,
                )
            )
    return out


def test_the_preview_names_what_the_sweep_then_suppresses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], common: list[str]
) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(events()) + "\n")
    listrak = ["--policy", "listrak", *common]
    assert cli(capsys, "replay", *listrak, str(data))[0] == 0
    args = argparse.Namespace(
        policy="listrak", policy_file=None, redis=common[1], namespace=common[3]
    )
    at = datetime.fromisoformat(AT.replace("Z", "+00:00")).astimezone(UTC)
    found = with_store(args, lambda store: preview.sweep_preview(store, "acme", at))
    _, out, _ = cli(capsys, "sweep", *listrak, "--tenant", "acme", "--at", AT, "--print-only")
    swept = sorted(
        (e["address"], e["list_id"], e["reason"], e["count"], e["threshold"])
        for e in map(orjson.loads, out)
    )
    assert sorted((c.address, c.list_id, c.reason, c.count, c.threshold) for c in found) == swept
    assert [s[:2] for s in swept] == [  # the cases at or over their minimum, nothing else
        ("dns1@example.com", "cart"),
        ("full8@example.com", "news"),
        ("grey8@example.com", "cart"),
        ("spam9@example.com", "news"),
        ("timeout1@example.com", "news"),
        ("two@example.com", "news"),
    ]
    # the sweep marked them suppressed (pending until emitted): the preview now names none
    assert with_store(args, lambda store: preview.sweep_preview(store, "acme", at)) == []
