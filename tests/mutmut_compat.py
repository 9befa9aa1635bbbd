"""pytest plugin for `make mutants` only (loaded with `-p tests.mutmut_compat`, see pyproject).

mutmut 3.7.0, the newest mutmut whose click requirement agrees with faust-streaming's
(click < 8.4), reads `item._nodeid` when it maps tests to the functions they call; pytest 9 no
longer has that attribute. Giving every collected item one is all it needs.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item._nodeid = item.nodeid  # type: ignore[attr-defined]
