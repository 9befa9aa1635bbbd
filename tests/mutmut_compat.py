"""pytest plugin for `make mutants` only (loaded with `-p tests.mutmut_compat`, see pyproject).

Two gaps between mutmut 3.7.0 and this suite:

- mutmut 3.7.0 (the newest mutmut whose click requirement agrees with faust-streaming's
  click < 8.4) reads `item._nodeid` when it maps tests to the functions they call; pytest 9 no
  longer has that attribute. Every collected item gets one.
- mutmut runs each mutant's tests in a fork of the process that already ran the whole suite
  once, so a module-level `functools.cache`/`lru_cache` (classify's rule lookups, wire's
  profiles, test_ids_pinned's ids) or a plain dict memo (decode's normalized addresses) would
  hand the mutant the un-mutated results, and the mutant would "survive". Every session
  starts with those caches cleared.
"""

from __future__ import annotations

import functools
import sys

import pytest

DICT_MEMOS = (("pipeline.core.decode", "_normalized"),)


def pytest_sessionstart(session: pytest.Session) -> None:
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(("pipeline", "tests")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, functools._lru_cache_wrapper):
                value.cache_clear()
    for module_name, attribute in DICT_MEMOS:
        module = sys.modules.get(module_name)
        if module is not None:
            getattr(module, attribute).clear()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item._nodeid = item.nodeid  # type: ignore[attr-defined]
