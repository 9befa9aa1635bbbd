"""ESP webhook bodies -> attempts and feedback (pipeline.core.esp), and the provider's verdict
next to the SMTP text (pipeline.core.esp_verdicts, judged by the classifier). The samples are
the providers' documented examples (tests/data/esp/SOURCES)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.core import esp_verdicts
from pipeline.core.classify import ESP_VERDICTS, RULEBOOK, classify, classify_attempt
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.esp import parse_esp
from pipeline.core.events import Engagement, EngagementAction, Feedback
from pipeline.core.models import Attempt, BounceClass, Category, Outcome
from tests.esp_signing import sns_envelope

ESP = Path(__file__).resolve().parents[1] / "data" / "esp"


def sample(name: str) -> bytes:
    return (ESP / name).read_bytes()


def summary(events: list[Any]) -> list[tuple[str, str, str, str, str]]:
    """(recipient, outcome or kind, ts, category, class) of each event, in order."""
    out = []
    for e in events:
        verdict = classify_attempt(e) if isinstance(e, Attempt) else e.classification()
        what = e.outcome.value if isinstance(e, Attempt) else e.kind.value
        ts = e.ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        out.append((e.recipient, what, ts, verdict.category.value, verdict.bounce_class.value))
    return out


SES_T = "2016-01-27T14:59:38.237Z"
SG_T = "2018-02-22T02:41:01.000Z"
PM_T = "2019-11-05T16:33:54.907Z"
SP_T = "2016-02-02T19:50:00.000Z"
CASES = [
    ("ses", "ses-bounce-dsn.json",
     [("jane@example.com", "bounced", SES_T, "user_unknown", "hard")]),
    ("ses", "ses-bounce-no-dsn.json",
     [("jane@example.com", "bounced", SES_T, "general_hard", "hard"),
      ("richard@example.com", "bounced", SES_T, "general_hard", "hard")]),
    ("ses", "ses-complaint.json",
     [("richard@example.com", "complaint", SES_T, "complaint", "complaint")]),
    ("ses", "ses-delivery.json",
     [("jane@example.com", "delivered", SES_T, "delivered", "delivered")]),
    ("ses", "sns-subscription-confirmation.json", []),
    ("sendgrid", "sendgrid-events.json",
     [("example@test.com", "deferred", SG_T, "transient", "soft"),
      ("example@test.com", "delivered", SG_T, "delivered", "delivered"),
      ("example@test.com", "bounced", SG_T, "user_unknown", "hard")]),
    ("sendgrid", "sendgrid-spamreport.json",
     [("example@test.com", "complaint", "2017-12-15T00:59:29.000Z", "complaint", "complaint")]),
    ("sendgrid", "sendgrid-blocked.json",
     [("noemail@this.does.not.exist.tld", "bounced", "2025-02-23T08:45:20.000Z", "policy",
       "block")]),
    ("mailgun", "mailgun-failed-suppressed.json", []),
    ("mailgun", "mailgun-failed-bounce.json",
     [("alice@example.com", "bounced", "2018-03-16T20:45:23.501Z", "user_unknown", "hard")]),
    ("postmark", "postmark-bounce.json",
     [("john@example.com", "bounced", PM_T, "user_unknown", "hard")]),
    ("postmark", "postmark-spam-complaint.json",
     [("john@example.com", "complaint", PM_T, "complaint", "complaint")]),
    ("postmark", "postmark-delivery.json",
     [("john@example.com", "delivered", PM_T, "delivered", "delivered")]),
    ("postmark", "postmark-subscription-change.json", []),
    ("sparkpost", "sparkpost-events.json",
     [("recipient@example.com", "bounced", SP_T, "spam_block", "block"),
      ("recipient@example.com", "complaint", SP_T, "complaint", "complaint")]),
]  # fmt: skip


@pytest.mark.parametrize(("provider", "name", "expected"), CASES, ids=[c[1] for c in CASES])
def test_documented_sample_maps_to_its_recipients_class_and_category(
    provider: str, name: str, expected: list[tuple[str, ...]]
) -> None:
    assert summary(parse_esp(provider, sample(name))) == expected


def test_every_sample_file_is_covered_by_a_case() -> None:
    """Catches: a sample added to tests/data/esp without an expected mapping."""
    files = {p.name for p in ESP.glob("*.json")} - {"sns-notification.json"}
    assert files == {c[1] for c in CASES}


def test_sns_envelope_carries_the_ses_notification() -> None:
    body = orjson.dumps(sns_envelope(sample("ses-bounce-dsn.json")))
    assert summary(parse_esp("ses", body)) == summary(
        parse_esp("ses", sample("ses-bounce-dsn.json"))
    )


def test_event_ids_are_the_providers_and_stable() -> None:
    """Same body twice -> same ids (a provider retry dedupes); one SES feedbackId over two
    recipients -> two ids (one per recipient); the address itself is not in the id."""
    first = parse_esp("ses", sample("ses-bounce-no-dsn.json"))
    again = parse_esp("ses", sample("ses-bounce-no-dsn.json"))
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert len({e.event_id for e in first}) == 2
    assert all(e.event_id.startswith("ses:00000137860315fd-869464a4") for e in first)
    assert not any("@" in e.event_id for e in first)
    [bounce] = parse_esp("postmark", sample("postmark-bounce.json"))
    assert bounce.event_id == "postmark:bounce:4323372036854775807"
    [failed] = parse_esp("mailgun", sample("mailgun-failed-bounce.json"))
    assert failed.event_id == "mailgun:G9Bn5sl1TC6bJCCj_ZC7sR"


def test_sparkpost_sample_ids_differ_by_event_type() -> None:
    """The documented batch reuses one event_id: the complaint must not dedupe away."""
    ids = [e.event_id for e in parse_esp("sparkpost", sample("sparkpost-events.json"))]
    assert ids == [
        "sparkpost:bounce:92356927693813856",
        "sparkpost:spam_complaint:92356927693813856",
    ]


def test_codes_and_details_are_kept() -> None:
    [a] = parse_esp("ses", sample("ses-bounce-dsn.json"))
    assert isinstance(a, Attempt)
    assert (a.smtp_code, a.enhanced_code, a.remote_mta, a.smtp_phase) == (
        550, "5.1.1", "127.0.2.0", "esp:ses:permanent:general"
    )  # fmt: skip
    assert a.message_id == "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000"
    [m] = parse_esp("mailgun", sample("mailgun-failed-bounce.json"))
    assert isinstance(m, Attempt)
    assert (m.smtp_code, m.enhanced_code, m.remote_mta, m.tenant) == (
        550, "5.1.1", "smtp-in.example.com", "acme"
    )  # fmt: skip


def test_tenant_list_and_campaign_come_from_the_senders_custom_data() -> None:
    events = orjson.loads(sample("sendgrid-spamreport.json"))
    events[0].update(tenant="shop1", list_id="news", campaign_id="c-7")
    [f] = parse_esp("sendgrid", orjson.dumps(events), tenant="fallback")
    assert (f.tenant, f.list_id, f.campaign_id) == ("shop1", "news", "c-7")
    ses = orjson.loads(sample("ses-complaint.json"))
    ses["mail"]["tags"] = {"tenant": ["shop2"], "campaign_id": ["c-8"]}
    [g] = parse_esp("ses", orjson.dumps(ses), tenant="fallback")
    assert (g.tenant, g.campaign_id) == ("shop2", "c-8")
    [h] = parse_esp("postmark", sample("postmark-spam-complaint.json"), tenant="fallback")
    assert h.tenant == "fallback"


# ---------------------------------------------------------------- the provider's verdict


def _sendgrid(**fields: Any) -> list[Any]:
    event = {"email": "a@example.com", "timestamp": 1513299569, "event": "bounce",
             "sg_event_id": "x1", **fields}  # fmt: skip
    return parse_esp("sendgrid", orjson.dumps([event]))


def test_a_sendgrid_block_never_counts_against_the_address() -> None:
    """Catches: the provider's type=blocked ignored, so an unknown-user text in a block
    would suppress the address (the seed rule: blocks are the sender's problem)."""
    text = "550 5.1.1 The email account that you tried to reach does not exist."
    assert summary(_sendgrid(type="bounce", reason=text, status="5.1.1"))[0][3:] == (
        "user_unknown", "hard"
    )  # fmt: skip
    assert summary(_sendgrid(type="blocked", reason=text, status="5.1.1"))[0][3:] == (
        "spam_block", "block"
    )  # fmt: skip
    # a block whose text names a block reason keeps it
    spamhaus = "554 5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org"
    assert summary(_sendgrid(type="blocked", reason=spamhaus))[0][4] == "block"


def test_mailgun_temporary_failure_is_a_deferral_never_hard() -> None:
    doc = orjson.loads(sample("mailgun-failed-bounce.json"))
    doc["event-data"]["severity"] = "temporary"
    [a] = parse_esp("mailgun", orjson.dumps(doc))
    assert isinstance(a, Attempt)
    assert a.outcome is Outcome.DEFERRED
    assert classify_attempt(a).bounce_class is BounceClass.SOFT


def test_ses_transient_bounce_stays_soft_whatever_the_text() -> None:
    doc = orjson.loads(sample("ses-bounce-dsn.json"))
    doc["bounce"]["bounceType"] = "Transient"
    [a] = parse_esp("ses", orjson.dumps(doc))
    assert summary([a])[0][3:] == ("general_soft", "soft")
    doc["bounce"]["bounceSubType"] = "MailboxFull"
    [b] = parse_esp("ses", orjson.dumps(doc))
    assert summary([b])[0][3:] == ("mailbox_full", "soft")


def test_sparkpost_bounce_class_decides_when_the_text_says_nothing() -> None:
    batch = orjson.loads(sample("sparkpost-events.json"))[:1]
    event = batch[0]["msys"]["message_event"]
    event.update(bounce_class="10", raw_reason="", error_code="")
    assert summary(parse_esp("sparkpost", orjson.dumps(batch)))[0][3:] == ("user_unknown", "hard")
    event.update(bounce_class="90")
    [f] = parse_esp("sparkpost", orjson.dumps(batch))
    assert isinstance(f, Feedback)
    assert f.kind.value == "unsubscribe"


def test_verdict_lookup_falls_back_to_the_shorter_key() -> None:
    hint = esp_verdicts.lookup(ESP_VERDICTS, "sendgrid:blocked:reputation")
    assert hint is not None
    assert hint.key == "sendgrid:blocked"
    assert esp_verdicts.lookup(ESP_VERDICTS, "ses:undetermined:undetermined") is None
    # no known verdict: the text alone decides, exactly as without the phase
    plain = classify(550, "5.1.1", "user unknown", outcome=Outcome.BOUNCED)
    hinted = classify(550, "5.1.1", "user unknown", outcome=Outcome.BOUNCED,
                      smtp_phase="esp:ses:undetermined:undetermined")  # fmt: skip
    assert hinted == plain


def test_verdict_file_rejects_an_entry_whose_class_it_does_not_keep() -> None:
    bad = '[verdict."x:y"]\ncategory = "spam_block"\nclasses = ["hard"]\nsource = "s"\n'
    with pytest.raises(ValueError, match="must be in classes"):
        esp_verdicts.load_verdicts(bad, RULEBOOK.default_class)
    with pytest.raises(ValueError, match="lowercase"):
        esp_verdicts.load_verdicts(bad.replace("x:y", "X:y"), RULEBOOK.default_class)


def test_every_verdict_category_is_known() -> None:
    assert all(isinstance(v.category, Category) for v in ESP_VERDICTS.values())
    assert ESP_VERDICTS["sparkpost:54"].bounce_class is BounceClass.BLOCK


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("provider", "body", "reason"),
    [
        ("nope", b"{}", Reason.WRONG_TYPE),
        ("sendgrid", b"{}", Reason.WRONG_TYPE),
        ("sendgrid", b"[1]", Reason.WRONG_TYPE),
        ("sendgrid", b"not json", Reason.BAD_JSON),
        ("sendgrid", b'[{"event":"bounce","timestamp":1,"sg_event_id":"a"}]', Reason.MISSING_FIELD),
        ("sendgrid", b'[{"event":"bounce","email":"nope","timestamp":1}]', Reason.BAD_ADDRESS),
        ("sendgrid", b'[{"event":"bounce","email":"a@b.example","timestamp":"x"}]',
         Reason.BAD_TIMESTAMP),
        ("mailgun", b'{"signature":{}}', Reason.MISSING_FIELD),
        ("ses", b'{"Type":"Notification","Message":"[1]"}', Reason.WRONG_TYPE),
        ("ses", b'{"notificationType":"Bounce","bounce":"x"}', Reason.WRONG_TYPE),
        ("postmark", b'{"RecordType":"Bounce","Type":"HardBounce","Email":"a@b.example"}',
         Reason.MISSING_FIELD),
    ],
)  # fmt: skip
def test_bad_bodies_raise_invalid_input_with_a_reason(
    provider: str, body: bytes, reason: Reason
) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_esp(provider, body)
    assert err.value.reason is reason


