"""Suppression lists exported from other platforms: CSV rows -> import rows -> suppressions.

Responsibilities (pure: no I/O beyond the packaged format table):
- the column layouts of `import_formats.toml` (`load_format`, FORMATS);
- reading the rows of one file (`read_rows`): each row becomes an `ImportRow`, a `BadRow`
  (with its line number and reason) or a `SkippedRow` (a duplicate address in the file, or a
  row of a bounced-contacts report under its preset's cleanup threshold);
- the `suppressed` event one row stands for (`imported_suppression`), whose id derives from
  (tenant, scope, list, address) only, so importing the same address again is the same event.

Recording the suppression in Redis is the state layer's (`Store.record_imports`); sending the
events, the command's (`pipeline.cli.import_suppressions`).
"""

from __future__ import annotations

import csv
import email.utils
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import orjson

from pipeline.core.classify import RULEBOOK, classify
from pipeline.core.decode import normalize_address, parse_ts
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.ids import import_trigger, suppression_event_id
from pipeline.core.models import Action, Category, Scope, Suppression, format_ts
from pipeline.core.policies import Policy, RuleKind, load_preset
from pipeline.core.wire import NO_LIST, to_ms

FORMATS_FILE = "import_formats.toml"
RULE = "imported"
"""The rule id of every imported suppression."""
MAX_TEXT = 500
"""Characters of the provider's reason kept in the evidence (as the bounce log keeps)."""

_TABLE: dict[str, Any] = tomllib.loads(
    resources.files(__package__).joinpath(FORMATS_FILE).read_text(encoding="utf-8")
)["formats"]
FORMATS = tuple(_TABLE)
"""The --format names, in the table's order."""


def _key(name: str) -> str:
    """A header name or reason word as compared: lowercase, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True, slots=True)
class ImportFormat:
    """One column layout of `import_formats.toml` (its header explains each field)."""

    name: str
    source: str
    address: tuple[str, ...]
    reason: tuple[str, ...] = ()
    code: tuple[str, ...] = ()
    ts: tuple[str, ...] = ()
    count: tuple[str, ...] = ()
    reasons: Mapping[str, Category] = field(default_factory=dict)
    """Provider reason word (as `_key` makes it) -> category."""
    default: Category = Category.UNDETERMINED
    min_count_preset: str | None = None
    headerless: bool = False


def load_format(name: str) -> ImportFormat:
    """The layout `name` of the packaged table; raise KeyError for an unknown name."""
    raw = _TABLE[name]
    return ImportFormat(
        name=name,
        source=str(raw["source"]),
        address=tuple(_key(n) for n in raw["address"]),
        reason=tuple(_key(n) for n in raw.get("reason", ())),
        code=tuple(_key(n) for n in raw.get("code", ())),
        ts=tuple(_key(n) for n in raw.get("ts", ())),
        count=tuple(_key(n) for n in raw.get("count", ())),
        reasons={_key(k): Category(v) for k, v in raw.get("reasons", {}).items()},
        default=Category(raw.get("default", "undetermined")),
        min_count_preset=raw.get("min_count_preset"),
        headerless=bool(raw.get("headerless", False)),
    )


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One address to suppress, as read from its file."""

    line: int
    """Line of the file the row starts on (1-based; the header is line 1)."""
    address: str
    """Normalized address."""
    category: Category
    """The reason the row gives, as our category (the format's default when it gives none)."""
    ts: datetime | None
    """When the provider suppressed it; None when the file does not say."""
    smtp_code: int | None = None
    enhanced_code: str | None = None
    text: str = ""
    """The provider's own reason text, trimmed (evidence only)."""


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that cannot be imported; reported with its line, never fatal."""

    line: int
    reason: Reason
    detail: str


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A well-formed row that is deliberately not imported."""

    line: int
    why: str
    """"duplicate" (the address came earlier in the file) or "under_threshold"."""


Row = ImportRow | BadRow | SkippedRow


