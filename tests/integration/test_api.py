"""The worker's HTTP API on a live worker: status, reactivation (token), suppression history."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from pipeline.config import Settings
from tests.integration.conftest import (
    WorkerProcess,
    isolated_settings,
    read_topic,
    send,
    wait_for,
)
from tests.integration.test_worker import attempt

pytestmark = pytest.mark.integration
TOKEN = "s3cret-test-token"


def call(
    settings: Settings,
    method: str,
    path: str,
    body: bytes | None = None,
    token: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """One HTTP request to the test worker; returns (status, decoded JSON body)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{settings.web_port}{path}", data=body, method=method
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read())


def suppressed(settings: Settings, address: str) -> bool:
    """Whether the status API shows a suppression in the tenant scope."""
    _, view = call(settings, "GET", f"/v1/addresses/{address}?tenant=acme")
    return "immediate_hard" in orjson.dumps(view).decode()


def api_worker(settings: Settings, factory: Any, producer: KafkaProducer) -> Settings:
    """Start a worker with an API token (`factory`) and give it two hard-bounced addresses
    of tenant acme; return once both suppressions are out and the history lists them."""
    factory(settings, BOUNCEGUARD_API_TOKEN=TOKEN)
    for n, who in enumerate(("first@example.com", "second@example.com")):
        send(
            producer, settings.topics.attempts, attempt(who, ts=f"2026-03-02T09:00:0{n}Z"), key=who
        )
    read_topic(settings.kafka, settings.topics.suppressions, 2)
    wait_for(lambda: call(settings, "GET", "/v1/suppressions?tenant=acme")[1]["items"] != [], 20)
    return settings


@pytest.fixture
def api(settings: Settings, worker_factory: Any, producer: KafkaProducer) -> Settings:
    """A worker of its own (api_worker), for a test that writes (POST) or may change state."""
    return api_worker(settings, worker_factory, producer)


@pytest.fixture(scope="module")
def read_api(
    kafka_broker: str, redis_server: str, module_worker_factory: Callable[..., WorkerProcess]
) -> Settings:
    """One api_worker shared by the tests of this module that only read (GET), which change
    nothing, so their order does not matter: a worker's start and its two suppressions cost
    ~3 s, once instead of once per test (11 of them)."""
    producer = KafkaProducer(bootstrap_servers=kafka_broker, acks="all", linger_ms=5)
    try:
        settings = api_worker(
            isolated_settings(kafka_broker, redis_server), module_worker_factory, producer
        )
    finally:
        producer.close(timeout=10)
    return settings


def test_status_shows_the_suppression_with_its_evidence(read_api: Settings) -> None:
    # Case and percent-encoding in the URL are normalized like recipients are.
    status, view = call(read_api, "GET", "/v1/addresses/FIRST%40Example.COM?tenant=acme")
    assert status == 200
    text = orjson.dumps(view).decode()
    assert "first@example.com" in text
    assert "immediate_hard" in text
    assert "does not exist" in text  # the server message that led to it


def test_reactivate_needs_the_token_and_changes_nothing_without_it(api: Settings) -> None:
    for token in (None, "wrong-token"):
        status, body = call(
            api, "POST", "/v1/addresses/first@example.com/reactivate?tenant=acme", b"", token
        )
        assert (status, body["error"]) == (401, "unauthorized")
    assert suppressed(api, "first@example.com")


def test_reactivate_with_the_token_emits_the_reactivated_event(api: Settings) -> None:
    status, body = call(
        api,
        "POST",
        "/v1/addresses/first@example.com/reactivate",
        orjson.dumps({"tenant": "acme"}),
        TOKEN,
    )
    assert status == 200, body
    assert body["reactivated"] is True
    assert not suppressed(api, "first@example.com")
    events = [orjson.loads(v) for v in read_topic(api.kafka, api.topics.suppressions, 3)]
    assert [e["action"] for e in events if e["address"] == "first@example.com"] == [
        "suppressed",
        "reactivated",
    ]
    again = call(
        api,
        "POST",
        "/v1/addresses/first@example.com/reactivate",
        orjson.dumps({"tenant": "acme"}),
        TOKEN,
    )
    assert again == (200, {"reactivated": False, "detail": "not suppressed in that scope"})


