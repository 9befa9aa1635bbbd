"""HTTP pages served by the worker (faust web, bound to 127.0.0.1 unless configured)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from pipeline.config import Settings


def attach(app: Any, settings: Settings) -> None:
    """Register /health and /metrics on `app`."""

    @app.page("/health")  # type: ignore[untyped-decorator]
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "app_id": settings.app_id})

    @app.page("/metrics")  # type: ignore[untyped-decorator]
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; the exposition format is ASCII anyway.
        content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return web.bytes(generate_latest(REGISTRY), content_type=content_type)
