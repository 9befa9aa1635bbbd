"""Policies: frozen values loaded from the preset files in `presets/` (data, not code)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True, slots=True)
class Policy:
    """The numbers one tenant is judged by."""

    name: str
    """Preset name, reported on every suppression."""
    hard_immediate: bool
    """A hard bounce suppresses at once."""
    soft_threshold: int
    """Consecutive soft bounces (one per send) that suppress; 0 = never."""

    def __post_init__(self) -> None:
        if self.soft_threshold < 0:
            raise ValueError("soft_threshold must be >= 0")


def load_preset(name: str) -> Policy:
    """Load `presets/<name>.toml`; raise FileNotFoundError for an unknown preset."""
    path = resources.files(__package__).joinpath("presets", f"{name}.toml")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return Policy(
        name=data["name"],
        hard_immediate=bool(data["hard_immediate"]),
        soft_threshold=int(data["soft_threshold"]),
    )