def test_one_bad_event_rejects_the_whole_batch_naming_its_index() -> None:
    events = orjson.loads(sample("sendgrid-events.json"))
    events[3]["email"] = "not an address"
    with pytest.raises(InvalidInput, match="sendgrid event 3"):
        parse_esp("sendgrid", orjson.dumps(events))


def test_events_that_say_nothing_new_give_nothing() -> None:
    """SendGrid dropped/processed and machine opens, Mailgun suppress-*, Postmark
    ManuallyDeactivated and SparkPost's test ping are the provider's own bookkeeping, not a
    delivery result or a person's engagement."""
    assert parse_esp("sendgrid", b'[{"event":"processed","email":"x"}]') == []
    machine = b'[{"event":"open","email":"a@example.com","timestamp":1,"sg_machine_open":true}]'
    assert parse_esp("sendgrid", machine) == []
    assert parse_esp("sparkpost", b'[{"msys":{}}]') == []
    doc = orjson.loads(sample("postmark-bounce.json"))
    doc["Type"] = "ManuallyDeactivated"
    assert parse_esp("postmark", orjson.dumps(doc)) == []


def test_a_sample_time_is_the_bounce_time_not_the_send_time() -> None:
    doc = orjson.loads(sample("ses-bounce-dsn.json"))
    doc["mail"]["timestamp"] = "2016-01-01T00:00:00.000Z"
    [a] = parse_esp("ses", orjson.dumps(doc))
    assert a.ts == datetime(2016, 1, 27, 14, 59, 38, 237000, tzinfo=UTC)


