"""The HTTP API's pure checks (the pages themselves are tested on a live worker in
tests/integration/test_api.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import orjson
import pytest

from pipeline.config import Settings
from pipeline.web import (
    ApiError,
    authorized,
    check_read,
    list_of,
    reactivate,
    status,
    suppression_page,
    tenant_of,
)


class _Request:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


@pytest.mark.parametrize(
    ("bind", "headers", "allowed"),
    [
        ("127.0.0.1", {}, True),
        ("0.0.0.0", {}, False),
        ("0.0.0.0", {"Authorization": "Bearer t0ken"}, True),
        ("0.0.0.0", {"Authorization": "Bearer wrong"}, False),
    ],
)
def test_reads_need_the_token_off_loopback(
    bind: str, headers: dict[str, str], allowed: bool
) -> None:
    settings = Settings.from_env({}, web_bind=bind, api_token="t0ken")
    if allowed:
        check_read(settings, _Request(headers))
    else:
        with pytest.raises(ApiError) as err:
            check_read(settings, _Request(headers))
        assert err.value.status == 401


def test_a_token_header_that_is_not_text_is_refused_not_an_error() -> None:
    settings = Settings.from_env({}, api_token="t0ken")
    assert not authorized(settings, _Request({"Authorization": "Bearer t\udcff0ken"}))


# `BOUNCEGUARD_API_TOKEN=` (set but empty, as a templated env file leaves it) reads as "".
NO_TOKEN = [Settings.from_env({}), Settings.from_env({"BOUNCEGUARD_API_TOKEN": ""})]
EMPTY_BEARERS = ["Bearer ", "Bearer", "bearer  ", "Bearer \t", "", " "]


@pytest.mark.parametrize("settings", NO_TOKEN, ids=["unset", "empty"])
@pytest.mark.parametrize("header", EMPTY_BEARERS)
def test_without_a_configured_token_no_header_is_authorized(
    settings: Settings, header: str
) -> None:
    """Catches: dropping the `not settings.api_token` check in web.authorized: with an empty
    configured token, `Authorization: Bearer ` (an empty token) compares equal to it and
    would pass."""
    assert settings.api_token in (None, "")
    assert authorized(settings, _Request({"Authorization": header})) is False


@pytest.mark.parametrize("settings", NO_TOKEN, ids=["unset", "empty"])
def test_without_a_configured_token_reactivation_is_refused_before_any_work(
    settings: Settings,
) -> None:
    """Catches: the same bug seen from the write itself: reactivate must answer 401 before it
    touches the store (runtime None here: any use of it would raise AttributeError)."""
    request = _Request({"Authorization": "Bearer "})
    with pytest.raises(ApiError) as err:
        asyncio.run(reactivate(None, settings, request, "a@example.com"))  # type: ignore[arg-type]
    assert (err.value.status, err.value.reason) == (401, "unauthorized")


@pytest.mark.parametrize("settings", NO_TOKEN, ids=["unset", "empty"])
def test_without_a_configured_token_reads_off_loopback_are_refused(settings: Settings) -> None:
    """Catches: the same bug on reads: an API bound off loopback with no token configured
    must refuse every read, also one with an empty bearer token."""
    off_loopback = replace(settings, web_bind="0.0.0.0")
    with pytest.raises(ApiError) as err:
        check_read(off_loopback, _Request({"Authorization": "Bearer "}))
    assert err.value.status == 401


def test_the_configured_token_is_authorized_and_only_as_a_bearer_token() -> None:
    """Catches: an `authorized` that refuses everything (the checks above would all pass)."""
    settings = Settings.from_env({"BOUNCEGUARD_API_TOKEN": "t0ken"})
    assert authorized(settings, _Request({"Authorization": "Bearer t0ken"}))
    assert authorized(settings, _Request({"Authorization": "bearer  t0ken "}))
    assert not authorized(settings, _Request({"Authorization": "Basic t0ken"}))
    assert not authorized(settings, _Request({"Authorization": "Bearer t0ke"}))
    assert not authorized(settings, _Request({}))


class _Post:
    """A request with a query, headers and a body (what the pages read of aiohttp's)."""

    def __init__(self, body: bytes, query: dict[str, str] | None = None, token: str = "") -> None:
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.query = query or {}
        self._body = body

    async def read(self) -> bytes:
        return self._body


TOKEN_SETTINGS = Settings.from_env({"BOUNCEGUARD_API_TOKEN": "t0ken"})
BAD_TENANTS: list[object] = [{"a": 1}, [1], True, 1.5, "*", "a:b", "a b", "x" * 129, "-lead"]
BAD_LISTS: list[object] = [[1, 2], {"a": 1}, True, 1.5]


def _refused(page: Any) -> ApiError:
    """The ApiError `page` raises (runtime None: any use of the store would raise
    AttributeError instead, so the check must come before any work)."""
    with pytest.raises(ApiError) as err:
        asyncio.run(page)
    return err.value


@pytest.mark.parametrize("tenant", BAD_TENANTS, ids=repr)
def test_reactivate_refuses_a_tenant_the_stream_would_refuse(tenant: object) -> None:
    """Catches: `str(body["tenant"])` taking {"a": 1} as the tenant "{'a': 1}", or a tenant
    outside check_tenant's rule (":" would make its key read as another tenant's list key)."""
    request = _Post(orjson.dumps({"tenant": tenant}), token="t0ken")
    error = _refused(reactivate(None, TOKEN_SETTINGS, request, "a@example.com"))  # type: ignore[arg-type]
    assert (error.status, error.reason) == (400, "wrong_type")


@pytest.mark.parametrize("list_id", BAD_LISTS, ids=repr)
def test_reactivate_refuses_a_list_id_that_is_not_text(list_id: object) -> None:
    """Catches: `str(list_id)` reactivating the list "[1, 2]" for {"list_id": [1, 2]}."""
    request = _Post(orjson.dumps({"tenant": "acme", "list_id": list_id}), token="t0ken")
    error = _refused(reactivate(None, TOKEN_SETTINGS, request, "a@example.com"))  # type: ignore[arg-type]
    assert (error.status, error.reason) == (400, "wrong_type")


@pytest.mark.parametrize("field", ["scope", "request_id"])
def test_reactivate_refuses_other_fields_that_are_not_text(field: str) -> None:
    """Catches: a scope or request id taken through str() (a dict as the idempotency key)."""
    request = _Post(orjson.dumps({"tenant": "acme", field: {"a": 1}}), token="t0ken")
    error = _refused(reactivate(None, TOKEN_SETTINGS, request, "a@example.com"))  # type: ignore[arg-type]
    assert (error.status, error.reason) == (400, "wrong_type")


def test_reactivate_refuses_a_bad_tenant_in_the_query_too() -> None:
    """Catches: the tenant rule applied to the body only."""
    request = _Post(b"", query={"tenant": "*"}, token="t0ken")
    error = _refused(reactivate(None, TOKEN_SETTINGS, request, "a@example.com"))  # type: ignore[arg-type]
    assert (error.status, error.reason) == (400, "wrong_type")


@pytest.mark.parametrize("tenant", ["*", "a:b", "a{b}", "x" * 129])
def test_reads_refuse_a_tenant_the_stream_would_refuse(tenant: str) -> None:
    """Catches: `tenant=*` accepted by the status and history pages (a SCAN pattern, or
    another tenant's key, in a tenant's place)."""
    request = _Post(b"", query={"tenant": tenant})
    pages = (
        lambda: status(None, TOKEN_SETTINGS, request, "a@example.com"),  # type: ignore[arg-type]
        lambda: suppression_page(None, TOKEN_SETTINGS, request),  # type: ignore[arg-type]
    )
    for page in pages:
        error = _refused(page())
        assert (error.status, error.reason) == (400, "wrong_type")


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "default"), ("", "default"), ("acme", "acme"), (7, "7")]
)
def test_the_api_reads_a_tenant_as_the_stream_does(value: object, expected: str) -> None:
    """Catches: the API and the stream disagreeing on a valid tenant (an attempt's integer
    tenant 7 is tenant "7"; absent means "default")."""
    assert tenant_of(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("", None), ("news", "news"), (42, "42")]
)
def test_the_api_reads_a_list_id_as_the_stream_does(value: object, expected: str | None) -> None:
    """Catches: the API and the stream disagreeing on a valid list id."""
    assert list_of(value) == expected