def read_rows(lines: Iterable[str], fmt: ImportFormat) -> Iterator[Row]:
    """Read the CSV text `lines` (a decoded file, e.g. `io.TextIOWrapper(..., newline="")`)
    in layout `fmt`, one result per non-blank row, in file order.

    Raises InvalidInput(MISSING_HEADER) before any row when the header has no address column
    (and the format does not allow a headerless list). Every other problem is one row's:
    a `BadRow` with the line it starts on (a quoted field may span lines). Bytes that were
    not UTF-8 should be decoded with errors="surrogateescape": such a row is BAD_ENCODING.
    """
    reader = csv.reader(lines)
    try:
        header, first = _header(reader, fmt)
    except csv.Error as exc:
        raise InvalidInput(Reason.MISSING_HEADER, f"the header is not CSV: {exc}") from exc
    rows = _Rows(fmt, _columns(header, fmt), _threshold(fmt))
    if first is not None:
        yield rows.read(reader.line_num, first)
    line = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a field over the csv module's limit; it reads on
            yield BadRow(line + 1, Reason.UNKNOWN_FORMAT, f"not CSV: {exc}")
            line = reader.line_num
            continue
        # line_num is the line a row ENDS on: a row starts after the previous one ended.
        start, line = line + 1, reader.line_num
        if any(c.strip() for c in cells):
            yield rows.read(start, cells)


def _header(reader: Any, fmt: ImportFormat) -> tuple[list[str], list[str] | None]:
    """The header row and, for a headerless list, the first data row (else None)."""
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        if fmt.headerless and len(cells) == 1 and "@" in cells[0]:
            return [fmt.address[0]], cells
        return cells, None
    raise InvalidInput(Reason.MISSING_HEADER, "the file is empty")


def _columns(header: list[str], fmt: ImportFormat) -> dict[str, int]:
    """Index of each known column (address, reason, code, ts, count) in `header`."""
    keys = [_key(h) for h in header]  # a BOM the decoder left is not [a-z0-9]: dropped too
    found = {}
    for part in ("address", "reason", "code", "ts", "count"):
        for name in getattr(fmt, part):
            if name in keys:
                found[part] = keys.index(name)
                break
    if "address" not in found:
        wanted = ", ".join(fmt.address)
        raise InvalidInput(Reason.MISSING_HEADER, f"no address column ({wanted}) in the header")
    if fmt.min_count_preset and "count" not in found:
        wanted = ", ".join(fmt.count)
        raise InvalidInput(Reason.MISSING_HEADER, f"no bounce count column ({wanted})")
    return found


def _threshold(fmt: ImportFormat) -> Policy | None:
    if fmt.min_count_preset is None:
        return None
    policy = load_preset(fmt.min_count_preset)
    return policy if policy.has_kind(RuleKind.COUNT_THRESHOLD) else None


@dataclass(slots=True)
class _Rows:
    """What reading one file's rows needs: its layout, columns, threshold and the addresses
    met so far (a later row of the same address is a duplicate)."""

    fmt: ImportFormat
    columns: Mapping[str, int]
    threshold: Policy | None
    seen: set[str] = field(default_factory=set)

    def read(self, line: int, cells: list[str]) -> Row:
        """The result of one non-blank row starting on `line`."""
        columns = self.columns

        def cell(part: str) -> str:
            at = columns.get(part)
            return cells[at].strip() if at is not None and at < len(cells) else ""

        if any("\udc80" <= ch <= "\udcff" for c in cells for ch in c):
            return BadRow(line, Reason.BAD_ENCODING, "the row is not valid UTF-8")
        try:
            row = _parse(line, cell, self.fmt)
            skip = _under_threshold(row, cell("count"), self.threshold)
        except InvalidInput as exc:
            return BadRow(line, exc.reason, exc.detail)
        if skip:
            return SkippedRow(line, "under_threshold")
        if row.address in self.seen:
            return SkippedRow(line, "duplicate")
        self.seen.add(row.address)
        return row


def _parse(line: int, cell: Callable[[str], str], fmt: ImportFormat) -> ImportRow:
    address = cell("address")
    if not address:
        raise InvalidInput(Reason.MISSING_FIELD, "the address is empty")
    text, code = cell("reason"), cell("code")
    basic, enhanced = _codes(code)
    return ImportRow(
        line=line,
        address=normalize_address(address),
        category=_category(fmt, text, basic, enhanced),
        ts=_when(cell("ts")),
        smtp_code=basic,
        enhanced_code=enhanced,
        text=text[:MAX_TEXT],
    )


def _codes(code: str) -> tuple[int | None, str | None]:
    """ "550" -> (550, None); "5.1.1" -> (None, "5.1.1"); anything else -> (None, None)."""
    if re.fullmatch(r"[245]\d\d", code):
        return int(code), None
    if re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", code):
        return None, code
    return None, None


