"""The Redis Functions library: the `.lua` files of `lua/` as one library, versioned by content.

Why Functions, not EVALSHA scripts: a function library survives a Redis restart (it is in the
RDB and the AOF) and reaches the replicas, so a failover or a restart never answers NOSCRIPT
in the middle of a batch; FLUSHALL keeps it too. The library name and every function name
carry a digest of the source (`bg_<digest>_apply`), so two versions of the worker can run side
by side during a rolling deploy without replacing each other's functions.
"""

from __future__ import annotations

import hashlib
from importlib import resources

FILES = ("prelude", "rules", "apply", "confirm", "rates", "sweep", "reactivate", "import", "outage")
"""Concatenated in this order: later files use the helpers of earlier ones."""


def _text(name: str) -> str:
    path = resources.files(__package__).joinpath("lua", f"{name}.lua")
    return path.read_text(encoding="utf-8")


def _build() -> tuple[str, str]:
    body = "\n".join(_text(name) for name in FILES)
    version = "bg_" + hashlib.sha256(body.encode()).hexdigest()[:12]
    return version, f"#!lua name={version}\n" + body.replace("@V@", version)


VERSION, SOURCE = _build()
"""The library name (also the prefix of every function name) and its full source."""


def name(function: str) -> str:
    """The versioned name of `function` (apply, confirm, rates, sweep, reactivate, import)."""
    return f"{VERSION}_{function}"
