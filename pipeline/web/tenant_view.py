"""The console's tenant page: suppression history over time (filtered by reason, rule and
date; paged), scopes by state, the bounced-contacts exports and a preview of what the next
count-threshold sweep would unsubscribe.

History filters are applied while paging through `history.page` (the history is ordered by
event time, then event id), so a page holds up to PAGE matching events and its "next" link
carries the position of the last event read: the same cursor the API hands out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from pipeline.core.decode import parse_ts
from pipeline.core.errors import InvalidInput
from pipeline.core.models import Category, format_ts
from pipeline.state import history, preview
from pipeline.state.store import Store
from pipeline.web import ApiError
from pipeline.web.console import address_url
from pipeline.web.html import Safe, fmt, join, table

PAGE = 50
"""Matching history events per page, unless the query's `limit` (1..MAX_PAGE) says otherwise."""
MAX_PAGE = 500
_FETCH = 200


def _time(value: str | None, name: str, end_of_day: bool = False) -> datetime | None:
    """A filter time: a date (YYYY-MM-DD; `end_of_day` moves it to the next midnight) or
    RFC 3339; ApiError 400 when neither."""
    if not value:
        return None
    try:
        if len(value) == 10:
            day = datetime.fromisoformat(value).replace(tzinfo=UTC)
            return day + timedelta(days=1) if end_of_day else day
        return parse_ts(value)
    except (ValueError, InvalidInput) as exc:
        raise ApiError(400, "wrong_type", f"{name} must be a date or RFC 3339") from exc


async def history_page(
    store: Store, tenant: str, query: Any
) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
    """Up to `limit` (PAGE) events of the tenant's history matching the query's filters, and
    the cursor (ts, event id) of the next page, or None at the end."""
    size = _limit(query.get("limit"))
    start = _time(query.get("from"), "from") or _time(query.get("since"), "since")
    until = _time(query.get("until"), "until", end_of_day=True)
    after = query.get("after") if query.get("from") else None
    reason, rule = query.get("reason") or None, query.get("rule") or None
    found: list[dict[str, Any]] = []
    while True:
        page = await history.page(store, tenant, since=start, after=after, limit=_FETCH)
        for item in page.items:
            if until is not None and parse_ts(item["ts"]) >= until:
                return found, None
            start, after = parse_ts(item["ts"]), item["event_id"]
            if (reason is None or item.get("reason") == reason) and (
                rule is None or item.get("rule") == rule
            ):
                found.append(item)
                if len(found) == size:
                    return found, (item["ts"], item["event_id"])
        if page.next_since_ms is None:
            return found, None


def _limit(value: str | None) -> int:
    """The page size a query asks for; ApiError 400 when not a number in 1..MAX_PAGE."""
    if not value:
        return PAGE
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise ApiError(400, "wrong_type", f"limit must be 1..{MAX_PAGE}")
    return int(value)


def _filters(tenant: str, query: Any, rules: list[str]) -> Safe:
    def options(values: list[str], chosen: str | None) -> Safe:
        opts = [fmt('<option value="">any</option>')]
        for v in values:
            sel = Safe(" selected") if v == chosen else Safe("")
            opts.append(fmt('<option value="{v}"{s}>{v}</option>', v=v, s=sel))
        return join(opts)

    return fmt(
        '<form method="get" action="/ui/tenants/{t}" id="filters">'
        '<label>Reason <select name="reason">{reasons}</select></label>'
        '<label>Rule <select name="rule">{rules}</select></label>'
        '<label>Since <input type="date" name="since" value="{since}"></label>'
        '<label>Until <input type="date" name="until" value="{until}"></label>'
        '<button type="submit">Filter</button></form>',
        t=quote(tenant, safe=""),
        reasons=options([c.value for c in Category], query.get("reason")),
        rules=options(rules, query.get("rule")),
        since=query.get("since") or "",
        until=query.get("until") or "",
    )


