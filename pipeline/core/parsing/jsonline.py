"""Our own attempt JSON (schemas/delivery.attempt.v1.json), one object or array per line.

A thin adapter over `pipeline.core.decode.decode_attempts`, so a line is accepted or rejected
exactly as a `delivery.attempts` message would be. The JSON is authoritative: its `tenant`,
`event_id` and the rest are kept as written (the factory tenant is not applied).
"""

from __future__ import annotations

from typing import ClassVar

from pipeline.core.decode import decode_attempts
from pipeline.core.models import Attempt
from pipeline.core.parsing.base import LogParser


class JsonLineParser(LogParser):
    """Attempt JSON lines; see the module docstring."""

    fmt: ClassVar[str] = "json"

    def _parse(self, text: str) -> list[Attempt]:
        return decode_attempts(text)
