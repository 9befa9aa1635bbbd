"""The worker's HTTP API (faust web, bound to 127.0.0.1 unless configured).

  GET  /v1/addresses/{address}?tenant=&list=     status: state per scope, counters,
                                                 suppressions, bounce log (= `bounceguard status`)
  POST /v1/addresses/{address}/reactivate        manual add-back; bearer token required;
                                                 emits a `reactivated` suppression event
  GET  /v1/suppressions?tenant=&since=&after=&limit=   a tenant's suppression history, paged
  GET  /health                                   200 when Redis answers, else 503
  GET  /metrics                                  Prometheus exposition

Errors are JSON: {"error": <reason>, "detail": <text>}. An address in a URL is normalized
(percent-decoding, case, IDNA) exactly as the worker normalizes recipients (a control
character, %00 included, is bad_address). A tenant or list id, in the query or the body,
follows the stream's rules too (check_tenant, decode.optional_text): 400 wrong_type if not.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from faust.web import View
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from pipeline.config import Settings
from pipeline.core.decode import normalize_address, optional_text, parse_ts
from pipeline.core.errors import InvalidInput, Transient
from pipeline.core.models import Scope, check_tenant
from pipeline.core.plan import Outcome
from pipeline.state import history, queries
from pipeline.stream.app import Runtime
from pipeline.web import webhooks

log = logging.getLogger(__name__)
MAX_PAGE = 1000
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
EMIT_TIMEOUT = 15.0
"""Seconds a reactivation waits for Kafka before answering 503 (the event stays pending)."""


class ApiError(Exception):
    """An error answer: HTTP status, machine-readable reason, human detail."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


def attach(runtime: Runtime, settings: Settings) -> None:
    """Register every page of the API on `runtime.app`."""
    app = runtime.app

    @app.page("/health")  # type: ignore[untyped-decorator]
    async def health(web: Any, request: Any) -> Any:
        try:
            await runtime.store.ping()
        except Transient:
            return web.json({"status": "degraded", "redis": "unreachable"}, status=503)
        return web.json({"status": "ok", "app_id": settings.app_id})

    @app.page("/metrics")  # type: ignore[untyped-decorator]
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; the exposition format is ASCII anyway.
        content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return web.bytes(generate_latest(REGISTRY), content_type=content_type)

    @app.page("/v1/addresses/{address}")  # type: ignore[untyped-decorator]
    async def address_status(web: Any, request: Any, address: str) -> Any:
        return await answer(web, lambda: status(runtime, settings, request, address))

    class Reactivate(View):
        """POST only: a function page would answer GET alone."""

        async def post(self, request: Any, address: str) -> Any:
            return await answer(self, lambda: reactivate(runtime, settings, request, address))

        async def get(self, request: Any, address: str) -> Any:
            return error(self, ApiError(405, "method_not_allowed", "use POST"))

    app.page("/v1/addresses/{address}/reactivate")(Reactivate)

    @app.page("/v1/suppressions")  # type: ignore[untyped-decorator]
    async def suppressions(web: Any, request: Any) -> Any:
        return await answer(web, lambda: suppression_page(runtime, settings, request))

    from pipeline.web import held, ui  # noqa: PLC0415 - both import this module

    ui.attach(runtime, settings)
    webhooks.attach(runtime, settings)
    held.attach(runtime, settings)


async def answer(web: Any, handler: Any) -> Any:
    """Run `handler` and turn its result into JSON, or its ApiError/Transient into an error."""
    try:
        return web.json(await handler())
    except ApiError as exc:
        return error(web, exc)
    except Transient:
        return error(web, ApiError(503, "redis_unreachable", "state store unreachable; retry"))


def error(web: Any, exc: ApiError) -> Any:
    """The JSON error answer for `exc`."""
    return web.json({"error": exc.reason, "detail": exc.detail}, status=exc.status)


def address_of(raw: str) -> str:
    """Normalize an address from a URL path; ApiError 400 when it is not one."""
    try:
        return normalize_address(raw)
    except InvalidInput as exc:
        raise ApiError(400, exc.reason.value, exc.detail) from exc


def tenant_of(value: object) -> str:
    """The tenant a request names (a body field or a query parameter), by the stream's rules:
    absent, null or "" is "default"; otherwise text (or an integer) that passes check_tenant.
    ApiError 400 wrong_type for anything else (an object, a list, "*", "a:b")."""
    try:
        tenant = optional_text(value, "tenant") or "default"
        check_tenant(tenant)
    except InvalidInput as exc:
        raise ApiError(400, exc.reason.value, exc.detail) from exc
    return tenant


def list_of(value: object) -> str | None:
    """The list id a request names, by the stream's rule for `list_id` (decode.optional_text):
    absent, null or "" is None; text or an integer is its text. ApiError 400 wrong_type for
    anything else (a list, an object, a bool, a float)."""
    return _text_field(value, "list_id")


