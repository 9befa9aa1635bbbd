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
