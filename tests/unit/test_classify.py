"""Table-driven tests of the SMTP result classifier (pipeline.core.classify).

The table (tests/data/classify/responses.tsv) holds real responses from public sources, each
group headed by its source. Extra tests cover the contract: codes given as arguments, outcome,
temporary downgrade, phase, caching and odd input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.core import classify as classifier
from pipeline.core.classify import (
    RULEBOOK,
    classify,
    classify_attempt,
    extract_codes,
    load_rulebook,
    normalize,
)
from pipeline.core.models import Attempt, BounceClass, Category, Outcome

DATA = Path(__file__).parent.parent / "data" / "classify" / "responses.tsv"
# The held-out corpus, copied from ../shared/corpora with its attribution (see its README).
CORPUS = Path(__file__).parents[1] / "data" / "classify" / "sisimai-public.tsv"


@dataclass(frozen=True)
class Row:
    """One table row: inputs, expected verdict, and the source group it came from."""

    smtp_code: int | None
    enhanced_code: str | None
    category: str
    klass: str
    diagnostic: str
    source: str
    line: int


def load_rows() -> list[Row]:
    """Parse the TSV table; `\\n` in a diagnostic is a line break of a multi-line reply."""
    rows: list[Row] = []
    source = ""
    for number, line in enumerate(DATA.read_text("utf-8").splitlines(), start=1):
        if line.startswith("## source:"):
            source = line.removeprefix("## source:").strip()
            continue
        if not line.strip() or line.startswith("#"):
            continue
        code, enhanced, category, klass, diagnostic = line.split("\t", 4)
        rows.append(
            Row(
                int(code) if code else None,
                enhanced or None,
                category,
                klass,
                diagnostic.replace("\\n", "\n"),
                source,
                number,
            )
        )
    return rows


ROWS = load_rows()


@pytest.mark.parametrize("row", ROWS, ids=[f"L{r.line}" for r in ROWS])
def test_table(row: Row) -> None:
    verdict = classify(row.smtp_code, row.enhanced_code, row.diagnostic)
    got = (verdict.category.value, verdict.bounce_class.value)
    assert got == (row.category, row.klass), f"{row.diagnostic!r} -> rule {verdict.rule}"


def test_table_is_big_distinct_sourced_and_covers_every_category() -> None:
    texts = [r.diagnostic for r in ROWS]
    assert len(set(texts)) >= 300
    assert all(r.source for r in ROWS)
    assert {r.category for r in ROWS} == {c.value for c in Category}


def test_table_holds_no_row_of_the_held_out_corpus() -> None:
    corpus = {
        line.split("\t")[2].strip().lower()
        for line in CORPUS.read_text("utf-8").splitlines()[1:]
        if line.count("\t") >= 2
    }
    overlap = [r.diagnostic for r in ROWS if r.diagnostic.strip().lower() in corpus]
    assert overlap == []


@pytest.mark.parametrize(
    ("diagnostic", "category", "klass"),
    [
        # Text beats a lazy code.
        ("550 5.1.1 <a@b.c>: mailbox full", "mailbox_full", "soft"),
        # GoDaddy IB607: a rate limit aimed at the sender under 550 5.1.1.
        ("550 5.1.1 <a@b.c> IB607 too many recipients this hour", "throttled", "block"),
        # Comcast / Orange: full mailbox under 552 5.1.1.
        ("552 5.1.1 <a@comcast.net> Mailbox is full", "mailbox_full", "soft"),
        # x.7.1 carries spam blocks, DMARC, relay denials and unknown users.
        (
            "550 5.7.1 Service unavailable; client [192.0.2.1] blocked using Spamhaus",
            "spam_block",
            "block",
        ),
        (
            "550 5.7.1 Unauthenticated email is not accepted due to domain's DMARC policy",
            "policy",
            "block",
        ),
        ("554 5.7.1 <a@b.c>: Relay access denied", "relay_denied", "hard"),
        ("550 5.7.1 No such user!", "user_unknown", "hard"),
        # Microsoft DBEB.
        ("550 5.4.1 Recipient address rejected: Access denied", "user_unknown", "hard"),
        # Wrapped reply.
        ("Depot returns error: <552 5.2.2 Over quota>", "mailbox_full", "soft"),
    ],
)
def test_traps(diagnostic: str, category: str, klass: str) -> None:
    verdict = classify(None, None, diagnostic)
    assert (verdict.category.value, verdict.bounce_class.value) == (category, klass)


def test_outcome_delivered_wins_over_anything() -> None:
    verdict = classify(550, "5.1.1", "User unknown", outcome=Outcome.DELIVERED)
    assert verdict.bounce_class is BounceClass.DELIVERED


def test_codes_from_arguments_when_text_says_nothing() -> None:
    assert classify(550, "5.1.1", "").category is Category.USER_UNKNOWN
    assert classify(552, "5.2.2", "").category is Category.MAILBOX_FULL
    assert classify(None, "5.1.10", "").category is Category.BAD_DOMAIN
    assert classify(554, None, "").category is Category.GENERAL_HARD


def test_temporary_result_downgrades_hard_to_soft() -> None:
    assert classify(450, "4.1.1", "User unknown").bounce_class is BounceClass.SOFT
    deferred = classify(550, "5.1.1", "User unknown", outcome=Outcome.DEFERRED)
    assert deferred.bounce_class is BounceClass.SOFT
    assert classify(550, "5.1.1", "User unknown").bounce_class is BounceClass.HARD


def test_phase_before_rcpt_makes_a_bare_5xx_a_sender_problem() -> None:
    assert classify(550, None, "", smtp_phase="MAIL FROM").bounce_class is BounceClass.BLOCK
    assert classify(550, None, "", smtp_phase="RCPT TO").bounce_class is BounceClass.HARD


def test_words_of_a_missing_address_before_rcpt_are_the_senders() -> None:
    """Catches: a generic "does not exist" or "invalid domain" text deciding before the phase
    does (Exim and qmail bounce notices: the sender's domain or HELO name was refused)."""
    sender = classify(
        553, "5.1.0", "553 5.1.0 neko.example.com does not exist", smtp_phase="MAIL FROM"
    )
    helo = classify(501, "5.0.0", "501 5.0.0 Invalid domain name", smtp_phase="HELO")
    assert (sender.rule, helo.rule) == ("thumb.before_recipient", "thumb.before_recipient")
    assert sender.bounce_class is helo.bounce_class is BounceClass.BLOCK
    rcpt = classify(553, "5.1.0", "553 5.1.0 neko.example.com does not exist", smtp_phase="RCPT TO")
    assert rcpt.bounce_class is BounceClass.HARD
    # A provider's own block text at connect keeps its finer category.
    spam = classify(554, "5.7.1", "554 5.7.1 blocked using zen.spamhaus.org", smtp_phase="CONNECT")
    assert spam.category is Category.SPAM_BLOCK


def test_no_information_is_undetermined_and_outcome_is_a_last_resort() -> None:
    assert classify(None, None, "").category is Category.UNDETERMINED
    assert classify(None, None, "", outcome=Outcome.BOUNCED).category is Category.GENERAL_HARD
    assert classify(None, None, "", outcome=Outcome.EXPIRED).category is Category.GENERAL_SOFT


def test_classify_attempt_uses_every_field() -> None:
    from datetime import UTC, datetime

    attempt = Attempt(
        event_id="e1",
        ts=datetime(2026, 1, 1, tzinfo=UTC),
        recipient="a@b.c",
        outcome=Outcome.BOUNCED,
        smtp_code=550,
        enhanced_code="5.2.2",
        diagnostic="",
        smtp_phase="RCPT TO",
    )
    assert classify_attempt(attempt).category is Category.MAILBOX_FULL


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("550 5.1.1 user unknown", (550, "5.1.1")),
        ("smtp; 550-5.1.1 first\n550 5.1.1 second", (550, "5.1.1")),
        ("Depot returns error: <552 5.2.2 Over quota>", (552, "5.2.2")),
        ("host mx[192.0.2.1] said: 554 Relay access denied", (554, None)),
        ("X-Postfix; me.domain.com said: 552 5.2.2 Over quota", (552, "5.2.2")),
        ("Sorry, no mailbox here by that name. (#5.1.1)", (None, "5.1.1")),
        ("220-laposte 421 4.2.1 Service refuse", (421, "4.2.1")),
        ("no codes at all 192.0.2.1", (None, None)),
    ],
)
def test_extract_codes(text: str, codes: tuple[int | None, str | None]) -> None:
    assert extract_codes(text) == codes


