"""Real DSNs: Debian's Postfix (deploy/postfix.sh, an instance of its own) relays test mail to a
scripted SMTP sink on loopback that answers chosen recipients with real provider replies; Postfix
then writes its own RFC 3464 bounce into the sender's Maildir. Those DSNs parse to the right
recipient, class and category, and one of them, sent twice through the live worker's
`bounce.mail.raw` after a logged 250 for the same send, suppresses once (default preset).
A second instance that retries a 4xx sends Postfix's "delayed" DSN: a deferral.
Ports: BG_TEST_POSTFIX_PORT (and + 2 for the second instance), BG_TEST_SMTP_SINK_PORT.

BG_DSN_CAPTURE_DIR=DIR writes each case's DSN to DIR/postfix-real-<case>.eml: how the samples
in tests/data/dsn/ were made (tests/data/dsn/README.md)."""

from __future__ import annotations

import mailbox
import os
import re
import shutil
import smtplib
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from kafka import KafkaProducer

from pipeline.config import Settings
from pipeline.core.classify import classify_attempt
from pipeline.core.dsn import parse_dsn
from pipeline.core.models import Outcome
from tests.integration.conftest import TEST_VAR, WorkerProcess, _server, read_topic, send, wait_for
from tests.integration.test_api import call

pytestmark = pytest.mark.integration
POSTFIX_PORT = int(os.environ.get("BG_TEST_POSTFIX_PORT", "10025"))
SINK_PORT = int(os.environ.get("BG_TEST_SMTP_SINK_PORT", str(POSTFIX_PORT + 1)))
SENDER = "bounces@bounces.bounceguard.test"  # the return path: Postfix's own Maildir domain

# Real replies, as the providers send them (multi-line ones joined by Postfix into one line).
GMAIL_NO_USER = (
    "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
    "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
    "550-5.1.1 unnecessary spaces. For more information, go to\r\n"
    "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser 41be03b00d2f7-b0a1e5si12345a.123"
    " - gsmtp"
)
GMAIL_DISABLED = (
    "550-5.2.1 The email account that you tried to reach is disabled. For more\r\n"
    "550-5.2.1 information, go to\r\n"
    "550 5.2.1  https://support.google.com/mail/?p=DisabledUser 41be03b00d2f7-b0a1e5si12345b.124"
    " - gsmtp"
)
YAHOO_DISABLED = (
    "554 delivery error: dd Sorry, your message to gone.user@example.org cannot be delivered."
    " This mailbox is disabled (554.30). - mta4012.mail.bf1.yahoo.com"
)
GMAIL_OVER_QUOTA = (
    "552-5.2.2 The recipient's inbox is out of storage space. Please direct the\r\n"
    "552-5.2.2 recipient to\r\n"
    "552 5.2.2  https://support.google.com/mail/?p=OverQuotaPerm 41be03b00d2f7-b0a1e5si12345c.125"
    " - gsmtp"
)
# Exchange Online (Outlook.com) over quota: mailbox full, a soft bounce.
MICROSOFT_FULL = (
    "552 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException."
    "MapiExceptionShutoffQuotaExceeded; Failed to process message due to a permanent exception"
)
GMAIL_RATE = (
    "450-4.2.1 The user you are trying to contact is receiving mail at a rate that\r\n"
    "450-4.2.1 prevents additional messages from being delivered. For more\r\n"
    "450-4.2.1 information, go to\r\n"
    "450 4.2.1  https://support.google.com/mail/?p=ReceivingRatePerm"
    " 41be03b00d2f7-b0a1e5si12345d.126 - gsmtp"
)
REPLIES = {
    "jane.doe@example.com": GMAIL_NO_USER,
    "disabled.user@example.net": GMAIL_DISABLED,
    "gone.user@example.org": YAHOO_DISABLED,
    "over.quota@example.net": GMAIL_OVER_QUOTA,
    "full.box@example.com": MICROSOFT_FULL,
    "busy.user@example.com": GMAIL_RATE,
}


@dataclass(frozen=True)
class Case:
    """One recipient the sink refuses, and what its DSN must parse to."""

    name: str
    recipient: str
    outcome: Outcome
    codes: tuple[int, str]
    verdict: tuple[str, str]  # (class, category)


