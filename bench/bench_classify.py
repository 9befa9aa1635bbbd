"""Micro-benchmark of the classifier: mean microseconds per response, cold and cached.

Cold: every response of the test table once, with an empty cache (each text is new).
Cached: the same responses again and again (the common case in production, where a few
hundred texts make up most of the traffic). Prints; asserts nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.core.classify import cache_clear, classify

TABLE = Path(__file__).parent.parent / "tests" / "data" / "classify" / "responses.tsv"
ROUNDS = 50


def _responses() -> list[tuple[int | None, str | None, str]]:
    """Load (code, enhanced, diagnostic) of every table row."""
    rows = []
    for line in TABLE.read_text("utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        code, enhanced, _category, _klass, text = line.split("\t", 4)
        rows.append((int(code) if code else None, enhanced or None, text.replace("\\n", "\n")))
    return rows


def _mean_us(rows: list[tuple[int | None, str | None, str]], rounds: int) -> float:
    """Classify every row `rounds` times; return the mean cost of one call in microseconds."""
    start = time.perf_counter()
    for _ in range(rounds):
        for code, enhanced, text in rows:
            classify(code, enhanced, text)
    return (time.perf_counter() - start) / (rounds * len(rows)) * 1e6


def run() -> None:
    """Print the cold and cached mean cost per response over the test table."""
    rows = _responses()
    cold = []
    for _ in range(5):
        cache_clear()
        cold.append(_mean_us(rows, 1))
    cached = _mean_us(rows, ROUNDS)
    # As in real logs: the same replies, each naming a different recipient address.
    variants = [
        (code, enhanced, f"{text} <user{i}.{n}@example.com>")
        for i in range(ROUNDS)
        for n, (code, enhanced, text) in enumerate(rows)
    ]
    per_message = _mean_us(variants, 1)
    print(f"classify: {len(rows)} responses")
    print(f"  cold   (unique texts, empty cache): {min(cold):8.2f} us/response (best of 5)")
    print(f"  cached (repeated texts):            {cached:8.2f} us/response ({ROUNDS} rounds)")
    print(
        f"  per-message addresses (masked):     {per_message:8.2f} us/response "
        f"({len(variants)} distinct texts)"
    )


if __name__ == "__main__":
    run()
