"""Error kinds, routed by type (never by message text).

`InvalidInput` means the input itself is bad: it goes to a dead-letter topic with its reason and
is never retried. `Transient` means infrastructure trouble: the batch is retried, not acked.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """Why an input was rejected; the value is the dead-letter `reason` and a metric label."""

    BAD_ENCODING = "bad_encoding"
    """Bytes are not valid UTF-8."""
    BAD_JSON = "bad_json"
    """Not parseable as JSON."""
    TOO_LARGE = "too_large"
    """Over the size limit for one record."""
    MISSING_FIELD = "missing_field"
    """A required field is absent or empty."""
    WRONG_TYPE = "wrong_type"
    """A field has the wrong JSON type or an invalid value."""
    BAD_ADDRESS = "bad_address"
    """The recipient is not a plausible e-mail address."""
    BAD_TIMESTAMP = "bad_timestamp"
    """The event time cannot be read."""
    UNKNOWN_FORMAT = "unknown_format"
    """A log line in no format we know."""
    MISSING_HEADER = "missing_header"
    """A CSV row (PowerMTA accounting) read before any header line: its columns are unknown."""
    INTERNAL = "internal_error"
    """Processing raised an unexpected error for this one input (a bug: see the worker log)."""
    NOT_AN_ATTEMPT = "not_an_attempt"
    """A well-formed log line that carries no delivery result (skipped, not dead-lettered)."""
    BAD_ARF = "bad_arf"
    """Not an ARF feedback report (RFC 5965 multipart/report with a message/feedback-report)."""
    BAD_DSN = "bad_dsn"
    """Not a delivery status notification (RFC 3464 multipart/report with a
    message/delivery-status part holding at least one recipient)."""
    UNATTRIBUTED = "unattributed"
    """A DSN whose returned message names no send (neither the join header nor a Message-ID)."""


class InvalidInput(ValueError):
    """Bad input: dead-letter it with `reason`; retrying cannot help."""

    retriable = False

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class Transient(RuntimeError):
    """Infrastructure trouble (Redis or Kafka unreachable): retry with backoff, do not ack."""

    retriable = True
