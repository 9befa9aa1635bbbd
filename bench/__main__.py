"""Run every benchmark module `bench/bench_*.py` (each exposes `run() -> None`) in name order."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main(selected: list[str]) -> int:
    """Run the benchmarks named in `selected` (all of them when empty); return an exit code."""
    names = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    for name in names:
        if selected and name.removeprefix("bench_") not in selected:
            continue
        print(f"== {name}", flush=True)
        importlib.import_module(f"bench.{name}").run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
