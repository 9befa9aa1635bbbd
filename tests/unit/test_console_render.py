"""The operator console's pure parts: escaping, the address page's content, the exports'
rows, the sweep preview's test (the pages themselves run in Chromium in
tests/integration/test_console.py)."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from openpyxl import load_workbook

from pipeline.config import Settings
from pipeline.core.policies import load_preset
from pipeline.state import keys
from pipeline.state.preview import StateCounts, SweepCandidate, judge
from pipeline.state.queries import BouncedContact
from pipeline.web import console, exports, tenant_view, ui
from pipeline.web.html import Safe, csp, esc, fmt, join, page, table

HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_fmt_escapes_every_value_and_keeps_safe_markup() -> None:
    out = fmt('<a title="{t}">{b}</a>{s}', t=HOSTILE, b=HOSTILE, s=Safe("<br>"))
    assert "<script" not in out
    assert "<img" not in out
    assert '"><' not in out  # the quote cannot close the attribute
    assert out.endswith("<br>")
    assert esc(None) == ""
    assert esc(Safe("<b>")) == "<b>"


def test_table_escapes_cells_and_says_when_empty() -> None:
    assert "&lt;script&gt;" in table(["h"], [[HOSTILE]])
    assert "none" in table(["h"], [], "Bounces")


def test_the_page_frame_nonces_its_one_script_and_the_policy_names_it() -> None:
    html = page("t", Safe("<p>x</p>"), "n0nce", "var a = 1;")
    assert re.findall(r"<script[^>]*>", html) == ['<script nonce="n0nce">']
    policy = csp("n0nce")
    assert "script-src 'nonce-n0nce'" in policy
    assert "default-src 'none'" in policy
    assert "unsafe-inline'; img" in policy  # inline style only, never inline script


def status_doc(**entry: Any) -> dict[str, Any]:
    """A status document (queries.status) with one suppressed tenant scope."""
    log = {
        "event_id": "ev1",
        "ts": "2026-03-02T09:00:00Z",
        "tenant": "acme",
        "category": "user_unknown",
        "class": "hard",
        "outcome": "bounced",
        "smtp_code": 550,
        "enhanced_code": "5.1.1",
        "diagnostic": "550 5.1.1 no such user",
        **entry,
    }
    suppressed = {
        "rule": "immediate_hard",
        "reason": "user_unknown",
        "count": 1,
        "threshold": 1,
        "ts": "2026-03-02T09:00:00Z",
        "trigger_event_id": "ev1",
    }
    scope = {
        "list_id": None,
        "suppressed": suppressed,
        "bounce_count": 1,
        "latest_reason": "user_unknown",
        "last_delivery": None,
        "last_engagement": None,
        "counters": {},
    }
    return {
        "address": "jane@example.com",
        "tenant": "acme",
        "policy": "default",
        "scopes": {"tenant": scope},
        "bounce_log": [log],
        "delivered_log": [],
    }


def test_the_address_page_says_why_by_which_message_and_when() -> None:
    body = console.address_page(status_doc(), load_preset("default"), NOW)
    text = re.sub(r"<[^>]+>", "", body)
    assert "Suppressed in tenant on 2026-03-02 09:00:00 UTC by rule immediate_hard" in text
    assert "count 1 of threshold 1" in text
    assert "tripped the rule" in text
    assert "550 5.1.1 no such user" in text
    assert 'data-scope="tenant"' in body  # the reactivate button of that scope


@pytest.mark.parametrize("field", ["diagnostic", "remote_mta", "campaign_id", "list_id"])
def test_hostile_log_fields_are_text(field: str) -> None:
    body = console.address_page(status_doc(**{field: HOSTILE}), load_preset("default"), NOW)
    assert "<script" not in body
    assert "<img" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_a_hostile_list_id_cannot_leave_the_reactivate_form_attribute() -> None:
    doc = status_doc()
    doc["scopes"]["tenant"]["list_id"] = '" onclick="alert(1)'
    body = console.address_page(doc, load_preset("default"), NOW)
    assert 'onclick="alert' not in body
    assert "&quot; onclick=&quot;alert(1)" in body


def test_counters_ignore_entries_a_delivery_hid() -> None:
    view = {
        "last_delivery": "2026-03-02T09:00:00Z",
        "counters": {
            # [send, first ts, latest ts, category, digest]: one before the delivery, two after
            "consecutive_soft": [
                ["c0", 1, 1_772_441_000_000, "mailbox_full", "d0"],
                ["c1", 1, 1_772_442_000_001, "mailbox_full", "d1"],
                ["c2", 1, 1_772_442_000_002, "mailbox_full", "d2"],
            ]
        },
    }
    rows = console.counter_rows(load_preset("default"), "tenant", view, NOW)
    soft = next(r for r in rows if r[0] == "consecutive_soft")
    assert soft[2] == 2
    assert soft[3] == "10 (20 when engaged; contact is not engaged)"


def contact(address: str, list_id: str | None, count: int) -> BouncedContact:
    return BouncedContact(address, "shop", list_id, "mailbox_full", count, NOW, None)


def test_csv_and_xlsx_hold_the_same_rows_and_no_formula() -> None:
    contacts = [contact("=cmd@example.com", "news", 3), contact("b@example.com", "@x", 1)]
    table_rows = exports.rows(contacts)
    as_csv = list(csv.reader(io.StringIO(exports.to_csv(table_rows).decode())))
    sheet = load_workbook(io.BytesIO(exports.to_xlsx(table_rows))).active
    as_xlsx = [["" if v is None else str(v) for v in row] for row in sheet.values]
    assert as_csv == as_xlsx
    assert as_csv[1][:4] == ["'=cmd@example.com", "news", "mailbox_full", "3"]
    assert as_csv[2][1] == "'@x"
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)


def doc(entries: list[list[Any]], delivered: int = 0, suppressed: bool = False) -> keys.Doc:
    fields: dict[str, Any] = {"bn": entries}
    if suppressed:
        fields["s"] = {"rule": "immediate_hard"}
    return keys.Doc(delivered, fields)


@pytest.mark.parametrize(
    ("entries", "delivered", "suppressed", "expected"),
    [
        ([[f"c{n}", n, n, "mailbox_full", "d"] for n in range(1, 9)], 0, False, (8, 8)),
        ([[f"c{n}", n, n, "mailbox_full", "d"] for n in range(1, 8)], 0, False, None),
        ([["c1", 5, 5, "bad_domain", "d"]], 0, False, (1, 1)),
        ([["c1", 5, 5, "bad_domain", "d"]], 6, False, None),  # a delivery reset it
        ([["c1", 5, 5, "bad_domain", "d"]], 0, True, None),  # already suppressed
        ([["c1", 5, 5, "spam_block", "d"]] * 1, 0, False, None),  # other: needs 9
        ([["c1", 5, 2000, "bad_domain", "d"]], 0, False, None),  # newer than the sweep
    ],
    ids=["soft-8", "soft-7", "dns-1", "reset", "suppressed", "other-1", "newer"],
)
def test_the_sweep_preview_applies_the_sweeps_test(
    entries: list[list[Any]], delivered: int, suppressed: bool, expected: tuple[int, int] | None
) -> None:
    rule = load_preset("listrak").rule("bounce_cleanup")
    verdict = judge(rule, doc(entries, delivered, suppressed), at_ms=1000)
    assert (verdict[:2] if verdict else None) == expected


class _Web:
    def html(self, value: str, *, status: int, headers: dict[str, str]) -> Any:
        return status, value, headers


class _Request:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.query: dict[str, str] = {}


@pytest.mark.parametrize(
    ("headers", "status"), [({}, 401), ({"Authorization": "Bearer t0ken"}, 200)]
)
def test_pages_need_the_token_off_loopback(headers: dict[str, str], status: int) -> None:
    settings = Settings.from_env({}, web_bind="0.0.0.0", api_token="t0ken")

    async def render() -> tuple[str, Safe]:
        return "t", Safe("<p>secret</p>")

    answer = asyncio.run(ui.respond(_Web(), settings, _Request(headers), render))
    assert answer[0] == status
    assert ("secret" in answer[1]) is (status == 200)
    assert "nonce-" in answer[2]["Content-Security-Policy"]


def test_the_search_redirects_to_the_address_page() -> None:
    request = _Request({})
    request.query = {"address": "Jane@Example.com", "tenant": "acme", "list": "a b"}
    status, _, headers = ui.search_redirect(_Web(), request)
    assert status == 302
    assert headers["Location"] == "/ui/addresses/Jane@Example.com?tenant=acme&list=a+b"


def test_the_tenant_page_pieces_escape_what_the_history_holds() -> None:
    event = {
        "ts": "2026-03-02T09:00:00Z",
        "action": "suppressed",
        "address": "a@example.com",
        "list_id": HOSTILE,
        "rule": HOSTILE,
        "reason": "user_unknown",
        "count": 1,
        "threshold": 1,
        "tag": HOSTILE,
    }
    body = join(
        [
            tenant_view._history_table("acme", [event]),
            tenant_view._counts(StateCounts(1, {HOSTILE: 2})),
            tenant_view._sweep(
                "acme", [SweepCandidate("a@example.com", HOSTILE, "x", 1, 1, NOW)], True
            ),
        ]
    )
    assert "<script" not in body
    assert "<img" not in body
    assert "2026-03-02" in body  # the per-day summary


def test_a_list_scoped_page_links_the_lists_of_the_bounce_log() -> None:
    doc = status_doc(list_id="news")
    doc["scopes"] = {"list": {**doc["scopes"]["tenant"], "list_id": None}}
    links = console.list_links(doc)
    assert "mail sent without a list" in links
    assert 'href="/ui/addresses/jane@example.com?tenant=acme&amp;list=news"' in links