T_OPEN = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
ENGAGEMENT_BODIES = {
    # Field names as each provider's documentation shows its open and click events.
    "sendgrid": [
        {"email": "ann@example.com", "timestamp": 1772442000, "event": "open",
         "sg_machine_open": False, "sg_event_id": "o1", "sg_message_id": "m1", "tenant": "acme"},
        {"email": "ann@example.com", "timestamp": 1772442000, "event": "click",
         "url": "https://example.com/", "sg_event_id": "c1", "sg_message_id": "m1"},
    ],
    "mailgun": {"signature": {}, "event-data": {
        "event": "opened", "id": "mg-o1", "timestamp": 1772442000.0,
        "recipient": "ann@example.com", "user-variables": {"tenant": "acme"}}},
    "postmark": {"RecordType": "Click", "Recipient": "ann@example.com",
                 "ReceivedAt": "2026-03-02T09:00:00Z", "MessageID": "pm-1",
                 "OriginalLink": "https://example.com/", "Metadata": {"tenant": "acme"}},
    "sparkpost": [{"msys": {"track_event": {
        "type": "initial_open", "event_id": "sp-1", "rcpt_to": "ann@example.com",
        "timestamp": "1772442000", "rcpt_meta": {"tenant": "acme"}}}}],
    "ses": {"eventType": "Open", "mail": {
        "messageId": "ses-1", "destination": ["ann@example.com"],
        "tags": {"tenant": ["acme"]}},
        "open": {"timestamp": "2026-03-02T09:00:00.000Z", "ipAddress": "192.0.2.1"}},
}  # fmt: skip


