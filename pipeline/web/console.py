"""The operator console's address page, rendered from the status document (queries.status)
and the tenant's policy: pure functions from data to `Safe` markup, no I/O.

The page answers "why was this address suppressed, by which server messages, and when?": per
scope the suppression (rule, reason, count against threshold, time), the bounce-log entry that
tripped it, and the whole bounce log with every server message expandable.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from pipeline.core.models import Category
from pipeline.core.policies import Policy, Rule, RuleKind
from pipeline.web.html import Safe, fmt, join, table


def address_url(address: str, tenant: str, list_id: str | None = None) -> str:
    """The console URL of one address's page."""
    query = {"tenant": tenant, **({"list": list_id} if list_id else {})}
    return f"/ui/addresses/{quote(address, safe='@')}?{urlencode(query)}"


def _when(ts: str | None) -> str:
    return ts.replace("T", " ").replace("Z", " UTC") if ts else "never"


def _tracked(raw: Any, since_ms: int) -> int:
    """How many entries of a rule's tracker are newer than the last delivery (a delivery
    hides older entries without deleting them; state/lua/rules.lua reset_of)."""
    if isinstance(raw, dict):  # retry_window: per campaign, [ts, digest] entries
        return sum(_tracked(v, since_ms) for v in raw.values())
    if not isinstance(raw, list):
        return 0
    count = 0
    for entry in raw:
        # consecutive entries are [send, first, latest, ...]; confirmations [ts, digest]
        ts = entry[2] if len(entry) > 2 else entry[0]
        count += isinstance(ts, int | float) and ts > since_ms
    return count


def _ms(ts: str | None) -> int:
    if not ts:
        return 0
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def engaged(view: dict[str, Any], rule: Rule, now: datetime) -> bool:
    """True when the scope's last engagement is within the rule's engaged window of `now`."""
    last = view.get("last_engagement")
    if not last:
        return False
    at = datetime.fromisoformat(last.replace("Z", "+00:00"))
    return now - at <= timedelta(days=rule.engaged_days)


def threshold_text(rule: Rule, view: dict[str, Any], now: datetime) -> str:
    """The rule's threshold as it applies to this scope now, in words."""
    if rule.kind is RuleKind.CONSECUTIVE and rule.engaged_threshold:
        who = "engaged" if engaged(view, rule, now) else "not engaged"
        return f"{rule.threshold} ({rule.engaged_threshold} when engaged; contact is {who})"
    if rule.kind is RuleKind.CONFIRMATIONS and rule.span_hours:
        return f"{rule.threshold} spanning at least {rule.span_hours:g} h"
    if rule.kind is RuleKind.RETRY_WINDOW:
        window = f"{rule.window_hours:g} h"
        return f"{rule.threshold} (at most {rule.per_campaign} per campaign in {window})"
    if rule.kind is RuleKind.COUNT_THRESHOLD:
        need = _sweep_need(rule, view.get("latest_reason"))
        return f"{need} for the latest reason (sweep)" if need else "never for the latest reason"
    return str(rule.threshold)


def _sweep_need(rule: Rule, reason: str | None) -> int:
    try:
        return rule.min_count_for(Category(reason)) if reason else 0
    except ValueError:
        return rule.other_min_count


def counter_rows(
    policy: Policy, scope: str, view: dict[str, Any], now: datetime
) -> list[list[object]]:
    """One row per rule that keeps state in `scope`: rule, kind, current count, threshold."""
    since = _ms(view.get("last_delivery"))
    rows: list[list[object]] = []
    for rule in policy.rules:
        if rule.kind is RuleKind.TENANT_RATE or policy.scope_of(rule).value != scope:
            continue  # a tenant alert, no per-address count
        if rule.kind is RuleKind.COUNT_THRESHOLD:
            count = view.get("bounce_count", 0)
        elif rule.kind is RuleKind.IMMEDIATE:
            count = "-"
        else:
            count = _tracked(view.get("counters", {}).get(rule.id), since)
        rows.append([rule.id, rule.kind.value, count, threshold_text(rule, view, now)])
    return rows


def _entry_scope_match(entry: dict[str, Any], scope: str, list_id: str | None) -> bool:
    """True when a bounce-log entry belongs to the scope (a list scope: its list only)."""
    return scope != "list" or entry.get("list_id") == list_id