def test_normalize_joins_multiline_replies_and_strips_prefixes() -> None:
    text = (
        "smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try"
        "\n550-5.1.1 double-checking"
    )
    assert normalize(text).endswith("please try double-checking")
    assert normalize(text).startswith("550")


def test_odd_inputs_never_raise() -> None:
    for text in ["\x00\x01", "5" * 100_000, "550", "550-", "\n\n\n", "日本語のみ"]:
        classify(None, None, text)
    classify(999, "9.9.9", "x")


def test_repeated_input_is_served_from_the_cache() -> None:
    first = classify(550, "5.1.1", "cache me: user unknown")
    assert classify(550, "5.1.1", "cache me: user unknown") is first


def test_rulebook_rejects_bad_rules() -> None:
    header = "[category_class]\n" + "".join(
        f'{c.value} = "{RULEBOOK.default_class[c].value}"\n' for c in Category
    )
    with pytest.raises(ValueError, match="no source"):
        load_rulebook(header + '[[rule]]\nid = "x"\ntext = "a"\ncategory = "policy"\n')
    with pytest.raises(ValueError, match="no condition"):
        load_rulebook(header + '[[rule]]\nid = "x"\ncategory = "policy"\nsource = "s"\n')
    with pytest.raises(ValueError, match="category_class lacks"):
        load_rulebook(
            '[category_class]\n[[rule]]\nid = "x"\ntext = "a"\ncategory = "policy"\nsource = "s"\n'
        )