@pytest.mark.parametrize("provider", sorted(ENGAGEMENT_BODIES))
def test_opens_and_clicks_are_engagement_events(provider: str) -> None:
    """Catches: an ESP user's opens and clicks lost, so the engagement policy judges every
    address unengaged."""
    events = parse_esp(provider, orjson.dumps(ENGAGEMENT_BODIES[provider]), tenant="t0")
    assert events and all(isinstance(e, Engagement) for e in events)
    first = events[0]
    assert isinstance(first, Engagement)
    assert (first.recipient, first.ts, first.tenant) == ("ann@example.com", T_OPEN, "acme")
    assert first.event_id.startswith(provider)
    again = parse_esp(provider, orjson.dumps(ENGAGEMENT_BODIES[provider]), tenant="t0")
    assert [e.event_id for e in again] == [e.event_id for e in events]


def test_each_engagement_action_is_the_providers() -> None:
    actions = [e.action for e in parse_esp("sendgrid", orjson.dumps(ENGAGEMENT_BODIES["sendgrid"]))
               if isinstance(e, Engagement)]  # fmt: skip
    assert actions == [EngagementAction.OPEN, EngagementAction.CLICK]
    [click] = parse_esp("postmark", orjson.dumps(ENGAGEMENT_BODIES["postmark"]))
    assert isinstance(click, Engagement) and click.action is EngagementAction.CLICK