def _category(fmt: ImportFormat, text: str, basic: int | None, enhanced: str | None) -> Category:
    """The provider's reason word if the format maps it (or it is one of our categories),
    else the classifier's verdict on the code and text (as for an MTA log line; no outcome is
    assumed, so text it cannot read stays undetermined), else the format's default."""
    word = _key(text)
    mapped = (fmt.reasons.get(word) or _CATEGORIES.get(word)) if text else None
    if mapped is not None:
        return mapped
    if not (text or basic or enhanced):
        return fmt.default
    verdict = classify(basic, enhanced, text)
    return fmt.default if verdict.category is Category.UNDETERMINED else verdict.category


_CATEGORIES = {_key(c.value): c for c in Category}
"""Our own category names ("user_unknown"), as a plain list may give them."""


def _when(text: str) -> datetime | None:
    """Epoch seconds (SendGrid), RFC 3339 / ISO 8601 with a space (SES, Postmark) or RFC 2822
    (Mailgun); "" -> None. Raises InvalidInput(BAD_TIMESTAMP) for anything else."""
    if not text:
        return None
    if re.fullmatch(r"\d{9,11}(\.\d+)?", text):
        return parse_ts(float(text))
    try:
        return parse_ts(text.replace(" ", "T", 1) if re.match(r"\d{4}-", text) else text)
    except InvalidInput:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError) as exc:
        raise InvalidInput(Reason.BAD_TIMESTAMP, "the date is not one we read") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _under_threshold(row: ImportRow, count: str, policy: Policy | None) -> bool:
    """True when a report row's bounce count is under its reason's cleanup minimum (seed 000:
    "Only remove Soft Bounces and Mailbox Full reasons with counts under 8")."""
    if policy is None:
        return False
    if not count.isdigit():
        raise InvalidInput(Reason.WRONG_TYPE, "the bounce count must be a whole number")
    rule = next(r for r in policy.rules if r.kind is RuleKind.COUNT_THRESHOLD)
    bounce_class = RULEBOOK.default_class[row.category]
    if not policy.counts_as_bounce(bounce_class, row.category):
        return True  # an auto reply "was delivered successfully": never a reason
    return int(count) < rule.min_count_for(row.category, bounce_class)


def imported_suppression(
    row: ImportRow,
    *,
    policy: Policy,
    tenant: str,
    scope: Scope,
    list_id: str | None,
    fmt: str,
    default_ts: datetime,
) -> Suppression:
    """The `suppressed` event of one imported row: rule `imported`, reason its category,
    count and threshold 1, one evidence entry holding the provider's reason. Its id and
    trigger derive from (tenant, scope, list, address) only, so the same address imported
    again (from any file) is the same event. `default_ts` stands for a row without a date."""
    scoped_list = (list_id or NO_LIST) if scope is Scope.LIST else None
    trigger = import_trigger(tenant=tenant, scope=scope, list_id=scoped_list, address=row.address)
    ts = row.ts or default_ts
    event_id = suppression_event_id(
        action=Action.SUPPRESSED,
        address=row.address,
        tenant=tenant,
        scope=scope,
        list_id=scoped_list,
        rule=RULE,
        trigger=trigger,
    )
    return Suppression(
        event_id=event_id,
        action=Action.SUPPRESSED,
        address=row.address,
        tenant=tenant,
        scope=scope,
        list_id=scoped_list,
        reason=row.category.value,
        rule=RULE,
        count=1,
        threshold=1,
        policy=policy.name,
        tag=None,
        trigger_event_id=trigger,
        ts=ts,
        evidence=(_evidence(row, trigger, ts, fmt),),
    )


def _evidence(row: ImportRow, trigger: str, ts: datetime, fmt: str) -> dict[str, Any]:
    said = f": {row.text}" if row.text else ""
    return {
        "event_id": trigger,
        "ts": format_ts(ts),
        "category": row.category.value,
        "smtp_code": row.smtp_code,
        "enhanced_code": row.enhanced_code,
        "diagnostic": f"imported from a {fmt} suppression list (line {row.line}){said}",
    }


def log_entry(s: Suppression) -> bytes:
    """The compact bounce-log entry of an imported suppression (positions of
    `pipeline.core.wire.LOG_FIELDS`, no outcome: nothing was attempted), so the address's
    bounce log shows what the provider said next to what our own attempts said."""
    [evidence] = s.evidence or ({},)
    category = Category(s.reason)
    values: list[Any] = [
        s.trigger_event_id,
        to_ms(s.ts),
        category.value,
        RULEBOOK.default_class[category].value,
        None,
        s.list_id,
        None,
        evidence.get("smtp_code"),
        evidence.get("enhanced_code"),
        evidence.get("diagnostic"),
    ]
    while values[-1] is None:
        values.pop()
    return orjson.dumps(values)
