"""Policies: frozen values built from the preset files in `presets/` (data, not code).

Responsibilities:
- the rule kinds (`RuleKind`) and the frozen `Rule` / `Policy` values they are written in;
- loading a preset by name, with per-tenant overrides merged over it (any number can change);
- a `PolicyBook`: which policy judges which tenant (policy file, TOML or YAML).

A preset is a TOML file whose `[rules.<id>]` tables each hold one rule; an override names the
same rule id and replaces only the keys it gives. Nothing here does I/O except reading the
packaged preset files and, at start-up, a policy file.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.models import BounceClass, Category, Scope

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SCOPE_ORDER = (Scope.LIST, Scope.TENANT, Scope.GLOBAL)
"""Narrow to broad: a suppression in a broader scope covers the narrower ones."""


class RuleKind(enum.StrEnum):
    """The general rule kinds every preset is written in (PRODUCT.md, Policies)."""

    IMMEDIATE = "immediate"
    """The first matching event suppresses."""
    CONSECUTIVE = "consecutive"
    """N matching sends (one per campaign send) with no reset between; engaged contacts may
    get a higher N. Covers consecutive soft bounces and benchmark's consecutive campaigns."""
    CONFIRMATIONS = "confirmations"
    """At least N matching events whose first and last are at least `span_hours` apart."""
    RETRY_WINDOW = "retry_window"
    """Each failed attempt counts, at most `per_campaign` per campaign and only inside the
    campaign's window from its first attempt; the sum since the last reset must reach N."""
    COUNT_THRESHOLD = "count_threshold"
    """Evaluated by the sweep: the latest bounce reason picks a tier, the bounce count must
    reach the tier's minimum."""
    TENANT_RATE = "tenant_rate"
    """Matching events per delivered message of a tenant over a window: an alert, not a
    suppression."""


@dataclass(frozen=True, slots=True)
class Tier:
    """One line of a count-threshold table: these reasons need at least `min_count` bounces.

    A reason is its category; `classes` catch the categories no tier names by their class as
    this event was classified (a recipient-side `throttled`, classified soft, is a Soft Bounce
    for listrak, a sender-side one, a block, is not)."""

    categories: frozenset[Category]
    min_count: int
    classes: frozenset[BounceClass] = frozenset()


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a policy. Which fields matter depends on `kind` (see RuleKind)."""

    id: str
    kind: RuleKind
    classes: frozenset[BounceClass] = frozenset()
    """The event's class must be one of these (empty: any class)."""
    categories: frozenset[Category] = frozenset()
    """The event's category must be one of these (empty: any category)."""
    scope: Scope | None = None
    """Where the suppression applies; None = the policy's scope."""
    tag: str | None = None
    """Tag put on the suppression event (e.g. bsd's "UnsubscribeService:fbl")."""
    threshold: int = 1
    """N of the rule kind (events, sends, attempts, or the rate alert's minimum complaints)."""
    engaged_threshold: int | None = None
    """consecutive: N for an engaged contact (None = same as threshold)."""
    engaged_days: float = 90.0
    """consecutive: an open or click this recent makes the contact engaged."""
    reset_on_engagement: bool = False
    """An open or click resets this rule's count (benchmark)."""
    break_classes: frozenset[BounceClass] = frozenset()
    """consecutive: a send whose events are of these classes and none feeds the rule breaks
    the run (benchmark: "hard bounces in three consecutive campaigns" - a campaign that only
    soft-bounced is not one of them)."""
    span_hours: float = 0.0
    """confirmations: first and last confirmation at least this far apart."""
    window_hours: float = 0.0
    """retry_window: the campaign's window from its first attempt."""
    per_campaign: int = 0
    """retry_window: attempts counted per campaign at most."""
    tiers: tuple[Tier, ...] = ()
    """count_threshold: reason tiers, first match wins."""
    other_min_count: int = 0
    """count_threshold: minimum count for a reason in no tier (0 = never)."""
    max_rate: float = 0.0
    """tenant_rate: alert when matching events / delivered messages exceeds this."""
    window_days: float = 0.0
    """tenant_rate: the window, in days of event time."""
    max_tracked: int = 32
    """Most entries kept per address for this rule (bounds memory; must exceed thresholds)."""

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError(f"rule {self.id}: threshold must be >= 1")
        if self.kind is RuleKind.CONFIRMATIONS and self.threshold < 2 and self.span_hours > 0:
            raise ValueError(f"rule {self.id}: a span needs at least 2 confirmations")
        if self.kind is RuleKind.RETRY_WINDOW and (self.per_campaign < 1 or self.window_hours <= 0):
            raise ValueError(f"rule {self.id}: retry_window needs per_campaign and window_hours")
        biggest = max(self.threshold, self.engaged_threshold or 0, self.other_min_count)
        if self.kind is not RuleKind.TENANT_RATE and self.max_tracked < biggest:
            raise ValueError(f"rule {self.id}: max_tracked must be >= every threshold")

    def matches(self, bounce_class: BounceClass, category: Category) -> bool:
        """True when an event of this class and category feeds the rule."""
        return (not self.classes or bounce_class in self.classes) and (
            not self.categories or category in self.categories
        )

    def min_count_for(self, category: Category, bounce_class: BounceClass | None = None) -> int:
        """count_threshold: the bounce count a latest reason needs (0 = never suppresses): the
        first tier naming `category`, else the first naming `bounce_class`, else the other
        minimum."""
        for tier in self.tiers:
            if category in tier.categories:
                return tier.min_count
        for tier in self.tiers:
            if bounce_class is not None and bounce_class in tier.classes:
                return tier.min_count
        return self.other_min_count