CASES = [
    Case(
        "gmail-5.1.1",
        "jane.doe@example.com",
        Outcome.BOUNCED,
        (550, "5.1.1"),
        ("hard", "user_unknown"),
    ),
    Case(
        "gmail-5.2.1",
        "disabled.user@example.net",
        Outcome.BOUNCED,
        (550, "5.2.1"),
        ("hard", "inactive_mailbox"),
    ),
    Case(
        "yahoo-554",
        "gone.user@example.org",
        Outcome.BOUNCED,
        (554, "5.0.0"),
        ("hard", "inactive_mailbox"),
    ),
    # Gmail's permanent over-quota is an abandoned account (classify_rules.toml, OverQuotaPerm)
    Case(
        "gmail-5.2.2",
        "over.quota@example.net",
        Outcome.BOUNCED,
        (552, "5.2.2"),
        ("hard", "inactive_mailbox"),
    ),
    Case(
        "outlook-5.2.2",
        "full.box@example.com",
        Outcome.BOUNCED,
        (552, "5.2.2"),
        ("soft", "mailbox_full"),
    ),
    Case(
        "gmail-4.2.1",
        "busy.user@example.com",
        Outcome.EXPIRED,
        (450, "4.2.1"),
        ("soft", "throttled"),
    ),
]


