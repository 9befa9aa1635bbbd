"""Suppression-list files -> import rows -> suppression events (pipeline.core.imports); the
samples and their sources are in tests/data/imports."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import orjson
import pytest

from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.imports import (
    FORMATS,
    BadRow,
    ImportRow,
    Row,
    SkippedRow,
    imported_suppression,
    load_format,
    log_entry,
    read_rows,
)
from pipeline.core.models import Scope
from pipeline.core.policies import load_preset
from pipeline.core.wire import expand_entry

DATA = Path(__file__).resolve().parents[1] / "data" / "imports"
SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "suppression.event.v1.json"


def rows(name: str, fmt: str) -> list[Row]:
    """Read a sample the way the command opens a file."""
    raw = io.BytesIO((DATA / name).read_bytes())
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
    return list(read_rows(text, load_format(fmt)))


def good(found: list[Row]) -> list[tuple[int, str, str]]:
    return [(r.line, r.address, r.category.value) for r in found if isinstance(r, ImportRow)]


def bad(found: list[Row]) -> list[tuple[int, Reason]]:
    return [(r.line, r.reason) for r in found if isinstance(r, BadRow)]


def skipped(found: list[Row]) -> list[tuple[int, str]]:
    return [(r.line, r.why) for r in found if isinstance(r, SkippedRow)]


CASES = {
    "ses": (
        "ses.csv",
        [(2, "gone@example.com", "general_hard"), (3, "angry@example.org", "complaint")],
        [(4, Reason.BAD_ADDRESS), (5, Reason.BAD_TIMESTAMP)],
        [],
    ),
    "sendgrid": (
        "sendgrid.csv",
        [
            (2, "nobody@example.com", "user_unknown"),
            (3, "full@example.com", "mailbox_full"),
            (5, "odd@example.com", "general_hard"),  # no reason: the bounce list's default
        ],
        [(4, Reason.MISSING_FIELD)],
        [],
    ),
    "mailgun": (
        "mailgun.csv",
        [
            (2, "nouser@example.com", "user_unknown"),
            (3, "baddomain@example.invalid", "bad_domain"),
            (4, "nocode@example.com", "general_hard"),
        ],
        [(5, Reason.BAD_TIMESTAMP)],
        [],
    ),
    "postmark": (
        "postmark.csv",
        [
            (2, "address@example.com", "unsubscribe"),
            (3, "bounce.address@example.com", "general_hard"),
            (4, "spam.complaint.address@example.com", "complaint"),
        ],
        [],
        [(5, "duplicate")],  # the same address in upper case
    ),
    "listrak": (
        "listrak.csv",
        [
            (2, "hard@example.com", "general_hard"),  # any count
            (4, "soft8@example.com", "general_soft"),  # soft: 8 or more
            (5, "full9@example.com", "mailbox_full"),
            (7, "spam9@example.com", "spam_content"),  # other: higher than 8
            (9, "dns@example.com", "dns_failure"),
        ],
        [(10, Reason.WRONG_TYPE)],
        [(3, "under_threshold"), (6, "under_threshold"), (8, "under_threshold")],
    ),
    "plain": (
        "plain.txt",
        [
            (1, "one@example.com", "undetermined"),
            (2, "two@example.com", "undetermined"),
            (5, "four@example.com", "undetermined"),
        ],
        [(4, Reason.BAD_ADDRESS)],
        [],
    ),
}


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_each_format_reads_its_sample(fmt: str) -> None:
    name, want_good, want_bad, want_skipped = CASES[fmt]
    found = rows(name, fmt)
    assert good(found) == want_good
    assert bad(found) == want_bad
    assert skipped(found) == want_skipped


def test_every_format_has_a_case_and_a_source() -> None:
    assert set(FORMATS) == set(CASES)
    assert all(load_format(f).source for f in FORMATS)


def test_times_of_each_provider() -> None:
    def first_ts(name: str, fmt: str) -> datetime | None:
        return next(r for r in rows(name, fmt) if isinstance(r, ImportRow)).ts

    assert first_ts("ses.csv", "ses") == datetime(2026, 3, 2, 17, 0, 0, 120000, tzinfo=UTC)
    assert first_ts("sendgrid.csv", "sendgrid") == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert first_ts("mailgun.csv", "mailgun") == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert first_ts("postmark.csv", "postmark") == datetime(2019, 12, 17, 13, 58, 33, tzinfo=UTC)
    assert first_ts("listrak.csv", "listrak") is None


def test_codes_are_kept_for_the_evidence() -> None:
    sendgrid = next(r for r in rows("sendgrid.csv", "sendgrid") if isinstance(r, ImportRow))
    assert (sendgrid.smtp_code, sendgrid.enhanced_code) == (None, "5.1.1")
    assert sendgrid.text.startswith("550 5.1.1 The email account")
    mailgun = next(r for r in rows("mailgun.csv", "mailgun") if isinstance(r, ImportRow))
    assert (mailgun.smtp_code, mailgun.enhanced_code) == (550, None)


def test_a_bom_header_and_a_row_that_is_not_utf8() -> None:
    found = rows("plain-bom.csv", "plain")
    # "unsubscribed by phone" is no word of the table and nothing the classifier reads
    assert good(found) == [(2, "bom@example.com", "undetermined")]
    assert bad(found) == [(3, Reason.BAD_ENCODING)]


def text(body: str, fmt: str) -> list[Row]:
    return list(read_rows(io.StringIO(body, newline=""), load_format(fmt)))


def test_header_names_ignore_case_spaces_and_order() -> None:
    body = "created at,ERROR,Code,Address\n2026-03-02 09:00:00,user unknown,550,a@example.com\n"
    [row] = text(body, "mailgun")
    assert isinstance(row, ImportRow)
    assert (row.address, row.category.value, row.ts) == (
        "a@example.com",
        "user_unknown",
        datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    )


def test_a_quoted_field_over_two_lines_reports_the_line_it_starts_on() -> None:
    body = 'email,reason\n"x@example.com","550 5.1.1\nuser unknown"\nnot an address,\n'
    found = text(body, "plain")
    assert good(found) == [(2, "x@example.com", "user_unknown")]
    assert bad(found) == [(4, Reason.BAD_ADDRESS)]


def test_plain_reasons_words_and_our_categories() -> None:
    body = "email,reason\na@example.com,Unsubscribed\nb@example.com,user_unknown\nc@example.com,\n"
    assert good(text(body, "plain")) == [
        (2, "a@example.com", "unsubscribe"),
        (3, "b@example.com", "user_unknown"),
        (4, "c@example.com", "undetermined"),
    ]


@pytest.mark.parametrize(
    ("body", "fmt"),
    [
        ("", "plain"),
        ("\n\n", "ses"),
        ("name,reason\nJane,bounce\n", "plain"),  # a header without an address column
        ("Email Address,Bounce Reason\nx@example.com,Invalid\n", "listrak"),  # no count
        ("x@example.com\n", "ses"),  # only plain lists may have no header
    ],
)
def test_an_unusable_file_raises_before_any_row(body: str, fmt: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        text(body, fmt)
    assert caught.value.reason is Reason.MISSING_HEADER


def suppression(row: ImportRow, scope: Scope = Scope.TENANT, list_id: str | None = None) -> dict:
    s = imported_suppression(
        row,
        policy=load_preset("default"),
        tenant="acme",
        scope=scope,
        list_id=list_id,
        fmt="ses",
        default_ts=datetime(2026, 4, 1, tzinfo=UTC),
    )
    return s.to_json()


ROW = ImportRow(line=7, address="gone@example.com", category=load_format("ses").default, ts=None)


def test_the_event_is_a_valid_suppression_with_rule_imported() -> None:
    event = suppression(ROW)
    schema = orjson.loads(SCHEMA.read_bytes())
    jsonschema.Draft202012Validator(schema).validate(event)
    assert event["rule"] == "imported"
    assert event["reason"] == "general_hard"
    assert event["ts"] == "2026-04-01T00:00:00Z"  # no date in the row: the default
    assert (event["count"], event["threshold"], event["policy"]) == (1, 1, "default")
    assert event["trigger_event_id"].startswith("import:")
    assert "gone@example.com" not in event["trigger_event_id"]
    assert "line 7" in event["evidence"][0]["diagnostic"]


def test_the_id_depends_on_tenant_scope_list_and_address_only() -> None:
    other_file = ImportRow(
        line=99,
        address="gone@example.com",
        category=load_format("postmark").reasons["spamcomplaint"],
        ts=datetime(2020, 1, 1, tzinfo=UTC),
    )
    assert suppression(other_file)["event_id"] == suppression(ROW)["event_id"]
    # a tenant scope has no list: --list changes nothing there
    assert suppression(ROW, list_id="news")["event_id"] == suppression(ROW)["event_id"]
    news = suppression(ROW, Scope.LIST, "news")
    assert news["list_id"] == "news"
    assert news["event_id"] != suppression(ROW)["event_id"]
    assert news["event_id"] != suppression(ROW, Scope.LIST, "cart")["event_id"]


def test_the_log_entry_reads_back_as_the_evidence() -> None:
    s = imported_suppression(
        ROW,
        policy=load_preset("listrak"),
        tenant="acme",
        scope=Scope.LIST,
        list_id="news",
        fmt="ses",
        default_ts=datetime(2026, 4, 1, tzinfo=UTC),
    )
    entry = expand_entry(log_entry(s))
    assert entry == {
        "event_id": s.trigger_event_id,
        "ts": "2026-04-01T00:00:00Z",
        "list_id": "news",
        "category": "general_hard",
        "class": "hard",
        "diagnostic": s.evidence[0]["diagnostic"],
    }


def test_a_row_the_csv_module_refuses_is_one_bad_row() -> None:
    huge = "x" * (200 * 1024)
    body = f'email,reason\na@example.com,"{huge}"\nb@example.com,\n'
    found = text(body, "plain")
    assert bad(found) == [(2, Reason.UNKNOWN_FORMAT)]
    assert good(found) == [(3, "b@example.com", "undetermined")]