def test_every_rule_has_a_unique_id_and_a_known_category() -> None:
    ids = [r.id for r in RULEBOOK.rules]
    assert len(ids) == len(set(ids))
    assert all(isinstance(r.category, Category) for r in RULEBOOK.rules)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            "550 5.1.1 <jane@example.com>: Recipient address rejected: User unknown",
            "550 5.1.1 <bob.smith@example.org>: Recipient address rejected: User unknown",
        ),
        (
            "550-5.1.1 The email account that you tried to reach does not exist. "
            "d75a77b69052e-4b0aa2e0b5dsi123456qtb.123 - gsmtp",
            "550-5.1.1 The email account that you tried to reach does not exist. "
            "a640c23a62f3a-4b1cc9e0f1bsi998877qtb.45 - gsmtp",
        ),
    ],
)
def test_replies_differing_only_in_address_or_message_id_share_a_cache_entry(
    a: str, b: str
) -> None:
    assert classifier.mask_variable_parts(a) == classifier.mask_variable_parts(b)
    assert classify(None, None, a) == classify(None, None, b)


def test_masking_keeps_words_and_codes_rules_rely_on() -> None:
    text = "552 5.2.2 OverQuotaPerm IB607 BL000012 1234567890"
    assert classifier.mask_variable_parts(text) == text


