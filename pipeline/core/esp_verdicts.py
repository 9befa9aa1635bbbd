"""The ESPs' own verdicts (SES bounceType, SendGrid type=blocked, Mailgun severity, Postmark
Type, SparkPost bounce_class) and how they bound the classifier's verdict on the SMTP text.

Data: `esp_verdicts.toml` beside this module (its header states the rule). An attempt mapped
from an ESP event carries the key in its `smtp_phase` as "esp:<key>" (ESP_PHASE_PREFIX); an ESP
event has no SMTP phase of its own to put there, and the wire format, the schema and replay
then carry the verdict unchanged. Pure: the file is read once at import.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

from pipeline.core.models import BounceClass, Category, Classification

VERDICTS_FILE = "esp_verdicts.toml"
ESP_PHASE_PREFIX = "esp:"
"""The smtp_phase prefix that marks an attempt as carrying an ESP verdict."""


@dataclass(frozen=True, slots=True)
class EspVerdict:
    """One provider verdict: the classes of text verdicts it keeps, and its own otherwise."""

    key: str
    category: Category
    bounce_class: BounceClass
    classes: frozenset[BounceClass]

    def judge(self, text: Classification) -> Classification:
        """The text's verdict when its class is one this verdict allows and a rule of the
        text found its reason, else this verdict's own category and class (rule
        `esp.<key>`). The classifier's fallbacks on the outcome alone ("outcome.bounced":
        general_hard) are no reason: the provider's field knows more than they do."""
        said = text.category is not Category.UNDETERMINED and not text.rule.startswith("outcome.")
        if said and text.bounce_class in self.classes:
            return text
        return Classification(self.category, self.bounce_class, f"esp.{self.key}")


def load_verdicts(source: str, default_class: dict[Category, BounceClass]) -> dict[str, EspVerdict]:
    """Parse the verdict file's TOML text; raise ValueError (or KeyError) on a bad entry."""
    out = {}
    for key, raw in tomllib.loads(source)["verdict"].items():
        if key != key.lower() or not raw.get("source"):
            raise ValueError(f"verdict {key!r}: keys are lowercase and every entry has a source")
        category = Category(raw["category"])
        klass = BounceClass(raw["class"]) if raw.get("class") else default_class[category]
        classes = frozenset(BounceClass(c) for c in raw["classes"])
        if klass not in classes:
            raise ValueError(f"verdict {key!r}: its own class {klass} must be in classes")
        out[key] = EspVerdict(key, category, klass, classes)
    return out


def lookup(verdicts: dict[str, EspVerdict], key: str) -> EspVerdict | None:
    """The verdict of `key` (lowercase), else of `key` without its last ":part", and so on;
    None when no prefix of it is known (then the text alone decides)."""
    while key:
        found = verdicts.get(key)
        if found is not None:
            return found
        key = key.rpartition(":")[0]
    return None


def esp_phase(provider: str, *values: str | None) -> str:
    """The smtp_phase an ESP attempt carries: "esp:" + provider and the given field values,
    lowercased, empty ones left out (e.g. esp_phase("ses", "Permanent", "General"))."""
    parts = [provider, *(v.strip() for v in values if v and v.strip())]
    return ESP_PHASE_PREFIX + ":".join(parts).lower()


def read_default() -> str:
    """The packaged verdict file's text."""
    return resources.files("pipeline.core").joinpath(VERDICTS_FILE).read_text("utf-8")