@dataclass(frozen=True, slots=True)
class OutageGuard:
    """The provider-outage guard's numbers (`[outage_guard]` of a preset; docs/policies.md).

    A receiving domain group is in a burst when some trailing window of 1 to
    `window_minutes` one-minute buckets of event time holds at least `min_attempts`
    attempts, at least `min_share` of them hard bounces, and a share at least
    `baseline_factor` times the group's hard share over the `baseline_hours` before."""

    window_minutes: int = 15
    min_attempts: int = 200
    min_share: float = 0.10
    baseline_factor: float = 5.0
    baseline_hours: int = 24
    grace_minutes: int = 60
    """Event-time minutes after a burst ends before its held suppressions settle."""

    def __post_init__(self) -> None:
        if not (1 <= self.window_minutes <= 60 and 1 <= self.baseline_hours <= 72):
            raise ValueError("outage_guard: window_minutes 1-60, baseline_hours 1-72")
        if self.min_attempts < 1 or not 0 < self.min_share <= 1 or self.baseline_factor < 0:
            raise ValueError("outage_guard: min_attempts >= 1, 0 < min_share <= 1, factor >= 0")
        if self.grace_minutes < 0:
            raise ValueError("outage_guard: grace_minutes >= 0")

    def wire(self) -> dict[str, Any]:
        """The numbers as the guard function reads them (pipeline/state/lua/outage.lua)."""
        return {
            "w": self.window_minutes,
            "n": self.min_attempts,
            "s": self.min_share,
            "f": self.baseline_factor,
            "bh": self.baseline_hours,
            "gr": self.grace_minutes * 60_000,
        }


def outage_guard_from(raw: Mapping[str, Any] | None) -> OutageGuard | None:
    """The guard of a preset's `[outage_guard]` table; None when absent or enabled = false."""
    if not raw or not raw.get("enabled", True):
        return None
    ints = ("window_minutes", "min_attempts", "baseline_hours", "grace_minutes")
    floats = ("min_share", "baseline_factor")
    values: dict[str, Any] = {k: int(raw[k]) for k in ints if k in raw}
    values.update({k: float(raw[k]) for k in floats if k in raw})
    return OutageGuard(**values)


@dataclass(frozen=True, slots=True)
class Policy:
    """The rules one tenant is judged by: a preset plus that tenant's overrides."""

    name: str
    """Preset name, reported on every suppression."""
    scope: Scope
    """Default scope of the rules (where counters live and suppressions apply)."""
    rules: tuple[Rule, ...]
    """Evaluated in order; the first that trips for a scope decides."""
    bounce_classes: frozenset[BounceClass] = frozenset({BounceClass.SOFT, BounceClass.HARD})
    """Classes the per-address bounce count (report, sweep) counts."""
    bounce_categories: frozenset[Category] = frozenset()
    """Extra categories the bounce count counts whatever their class (listrak: challenge)."""
    source: str = ""
    """Where the numbers come from."""
    keep_delivered_log: bool = False
    """Keep each address's "250 ok" records for a short time (seed 003's activity report);
    every other policy keeps no record of a delivery beyond the reset it causes."""
    outage: OutageGuard | None = None
    """The provider-outage guard (None: off, suppressions are never held)."""

    def rule(self, rule_id: str) -> Rule:
        """Return the rule with this id; raise KeyError when there is none."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def scope_of(self, rule: Rule) -> Scope:
        """The scope a rule's counters and suppressions live in."""
        return rule.scope or self.scope

    def scopes(self) -> tuple[Scope, ...]:
        """Every scope this policy keeps state in, narrow to broad."""
        used = {self.scope} | {self.scope_of(r) for r in self.rules}
        return tuple(s for s in SCOPE_ORDER if s in used)

    def counts_as_bounce(self, bounce_class: BounceClass, category: Category) -> bool:
        """True when an event adds to the address's bounce count (report, sweep)."""
        return bounce_class in self.bounce_classes or category in self.bounce_categories

    def has_kind(self, kind: RuleKind) -> bool:
        """True when some rule of this policy is of `kind`."""
        return any(r.kind is kind for r in self.rules)


def preset_text(name: str) -> str:
    """Return the TOML text of the packaged preset `name`; raise FileNotFoundError."""
    if not name.replace("_", "").isalnum():
        raise FileNotFoundError(f"no preset {name!r}")
    path = resources.files(__package__).joinpath("presets", f"{name}.toml")
    if not path.is_file():
        raise FileNotFoundError(f"no preset {name!r}")
    return path.read_text(encoding="utf-8")


