"""Fixtures shared by the parser tests: the real-log files under tests/data/logs."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.errors import InvalidInput
from pipeline.core.models import Attempt
from pipeline.core.parsing import LogParser

LOGS = Path(__file__).resolve().parents[2] / "data" / "logs"


def feed_file(parser: LogParser, name: str) -> list[tuple[int, list[Attempt] | InvalidInput]]:
    """Feed every line of tests/data/logs/<name> as bytes; return (line number, result)."""
    results: list[tuple[int, list[Attempt] | InvalidInput]] = []
    for number, raw in enumerate((LOGS / name).read_bytes().splitlines(keepends=True), 1):
        try:
            results.append((number, parser.feed(raw)))
        except InvalidInput as exc:
            results.append((number, exc))
    return results


def attempts_by_line(parser: LogParser, name: str) -> dict[int, list[Attempt]]:
    """Like feed_file, but fails the test on any InvalidInput."""
    out: dict[int, list[Attempt]] = {}
    for number, result in feed_file(parser, name):
        assert not isinstance(result, InvalidInput), f"{name}:{number}: {result}"
        out[number] = result
    return out
