"""The operator console: server-rendered pages on the worker's web server.

  GET /ui/ (and /ui, redirected)               search form (address, tenant, list)
  GET /ui/search?address=&tenant=&list=        redirect to the address (or tenant) page
  GET /ui/addresses/{address}?tenant=&list=    why an address is suppressed, its counters,
                                               its bounce log (server messages expandable),
                                               its delivered records, a reactivate button
  GET /ui/tenants/{tenant}?reason=&rule=&since=&until=&after=   history (filtered, paged),
                                               counts by state, exports, next sweep's preview
  GET /ui/tenants/{tenant}/bounced.csv | .xlsx the bounced contacts (the same rows)

Reads follow the API's rule (check_read: a token is needed off loopback); a page refused so
answers 401 with a form that fetches it again with the typed token as a header. The only
write, reactivation, is the API's own POST, sent by the page's script with the token typed
into it as an Authorization header: never a cookie, so a forged cross-site request carries no
credential. The worker's web server writes no access log (faust's AppRunner(access_log=None)),
and these handlers log no address.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from pipeline.config import Settings
from pipeline.core.errors import Transient
from pipeline.state import queries
from pipeline.stream.app import Runtime
from pipeline.web import (
    ApiError,
    address_of,
    check_read,
    console,
    exports,
    list_of,
    tenant_of,
    tenant_view,
)
from pipeline.web.html import PAGE_JS, Safe, csp, fmt, nonce, page

log = logging.getLogger(__name__)


Render = Callable[[], Awaitable[tuple[str, Safe]]]


def attach(runtime: Runtime, settings: Settings) -> None:
    """Register the console's pages on `runtime.app`."""
    app = runtime.app

    @app.page("/ui/")  # type: ignore[untyped-decorator]
    async def home(web: Any, request: Any) -> Any:
        async def render() -> tuple[str, Safe]:
            return "Search", console.search_page()

        return await respond(web, settings, request, render)

    @app.page("/ui")  # type: ignore[untyped-decorator]
    async def bare(web: Any, request: Any) -> Any:
        return web.html("", status=302, headers={"Location": "/ui/"})

    @app.page("/ui/search")  # type: ignore[untyped-decorator]
    async def search(web: Any, request: Any) -> Any:
        return search_redirect(web, request)

    @app.page("/ui/addresses/{address}")  # type: ignore[untyped-decorator]
    async def address_page(web: Any, request: Any, address: str) -> Any:
        async def render() -> tuple[str, Safe]:
            return await render_address(runtime, request, address)

        return await respond(web, settings, request, render)

    @app.page("/ui/tenants/{tenant}")  # type: ignore[untyped-decorator]
    async def tenant_page(web: Any, request: Any, tenant: str) -> Any:
        async def render() -> tuple[str, Safe]:
            body = await tenant_view.render(runtime.store, tenant_of(tenant), request.query)
            return f"Tenant {tenant}", body

        return await respond(web, settings, request, render)

    @app.page("/ui/tenants/{tenant}/bounced.{kind}")  # type: ignore[untyped-decorator]
    async def export(web: Any, request: Any, tenant: str, kind: str) -> Any:
        return await export_answer(web, runtime, settings, request, raw=tenant, kind=kind)


async def render_address(runtime: Runtime, request: Any, raw: str) -> tuple[str, Safe]:
    """(title, body) of an address page."""
    address = address_of(raw)
    tenant = tenant_of(request.query.get("tenant"))
    list_id = list_of(request.query.get("list"))
    status = await queries.status(runtime.store, address, tenant, list_id)
    policy = runtime.store.book.for_tenant(tenant)
    body = console.address_page(status, policy, datetime.now(UTC))
    return address, body


async def respond(web: Any, settings: Settings, request: Any, render: Render) -> Any:
    """Check the read rule, render, and answer HTML (an error as an HTML page too)."""
    script_nonce = nonce()
    headers = {"Content-Security-Policy": csp(script_nonce), "Cache-Control": "no-store"}
    try:
        check_read(settings, request)
        title, body = await render()
        status = 200
    except ApiError as exc:
        title, body, status = _error_page(exc)
    except Transient:
        down = ApiError(503, "redis_unreachable", "state store unreachable; retry")
        title, body, status = _error_page(down)
    html = page(title, body, script_nonce, PAGE_JS)
    return web.html(str(html), status=status, headers=headers)


def _error_page(exc: ApiError) -> tuple[str, Safe, int]:
    if exc.status == 401:
        body = fmt(
            "<h1>Token needed</h1><p>{d}</p>"
            '<form id="unlock"><label for="token">API token</label> '
            '<input id="token" type="password" autocomplete="off" size="32"> '
            '<button type="submit">Open</button></form><p id="result" role="status"></p>',
            d=exc.detail,
        )
        return "Token needed", body, 401
    body = fmt('<h1>{r}</h1><p class="bad" role="alert">{d}</p>', r=exc.reason, d=exc.detail)
    return exc.reason, body, exc.status


def search_redirect(web: Any, request: Any) -> Any:
    """302 to the page the search form names: the address page, else the tenant page."""
    query = request.query
    address = (query.get("address") or "").strip()
    tenant = (query.get("tenant") or "").strip() or "default"
    if address:
        target = console.address_url(address, tenant, (query.get("list") or "").strip() or None)
    else:
        target = f"/ui/tenants/{quote(tenant, safe='')}"
    return web.html("", status=302, headers={"Location": target})


async def export_answer(
    web: Any, runtime: Runtime, settings: Settings, request: Any, *, raw: str, kind: str
) -> Any:
    """The bounced-contacts export of a tenant as CSV or XLSX (the same rows)."""
    try:
        check_read(settings, request)
        tenant = tenant_of(raw)
        if kind not in exports.TYPES:
            raise ApiError(404, "not_found", "export as bounced.csv or bounced.xlsx")
        rows = await queries.report(runtime.store, tenant)
    except ApiError as exc:
        return web.json({"error": exc.reason, "detail": exc.detail}, status=exc.status)
    except Transient:
        return web.json({"error": "redis_unreachable", "detail": "retry"}, status=503)
    body = exports.render(kind, rows)
    log.info("export tenant=%s format=%s rows=%d", tenant, kind, len(rows))
    name = f"bounced-{quote(tenant, safe='')}.{kind}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return web.bytes(body, content_type=exports.TYPES[kind], headers=headers)