def load_preset(name: str, overrides: Mapping[str, Any] | None = None) -> Policy:
    """Load preset `name` with `overrides` merged over it; raise FileNotFoundError for an
    unknown preset and ValueError for a bad value. Overrides look like the preset itself:
    top-level keys (`scope`, ...) and `rules.<id>.<key>` replace single values."""
    data = tomllib.loads(preset_text(name))
    return policy_from_mapping(_merge(data, overrides or {}))


def policy_from_mapping(data: Mapping[str, Any]) -> Policy:
    """Build a Policy from preset data (see the files in presets/); ValueError when bad."""
    try:
        rules = tuple(
            _rule(rule_id, raw)
            for rule_id, raw in data.get("rules", {}).items()
            if raw.get("enabled", True)
        )
        return Policy(
            name=str(data["name"]),
            scope=Scope(data.get("scope", "tenant")),
            rules=rules,
            bounce_classes=frozenset(BounceClass(c) for c in data.get("bounce_classes", ())),
            bounce_categories=frozenset(Category(c) for c in data.get("bounce_categories", ())),
            source=str(data.get("source", "")),
            keep_delivered_log=bool(data.get("delivered_log", False)),
            outage=outage_guard_from(data.get("outage_guard")),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"bad policy data: {exc!r}") from exc


_NUMBERS = ("threshold", "per_campaign", "other_min_count", "max_tracked")
_FLOATS = ("engaged_days", "span_hours", "window_hours", "max_rate", "window_days")


def _rule(rule_id: str, raw: Mapping[str, Any]) -> Rule:
    extra: dict[str, Any] = {k: int(raw[k]) for k in _NUMBERS if k in raw}
    extra.update({k: float(raw[k]) for k in _FLOATS if k in raw})
    if raw.get("engaged_threshold") is not None:
        extra["engaged_threshold"] = int(raw["engaged_threshold"])
    tiers = tuple(
        Tier(
            frozenset(Category(c) for c in t.get("categories", ())),
            int(t["min_count"]),
            frozenset(BounceClass(c) for c in t.get("classes", ())),
        )
        for t in raw.get("tiers", ())
    )
    return Rule(
        id=rule_id,
        kind=RuleKind(raw["kind"]),
        classes=frozenset(BounceClass(c) for c in raw.get("classes", ())),
        categories=frozenset(Category(c) for c in raw.get("categories", ())),
        scope=Scope(raw["scope"]) if raw.get("scope") else None,
        tag=raw.get("tag") or None,
        reset_on_engagement=bool(raw.get("reset_on_engagement", False)),
        break_classes=frozenset(BounceClass(c) for c in raw.get("break_classes", ())),
        tiers=tiers,
        **extra,
    )


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `over` into a copy of `base` (tables merge, values replace)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class PolicyBook:
    """Which policy judges which tenant: named tenants, then the default."""

    default: Policy
    tenants: Mapping[str, Policy] = field(default_factory=dict)

    def for_tenant(self, tenant: str) -> Policy:
        """The policy of `tenant` (the default when the book does not name it)."""
        return self.tenants.get(tenant, self.default)

    def policies(self) -> list[Policy]:
        """Every distinct policy in the book, the default first."""
        seen: list[Policy] = [self.default]
        seen.extend(p for p in self.tenants.values() if p not in seen)
        return seen


def book_from_mapping(data: Mapping[str, Any], default_preset: str = "default") -> PolicyBook:
    """Build a PolicyBook from a policy file's data:

        preset = "listrak"            # optional: the default for unnamed tenants
        [default]                     # optional overrides of that default
        [tenants.acme]                # one table per tenant
        preset = "engagement"
        rules.consecutive_soft.threshold = 12

    Raises FileNotFoundError for an unknown preset, ValueError for a bad value."""
    default = load_preset(str(data.get("preset", default_preset)), data.get("default"))
    tenants = {}
    for tenant, raw in (data.get("tenants") or {}).items():
        overrides = {k: v for k, v in raw.items() if k != "preset"}
        tenants[str(tenant)] = load_preset(str(raw.get("preset", default.name)), overrides)
    return PolicyBook(default=default, tenants=tenants)


def read_policy_file(path: str | Path, default_preset: str = "default") -> PolicyBook:
    """Read a policy file (`.toml`, or `.yaml`/`.yml`) at start-up; see book_from_mapping."""
    text = Path(path).read_text(encoding="utf-8")
    suffix = Path(path).suffix.lower()
    data = yaml.safe_load(text) if suffix in (".yaml", ".yml") else tomllib.loads(text)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: a policy file must be a table")
    return book_from_mapping(data, default_preset)


def load_book(policy: str, policy_file: str | Path | None = None) -> PolicyBook:
    """The book the worker and the CLI use: `policy_file` when given, else preset `policy`
    for every tenant."""
    if policy_file:
        return read_policy_file(policy_file, policy)
    return PolicyBook(default=load_preset(policy))
