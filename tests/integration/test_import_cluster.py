"""Imported suppressions on a real Redis Cluster: each address's call goes to the primary of
its slot, and the second import of the same rows records nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from pipeline.core.imports import ImportRow, imported_suppression
from pipeline.core.models import Category, Scope
from pipeline.core.policies import load_preset
from pipeline.state import keys
from pipeline.state.imports import record_imports
from pipeline.state.store import Store

pytestmark = pytest.mark.integration


async def _run(url: str, namespace: str) -> tuple[int, int, int, str | None]:
    policy = load_preset("default")
    rows = [
        ImportRow(
            line=i + 2,
            address=f"user{i}@example{i % 7}.com",
            category=Category.USER_UNKNOWN,
            ts=None,
        )
        for i in range(40)
    ]
    found = [
        imported_suppression(
            row,
            policy=policy,
            tenant="acme",
            scope=Scope.TENANT,
            list_id=None,
            fmt="plain",
            default_ts=datetime(2026, 4, 1, tzinfo=UTC),
        )
        for row in rows
    ]
    store = Store.from_url(url, policy, namespace=namespace)
    try:
        first = await record_imports(store, found)
        await store.mark_emitted(first.emit)
        second = await record_imports(store, found)
        # (queries.status pipelines an MGET, which redis-py refuses on a Cluster: read the doc)
        raw = await store.client.get(keys.state(namespace, "user3@example3.com", "acme"))
        suppressed = keys.read_doc(raw).fields["s"]
        return len(first.emit), len(second.emit), len(second.already), suppressed["rule"]
    finally:
        await store.close()


def test_import_on_a_cluster_records_once(redis_cluster: str) -> None:
    namespace = f"ic{uuid.uuid4().hex[:8]}"
    assert asyncio.run(_run(redis_cluster, namespace)) == (40, 0, 40, "imported")
