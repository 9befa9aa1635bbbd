"""Load the `.lua` files beside this module as redis-py Script objects.

redis-py's Script runs EVALSHA and reloads the script after NOSCRIPT (a Redis restart or
SCRIPT FLUSH), and a pipeline loads its scripts before executing, so callers never see NOSCRIPT.
"""

from __future__ import annotations

from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

NAMES = (
    "record_attempt",
    "record_engagement",
    "mark_emitted",
    "reactivate",
    "sweep_step",
    "tenant_rate",
    "record_history",
)
"""One script per state transition."""


def source(name: str) -> str:
    """Return the text of `pipeline/state/<name>.lua`."""
    return resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


def register(client: Redis, name: str) -> AsyncScript:
    """Register `<name>.lua` with `client`; the result is callable as script(keys, args, client)."""
    return client.register_script(source(name))


def register_all(client: Redis) -> dict[str, AsyncScript]:
    """Register every script of NAMES with `client`."""
    return {name: register(client, name) for name in NAMES}