@pytest.mark.parametrize(
    "body",
    [
        {"tenant": "acme", "list_id": [1, 2]},
        {"tenant": {"a": 1}},
        {"tenant": "*"},
        {"tenant": "acme", "scope": ["tenant"]},
    ],
    ids=["list-array", "tenant-object", "tenant-star", "scope-array"],
)
def test_reactivate_type_checks_its_body_before_any_change(
    api: Settings, body: dict[str, Any]
) -> None:
    """Catches: a body field taken through str() ({"list_id": [1, 2]} reactivating the list
    "[1, 2]", {"tenant": {"a": 1}} taken as a tenant)."""
    path = "/v1/addresses/first@example.com/reactivate"
    status, answer = call(api, "POST", path, orjson.dumps(body), TOKEN)
    assert (status, answer["error"]) == (400, "wrong_type"), answer
    assert suppressed(api, "first@example.com")


def test_suppression_history_pages_with_a_cursor(read_api: Settings) -> None:
    wait_for(
        lambda: len(call(read_api, "GET", "/v1/suppressions?tenant=acme")[1]["items"]) == 2, 20
    )
    status, first = call(read_api, "GET", "/v1/suppressions?tenant=acme&limit=1")
    assert status == 200
    assert [e["address"] for e in first["items"]] == ["first@example.com"]
    cursor = first["next"]
    path = f"/v1/suppressions?tenant=acme&limit=1&since={cursor['since']}&after={cursor['after']}"
    _, second = call(read_api, "GET", path)
    assert [e["address"] for e in second["items"]] == ["second@example.com"]
    assert second["next"] is None


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/v1/addresses/not-an-address?tenant=acme", 400, "bad_address"),
        ("/v1/addresses/a%00b@example.com?tenant=acme", 400, "bad_address"),
        ("/v1/addresses/victim@example.com%00.zz?tenant=acme", 400, "bad_address"),
        ("/v1/addresses/first@example.com?tenant=*", 400, "wrong_type"),
        ("/v1/addresses/first@example.com?tenant=acme:l:x", 400, "wrong_type"),
        ("/v1/suppressions?tenant=*", 400, "wrong_type"),
        ("/v1/suppressions", 400, "missing_field"),
        ("/v1/suppressions?tenant=acme&limit=0", 400, "wrong_type"),
    ],
)
def test_errors_are_json_with_a_reason(
    read_api: Settings, path: str, status: int, reason: str
) -> None:
    assert call(read_api, "GET", path)[0:1] == (status,)
    assert call(read_api, "GET", path)[1]["error"] == reason


def test_a_huge_authorization_header_is_a_4xx_without_a_traceback(
    settings: Settings, worker_factory: Any
) -> None:
    """Catches: aiohttp logging a header over its limit at ERROR with a traceback that quotes
    the header's first bytes (a token, in the worker's log)."""
    worker: WorkerProcess = worker_factory(settings, BOUNCEGUARD_API_TOKEN=TOKEN)
    secret = "Bearer s3cret" + "x" * 100_000
    connection = http.client.HTTPConnection("127.0.0.1", settings.web_port, timeout=10)
    try:
        connection.request("GET", "/health", headers={"Authorization": secret})
        status = connection.getresponse().status
    finally:
        connection.close()
    assert status in (400, 431)
    assert call(settings, "GET", "/health")[0] == 200  # still serving
    log = worker.log.read_text(errors="replace")
    assert "Traceback" not in log, worker.tail()
    assert "s3cret" not in log, worker.tail()
    assert not [line for line in log.splitlines() if "[ERROR]" in line], worker.tail()


def test_health_answers(read_api: Settings) -> None:
    assert call(read_api, "GET", "/health") == (200, {"status": "ok", "app_id": read_api.app_id})
