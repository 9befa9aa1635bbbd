"""`bounceguard classify`: one JSON object per input line, in order, whatever the line holds."""

from __future__ import annotations

import io
import json
import sys

import pytest

from pipeline.cli import main


def run_cli(monkeypatch: pytest.MonkeyPatch, data: bytes) -> list[dict[str, object]]:
    """Run `bounceguard classify` on `data` as stdin; return the parsed output lines."""
    stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    stdout = io.StringIO()
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["classify"]) == 0
    return [json.loads(line) for line in stdout.getvalue().splitlines()]


def test_raw_and_json_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    data = (
        b"550 5.1.1 <a@b.c>: Recipient address rejected: User unknown\n"
        b'{"smtp_code": 552, "enhanced_code": "5.2.2", "diagnostic": "Over quota"}\n'
        b'{"smtp_code": "550", "diagnostic": "ok", "outcome": "delivered"}\n'
    )
    out = run_cli(monkeypatch, data)
    assert [(o["category"], o["class"]) for o in out] == [
        ("user_unknown", "hard"),
        ("mailbox_full", "soft"),
        ("delivered", "delivered"),
    ]
    assert out[0]["smtp_code"] == 550
    assert out[0]["enhanced_code"] == "5.1.1"
    assert out[0]["rule"]


def test_strange_lines_still_get_one_object_each(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b'\n{broken\n\xff\xfe\x00 bad bytes\n[1, 2]\n{"smtp_code": [1]}\n{"outcome": "nope"}\n'
    out = run_cli(monkeypatch, data)
    assert len(out) == 6
    assert all(o["category"] == "undetermined" for o in out)
    assert [bool(o.get("error")) for o in out] == [True, True, True, False, True, True]


def test_last_line_without_newline_and_crlf(monkeypatch: pytest.MonkeyPatch) -> None:
    out = run_cli(monkeypatch, b"552 5.2.2 Mailbox full\r\n421 4.7.0 Try again later")
    assert [o["class"] for o in out] == ["soft", "soft"]
