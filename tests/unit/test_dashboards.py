"""The committed Grafana dashboards are what grafana/build.py generates, and every query reads
metrics that pipeline.stream.metrics declares. (tests/integration/test_observability.py asks a
real Prometheus every one of these queries.)"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from pipeline.stream import metrics  # noqa: F401  (registers our metrics on REGISTRY)

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"


def load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_build", GRAFANA / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def boards() -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))
    }


def targets(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def test_committed_json_is_what_the_generator_writes() -> None:
    rendered = load_build().render()
    committed = {p.name: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert set(rendered) == set(committed), "run `make dashboards` and commit the result"
    for name, text in rendered.items():
        assert committed[name] == text, f"{name} is stale: run `make dashboards` and commit it"


def test_overview_and_tenant_dashboards_exist_with_stable_uids() -> None:
    uids = {b["uid"] for b in boards().values()}
    assert uids == {"bounceguard-overview", "bounceguard-tenant"}
    tenant = boards()["tenant.json"]
    variables = {v["name"]: v for v in tenant["templating"]["list"]}
    assert "tenant" in variables
    assert all('tenant="$tenant"' in e for e in targets(tenant))


@pytest.mark.parametrize("name", ["overview.json", "tenant.json"])
def test_every_panel_has_a_question_a_datasource_and_queries(name: str) -> None:
    for panel in boards()[name]["panels"]:
        if panel["type"] == "row":
            continue
        assert panel.get("description", "").endswith("?"), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert panel["targets"], panel["title"]


def test_queries_only_read_declared_metrics() -> None:
    suffixes = {
        "counter": ["_total"],
        "gauge": [""],
        "histogram": ["_bucket", "_count", "_sum"],
        "info": ["_info"],
    }
    declared = {m.name + s for m in REGISTRY.collect() for s in suffixes.get(m.type, [""])}
    used = {
        n for b in boards().values() for e in targets(b) for n in re.findall(r"bounceguard_\w+", e)
    }
    assert used
    assert used <= declared, used - declared


def test_overview_covers_the_questions_of_issue_6() -> None:
    queries = " ".join(targets(boards()["overview.json"]))
    for metric in [
        "bounceguard_events_consumed_total",  # throughput
        "bounceguard_attempts_total",  # bounce mix by category
        "bounceguard_suppressions_total",  # suppressions by rule
        "bounceguard_tenant_events_total",  # complaint rate by tenant
        "bounceguard_dead_letters_total",
        "bounceguard_decision_lag_seconds_bucket",  # latency p50/p99
        "bounceguard_consumer_lag",
        "bounceguard_redis_memory_used_bytes",
    ]:
        assert metric in queries, metric


def test_grafana_provisioning_points_at_the_dashboards_and_prometheus() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/bounceguard.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{path}:ro" in mounts
    source = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    assert source["datasources"][0]["uid"] == "prometheus"
