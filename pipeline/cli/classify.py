"""`bounceguard classify`: SMTP results on stdin, one JSON verdict per line on stdout.

Each input line is either a raw reply text (`550 5.1.1 <a@b.c>: ... User unknown`) or a JSON
object with `smtp_code`, `enhanced_code`, `diagnostic` and optionally `outcome`, `smtp_phase`,
`remote_mta`. Exactly one output object per input line, in order, whatever the line holds:
a line that cannot be read (bad UTF-8, broken JSON, wrong types) yields `undetermined` with an
`error` field instead of stopping the run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the subcommand's options (none yet: it is a stdin -> stdout filter)."""
    parser.set_defaults(command="classify")


def run(args: argparse.Namespace) -> int:
    """Classify every line of stdin; write one JSON object per line to stdout; return 0."""
    del args
    out = sys.stdout
    for raw in _lines(sys.stdin.buffer):
        out.write(json.dumps(verdict_for_line(raw), ensure_ascii=False) + "\n")
    out.flush()
    return 0


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    """Yield the lines of a byte stream without their line ending."""
    for line in stream:
        yield line.rstrip(b"\r\n")


def verdict_for_line(raw: bytes) -> dict[str, Any]:
    """Return the output object for one input line; never raises on bad input."""
    try:
        return _verdict(raw)
    except Exception as exc:  # one strange line must never stop the run
        return _error(f"internal_error: {type(exc).__name__}")


def _verdict(raw: bytes) -> dict[str, Any]:
    """Decode and classify one line (see `verdict_for_line`)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _error(f"bad_encoding: {exc.reason} at byte {exc.start}")
    stripped = text.strip()
    if not stripped:
        return _error("empty line")
    if stripped.startswith("{"):
        return _from_json(stripped)
    return _classify({"diagnostic": stripped})


def _from_json(text: str) -> dict[str, Any]:
    """Classify a JSON input line; errors in it become an `error` field."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return _error(f"bad_json: {exc.msg} at column {exc.colno}")
    if not isinstance(obj, dict):
        return _error("wrong_type: a JSON line must be an object")
    return _classify(obj)


def _classify(obj: dict[str, Any]) -> dict[str, Any]:
    """Validate the fields of one input object and classify it."""
    from pipeline.core.classify import classify, extract_codes
    from pipeline.core.models import Outcome

    try:
        code = _optional_int(obj.get("smtp_code"))
        enhanced = _optional_str(obj.get("enhanced_code"), "enhanced_code")
        diagnostic = _optional_str(obj.get("diagnostic"), "diagnostic") or ""
        outcome_raw = _optional_str(obj.get("outcome"), "outcome")
        outcome = Outcome(outcome_raw) if outcome_raw else None
        phase = _optional_str(obj.get("smtp_phase"), "smtp_phase")
        host = _optional_str(obj.get("remote_mta"), "remote_mta")
    except ValueError as exc:
        return _error(f"wrong_type: {exc}")
    found_code, found_enhanced = extract_codes(diagnostic)
    verdict = classify(
        code, enhanced, diagnostic, outcome=outcome, smtp_phase=phase, remote_mta=host
    )
    return {
        "category": verdict.category.value,
        "class": verdict.bounce_class.value,
        "rule": verdict.rule,
        "smtp_code": code if code is not None else found_code,
        "enhanced_code": enhanced or found_enhanced,
    }


def _optional_int(value: object) -> int | None:
    """Return an SMTP code given as int or digit string, None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("smtp_code must be an integer")
    if isinstance(value, str) and not value.strip().isdigit():
        raise ValueError("smtp_code must be an integer")
    return int(value)


def _optional_str(value: object, name: str) -> str | None:
    """Return a string field, None when absent; raise ValueError on another type."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _error(message: str) -> dict[str, Any]:
    """The output object for a line that could not be classified."""
    return {
        "category": "undetermined",
        "class": "unknown",
        "rule": "input.error",
        "smtp_code": None,
        "enhanced_code": None,
        "error": message,
    }


__all__ = ["add_arguments", "run", "verdict_for_line"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(argparse.Namespace()))