def why(scope: str, view: dict[str, Any], log: list[dict[str, Any]]) -> Safe:
    """The answer for one suppressed scope: rule, reason, numbers, time and the server
    messages that led to it (the tripping entry first, then the earlier ones in scope)."""
    s = view["suppressed"]
    where = f"list {view['list_id']}" if view.get("list_id") else scope
    head = fmt(
        '<p class="bad">Suppressed in {where} on {ts} by rule <code>{rule}</code> '
        "(reason {reason}): count {count} of threshold {threshold}.</p>",
        where=where,
        ts=_when(s.get("ts")),
        rule=s.get("rule"),
        reason=s.get("reason") or "-",
        count=s.get("count"),
        threshold=s.get("threshold"),
    )
    cutoff = s.get("ts") or ""
    trigger = s.get("trigger_event_id")
    earlier = [
        e
        for e in log
        if _entry_scope_match(e, scope, view.get("list_id")) and (e.get("ts") or "") <= cutoff
    ]
    earlier.sort(key=lambda e: (e.get("event_id") != trigger, e.get("ts") or ""))
    if not earlier:
        note = "No server message in the bounce log (e.g. a complaint or a sweep)."
        return join([head, fmt('<p class="muted">{n} Trigger: {t}</p>', n=note, t=trigger)])
    rows = [_evidence_row(e, trigger) for e in earlier]
    return join([head, table(["", "time", "category", "code", "server message"], rows, "Evidence")])


def _evidence_row(entry: dict[str, Any], trigger: str | None) -> list[object]:
    mark = "tripped the rule" if entry.get("event_id") == trigger else "earlier"
    message = _message(entry, opened=True)
    return [mark, _when(entry.get("ts")), entry.get("category"), _code(entry), message]


def _code(entry: dict[str, Any]) -> str:
    return " ".join(str(entry[k]) for k in ("smtp_code", "enhanced_code") if entry.get(k))


EYE = Safe(
    '<svg aria-hidden="true" width="18" height="11" viewBox="0 0 18 11">'
    '<ellipse cx="9" cy="5.5" rx="8" ry="4.8" fill="none" stroke="currentColor"/>'
    '<circle cx="9" cy="5.5" r="2.2" fill="currentColor"/></svg>'
)
"""The eye icon seed 003 describes ("click on the icon that looks like an eye")."""


def _message(entry: dict[str, Any], *, opened: bool = False) -> Safe:
    """The server message, collapsed behind an eye icon (seed 003); opened, it is a <pre>."""
    text = entry.get("diagnostic") or ""
    if not text:
        return Safe('<span class="muted">(no server message)</span>')
    return fmt(
        '<details class="message"{o}><summary>{eye} server message</summary><pre>{t}</pre>'
        "</details>",
        o=Safe(" open") if opened else Safe(""),
        eye=EYE,
        t=text,
    )


def bounce_log(log: list[dict[str, Any]], triggers: set[str]) -> Safe:
    """The bounce log, newest first, each server message expandable; the entries that
    tripped a suppression are marked."""
    head = ["time", "outcome", "class", "category", "code", "list", "campaign", "remote MTA"]
    rows = []
    for e in log:
        mark = (
            fmt(' <strong class="bad">(tripped a rule)</strong>')
            if e.get("event_id") in triggers
            else ""
        )
        rows.append(
            fmt(
                "<tr{cls}><td>{ts}{mark}</td><td>{o}</td><td>{k}</td><td>{c}</td><td>{code}</td>"
                "<td>{l}</td><td>{camp}</td><td>{m}</td></tr>"
                '<tr{cls}><td colspan="8">{msg}</td></tr>',
                cls=Safe(' class="trigger"') if mark else Safe(""),
                ts=_when(e.get("ts")),
                mark=mark,
                o=e.get("outcome"),
                k=e.get("class"),
                c=e.get("category"),
                code=_code(e),
                l=e.get("list_id") or "-",
                camp=e.get("campaign_id") or "-",
                m=e.get("remote_mta") or "-",
                msg=_message(e),
            )
        )
    if not rows:
        return Safe('<p class="muted">Bounce log: none.</p>')
    header = join(fmt('<th scope="col">{h}</th>', h=h) for h in head)
    return fmt(
        '<table id="bounce-log"><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>',
        h=header,
        b=join(rows),
    )


def reactivate_form(address: str, tenant: str, scope: str, list_id: str | None) -> Safe:
    """The reactivate button of one suppressed scope (sent by html.PAGE_JS with the token)."""
    return fmt(
        '<form class="reactivate inline" method="post" action="/v1/addresses/{a}/reactivate" '
        'data-tenant="{t}" data-scope="{s}" data-list="{l}">'
        '<button type="submit">Reactivate in {s}</button></form>',
        a=quote(address, safe="@"),
        t=tenant,
        s=scope,
        l=list_id or "",
    )