def _text_field(value: object, key: str) -> str | None:
    """`value` as an optional text field named `key` (optional_text); ApiError 400 when not."""
    try:
        return optional_text(value, key)
    except InvalidInput as exc:
        raise ApiError(400, exc.reason.value, exc.detail) from exc


def check_read(settings: Settings, request: Any) -> None:
    """Reads show addresses and server messages: free on loopback (the default bind), but
    they need the token too when the API is bound to another interface."""
    if settings.web_bind not in LOOPBACK and not authorized(settings, request):
        raise ApiError(401, "unauthorized", "a valid bearer token is required off loopback")


async def status(runtime: Runtime, settings: Settings, request: Any, raw: str) -> dict[str, Any]:
    """The status JSON of one address (the same document as `bounceguard status`)."""
    check_read(settings, request)
    query = request.query
    tenant = tenant_of(query.get("tenant"))
    list_id = list_of(query.get("list"))
    return await queries.status(runtime.store, address_of(raw), tenant, list_id)


def authorized(settings: Settings, request: Any) -> bool:
    """True when the request carries the configured bearer token (never when none is set)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not settings.api_token or scheme.lower() != "bearer":
        return False
    try:
        return hmac.compare_digest(token.strip().encode(), settings.api_token.encode())
    except UnicodeEncodeError:  # a header that is not even text cannot be the token
        return False


async def reactivate(
    runtime: Runtime, settings: Settings, request: Any, raw: str
) -> dict[str, Any]:
    """Add an address back by hand; emit the `reactivated` event before answering.

    Body (JSON object, optional) or query: tenant, list_id (query: list), scope, request_id
    (or the Idempotency-Key header). Every field is checked before any work: tenant and
    list_id by the stream's rules (tenant_of, list_of), scope one of list|tenant|global,
    request_id text; a bad one answers 400 wrong_type."""
    if not authorized(settings, request):
        raise ApiError(401, "unauthorized", "a valid bearer token is required")
    address = address_of(raw)
    body = await _json_body(request)
    query = request.query
    tenant = tenant_of(_field(body, "tenant", query.get("tenant")))
    list_id = list_of(_field(body, "list_id", query.get("list")))
    scope = _scope_of(_field(body, "scope", query.get("scope")))
    # The client's idempotency key makes a retried request yield the same event id.
    request_id = request.headers.get("Idempotency-Key") or _text_field(
        body.get("request_id"), "request_id"
    )
    event = await runtime.store.reactivate(
        address,
        tenant,
        request_id=request_id or uuid.uuid4().hex,
        ts=datetime.now(UTC),
        list_id=list_id,
        scope=scope,
    )
    if event is None:
        return {"reactivated": False, "detail": "not suppressed in that scope"}
    try:
        await asyncio.wait_for(runtime.emitter.emit(Outcome(suppressions=[event])), EMIT_TIMEOUT)
    except TimeoutError as exc:
        # The state is cleared and the event waits in Redis (reactivate.lua's outbox): the
        # same request again re-emits it.
        raise ApiError(
            503,
            "kafka_unreachable",
            f"not delivered yet; retry the request with Idempotency-Key: {request_id}",
        ) from exc
    log.info("reactivated tenant=%s id=%s", tenant, event.event_id)
    return {"reactivated": True, "event": event.to_json()}


def _field(body: dict[str, Any], key: str, fallback: object) -> object:
    """body[key], or `fallback` (the query parameter) when the body has none (null or "")."""
    value = body.get(key)
    return fallback if value is None or value == "" else value


def _scope_of(value: object) -> Scope | None:
    """The scope a reactivation names; None when absent. ApiError 400 when not one."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value not in set(Scope):
        raise ApiError(400, "wrong_type", "scope must be list, tenant or global")
    return Scope(value)


async def _json_body(request: Any) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "bad_json", "the body is not JSON") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "wrong_type", "the body must be a JSON object")
    return body


async def suppression_page(runtime: Runtime, settings: Settings, request: Any) -> dict[str, Any]:
    """One page of a tenant's suppression history with the cursor of the next page."""
    check_read(settings, request)
    query = request.query
    if not query.get("tenant"):
        raise ApiError(400, "missing_field", "tenant is required")
    tenant = tenant_of(query["tenant"])
    try:
        limit = int(query.get("limit") or 100)
        since = parse_ts(query["since"]) if query.get("since") else None
    except (ValueError, InvalidInput) as exc:
        raise ApiError(400, "wrong_type", "limit must be a number, since RFC 3339") from exc
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, "wrong_type", f"limit must be 1..{MAX_PAGE}")
    page = await history.page(
        runtime.store, tenant, since=since, after=query.get("after"), limit=limit
    )
    cursor = None
    if page.next_since_ms is not None:
        next_since = datetime.fromtimestamp(page.next_since_ms / 1000, UTC)
        cursor = {"since": next_since.isoformat().replace("+00:00", "Z"), "after": page.next_after}
    return {"items": page.items, "next": cursor}