def test_an_ses_open_of_a_message_to_several_recipients_names_nobody() -> None:
    """SES reports opens per message: with two destinations, who opened is unknown."""
    doc = dict(ENGAGEMENT_BODIES["ses"])
    doc["mail"] = {**doc["mail"], "destination": ["ann@example.com", "bob@example.com"]}
    assert parse_esp("ses", orjson.dumps(doc)) == []


def test_two_opens_of_one_message_are_two_events() -> None:
    """Catches: an id made of the message alone (Postmark and SES give an open no id), so a
    second open would be taken for a retry of the first."""
    doc = dict(ENGAGEMENT_BODIES["postmark"], RecordType="Open")
    later = dict(doc, ReceivedAt="2026-03-02T10:00:00Z")
    ids = {e.event_id for body in (doc, later) for e in parse_esp("postmark", orjson.dumps(body))}
    assert len(ids) == 2
    ses = ENGAGEMENT_BODIES["ses"]
    ses_later = dict(ses, open={"timestamp": "2026-03-02T10:00:00.000Z"})
    ids = {e.event_id for body in (ses, ses_later) for e in parse_esp("ses", orjson.dumps(body))}
    assert len(ids) == 2


@pytest.mark.parametrize(
    ("provider", "body", "action"),
    [
        ("mailgun", {"event-data": {"event": "clicked", "id": "x", "timestamp": 1772442000,
                                    "recipient": "ann@example.com"}}, EngagementAction.CLICK),
        ("sparkpost", [{"msys": {"track_event": {"type": "amp_click", "event_id": "1",
                        "rcpt_to": "ann@example.com", "timestamp": "1772442000"}}}],
         EngagementAction.CLICK),
        ("sparkpost", [{"msys": {"track_event": {"type": "open", "event_id": "2",
                        "rcpt_to": "ann@example.com", "timestamp": "1772442000"}}}],
         EngagementAction.OPEN),
        ("ses", {"eventType": "Click",
                 "mail": {"messageId": "m", "destination": ["ann@example.com"]},
                 "click": {"timestamp": "2026-03-02T09:00:00.000Z", "link": "https://x"}},
         EngagementAction.CLICK),
    ],
)  # fmt: skip
def test_each_providers_click_and_open_names(provider: str, body: Any, action: Any) -> None:
    [event] = parse_esp(provider, orjson.dumps(body))
    assert isinstance(event, Engagement) and event.action is action
