"""The deployment files are valid: docker-compose.yml against the Compose specification,
the Prometheus configuration and alert rules with promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "var" / "cache" / "compose-spec.json"


def _validate(doc: dict[str, Any]) -> None:
    schema = orjson.loads(SPEC.read_bytes())
    # The schema names its draft (2019-09) with a trailing "#" that jsonschema does not
    # recognise, so pick the validator ourselves instead of letting jsonschema guess.
    jsonschema.Draft201909Validator(schema).validate(doc)


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def test_compose_file_follows_the_compose_specification() -> None:
    assert SPEC.exists(), "run `make setup`: it fetches the Compose specification schema"
    # The 2021 schema predates the top-level `name`; validate everything else against it.
    _validate({k: v for k, v in _compose().items() if k != "name"})


def test_compose_validation_catches_a_broken_file() -> None:
    broken = {"services": {"redis": {"image": "redis:7.0", "ports": {"not": "a list"}}}}
    with pytest.raises(jsonschema.ValidationError):
        _validate(broken)


def test_compose_runs_the_whole_stack_on_loopback() -> None:
    services = _compose()["services"]
    assert {"kafka", "redis", "worker", "prometheus", "grafana"} <= set(services)
    assert "--appendonly" in services["redis"]["command"]
    assert services["kafka"]["image"].startswith("apache/kafka:3.9")
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    for mount in services["prometheus"]["volumes"] + services["grafana"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), f"compose mounts missing {source}"


@pytest.mark.parametrize(
    ("args", "path"),
    [(["check", "config"], "deploy/prometheus.yml"), (["check", "rules"], "deploy/alerts.yml")],
)
def test_promtool_accepts_the_prometheus_files(args: list[str], path: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: .ci/run installs Debian's prometheus package"
    proc = subprocess.run(
        [promtool, *args, str(ROOT / path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: .ci/run installs Debian's prometheus package"
    return subprocess.run([promtool, *args], capture_output=True, text=True, check=False)


def test_promtool_accepts_the_compose_prometheus_config(tmp_path: Path) -> None:
    # The compose file mounts alerts.yml at /etc/prometheus; point it at ours for the check.
    doc = yaml.safe_load((ROOT / "deploy/prometheus.compose.yml").read_text())
    assert doc["rule_files"] == ["/etc/prometheus/alerts.yml"]
    doc["rule_files"] = [str(ROOT / "deploy/alerts.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(doc))
    proc = _promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _alert(name: str, at: str, *expected: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [
            {"exp_labels": labels, "exp_annotations": {"summary": summary}}
            for labels, summary in expected
        ],
    }


# promtool unit tests of deploy/alerts.yml: each alert fires on the situation it is for, and
# the burst alert stays quiet for a family whose rate is steady.
RULE_TESTS: list[dict[str, Any]] = [
    {
        "interval": "1m",
        "input_series": [
            {"series": 'up{job="bounceguard", instance="w:6066"}', "values": "0x10"},
        ],
        "alert_rule_test": [
            _alert(
                "BounceguardWorkerDown",
                "5m",
                (
                    {"severity": "critical", "job": "bounceguard", "instance": "w:6066"},
                    "bounceguard worker w:6066 is not being scraped",
                ),
            )
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            {"series": 'bounceguard_events_consumed_total{topic="t"}', "values": "0+100x40"},
            {
                "series": 'bounceguard_dead_letters_total{topic="t", reason="bad_json"}',
                "values": "0+10x40",
            },
        ],
        "alert_rule_test": [
            _alert(
                "BounceguardDeadLetterRatioHigh",
                "30m",
                ({"severity": "warning"}, "over 5% of input is being dead-lettered"),
            )
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            {
                "series": 'bounceguard_domain_suppressions_total{domain_family="gmail"}',
                "values": "0x70 0+50x20",
            },
            {
                "series": 'bounceguard_domain_suppressions_total{domain_family="outlook"}',
                "values": "0+50x90",
            },
        ],
        "alert_rule_test": [
            _alert(
                "BounceguardDomainSuppressionBurst",
                "80m",
                (
                    {"severity": "warning", "domain_family": "gmail"},
                    "suppression burst from gmail addresses",
                ),
            )
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            {
                "series": 'bounceguard_sender_alerts_total{rule="complaint_rate", tenant="acme"}',
                "values": "0 0 1 1 1",
            },
            {"series": 'bounceguard_consumer_lag{topic="t", partition="0"}', "values": "0+1000x30"},
        ],
        "alert_rule_test": [
            _alert(
                "BounceguardTenantComplaintRateOverLimit",
                "4m",
                (
                    {"severity": "warning", "tenant": "acme", "rule": "complaint_rate"},
                    "tenant acme is over its complaint-rate limit (complaint_rate)",
                ),
            ),
            _alert(
                "BounceguardConsumerLagHigh",
                "30m",
                (
                    {"severity": "warning", "topic": "t", "partition": "0"},
                    "t[0] is 30000 messages behind",
                ),
            ),
        ],
    },
]


def test_alert_rules_fire_on_what_they_are_for(tmp_path: Path) -> None:
    doc = {
        "rule_files": [str(ROOT / "deploy/alerts.yml")],
        "evaluation_interval": "1m",
        "tests": RULE_TESTS,
    }
    (tmp_path / "alerts.test.yml").write_text(yaml.safe_dump(doc))
    proc = _promtool("test", "rules", str(tmp_path / "alerts.test.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
