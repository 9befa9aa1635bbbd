"""`bounceguard topics`: create every topic bounceguard uses (idempotent) and list them."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options: names, partitions and the broker come from BOUNCEGUARD_* variables."""


def run(args: argparse.Namespace) -> int:
    """Create missing topics and print every topic name; return 0."""
    from pipeline.config import Settings
    from pipeline.stream.topics import ensure_topics

    settings = Settings.from_env()
    created = set(ensure_topics(settings))
    for name in settings.topics.all():
        print(f"{name}\t{'created' if name in created else 'exists'}")
    return 0
