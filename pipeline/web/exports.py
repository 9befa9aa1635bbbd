"""The bounced-contacts export (seed 000: "export ... (.csv or .xls)"): one list of rows
(queries.report), written as CSV or as XLSX, cell for cell the same.

A cell that a spreadsheet would run as a formula (it starts with = + - @, a tab or a carriage
return: an address's local part may start with "=" or "-") gets a leading apostrophe in both
formats, so opening either file never evaluates data and the two still hold the same text.
The XLSX cells are written as strings (numbers as numbers), never as formulas.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from openpyxl import Workbook

from pipeline.state.queries import BouncedContact

COLUMNS = ("address", "list_id", "latest_reason", "bounce_count", "latest_ts", "suppressed")
"""The columns of `bounceguard report --format csv`, in its order."""
TYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str | int:
    """One exported cell: an int stays a number, None is "", text is neutralized (above)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def rows(contacts: Iterable[BouncedContact]) -> list[list[str | int]]:
    """The header and one row per contact, as both formats write them."""
    out: list[list[str | int]] = [list(COLUMNS)]
    for contact in contacts:
        doc = contact.to_json()
        out.append([cell(doc[name]) for name in COLUMNS])
    return out


def to_csv(table: list[list[str | int]]) -> bytes:
    """The rows as CSV (RFC 4180 quoting, CRLF line ends, UTF-8)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(table)
    return buffer.getvalue().encode()


def to_xlsx(table: list[list[str | int]]) -> bytes:
    """The rows as one XLSX sheet named "bounced"; every text cell typed as a string."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet("bounced")
    for values in table:
        sheet.append(values)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def render(kind: str, contacts: Iterable[BouncedContact]) -> bytes:
    """The export of `contacts` in `kind` ("csv" or "xlsx"; KeyError otherwise)."""
    writers = {"csv": to_csv, "xlsx": to_xlsx}
    return writers[kind](rows(contacts))
