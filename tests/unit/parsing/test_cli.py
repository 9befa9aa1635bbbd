"""`bounceguard parse` end to end through the lead's dispatcher."""

from __future__ import annotations

import io
import subprocess
import sys

import orjson
import pytest

from pipeline.cli import main
from pipeline.cli.parse import parse_stream
from pipeline.core.parsing import make_parser

from .conftest import LOGS


def test_parse_file_auto(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", "--year", "2024", str(LOGS / "mixed.log")]) == 0
    out, err = capsys.readouterr()
    attempts = [orjson.loads(line) for line in out.splitlines()]
    assert len(attempts) == 13
    assert {a["outcome"] for a in attempts} == {"delivered", "deferred", "bounced", "expired"}
    assert err.strip().splitlines()[-1] == "lines=15 attempts=13 skipped=3 bad=0"


def test_bad_lines_are_reported_with_their_number() -> None:
    source = io.BytesIO(
        b"garbage\nApr  5 16:41:54 kedumba postfix/qmgr[2638]: E69DB36D4A2B: removed\n\xff\xfe\n"
    )
    out, err = io.BytesIO(), io.StringIO()
    assert parse_stream(make_parser("postfix", year=2024), source, out, err) == 0
    assert out.getvalue() == b""
    assert err.getvalue().splitlines() == [
        "line 1: unknown_format: not a syslog line",
        "line 3: bad_encoding: line is not valid UTF-8",
        "lines=3 attempts=0 skipped=1 bad=2",
    ]


def test_stdin_format_and_tenant() -> None:
    data = (LOGS / "sendmail.log").read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "parse", "--format", "sendmail", "--tenant", "acme",
         "--year", "2016", "-"],
        input=data, capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    attempts = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert [a["recipient"] for a in attempts][:3] == [
        "deferred1@example.com",
        "sent3@example2.com",
        "sent4@example2.com",
    ]
    assert {a["tenant"] for a in attempts} == {"acme"}
    assert proc.stderr.decode().strip().endswith("bad=0")


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(LOGS / "no-such-file.log")]) == 2
    assert "cannot read" in capsys.readouterr().err
