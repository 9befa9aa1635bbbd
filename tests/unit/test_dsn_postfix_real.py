"""DSNs that a real Postfix wrote (tests/data/dsn/postfix-real-*.eml, made by
tests/integration/test_postfix_dsn.py; see tests/data/dsn/README.md) parse to the right
recipient, outcome, codes, class and category, and join their send by our header."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from pipeline.core.classify import classify_attempt
from pipeline.core.dsn import parse_dsn
from pipeline.core.models import Outcome

DSN = Path(__file__).resolve().parents[1] / "data" / "dsn"
BOUNCED, EXPIRED = Outcome.BOUNCED, Outcome.EXPIRED

# file -> its event id (X-Bounceguard-Event-Id), report Date (time of day), and per refused
# recipient: (recipient, outcome, smtp code, enhanced code, class, category)
REAL = {
    "gmail-5.1.1": (
        "send-bb0b307fe8",
        "18:47:14",
        [("jane.doe@example.com", BOUNCED, 550, "5.1.1", "hard", "user_unknown")],
    ),
    "gmail-5.2.1": (
        "send-dd9f1eb981",
        "18:47:14",
        [("disabled.user@example.net", BOUNCED, 550, "5.2.1", "hard", "inactive_mailbox")],
    ),
    "yahoo-554": (
        "send-7b63b42c4d",
        "18:47:14",
        [  # no enhanced code in the reply: Postfix's 5.0.0
            ("gone.user@example.org", BOUNCED, 554, "5.0.0", "hard", "inactive_mailbox")
        ],
    ),
    "gmail-5.2.2": (
        "send-4cf7fb9386",
        "18:47:14",
        [  # OverQuotaPerm: an abandoned account
            ("over.quota@example.net", BOUNCED, 552, "5.2.2", "hard", "inactive_mailbox")
        ],
    ),
    "outlook-5.2.2": (
        "send-2257f3fa44",
        "18:47:15",
        [("full.box@example.com", BOUNCED, 552, "5.2.2", "soft", "mailbox_full")],
    ),
    "gmail-4.2.1": (
        "send-d1946c54be",
        "18:47:15",
        [  # a 4xx tried once (maximal_queue_lifetime=0)
            ("busy.user@example.com", EXPIRED, 450, "4.2.1", "soft", "throttled")
        ],
    ),
    "delayed-4.2.1": (
        "send-ad46a8691e",
        "18:52:29",
        [  # Action: delayed, from delay_warning_time (the instance retries for a day)
            ("busy.user@example.com", Outcome.DEFERRED, 450, "4.2.1", "soft", "throttled")
        ],
    ),
    "two-recipients": (
        "send-cacc4534ec",
        "18:47:15",
        [  # in the report's order; the accepted one is not in it
            ("full.box@example.com", BOUNCED, 552, "5.2.2", "soft", "mailbox_full"),
            ("jane.doe@example.com", BOUNCED, 550, "5.1.1", "hard", "user_unknown"),
        ],
    ),
}


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("name", sorted(REAL))
def test_a_real_postfix_dsn_parses_to_recipient_class_and_category(name: str, crlf: bool) -> None:
    raw = (DSN / f"postfix-real-{name}.eml").read_bytes()
    event_id, clock, expected = REAL[name]
    found = parse_dsn(raw.replace(b"\n", b"\r\n") if crlf else raw)
    got = []
    for a in found:
        verdict = classify_attempt(a)
        klass, category = verdict.bounce_class.value, verdict.category.value
        got.append((a.recipient, a.outcome, a.smtp_code, a.enhanced_code, klass, category))
    assert got == expected
    # Postfix writes no Last-Attempt-Date: the report's Date is the bounce's time
    assert {a.ts for a in found} == {datetime.fromisoformat(f"2026-12-04T{clock}+00:00")}
    assert {(a.message_id, a.tenant, a.list_id) for a in found} == {
        (event_id, "acme", "news.acme.example")
    }
    assert {a.remote_mta for a in found} == {"127.0.0.1"}  # the sink, by address
    assert len({a.event_id for a in found}) == len(found)
    assert parse_dsn(raw) == found  # the same DSN again: the same attempts, the same ids
