"""Classify one SMTP result into a category and a class (PRODUCT.md, "Classification").

Responsibilities:
- normalize the reply text: DSN `smtp;` prefixes, multi-line replies (`550-5.1.1 ...`), wrapped
  replies (`Depot returns error: <552 5.2.2 Over quota>`), case and whitespace;
- extract the basic and enhanced codes from the text when the caller has none;
- run the ordered rules of `classify_rules.toml` (data, compiled once at import): provider texts
  first, then generic texts, then the RFC 3463 enhanced-code table, then the basic code;
- cache verdicts of repeated inputs (the same few hundred texts make up most of the traffic).

Pure: no I/O after import, no faust/redis/kafka. Policy-free: category and class only.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pipeline.core import esp_verdicts
from pipeline.core.models import Attempt, BounceClass, Category, Classification, Outcome

RULES_FILE = "classify_rules.toml"

# Characters of text the classifier looks at: real replies are far shorter; a giant line must
# not make one regex pass cost milliseconds on the hot path.
MAX_TEXT = 4096

_PREFIX = re.compile(r"^\s*(?:(?:x-[\w.-]+|smtp|unknown|mailbox|rfc822)\s*;\s*)+", re.I)
_CODE_AT_START = re.compile(r"^[\s<('\"#]*([245]\d\d)(?:[ -]+([245]\.\d{1,3}\.\d{1,3}))?(?![\w.])")
_CODE_PAIR = re.compile(r"(?<![\w.])([245]\d\d)[ -]+#?([245]\.\d{1,3}\.\d{1,3})(?![\w.])")
_FAILURE_PAIR = re.compile(r"(?<![\w.])([45]\d\d)[ -]+#?([45]\.\d{1,3}\.\d{1,3})(?![\w.])")
_CODE_SAID = re.compile(
    r"(?:said|error|reply|returned|response)\s*:?\s*<?\s*([245]\d\d)(?![\w.])", re.I
)
_ENHANCED = re.compile(r"(?<![\w.])#?([245])\.(\d{1,3})\.(\d{1,3})(?![\w.]*\d)")
_CONTINUATION = re.compile(r"(?<=\s)[245]\d\d-(?:#?[245]\.\d{1,3}\.\d{1,3}\s)?")
_SPACE = re.compile(r"\s+")
# Parts of a reply that differ from message to message but never decide its class: the
# recipient's address and per-message tokens (Gmail's "d75a77b69052e-4b0aa2e0b5dsi1.123",
# Microsoft's "[DB5EUR03FT022...]" server ids). Masking them before the cache lookup turns
# "550 5.1.1 <a@x>: ..." and "550 5.1.1 <b@y>: ..." into one cached text.
# The lookbehind makes a match start only where a word starts (no retry at every character).
_ADDRESS_IN_TEXT = re.compile(
    r"(?<![^\s<>\"'()\[\],;:])[^\s<>\"'()\[\],;:@]++@[^\s<>\"'()\[\],;:]+"
)
_LONG_TOKEN = re.compile(r"([A-Za-z0-9]{10,})(?:\.\d+)?")


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule; every condition it has must hold (and `unless` must not match the
    text) for it to decide."""

    id: str
    category: Category
    bounce_class: BounceClass | None
    permanent: bool
    text: re.Pattern[str] | None
    code: re.Pattern[str] | None
    status: re.Pattern[str] | None
    host: re.Pattern[str] | None
    phase: re.Pattern[str] | None
    unless: re.Pattern[str] | None

    def matches(self, text: str, code: str, status: str, host: str, phase: str) -> bool:
        """Return True when every condition of the rule holds for these normalized inputs."""
        return (
            (self.code is None or self.code.fullmatch(code) is not None)
            and (self.status is None or self.status.fullmatch(status) is not None)
            and (self.host is None or self.host.search(host) is not None)
            and (self.phase is None or self.phase.search(phase) is not None)
            and (self.text is None or self.text.search(text) is not None)
            and (self.unless is None or self.unless.search(text) is None)
        )


@dataclass(frozen=True, slots=True)
class Rulebook:
    """Everything loaded from the rules file: ordered rules and the category -> class map."""

    rules: tuple[Rule, ...]
    default_class: dict[Category, BounceClass]


def load_rulebook(source: str) -> Rulebook:
    """Parse and compile a rules file's TOML text; raise ValueError on a malformed rule."""
    data = tomllib.loads(source)
    default_class = {Category(k): BounceClass(v) for k, v in data["category_class"].items()}
    missing = set(Category) - set(default_class)
    if missing:
        raise ValueError(f"category_class lacks {sorted(missing)}")
    rules = tuple(_compile_rule(raw) for raw in data["rule"])
    ids = [r.id for r in rules]
    if len(ids) != len(set(ids)):
        raise ValueError("duplicate rule ids")
    return Rulebook(rules=rules, default_class=default_class)