class _Sink:
    """aiosmtpd handler: RCPT TO of a REPLIES address gets its reply, anything else 250."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = REPLIES.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 2.0.0 OK queued"


@dataclass(frozen=True)
class Postfix:
    """A running Postfix instance: its SMTP port and the Maildir its bounces go to."""

    port: int
    maildir: Path

    def bounce(self, recipients: list[str], event_id: str, tenant: str = "acme") -> bytes:
        """Send one mail with `event_id` in its join header to `recipients` through Postfix and
        return the raw DSN Postfix wrote for it (fails the test after 30 s without one)."""
        mail = EmailMessage()
        mail["From"] = SENDER
        mail["To"] = ", ".join(recipients)
        mail["Subject"] = "March news"
        mail["Message-ID"] = f"<{event_id}@acme.example>"
        mail["X-Bounceguard-Event-Id"] = event_id
        mail["X-BG-Tenant"] = tenant
        mail["List-Id"] = "<news.acme.example>"
        mail.set_content("Hello from acme.\n")
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as smtp:
            smtp.send_message(mail, from_addr=SENDER, to_addrs=recipients)
        found: list[bytes] = []

        def arrived() -> bool:
            if (self.maildir / "new").is_dir():
                box = mailbox.Maildir(self.maildir, create=False)
                found[:] = [m.as_bytes() for m in box if event_id.encode() in m.as_bytes()]
            return bool(found)

        wait_for(arrived, 30, self._log_tail)
        return found[0]

    def _log_tail(self) -> str:
        log = self.maildir.parents[1] / "postfix.log"
        lines = log.read_text(errors="replace").splitlines()[-20:]
        return "no DSN in the Maildir; Postfix log:\n" + "\n".join(lines)


@pytest.fixture(scope="module")
def sink() -> Iterator[None]:
    """The scripted SMTP sink on 127.0.0.1:SINK_PORT (both Postfix instances relay to it)."""
    controller = Controller(_Sink(), hostname="127.0.0.1", port=SINK_PORT)
    controller.start()
    yield
    controller.stop()


def _postfix(port: int, **env: str) -> Iterator[Postfix]:
    env = {"POSTFIX_PORT": str(port), "POSTFIX_RELAY_PORT": str(SINK_PORT), **env}
    _server("postfix.sh", "stop", env)  # a leftover of a run that was killed
    home = TEST_VAR / f"postfix-{port}"
    shutil.rmtree(home, ignore_errors=True)  # a fresh queue and Maildir every session
    _server("postfix.sh", "start", env)
    try:
        yield Postfix(port, home / "mail" / "bounces")
    finally:
        _server("postfix.sh", "stop", env)


@pytest.fixture(scope="module")
def postfix(sink: None) -> Iterator[Postfix]:
    """Postfix on 127.0.0.1:POSTFIX_PORT relaying to the sink; a 4xx is tried once."""
    yield from _postfix(POSTFIX_PORT)


@pytest.fixture(scope="module")
def delaying_postfix(sink: None) -> Iterator[Postfix]:
    """Postfix on 127.0.0.1:POSTFIX_PORT + 2 that retries a 4xx for a day and sends its
    "delayed" DSN after one second."""
    yield from _postfix(POSTFIX_PORT + 2, POSTFIX_QUEUE_LIFETIME="1d", POSTFIX_DELAY_WARNING="1s")


def _capture(name: str, raw: bytes) -> None:
    out = os.environ.get("BG_DSN_CAPTURE_DIR")
    if out:
        Path(out, f"postfix-real-{name}.eml").write_bytes(raw)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_real_postfix_dsn_parses_to_recipient_class_and_category(
    postfix: Postfix, case: Case
) -> None:
    event_id = f"send-{uuid.uuid4().hex[:10]}"
    raw = postfix.bounce([case.recipient], event_id)
    _capture(case.name, raw)
    [attempt] = parse_dsn(raw)
    assert (attempt.recipient, attempt.outcome) == (case.recipient, case.outcome)
    assert (attempt.smtp_code, attempt.enhanced_code) == case.codes
    assert (attempt.message_id, attempt.tenant, attempt.list_id) == (
        event_id,
        "acme",
        "news.acme.example",
    )
    # the provider's whole reply, its lines joined (by Postfix) and spaces collapsed
    assert attempt.diagnostic == " ".join(REPLIES[case.recipient].split())
    verdict = classify_attempt(attempt)
    assert (verdict.bounce_class.value, verdict.category.value) == case.verdict


def test_a_real_postfix_dsn_for_two_refused_recipients_of_one_mail(postfix: Postfix) -> None:
    event_id = f"send-{uuid.uuid4().hex[:10]}"
    recipients = ["jane.doe@example.com", "ok.user@example.com", "full.box@example.com"]
    raw = postfix.bounce(recipients, event_id)
    _capture("two-recipients", raw)
    found = parse_dsn(raw)  # the accepted one is not in Postfix's report at all
    assert sorted((a.recipient, classify_attempt(a).category.value) for a in found) == [
        ("full.box@example.com", "mailbox_full"),
        ("jane.doe@example.com", "user_unknown"),
    ]
    assert {a.message_id for a in found} == {event_id}
    assert len({a.event_id for a in found}) == 2


def test_a_real_postfix_delayed_dsn_is_a_deferral(delaying_postfix: Postfix) -> None:
    event_id = f"send-{uuid.uuid4().hex[:10]}"
    raw = delaying_postfix.bounce(["busy.user@example.com"], event_id)
    _capture("delayed-4.2.1", raw)
    assert b"Subject: Delayed Mail (still being retried)" in raw
    [attempt] = parse_dsn(raw)  # Action: delayed
    assert (attempt.recipient, attempt.outcome, attempt.message_id) == (
        "busy.user@example.com",
        Outcome.DEFERRED,
        event_id,
    )
    assert (attempt.smtp_code, attempt.enhanced_code) == (450, "4.2.1")
    verdict = classify_attempt(attempt)
    assert (verdict.bounce_class.value, verdict.category.value) == ("soft", "throttled")


def _decided(settings: Settings) -> int:
    """How many events the worker has decided (its decision-lag histogram's count)."""
    url = f"http://127.0.0.1:{settings.web_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(r"^bounceguard_decision_lag_seconds_count (\S+)$", text, re.M)
    return int(float(found[1])) if found else 0


def test_a_real_dsn_after_a_logged_250_sent_twice_suppresses_once(
    postfix: Postfix, settings: Settings, worker_factory: Any, producer: KafkaProducer
) -> None:
    address, event_id = "jane.doe@example.com", f"send-{uuid.uuid4().hex[:10]}"
    dsn = postfix.bounce([address], event_id)
    worker: WorkerProcess = worker_factory(settings)
    delivered = {
        "event_id": f"pmta-{event_id}",
        "ts": (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "recipient": address,
        "tenant": "acme",
        "outcome": "delivered",
        "smtp_code": 250,
        "message_id": event_id,  # the MTA log's 250 for the same send
    }
    send(producer, settings.topics.attempts, delivered, key=address)
    send(producer, settings.topics.mail, dsn)
    topic = settings.topics.suppressions
    [event] = [orjson.loads(v) for v in read_topic(settings.kafka, topic, 1)]
    assert (event["address"], event["tenant"], event["rule"], event["reason"]) == (
        address,
        "acme",
        "immediate_hard",
        "user_unknown",
    ), worker.tail()

    send(producer, settings.topics.mail, dsn)  # the same DSN again (a mailbox read twice)
    wait_for(lambda: _decided(settings) >= 3, 30, worker.tail)  # the 250 and both copies
    assert len(read_topic(settings.kafka, topic, 1)) == 1, worker.tail()  # still one
    # and counted once: one live bounce in the address's tenant scope, not two
    _, view = call(settings, "GET", f"/v1/addresses/{address}?tenant=acme")
    assert view["scopes"]["tenant"]["bounce_count"] == 1, view
    assert [e["event_id"] for e in view["bounce_log"]] == [event["trigger_event_id"]], view
    assert worker.proc.poll() is None, worker.tail()
