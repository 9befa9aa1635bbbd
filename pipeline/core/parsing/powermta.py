"""PowerMTA accounting CSV rows -> attempts.

The accounting file is RFC 4180 CSV whose first line names the columns (`type,timeLogged,...`;
`record-fields` decides which and in what order), so the parser reads that header and looks
every field up by name. A new header line (a rotated file arriving on the same stream) replaces
the columns. A record row read before any header (a stream that starts mid-file, or a parser
that was started again after a restart or rebalance) is rejected as MISSING_HEADER: the columns
are per file (`record-fields`), and reading the row with assumed columns could take the sender
or another column for the recipient or tenant.

Record types: `d` delivered, `b` bounce, `rb` remote (asynchronous, DSN) bounce -> bounced,
`t` transient -> deferred. `tq`, `r`, `f`, `rs` and any other type give no attempt (`f`
feedback rows are complaints, not delivery results).

Fields read (names compared case-insensitively): `rcpt` (required), `timeLogged` (epoch
seconds or `YYYY-MM-DD HH:MM:SS+ZZZZ`; `timeQueued` when the file has no timeLogged),
`dsnStatus` (`5.1.1 (bad destination mailbox address)`), `dsnDiag` (`smtp;550 5.1.1
user unknown`), `dsnMta` (`mx.example.net
(192.0.2.1)`), `jobId` -> campaign_id, `envId` or `header_Message-Id` -> message_id,
`header_X-BG-List`/`header_List-Id`/`header_X-List-Id` -> list_id, `header_X-BG-Tenant` ->
tenant, plus `timeQueued` and `vmta` for the event id.
"""

from __future__ import annotations

import csv
import re
from datetime import datetime
from typing import ClassVar

from pipeline.core.decode import normalize_address, parse_ts
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Attempt, Outcome
from pipeline.core.parsing.base import LogParser, event_id, find_enhanced, host_of, split_reply
from pipeline.core.parsing.syslog import Clock, utc_now

RECORD_TYPES = frozenset({"d", "b", "t", "tq", "r", "f", "rb", "rs"})
"""The accounting record types (first column, `type`), lower case."""

_OUTCOMES = {
    "d": Outcome.DELIVERED,
    "b": Outcome.BOUNCED,
    "rb": Outcome.BOUNCED,
    "t": Outcome.DEFERRED,
}
_LIST_COLUMNS = ("header_x-bg-list", "header_x-list-id", "header_list-id")
_MESSAGE_ID_COLUMNS = ("envid", "header_message-id")
_EPOCH = re.compile(r"^\d{9,11}(?:\.\d+)?$")


class PowerMtaParser(LogParser):
    """PowerMTA accounting CSV; see the module docstring."""

    fmt: ClassVar[str] = "pmta"

    def __init__(
        self, *, tenant: str = "default", year: int | None = None, clock: Clock = utc_now
    ) -> None:
        super().__init__(tenant=tenant, year=year, clock=clock)
        self._columns: tuple[str, ...] | None = None
        """The last header's column names, lower case; None before any header."""

    def _parse(self, text: str) -> list[Attempt]:
        try:
            cells = next(csv.reader([text], strict=True))
        except (csv.Error, StopIteration) as exc:
            raise InvalidInput(Reason.UNKNOWN_FORMAT, f"not a CSV row: {exc}") from exc
        if cells and cells[0].strip().lower() == "type":
            self._columns = tuple(c.strip().lower() for c in cells)
            return []
        row = dict(zip(self._columns_of(cells), (c.strip() for c in cells), strict=True))
        outcome = _OUTCOMES.get(row["type"].lower())
        return [] if outcome is None else [self._attempt(row, outcome)]

    def _columns_of(self, cells: list[str]) -> tuple[str, ...]:
        """Return the columns of a data row: the header's when one was read and the cell
        counts agree. Raises MISSING_HEADER for a record row before any header, and
        UNKNOWN_FORMAT for a row that is no record or whose cell count differs."""
        if self._columns is None:
            if cells[0].strip().lower() in RECORD_TYPES:
                raise InvalidInput(
                    Reason.MISSING_HEADER,
                    "PowerMTA row before any header line, columns unknown (the stream started "
                    "mid-file, or the worker restarted or rebalanced after the header): "
                    "re-ship the file from its start",
                )
            raise InvalidInput(Reason.UNKNOWN_FORMAT, "not a PowerMTA accounting row")
        if len(cells) != len(self._columns):
            raise InvalidInput(
                Reason.UNKNOWN_FORMAT,
                f"row has {len(cells)} fields, the header has {len(self._columns)}",
            )
        return self._columns

    def _attempt(self, row: dict[str, str], outcome: Outcome) -> Attempt:
        """Build the attempt of one accounting row."""
        recipient = normalize_address(row.get("rcpt", ""))
        # A file whose record-fields omit timeLogged still has timeQueued (port25's bounce
        # file does): earlier than the event, but better than dropping the row.
        ts = _pmta_ts(row.get("timelogged") or row.get("timequeued", ""))
        diagnostic, code, enhanced = _diagnostic(row)
        return Attempt(
            event_id=event_id(
                self.fmt,
                row["type"],
                recipient,
                row.get("timelogged"),
                row.get("timequeued"),
                row.get("vmta"),
                row.get("jobid"),
                row.get("dsnstatus"),
            ),
            ts=ts,
            recipient=recipient,
            outcome=outcome,
            tenant=row.get("header_x-bg-tenant") or self.tenant,
            list_id=_first(row, _LIST_COLUMNS),
            campaign_id=row.get("jobid") or None,
            message_id=_first(row, _MESSAGE_ID_COLUMNS),
            smtp_code=code,
            enhanced_code=enhanced,
            diagnostic=diagnostic,
            remote_mta=host_of(row.get("dsnmta")),
        )


def _first(row: dict[str, str], columns: tuple[str, ...]) -> str | None:
    """The first non-empty value among `columns`, with `<>` stripped; None if none is set."""
    for column in columns:
        value = row.get(column, "").strip().strip("<>").strip()
        if value:
            return value
    return None


def _pmta_ts(value: str) -> datetime:
    """Read timeLogged: epoch seconds or `YYYY-MM-DD HH:MM:SS+ZZZZ` (BAD_TIMESTAMP if empty)."""
    value = value.strip()
    if _EPOCH.match(value):
        return parse_ts(float(value))
    value = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", value)
    return parse_ts(value)


def _diagnostic(row: dict[str, str]) -> tuple[str, int | None, str | None]:
    """Return (remote text, basic code, enhanced code) from dsnDiag and dsnStatus.

    dsnDiag is a DSN Diagnostic-Code (`smtp;550 5.1.1 <a@b>... User unknown`): the type prefix
    is dropped. The enhanced code comes from dsnStatus (`5.1.1 (bad destination mailbox
    address)`), which PowerMTA always fills, else from the reply text.
    """
    diag = row.get("dsndiag", "")
    diagnostic = re.sub(r"^\s*(?:smtp|x-[\w-]+)\s*;\s*", "", diag, flags=re.I).strip()
    code, enhanced = split_reply(diagnostic)
    status = find_enhanced(row.get("dsnstatus", "").split("(", 1)[0])
    return diagnostic, code, status or enhanced
