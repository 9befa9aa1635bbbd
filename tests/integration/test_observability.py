"""Observability end to end: a real Prometheus (Debian's, via deploy/prometheus.sh) scrapes a real
worker that processed a mixed sample; every dashboard panel query and every alert expression
is asked of Prometheus' HTTP API. Each must be valid, and the panels whose metrics the sample
exercises must return data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaProducer

from pipeline.config import Settings
from tests.integration.conftest import ROOT, free_port, send, wait_for

pytestmark = pytest.mark.integration

DASHBOARDS = ROOT / "grafana" / "dashboards"
ALERTS = ROOT / "deploy" / "alerts.yml"
TENANT = "acme"
# Grafana's template variables, as the test substitutes them.
VARIABLES = {"$__rate_interval": "1m", "$tenant": TENANT}
# Families the sample cannot produce (no reactivation, no tenant-rate alert in one batch, no
# provider outage): panel queries reading only these may come back empty.
NOT_EXERCISED = ("bounceguard_reactivations_total", "bounceguard_sender_alerts_total",
                 "bounceguard_held_suppressions")  # fmt: skip


@pytest.fixture
def prometheus(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """Prometheus on a free port scraping the test worker every second, with the real alert
    rules; yields its base URL."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    doc = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": "bounceguard",
                "static_configs": [{"targets": [f"127.0.0.1:{settings.web_port}"]}],
            }
        ],
    }
    config.write_text(yaml.safe_dump(doc))
    env = {
        **os.environ,
        "BG_VAR": str(tmp_path / "var"),
        "PROMETHEUS_PORT": str(port),
        "PROMETHEUS_CONFIG": str(config),
    }

    def ctl(action: str) -> subprocess.CompletedProcess[str]:
        script = str(ROOT / "deploy" / "prometheus.sh")
        return subprocess.run(
            [script, action], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    started = ctl("start")
    assert started.returncode == 0, started.stdout + started.stderr
    yield f"http://127.0.0.1:{port}"
    ctl("stop")


def query(base: str, expr: str) -> dict[str, Any]:
    """GET /api/v1/query for `expr`; return the decoded answer (errors included)."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            answer: dict[str, Any] = json.load(resp)
    except urllib.error.HTTPError as exc:  # 400 for a bad expression: its body says why
        answer = json.load(exc)
    return answer


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr with variables substituted) for every target."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for name, value in VARIABLES.items():
                    expr = expr.replace(name, value)
                assert "$" not in expr, f"unsubstituted variable in {expr}"
                out.append((path.name, panel["title"], expr))
    return out


def alert_expressions() -> list[tuple[str, str]]:
    """(alert name, expr) for every rule of deploy/alerts.yml."""
    doc = yaml.safe_load(ALERTS.read_text())
    return [(r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


def attempt(recipient: str, outcome: str, code: int, enhanced: str, text: str) -> dict[str, Any]:
    """One attempt of the sample (tenant acme)."""
    return {
        "event_id": uuid.uuid4().hex,
        "ts": "2026-03-02T09:00:00Z",
        "recipient": recipient,
        "tenant": TENANT,
        "campaign_id": "c1",
        "outcome": outcome,
        "smtp_code": code,
        "enhanced_code": enhanced,
        "diagnostic": text,
    }


SAMPLE = [
    attempt("ok@gmail.com", "delivered", 250, "2.0.0", "250 2.0.0 OK gsmtp"),
    attempt(
        "gone@gmail.com",
        "bounced",
        550,
        "5.1.1",
        "550-5.1.1 The email account that you tried to reach does not exist. - gsmtp",
    ),
    attempt(
        "full@gmail.com",
        "deferred",
        452,
        "4.2.2",
        "452-4.2.2 The email account that you tried to reach is over quota. - gsmtp",
    ),
    attempt(
        "blocked@gmail.com",
        "bounced",
        550,
        "5.7.1",
        "550-5.7.1 Our system has detected that this message is likely unsolicited mail. "
        "To reduce the amount of spam sent to Gmail, this message has been blocked. - gsmtp",
    ),
]


def test_prometheus_answers_every_panel_and_alert(
    settings: Settings, worker_factory: Any, producer: KafkaProducer, prometheus: str
) -> None:
    worker = worker_factory(settings, BOUNCEGUARD_MONITOR_INTERVAL="1")
    up = 'up{job="bounceguard"} == 1'
    wait_for(lambda: bool(query(prometheus, up)["data"]["result"]), 20, worker.tail)

    for item in SAMPLE:
        send(producer, settings.topics.attempts, item, key=item["recipient"])
    send(producer, settings.topics.attempts, b"this is not an attempt {", key="bad")

    panels = panel_queries()
    assert len(panels) >= 20
    expected = [p for p in panels if not any(m in p[2] for m in NOT_EXERCISED)]

    def empty() -> list[tuple[str, str, str]]:
        return [p for p in expected if not query(prometheus, p[2])["data"]["result"]]

    missing: list[tuple[str, str, str]] = []

    def all_have_data() -> bool:
        missing[:] = empty()
        return not missing

    wait_for(all_have_data, 45, lambda: f"{missing}\n{worker.tail()}")

    for name, title, expr in panels:
        answer = query(prometheus, expr)
        assert answer["status"] == "success", (name, title, expr, answer)
    for alert, expr in alert_expressions():
        answer = query(prometheus, expr)
        assert answer["status"] == "success", (alert, expr, answer)


def test_worker_metrics_show_the_families_without_addresses(
    settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    worker_factory(settings, BOUNCEGUARD_MONITOR_INTERVAL="1")
    for item in SAMPLE:
        send(producer, settings.topics.attempts, item, key=item["recipient"])
    send(producer, settings.topics.attempts, b"not json", key="bad")
    families = [
        "bounceguard_worker_info",
        "bounceguard_events_consumed_total",
        "bounceguard_attempts_total",
        "bounceguard_tenant_events_total",
        "bounceguard_suppressions_total",
        "bounceguard_domain_suppressions_total",
        "bounceguard_dead_letters_total",
        "bounceguard_batch_size_count",
        "bounceguard_batch_seconds_count",
        "bounceguard_redis_batch_seconds_count",
        "bounceguard_decision_lag_seconds_count",
        "bounceguard_redis_memory_used_bytes",
    ]
    text = ""

    def scraped() -> bool:
        nonlocal text
        url = f"http://127.0.0.1:{settings.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        # lag is a gauge that is rightly 0 once the sample is processed: present is enough
        return "\nbounceguard_consumer_lag{" in text and all(_nonzero(text, f) for f in families)

    wait_for(scraped, 45, lambda: text)
    labels = re.findall(r"\{([^}]*)\}", text)
    assert labels
    assert not [lbl for lbl in labels if "@" in lbl]
    assert f'app_id="{settings.app_id}"' in text


def _nonzero(text: str, family: str) -> bool:
    """True when some sample of `family` has a value > 0 in exposition `text`."""
    pattern = re.compile(rf"^{family}(\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    return any(float(value) > 0 for _, value in pattern.findall(text))