def _compile_rule(raw: dict[str, Any]) -> Rule:
    """Compile one `[[rule]]` table; its regexes are matched against lowercased text."""
    if not raw.get("source"):
        raise ValueError(f"rule {raw.get('id')!r} has no source")
    conditions = {key: raw.get(key) for key in ("text", "code", "status", "host", "phase")}
    if not any(conditions.values()):
        raise ValueError(f"rule {raw['id']!r} has no condition")
    compiled = {k: re.compile(v) if v else None for k, v in conditions.items()}
    unless = re.compile(raw["unless"]) if raw.get("unless") else None
    klass = raw.get("class")
    permanent = raw.get("permanent", False)
    if not isinstance(permanent, bool):
        raise ValueError(f"rule {raw['id']!r}: permanent must be true or false")
    return Rule(
        id=str(raw["id"]),
        category=Category(raw["category"]),
        bounce_class=BounceClass(klass) if klass else None,
        permanent=permanent,
        text=compiled["text"],
        code=compiled["code"],
        status=compiled["status"],
        host=compiled["host"],
        phase=compiled["phase"],
        unless=unless,
    )


RULEBOOK = load_rulebook(resources.files("pipeline.core").joinpath(RULES_FILE).read_text("utf-8"))
ESP_VERDICTS = esp_verdicts.load_verdicts(esp_verdicts.read_default(), RULEBOOK.default_class)


def normalize(diagnostic: str) -> str:
    """Return the reply text as the rules see it: no DSN prefix, one line, lowercase.

    Continuation markers of multi-line replies (`550-5.1.1 `) are dropped so that a phrase
    broken over two lines still matches, e.g. "550-5.1.1 The email account that you tried to
    reach does not exist. Please try\\n550-5.1.1 double-checking" -> "... please try
    double-checking".
    """
    text = _PREFIX.sub("", diagnostic[:MAX_TEXT])
    text = _CONTINUATION.sub(" ", text)
    return _SPACE.sub(" ", text).strip().lower()


def mask_variable_parts(diagnostic: str) -> str:
    """Replace addresses with `x@x` and long letter+digit tokens with `#`, so that replies
    which differ only in those share one cache entry (no rule looks at either)."""
    if "@" in diagnostic:
        diagnostic = _ADDRESS_IN_TEXT.sub("x@x", diagnostic)
    return _LONG_TOKEN.sub(_mask_token, diagnostic)


def _mask_token(found: re.Match[str]) -> str:
    """`#` for a token mixing letters and digits (an id); words like "overquotaperm" stay."""
    token = found.group(1)
    if token.isalpha() or token.isdigit():
        return found.group()
    return "#"


def extract_codes(diagnostic: str) -> tuple[int | None, str | None]:
    """Return the (basic, enhanced) codes found in a reply text, None where there is none.

    Looks at the start of the text first, then at a `NNN X.Y.Z` pair anywhere (wrapped replies),
    then at "said: NNN"; the enhanced code is the first `X.Y.Z` of the text.
    """
    text = _PREFIX.sub("", diagnostic[:MAX_TEXT])
    basic: str | None = None
    enhanced: str | None = None
    for pattern in (_CODE_AT_START, _CODE_PAIR):
        found = pattern.search(text)
        if found:
            basic, enhanced = found.group(1), found.group(2)
            break
    if basic is not None and basic.startswith("2"):
        # A greeting or banner ("220-host ...") that carries a failure further on.
        failure = _FAILURE_PAIR.search(text)
        if failure:
            basic, enhanced = failure.group(1), failure.group(2)
    if basic is None:
        said = _CODE_SAID.search(text)
        basic = said.group(1) if said else None
    if enhanced is None:
        dotted = _ENHANCED.search(text)
        enhanced = ".".join(dotted.groups()) if dotted else None
    return (int(basic) if basic else None), enhanced


def classify(
    smtp_code: int | None,
    enhanced_code: str | None,
    diagnostic: str,
    *,
    outcome: Outcome | None = None,
    smtp_phase: str | None = None,
    remote_mta: str | None = None,
) -> Classification:
    """Classify one SMTP result; never raises on odd input, returns `undetermined` instead.

    Text beats a lazy code: "550 5.1.1 ... mailbox full" is `mailbox_full`. Codes missing from
    the arguments are read from the text. `outcome=delivered` is always `delivered`. A category
    whose class is `hard` is downgraded to `soft` when the result is temporary (4xx, or the MTA
    deferred it): the remote server itself says it may change its mind. Cached on its inputs,
    after masking the parts that vary per message (`mask_variable_parts`).
    """
    if outcome is Outcome.DELIVERED:
        return _DELIVERED
    return _classify_masked(
        smtp_code,
        enhanced_code,
        diagnostic,
        outcome=outcome,
        smtp_phase=smtp_phase,
        remote_mta=remote_mta,
    )