def scope_section(
    status: dict[str, Any], policy: Policy, scope: str, view: dict[str, Any], now: datetime
) -> Safe:
    """One scope: its state, the numbers against the thresholds, and why when suppressed."""
    suppressed = view.get("suppressed")
    state = (
        Safe('<span class="state bad">suppressed</span>')
        if suppressed
        else Safe('<span class="state ok">active</span>')
    )
    facts = table(
        ["state", "bounce count", "latest reason", "last delivery", "last engagement"],
        [
            [
                state,
                view.get("bounce_count"),
                view.get("latest_reason") or "-",
                _when(view.get("last_delivery")),
                _when(view.get("last_engagement")),
            ]
        ],
    )
    counters = table(
        ["rule", "kind", "count", "threshold"],
        counter_rows(policy, scope, view, now),
        "Counters against thresholds",
    )
    parts: list[object] = [
        fmt(
            '<section class="scope" id="scope-{s}"><h2>Scope: {s}{l}</h2>',
            s=scope,
            l=f" (list {view['list_id']})" if view.get("list_id") else "",
        ),
    ]
    if suppressed:  # the answer first: why, then the way back
        parts.append(why(scope, view, status.get("bounce_log", [])))
        parts.append(
            reactivate_form(status["address"], status["tenant"], scope, view.get("list_id"))
        )
    parts += [facts, counters]
    parts.append(Safe("</section>"))
    return join(parts)


def delivered_log(entries: list[dict[str, Any]], policy: Policy) -> Safe:
    """The "250 ok" records, which only policies that keep them have, and only for a while."""
    if not policy.keep_delivered_log:
        return fmt('<p class="muted">Policy {p} keeps no delivered records.</p>', p=policy.name)
    rows = [
        [_when(e.get("ts")), _code(e), e.get("remote_mta") or "-", _message(e)] for e in entries
    ]
    head = ["time", "code", "remote MTA", "server message"]
    return fmt('<div id="delivered">{t}</div>', t=table(head, rows, "Delivered (kept briefly)"))


def address_page(status: dict[str, Any], policy: Policy, now: datetime) -> Safe:
    """The body of the address page for one status document (queries.status)."""
    address, tenant = status["address"], status["tenant"]
    scopes = status.get("scopes", {})
    triggers = {v["suppressed"]["trigger_event_id"] for v in scopes.values() if v.get("suppressed")}
    header = fmt(
        '<h1>{a}</h1><p>Tenant <a href="/ui/tenants/{tq}">{t}</a> · policy <code>{p}</code>'
        " · {n} suppressed scope(s) · as of {now}</p>",
        a=address,
        tq=quote(tenant, safe=""),
        t=tenant,
        p=policy.name,
        n=len(triggers),
        now=_when(now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")),
    )
    token = Safe(
        '<p><label for="token">API token (needed to reactivate; sent as a header, never stored)'
        '</label><input id="token" type="password" autocomplete="off" size="32"></p>'
        '<p id="result" role="status" aria-live="polite"></p>'
    )
    sections = [scope_section(status, policy, s, v, now) for s, v in scopes.items()]
    return join(
        [
            header,
            list_links(status),
            token,
            *sections,
            Safe("<h2>Bounce log</h2>"),
            bounce_log(status.get("bounce_log", []), triggers),
            Safe("<h2>Delivered records</h2>"),
            delivered_log(status.get("delivered_log", []), policy),
        ]
    )


def list_links(status: dict[str, Any]) -> Safe:
    """Under a list-scoped policy: which list the page shows, and links to the other lists
    the bounce log names (a list scope's state is per list)."""
    if "list" not in status.get("scopes", {}):
        return Safe("")
    shown = status["scopes"]["list"].get("list_id")
    names = sorted({str(e["list_id"]) for e in status.get("bounce_log", []) if e.get("list_id")})
    links = [
        fmt("<strong>{n}</strong>", n=n)
        if n == shown
        else fmt(
            '<a href="{u}">{n}</a>', u=address_url(status["address"], status["tenant"], n), n=n
        )
        for n in names
    ]
    where = fmt("list {n}", n=shown) if shown else Safe("mail sent without a list")
    others = join(links, " · ") if links else Safe("none")
    return fmt(
        "<p>This policy keeps state per list; shown: {w}. Lists in the bounce log: {o}.</p>",
        w=where,
        o=others,
    )


def search_page(error: str | None = None) -> Safe:
    """The body of /ui/: the search form (address, tenant, list) and tenant shortcut."""
    problem = fmt('<p class="bad" role="alert">{e}</p>', e=error) if error else ""
    return fmt(
        "<h1>Find an address</h1>{p}"
        '<form method="get" action="/ui/search" id="search">'
        '<label>Address <input name="address" type="text" required size="36"></label>'
        '<label>Tenant <input name="tenant" type="text" value="default" size="14"></label>'
        '<label>List <input name="list" type="text" size="10"></label>'
        '<button type="submit">Show</button></form>'
        "<h2>Tenant</h2>"
        '<form method="get" action="/ui/search"><label>Tenant '
        '<input name="tenant" type="text" size="14"></label>'
        '<button type="submit">Open tenant page</button></form>',
        p=problem,
    )
