"""The provider-outage guard's pages (issue 12):

  GET  /v1/held?domain=&counts=1          what is held, per provider group (= `bounceguard held`)
  POST /v1/held/{domain}/release          settle now: discard those delivered since, emit the rest
  POST /v1/held/{domain}/discard          discard every held suppression of the group

Writes need the bearer token (as reactivate does); reads follow the API's read rule (free on
loopback). A release answers once its events reached Kafka; on a timeout (503) the same
request again re-emits the same events.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.web import View

from pipeline.config import Settings
from pipeline.core.plan import Outcome
from pipeline.state import held
from pipeline.stream import metrics
from pipeline.stream.app import Runtime
from pipeline.web import EMIT_TIMEOUT, ApiError, answer, authorized, check_read, error

ACTIONS = ("release", "discard")


def attach(runtime: Runtime, settings: Settings) -> None:
    """Register the held-suppression pages on `runtime.app`."""
    app = runtime.app

    @app.page("/v1/held")  # type: ignore[untyped-decorator]
    async def held_page(web: Any, request: Any) -> Any:
        return await answer(web, lambda: listing(runtime, settings, request))

    class Settle(View):
        """POST only: a function page would answer GET alone."""

        async def post(self, request: Any, domain: str, action: str) -> Any:
            return await answer(self, lambda: settle(runtime, settings, request, domain, action))

        async def get(self, request: Any, domain: str, action: str) -> Any:
            return error(self, ApiError(405, "method_not_allowed", "use POST"))

    app.page("/v1/held/{domain}/{action}")(Settle)


async def listing(runtime: Runtime, settings: Settings, request: Any) -> dict[str, Any]:
    """The held suppressions of one domain's group (?domain=) or of every group."""
    check_read(settings, request)
    domain = request.query.get("domain") or None
    counts = request.query.get("counts") in ("1", "true")
    try:
        groups = await held.held(runtime.store, domain)
    except ValueError as exc:
        raise ApiError(400, "wrong_type", str(exc)) from exc
    return {"groups": [g.to_json(addresses=not counts) for g in groups]}


async def settle(
    runtime: Runtime, settings: Settings, request: Any, domain: str, action: str
) -> dict[str, Any]:
    """Release or discard `domain`'s held suppressions; the released ones are emitted (and
    confirmed) before the answer."""
    if not authorized(settings, request):
        raise ApiError(401, "unauthorized", "a valid bearer token is required")
    if action not in ACTIONS:
        raise ApiError(404, "not_found", "use /release or /discard")
    try:
        settled = await held.settle(runtime.store, domain.lower(), action)
    except ValueError as exc:
        raise ApiError(400, "wrong_type", str(exc)) from exc
    outcome = Outcome(suppressions=settled.suppressions, acks=settled.acks)
    outcome.held[settled.group] = 0
    metrics.observe_held(outcome.held)
    try:
        await asyncio.wait_for(runtime.emitter.emit(outcome), EMIT_TIMEOUT)
    except TimeoutError as exc:
        raise ApiError(
            503, "kafka_unreachable", "not delivered yet; send the request again"
        ) from exc
    return {"group": settled.group, "released": settled.released,
            "discarded": settled.discarded, "emitted": len(settled.suppressions)}  # fmt: skip