@functools.lru_cache(maxsize=8192)
def _classify_masked(
    smtp_code: int | None,
    enhanced_code: str | None,
    diagnostic: str,
    *,
    outcome: Outcome | None,
    smtp_phase: str | None,
    remote_mta: str | None,
) -> Classification:
    """First-level cache on the raw inputs (exact repeats skip the masking entirely). Small:
    most replies quote the recipient, so raw texts rarely repeat (43k distinct in the bench's
    60k bounces); at 65,536 entries this cache held ~15 MB, mostly of texts seen once."""
    return _classify_cached(
        smtp_code,
        (enhanced_code or "").strip().lstrip("#") or None,
        mask_variable_parts(diagnostic[:MAX_TEXT]),
        outcome,
        phase=(smtp_phase or "").lower(),
        host=(remote_mta or "").lower(),
    )


def classify_attempt(attempt: Attempt) -> Classification:
    """Classify a normalized attempt with every field it carries (see `classify`)."""
    return classify(
        attempt.smtp_code,
        attempt.enhanced_code,
        attempt.diagnostic,
        outcome=attempt.outcome,
        smtp_phase=attempt.smtp_phase,
        remote_mta=attempt.remote_mta,
    )


_DELIVERED = Classification(Category.DELIVERED, BounceClass.DELIVERED, "outcome.delivered")


@functools.lru_cache(maxsize=65536)
def _classify_cached(
    smtp_code: int | None,
    enhanced_code: str | None,
    diagnostic: str,
    outcome: Outcome | None,
    *,
    phase: str,
    host: str,
) -> Classification:
    """Uncached core of `classify` on already-trimmed inputs. An ESP attempt's phase
    ("esp:<key>", pipeline.core.esp_verdicts) bounds the text's verdict by the provider's."""
    if phase.startswith(esp_verdicts.ESP_PHASE_PREFIX):
        text = _text_verdict(smtp_code, enhanced_code, diagnostic, outcome, phase="", host=host)
        key = phase.removeprefix(esp_verdicts.ESP_PHASE_PREFIX)
        hint = esp_verdicts.lookup(ESP_VERDICTS, key)
        return hint.judge(text) if hint is not None else text
    return _text_verdict(smtp_code, enhanced_code, diagnostic, outcome, phase=phase, host=host)


def _text_verdict(
    smtp_code: int | None,
    enhanced_code: str | None,
    diagnostic: str,
    outcome: Outcome | None,
    *,
    phase: str,
    host: str,
) -> Classification:
    """The rules' verdict on the SMTP result alone."""
    found_basic, found_enhanced = extract_codes(diagnostic)
    basic = smtp_code if smtp_code is not None else found_basic
    if basic is not None and 200 <= basic < 300 and found_basic is not None and found_basic >= 400:
        # The caller took the code of a banner ("220-laposte 421 4.2.1 ...") that carries the
        # failure further on: the failure decides, as when the code is read from the text.
        basic = found_basic
    enhanced = enhanced_code or found_enhanced
    text = normalize(diagnostic)
    code, status = (str(basic) if basic is not None else ""), (enhanced or "")
    for rule in RULEBOOK.rules:
        if rule.matches(text, code, status, host, phase):
            return _verdict(rule, _is_temporary(basic, enhanced, outcome))
    if outcome in (Outcome.DEFERRED, Outcome.EXPIRED):
        return Classification(Category.GENERAL_SOFT, BounceClass.SOFT, "outcome.deferred")
    if outcome is Outcome.BOUNCED:
        return Classification(Category.GENERAL_HARD, BounceClass.HARD, "outcome.bounced")
    return Classification(Category.UNDETERMINED, BounceClass.UNKNOWN, "none")


def _is_temporary(basic: int | None, enhanced: str | None, outcome: Outcome | None) -> bool:
    """True when the result is a temporary failure (4xx, 4.x.x without a code, or deferred)."""
    if outcome is Outcome.DEFERRED:
        return True
    if basic is not None:
        return 400 <= basic < 500
    return enhanced is not None and enhanced.startswith("4")


def _verdict(rule: Rule, temporary: bool) -> Classification:
    """Build the verdict of a matching rule, downgrading hard to soft for temporary results
    unless the rule says its words are permanent whatever the code (`permanent = true`)."""
    klass = rule.bounce_class or RULEBOOK.default_class[rule.category]
    if temporary and klass is BounceClass.HARD and not rule.permanent:
        klass = BounceClass.SOFT
    return Classification(rule.category, klass, rule.id)


def cache_clear() -> None:
    """Empty the verdict cache (benchmarks measure cold and warm runs)."""
    _classify_masked.cache_clear()
    _classify_cached.cache_clear()
