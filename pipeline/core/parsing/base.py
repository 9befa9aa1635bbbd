"""The parser interface and the small helpers every format shares.

Responsibilities:
- `LogParser`: the one interface (`feed(line) -> list[Attempt]`) and its error contract;
- decoding a raw line (bytes or str) the same way for every format;
- the deterministic event id of a parsed attempt;
- splitting an SMTP reply into basic code, enhanced code and text, and naming the SMTP phase.

Nothing here does I/O; a parser only holds the little state its format needs (a CSV header,
recent recipients per queue id).
"""

from __future__ import annotations

import abc
import hashlib
import re
from typing import ClassVar

from pipeline.core.decode import MAX_RECORD_BYTES
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Attempt
from pipeline.core.parsing.syslog import Clock, utc_now


class LogParser(abc.ABC):
    """Turns the lines of one MTA log, in file order, into normalized attempts.

    Callers feed every line of a log in order (one instance per log stream: some formats keep
    state across lines). `feed` never blocks and does no I/O.
    """

    fmt: ClassVar[str]
    """Format name, as given to `make_parser` and used in event ids."""

    def __init__(
        self, *, tenant: str = "default", year: int | None = None, clock: Clock = utc_now
    ) -> None:
        self.tenant = tenant
        """Tenant stamped on attempts whose log line names none."""
        self.year = year
        """Year for timestamps that carry none (classic syslog); None: inferred per line."""
        self.clock = clock
        """Reference time for inferring that year (syslog.stamp_near), read per line."""

    def feed(self, line: str | bytes) -> list[Attempt]:
        """Parse one log line.

        Returns the attempts the line reports: usually one, several for a line that names
        several recipients, and an empty list for a well-formed line that reports no delivery
        result (a connection, an arrival, a queue removal, a header line, a blank line).
        Raises InvalidInput, and only InvalidInput, for a line that cannot be read: bad UTF-8
        (BAD_ENCODING), over the size limit (TOO_LARGE), not this format (UNKNOWN_FORMAT),
        a bad recipient (BAD_ADDRESS) or time (BAD_TIMESTAMP), bad JSON (BAD_JSON), ...
        A line that raised leaves the parser's state as it was.
        """
        text = decode_line(line)
        if not text.strip():
            return []
        try:
            return self._parse(text)
        except InvalidInput:
            raise
        except Exception as exc:
            # The contract promises InvalidInput only: the worker routes on type, and any other
            # exception would stop it on one strange line. A bug here must dead-letter, not crash.
            detail = f"{self.fmt} parser failed: {type(exc).__name__}: {exc}"[:200]
            raise InvalidInput(Reason.UNKNOWN_FORMAT, detail) from exc

    @abc.abstractmethod
    def _parse(self, text: str) -> list[Attempt]:
        """Parse one decoded, non-blank line (see `feed`)."""


def decode_line(line: str | bytes) -> str:
    """Return `line` as text without its line ending; raise InvalidInput for bytes that are
    not UTF-8 (BAD_ENCODING) or a line over MAX_RECORD_BYTES (TOO_LARGE)."""
    if len(line) > MAX_RECORD_BYTES:
        raise InvalidInput(Reason.TOO_LARGE, f"line is {len(line)} long (limit {MAX_RECORD_BYTES})")
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(Reason.BAD_ENCODING, "line is not valid UTF-8") from exc
    return line.rstrip("\r\n")


def event_id(fmt: str, *parts: object) -> str:
    """Return a stable 32-hex-digit id for an attempt, from its format and identity parts.

    The same log line parsed twice (a file shipped again, a replay) gives the same id, so the
    counters' event-id dedupe makes a re-ship harmless. Parts are joined with a unit separator
    so that ("ab", "c") and ("a", "bc") differ; None counts as empty.
    """
    # a list, not a generator: this runs once per log line
    text = "\x1f".join(
        ["bounceguard.attempt.v1", fmt] + ["" if p is None else str(p) for p in parts]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# A basic code (with its multi-line "550-" form), then an optional RFC 3463 enhanced code.
_REPLY = re.compile(r"^\s*(?P<code>[2-5]\d\d)(?:[ -]+(?P<enh>[245]\.\d{1,3}\.\d{1,3})\b)?")
_ENHANCED = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")


def split_reply(text: str) -> tuple[int | None, str | None]:
    """Return (basic code, enhanced code) read from the start of an SMTP reply text.

    `"550-5.1.1 The email account ..."` gives (550, "5.1.1"); `"Connection refused"` gives
    (None, None). Only the start counts: a code in the middle is usually a quoted address,
    IP or queue id ("queued as 153053D", "[10.74.103.11]").
    """
    match = _REPLY.match(text)
    if match is None:
        return None, None
    return int(match["code"]), match["enh"]


def find_enhanced(text: str) -> str | None:
    """Return the first enhanced status code (X.Y.Z, X in 2/4/5) anywhere in `text`, or None.

    For logs that put the code after a prefix ("Deferred: 451 4.3.5 ..."); the lookarounds keep
    IP addresses (10.4.2.1) from matching.
    """
    match = _ENHANCED.search(text)
    return match[1] if match else None


# SMTP phases as the logs spell them -> one spelling for all formats (documented in
# docs/parsing.md). "end of DATA" is the reply to the final dot, i.e. a verdict on content.
_PHASES = {
    "RCPT TO": "RCPT TO",
    "RCPT": "RCPT TO",
    "MAIL FROM": "MAIL FROM",
    "MAIL": "MAIL FROM",
    "DATA": "DATA",
    "END OF DATA": "end of DATA",
    ".": "end of DATA",
    "EHLO": "EHLO",
    "HELO": "HELO",
    "LHLO": "LHLO",
    "STARTTLS": "STARTTLS",
    "AUTH": "AUTH",
    "BDAT": "end of DATA",
    "CONNECT": "CONNECT",
    "INITIAL CONNECTION": "CONNECT",
    "INITIAL SERVER GREETING": "CONNECT",
    "THE INITIAL SERVER GREETING": "CONNECT",
    "QUIT": "QUIT",
}


def normalize_phase(raw: str | None) -> str | None:
    """Map an SMTP command as logged ("RCPT TO:<a@b>", "end of data", ".") to the phase name
    used on attempts ("RCPT TO", "end of DATA", ...); None when empty or not a known command."""
    if not raw:
        return None
    text = raw.strip()
    if text == ".":
        return _PHASES["."]
    key = re.sub(r"\s+", " ", text.split(":", 1)[0]).upper().removeprefix("PIPELINED ")
    if key in _PHASES:
        return _PHASES[key]
    first = key.split(" ", 1)[0]
    return _PHASES.get(first)


_HOST_END = re.compile(r"[\[\s(]")


def host_of(raw: str | None) -> str | None:
    """Return the host name of a relay as logs write it ("mx.example.net[192.0.2.1]:25",
    "mx.example.net. [192.0.2.1]", "mx.example.net (192.0.2.1)", "[192.0.2.1]"), or None for
    "none", "local" and empties."""
    if not raw:
        return None
    text = raw.strip()
    if text.startswith("["):
        host = text[1:].split("]", 1)[0]
    else:
        host = _HOST_END.split(text, maxsplit=1)[0].rstrip(".")
    if not host or host.lower() in {"none", "local"}:
        return None
    return host.lower()