# Rules of thumb (docs/classification.md, "Rules of thumb"; issue 15 item 1). The table holds
# the real examples; these pin each rule's contract in the fewest words.
@pytest.mark.parametrize(
    ("code", "enhanced", "diagnostic", "category", "klass"),
    [
        # Who is limited: the recipient's mailbox (soft) or the sender (block), with the same
        # "limit" words.
        (
            None,
            "5.2.122",
            "Recipient's per hour message receive limit exceeded.",
            "throttled",
            "soft",
        ),
        (
            None,
            "5.2.121",
            "Recipient's per hour message receive limit from specific sender exceeded.",
            "throttled",
            "block",
        ),
        (
            550,
            "5.2.251",
            "Sender throttled due to continuous mailbox full errors.",
            "throttled",
            "block",
        ),
        (None, "5.2.2", "Submission quota exceeded", "throttled", "block"),
        # The reason after "Recipient address rejected:" / "mailbox unavailable" decides.
        (
            554,
            "5.7.1",
            "<a@b.c>: Recipient address rejected: Policy Rejection- Abuse. Go away.",
            "spam_block",
            "block",
        ),
        (
            554,
            "5.7.1",
            "<a@b.c>: Recipient address rejected: Policy Rejection- Quota Exceeded.",
            "policy",
            "block",
        ),
        (
            550,
            None,
            "Requested action not taken: mailbox unavailable (over quota)",
            "mailbox_full",
            "soft",
        ),
        (
            550,
            "5.7.1",
            "<a@b.c>: Recipient address rejected: User unknown; see our policy",
            "user_unknown",
            "hard",
        ),
        # A policy/protocol code whose words say the recipient or its domain does not exist.
        (None, "5.7.505", "Access denied, banned recipient", "user_unknown", "hard"),
        (
            554,
            "5.5.0",
            "The domain is not reachable. Please check the domain",
            "bad_domain",
            "hard",
        ),
        # The sender's own address; temporary deferrals aimed at the sender.
        (501, "5.1.7", "Invalid address", "policy", "block"),
        (550, None, "Sender domain does not resolve", "policy", "block"),
        (
            421,
            "4.7.0",
            "[GL01] Message from (192.0.2.1) temporarily deferred",
            "throttled",
            "block",
        ),
        (451, None, "Temporarily rejected, sender reputation too low", "spam_block", "block"),
        # Words over codes.
        (550, "5.7.1", "The mailbox is over its storage quota", "mailbox_full", "soft"),
        (None, None, "This email address is no longer in use", "inactive_mailbox", "hard"),
        (None, None, "Ich bin derzeit nicht im Büro", "auto_reply", "auto_reply"),
        (None, None, "Cette adresse n'est plus utilisée", "inactive_mailbox", "hard"),
    ],
)
def test_rules_of_thumb(
    code: int | None, enhanced: str | None, diagnostic: str, category: str, klass: str
) -> None:
    verdict = classify(code, enhanced, diagnostic)
    assert (verdict.category.value, verdict.bounce_class.value) == (category, klass), verdict.rule


def test_a_rule_marked_permanent_is_not_downgraded_by_a_temporary_code() -> None:
    # RFC 7505: a null MX is the domain's statement that it takes no mail, even when an MTA
    # reports it with a 4.x.x status; an ordinary hard category still becomes soft.
    null_mx = classify(
        None, "4.0.0", "The domain example.com doesn't receive email: returned Null MX"
    )
    assert (null_mx.category, null_mx.bounce_class) == (Category.BAD_DOMAIN, BounceClass.HARD)
    assert classify(None, "4.0.0", "Host or domain name not found").bounce_class is BounceClass.SOFT
    assert classify(None, "5.7.27", "Sender address has null MX").bounce_class is BounceClass.BLOCK


def test_a_category_class_is_a_default_a_rule_overrides() -> None:
    # `throttled` defaults to block; the recipient-rate rule says soft for its texts only.
    assert RULEBOOK.default_class[Category.THROTTLED] is BounceClass.BLOCK
    by_id = {r.id: r for r in RULEBOOK.rules}
    assert by_id["thumb.recipient_limited"].bounce_class is BounceClass.SOFT
    assert by_id["thumb.sender_limited"].bounce_class is None


def test_a_2xx_code_given_for_a_banner_yields_the_failure_further_on() -> None:
    verdict = classify(
        220, "4.2.1", "220-laposte 421 4.2.1 Service refuse. Veuillez essayer plus tard."
    )
    assert verdict.bounce_class is BounceClass.BLOCK
    assert classify(250, None, "250 2.0.0 OK queued").bounce_class is BounceClass.DELIVERED


def test_rulebook_rejects_a_permanent_flag_that_is_not_a_boolean() -> None:
    header = "[category_class]\n" + "".join(
        f'{c.value} = "{RULEBOOK.default_class[c].value}"\n' for c in Category
    )
    rule = (
        '[[rule]]\nid = "x"\ntext = "a"\ncategory = "bad_domain"\nsource = "s"\npermanent = "yes"\n'
    )
    with pytest.raises(ValueError, match="permanent"):
        load_rulebook(header + rule)


def test_unless_keeps_a_rule_from_deciding() -> None:
    header = "[category_class]\n" + "".join(
        f'{c.value} = "{RULEBOOK.default_class[c].value}"\n' for c in Category
    )
    book = load_rulebook(
        header + '[[rule]]\nid = "x"\ntext = "denied"\nunless = "relay"\n'
        'category = "policy"\nsource = "s"\n'
    )
    (rule,) = book.rules
    assert rule.matches("access denied", "550", "", "", "")
    assert not rule.matches("relay access denied", "550", "", "", "")
