"""The HTTP API's pure checks (the pages themselves are tested on a live worker in
tests/integration/test_api.py)."""

from __future__ import annotations

import pytest

from pipeline.config import Settings
from pipeline.web import ApiError, authorized, check_read


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