def _history_table(tenant: str, items: list[dict[str, Any]]) -> Safe:
    rows = []
    for e in items:
        link = fmt(
            '<a href="{u}">{a}</a>',
            u=address_url(e["address"], tenant, e.get("list_id")),
            a=e["address"],
        )
        rows.append(
            [
                e.get("ts"),
                e.get("action"),
                link,
                e.get("scope"),
                e.get("list_id") or "-",
                e.get("rule"),
                e.get("reason") or "-",
                f"{e['count']} / {e.get('threshold')}" if e.get("count") else "-",
                e.get("tag") or "-",
            ]
        )
    head = ["time", "action", "address", "scope", "list", "rule", "reason", "count", "tag"]
    history = fmt('<div id="history">{t}</div>', t=table(head, rows, "Suppressions over time"))
    return join([_per_day(items), history])


def _per_day(items: list[dict[str, Any]]) -> Safe:
    """Events of this page per day and action: the shape over time at a glance."""
    days: dict[tuple[str, str], int] = {}
    for e in items:
        key = (str(e.get("ts", ""))[:10], str(e.get("action")))
        days[key] = days.get(key, 0) + 1
    rows = [[day, action, n] for (day, action), n in sorted(days.items())]
    return table(["day", "action", "events"], rows, "This page per day") if rows else Safe("")


def _next_link(tenant: str, query: Any, cursor: tuple[str, str] | None) -> Safe:
    if cursor is None:
        return Safe('<p class="muted">End of the history.</p>')
    names = ("reason", "rule", "since", "until", "limit")
    keep = {k: query.get(k) for k in names if query.get(k)}
    params = urlencode({**keep, "from": cursor[0], "after": cursor[1]})
    return fmt(
        '<p><a id="next" href="/ui/tenants/{t}?{q}">Next page</a></p>',
        t=quote(tenant, safe=""),
        q=params,
    )


def _counts(counts: preview.StateCounts) -> Safe:
    rows: list[list[object]] = [["bouncing but active", "-", counts.bouncing_active]]
    rows += [["suppressed", rule, n] for rule, n in counts.suppressed_by_rule.items()]
    rows.append(["held by the outage guard", "-", "not in this build"])
    return table(["state", "rule", "scopes"], rows, "Counts by state")


def _sweep(tenant: str, found: list[preview.SweepCandidate], has_rule: bool) -> Safe:
    if not has_rule:
        return Safe('<p class="muted">This tenant\'s policy has no sweep (count threshold).</p>')
    rows = [
        [
            fmt('<a href="{u}">{a}</a>', u=address_url(c.address, tenant, c.list_id), a=c.address),
            c.list_id or "-",
            c.reason,
            c.count,
            c.threshold,
            format_ts(c.latest_ts),
        ]
        for c in found
    ]
    head = ["address", "list", "latest reason", "bounce count", "minimum", "latest bounce"]
    return table(head, rows, "Next sweep would unsubscribe")


async def render(store: Store, tenant: str, query: Any) -> Safe:
    """The body of the tenant page for `query` (the request's query parameters)."""
    policy = store.book.for_tenant(tenant)
    items, cursor = await history_page(store, tenant, query)
    counts = await preview.tenant_counts(store, tenant)
    found = await preview.sweep_preview(store, tenant, datetime.now(UTC))
    t = quote(tenant, safe="")
    exports = fmt(
        '<p><a id="export-csv" class="export" href="/ui/tenants/{t}/bounced.csv" '
        'data-name="bounced-{t}.csv">CSV</a> · '
        '<a id="export-xlsx" class="export" href="/ui/tenants/{t}/bounced.xlsx" '
        'data-name="bounced-{t}.xlsx">XLSX</a></p>',
        t=t,
    )
    return join(
        [
            fmt("<h1>Tenant {n}</h1><p>Policy <code>{p}</code></p>", n=tenant, p=policy.name),
            _counts(counts),
            Safe("<h2>Bounced contacts export</h2>"),
            exports,
            Safe("<h2>Next sweep (preview)</h2>"),
            _sweep(tenant, found, preview.sweep_rule(policy) is not None),
            Safe("<h2>Suppression history</h2>"),
            _filters(tenant, query, [r.id for r in policy.rules]),
            _history_table(tenant, items),
            _next_link(tenant, query, cursor),
        ]
    )
