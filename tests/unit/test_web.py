"""The HTTP API's pure checks (the pages themselves are tested on a live worker in
tests/integration/test_api.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from pipeline.config import Settings
from pipeline.web import ApiError, authorized, check_read, reactivate


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
