"""The bounce-mail agent: raw bounce mails (`bounce.mail.raw`) -> attempts (`delivery.attempts`).

Responsibilities:
- parse each message, the raw RFC 5322 bytes of one bounce mail (what a mailbox fetcher or an
  MTA pipe puts on the topic: an RFC 3464 report or an MTA's plain-text notice), with the
  pure parser (`pipeline.core.dsn.parse_dsn`): one attempt per failed or delayed recipient,
  joined to its send by the returned message's BOUNCEGUARD_DSN_JOIN_HEADER, else the
  BOUNCEGUARD_DSN_VERP pattern's id in the return path, else the returned Message-ID;
- produce the attempts to `delivery.attempts` as JSON arrays per partition keyed by recipient,
  exactly as the normalize agent does (its body is reused: `NormalizeBatch`), so the count
  agent sees a DSN's bounce on the partition of that address's logged attempts;
- dead-letter what is not a usable DSN to `bounce.mail.raw.deadletter` with the parser's
  reason (bad_dsn, unattributed, bad_address, bad_timestamp, too_large; missing_field for an
  empty message).

Order inside a unit: the normalize agent's (pipeline.stream.normalize): dead letters awaited,
then the attempts produced and awaited, then the unit's messages acked. A crash before the
ack re-reads the mails and produces the same attempts again: their `dsn:` event ids are a
hash of the DSN's own Message-ID and the recipient, so the count agent's replay guard makes
the copies no-ops, and a DSN the remote MTA sent twice counts once as well.

Unlike log lines, mails carry no state across messages, so the raw topic's key is free: any
key (or none) keeps the outcome the same.
"""

from __future__ import annotations

import re
from typing import Any

from pipeline.config import Settings
from pipeline.core.decode import check_not_empty
from pipeline.core.dsn import compile_verp, parse_dsn
from pipeline.core.errors import InvalidInput
from pipeline.core.models import Attempt
from pipeline.stream import deadletter, metrics
from pipeline.stream.batch import run_batches
from pipeline.stream.normalize import NormalizeBatch
from pipeline.stream.topics import AppTopics


class MailBatch(NormalizeBatch):
    """The bounce-mail agent's body: NormalizeBatch's units, produce and fallback, with
    `parse_dsn` in place of the log parsers (which it never uses: a mail stands alone)."""

    name = "bounce_mail"
    results = metrics.RAW_MAILS
    produced = metrics.MAIL_ATTEMPTS_PRODUCED

    def __init__(
        self,
        app: Any,
        topics: AppTopics,
        *,
        join_header: str,
        verp: re.Pattern[str] | None = None,
        default_tenant: str = "default",
        max_mails: int = 5000,
    ) -> None:
        super().__init__(app, topics, default_tenant=default_tenant, max_lines=max_mails)
        self.join_header = join_header
        self.verp = verp

    def parse(self, event: Any) -> list[Attempt]:
        """Return the attempts of one bounce mail ([] when every recipient was delivered);
        raise InvalidInput: MISSING_FIELD for an empty message, else parse_dsn's reason
        (parse_dsn turns any failure of the email package into BAD_DSN itself)."""
        raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
        check_not_empty(raw)
        return parse_dsn(
            raw, join_header=self.join_header, tenant=self.default_tenant, verp=self.verp
        )

    def _source_topic(self) -> Any:
        return self.topics.mail

    async def _dead_letter(self, event: Any, error: InvalidInput) -> None:
        await deadletter.send_dead_letter(self.topics.mail_deadletter, event, error)


def attach(app: Any, settings: Settings, topics: AppTopics) -> None:
    """Attach the bounce-mail agent (`bounce.mail.raw` -> `delivery.attempts`) to `app`."""
    batch = MailBatch(
        app,
        topics,
        join_header=settings.dsn_join_header,
        verp=compile_verp(settings.dsn_verp),
        default_tenant=settings.raw_tenant,
        max_mails=settings.batch_attempts,
    )

    @app.agent(topics.mail, concurrency=1)  # type: ignore[untyped-decorator]
    async def bounce_mail(stream: Any) -> None:
        await run_batches(stream, batch, take=settings.mail_take, within=settings.batch_within)
