"""Delivery status notifications (RFC 3464): one raw bounce mail -> attempts, or InvalidInput.

A receiving MTA that answered 250 and fails later, and every MTA that gives up on a queued
message, mails the return path a `multipart/report; report-type=delivery-status` with
(1) a human-readable part, (2) a `message/delivery-status` part: one block of per-message
fields (Reporting-MTA, Arrival-Date, ...) then one block per recipient (RFC 3464 §2.2-2.3),
and (3) the returned message (`message/rfc822`) or only its header (`text/rfc822-headers`).

Per recipient block, by its Action (§2.3.3):
- `failed` -> an attempt, outcome `bounced` (`expired` when its Status is 4.x.x: the MTA gave
  up retrying a temporary failure, like RFC 3464's own example of §10.1);
- `delayed` -> an attempt, outcome `deferred`;
- `delivered`, `relayed`, `expanded` -> nothing (not a failure).
Fields: Final-Recipient (else Original-Recipient) is the recipient; Status the enhanced code;
Diagnostic-Code the reply (its basic code read from the text; without one, the comment of the
Status field); Remote-MTA the host. The time is Last-Attempt-Date, else the report's own Date
(written when the MTA gave up, so the bounce's time; Postfix writes no Last-Attempt-Date),
else the per-message Arrival-Date (when the message reached the reporting MTA: earlier).

Mails that are not RFC 3464 reports, the plain-text notices of Exim, qmail, Yahoo, Gmail and
Exchange 2000/2003, are read by `pipeline.core.notices` into the same attempts: each listed
recipient is `bounced` (`deferred` for a notice of a delay; `expired` when the MTA says it
gave up retrying without a permanent reply, or the reply is 4.x.x), its reply the text the
notice quotes, its time the mail's Date.

Joining to the send, first found wins: the returned message's `join_header` (default
X-Bounceguard-Event-Id, a header the sender sets to its own id of the send); the `id` group of
the `verp` pattern matched against the address the bounce was mailed to (Delivered-To, else
X-Original-To, else To: a VERP return path such as "bounces-<send id>@bounce.example.org");
the returned message's Message-ID (the VERP pattern is not tried when the header names the
send). It becomes the attempt's message_id, so the bounce groups with the logged attempts of
that send when they carry the same id (the sender's own send id in the header and on its
log's attempts; an MTA queue id is never in the returned message). X-BG-Tenant (else the
pattern's `tenant` group), X-BG-List (or List-Id) and X-BG-Campaign name tenant, list and
campaign, as for ARF. A report naming no send is InvalidInput(UNATTRIBUTED): a dead letter,
never a guess.

Every attempt read from a bounce mail is marked `asynchronous`: the MTA's log may have said
"delivered" for the same message before the mail came.

Event ids are "dsn:" + a hash of the report's own Message-ID (its bytes when it has none) and
the recipient, so the same DSN delivered twice is the same attempts, counted once.

Uses only the stdlib `email` package; pure (no I/O).
"""

from __future__ import annotations

import base64
import hashlib
import quopri
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.utils import getaddresses

from pipeline.core.classify import extract_codes
from pipeline.core.decode import normalize_address
from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.mailparts import (
    body_text,
    date,
    header_block,
    header_fields,
    list_id,
    parse_mail,
    parts,
    text,
)
from pipeline.core.models import Attempt, Outcome, check_tenant
from pipeline.core.notices import Notice, read_notice

MAX_DSN_BYTES = 4 * 1024 * 1024
"""Largest report parsed (a returned message with attachments can be big; ARF's limit)."""
DEFAULT_JOIN_HEADER = "X-Bounceguard-Event-Id"
_STATUS = "message/delivery-status"
_RETURNED = ("message/rfc822", "text/rfc822-headers")
_OUTCOMES = {"failed": Outcome.BOUNCED, "delayed": Outcome.DEFERRED}
"""Actions that are attempts; delivered, relayed and expanded are not failures."""
_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_MAILED_TO = ("Delivered-To", "X-Original-To", "To")
"""Headers naming the address a bounce was mailed to (the return path), most exact first."""
_MAX_MAILED_TO = 1000
"""Longest of those header values read (a return path is at most 256 characters)."""


@dataclass(frozen=True, slots=True)
class _Context:
    """What every recipient block of one report shares."""

    dsn_id: str
    arrival: datetime | None
    tenant: str
    list_id: str | None
    campaign_id: str | None
    message_id: str


@dataclass(frozen=True, slots=True)
class JoinRules:
    """How a bounce mail is joined to its send (module doc)."""

    header: str = DEFAULT_JOIN_HEADER
    """Header of the returned message that names the send."""
    verp: re.Pattern[str] | None = None
    """Pattern over the address the bounce was mailed to; its `id` group names the send,
    an optional `tenant` group the tenant."""

    def __post_init__(self) -> None:
        if self.verp is not None and "id" not in self.verp.groupindex:
            raise ValueError("the VERP pattern has no (?P<id>...) group (compile_verp)")


def compile_verp(pattern: str | None) -> re.Pattern[str] | None:
    """The VERP pattern of a setting or option (None for unset or blank). Raises ValueError
    when it is not a regular expression or has no `id` group: a misconfiguration, caught at
    start-up rather than as a dead letter per mail."""
    if not pattern or not pattern.strip():
        return None
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"VERP pattern {pattern!r} is not a regular expression: {exc}") from exc
    if "id" not in compiled.groupindex:
        raise ValueError(f"VERP pattern {pattern!r} has no (?P<id>...) group")
    return compiled


def parse_dsn(
    raw: bytes,
    *,
    join_header: str = DEFAULT_JOIN_HEADER,
    tenant: str = "default",
    verp: re.Pattern[str] | None = None,
) -> list[Attempt]:
    """Parse one raw bounce mail (the whole mail, as received: an RFC 3464 report or a
    plain-text notice) into its failed and delayed attempts (module doc), in the mail's
    recipient order; [] when every recipient was delivered, relayed or expanded. `tenant`
    stands for a returned message without X-BG-Tenant; `verp` is `compile_verp`'s pattern
    (ValueError for a pattern without an `id` group: a caller's error, not the mail's).

    Raises InvalidInput: TOO_LARGE over MAX_DSN_BYTES; BAD_DSN when the mail is neither a
    multipart/report with a recipient block nor a notice of a known layout; UNATTRIBUTED when
    nothing names the send; BAD_ADDRESS when no failed or delayed recipient is readable;
    BAD_TIMESTAMP when a recipient's time cannot be found.
    """
    if len(raw) > MAX_DSN_BYTES:
        raise InvalidInput(Reason.TOO_LARGE, f"report is {len(raw)} bytes (max {MAX_DSN_BYTES})")
    rules = JoinRules(join_header, verp)
    try:
        return _parse(raw, rules, tenant)
    except InvalidInput:
        raise
    except Exception as exc:  # the email package is lenient, but not on everything
        raise InvalidInput(Reason.BAD_DSN, f"unreadable report: {type(exc).__name__}") from exc


def _parse(raw: bytes, rules: JoinRules, tenant: str) -> list[Attempt]:
    msg = parse_mail(raw)
    try:
        report = _find_report(msg)
    except InvalidInput as not_a_report:
        notice = read_notice(msg)
        if notice is None:
            raise not_a_report from None
        return _notice_attempts(raw, msg, notice, rules, tenant)
    blocks = _blocks(next(p for p in parts(report) if p.get_content_type() == _STATUS))
    if len(blocks) < 2:
        raise InvalidInput(Reason.BAD_DSN, "delivery-status part has no recipient block")
    if not any(_outcome(b) for b in blocks[1:]):
        return []  # all delivered, relayed or expanded: nothing to attribute
    returned = next(
        (header_block(p) for p in parts(report) if p.get_content_type() in _RETURNED), Message()
    )
    arrival = date(blocks[0].get("Arrival-Date"))
    context = _context(raw, msg, returned, arrival=arrival, rules=rules, tenant=tenant)
    return _attempts(blocks[1:], context, date(msg.get("Date")))


def _notice_attempts(
    raw: bytes, msg: Message, notice: Notice, rules: JoinRules, tenant: str
) -> list[Attempt]:
    """The attempts of a plain-text notice: one per listed recipient, at the mail's Date."""
    ts = date(msg.get("Date"))
    if ts is None:
        raise InvalidInput(Reason.BAD_TIMESTAMP, "the bounce notice has no readable Date")
    context = _context(raw, msg, notice.returned, arrival=None, rules=rules, tenant=tenant)
    out = []
    codes: dict[str, tuple[int | None, str | None]] = {}  # Gmail: one reply for all
    for failure in notice.failures:
        try:
            recipient = normalize_address(failure.recipient)
        except InvalidInput:
            continue
        outcome = Outcome.BOUNCED
        if notice.delayed:
            outcome = Outcome.DEFERRED
        elif failure.gave_up:
            outcome = Outcome.EXPIRED
        found = codes.get(failure.diagnostic)
        if found is None:
            found = codes[failure.diagnostic] = extract_codes(failure.diagnostic)
        said = (*found, failure.diagnostic)
        out.append(
            _build(
                recipient, outcome, context,
                ts=ts, said=said, remote_mta=failure.remote_mta, phase=failure.phase,
            )
        )  # fmt: skip
    if not out:
        raise InvalidInput(Reason.BAD_ADDRESS, "no recipient of the notice is readable")
    return out


def _find_report(msg: Message) -> Message:
    """The first multipart/report part (the mail itself, usually) with a delivery status."""
    for part in msg.walk():
        if part.get_content_type() != "multipart/report":
            continue
        if any(sub.get_content_type() == _STATUS for sub in parts(part)):
            return part
    if msg.get_content_type() != "multipart/report":
        raise InvalidInput(Reason.BAD_DSN, f"not a multipart/report: {msg.get_content_type()}")
    raise InvalidInput(Reason.BAD_DSN, "multipart/report without a message/delivery-status")


def _blocks(part: Message) -> list[Message]:
    """The field blocks of a message/delivery-status part. The email package parses them into
    sub-messages, but reads an encoded body (base64, quoted-printable: some gateways send
    that) as if it were plain: such a body is decoded and split on its blank lines here."""
    found = parts(part)
    encoding = (part.get("Content-Transfer-Encoding") or "").strip().lower()
    if found and encoding not in ("base64", "quoted-printable"):
        return found
    raw = "\n".join(b.as_string() for b in found) if found else body_text(part)
    if encoding == "base64":
        raw = base64.b64decode(raw).decode("utf-8", "replace")
    elif encoding == "quoted-printable":
        raw = quopri.decodestring(raw.encode()).decode("utf-8", "replace")
    chunks = re.split(r"\r?\n[ \t]*\r?\n", raw.strip())
    return [header_fields(c.strip()) for c in chunks if c.strip()]


def _context(
    raw: bytes,
    msg: Message,
    returned: Message,
    *,
    arrival: datetime | None,
    rules: JoinRules,
    tenant: str,
) -> _Context:
    named = text(returned.get(rules.header))
    verp = None if named else _verp_match(msg, rules.verp)
    join = named or (verp["id"] if verp and verp["id"] else None)
    join = join or text(returned.get("Message-ID"))
    if join is None:
        via = " nor a VERP id in the address it was mailed to" if rules.verp else ""
        raise InvalidInput(
            Reason.UNATTRIBUTED,
            f"the returned message has neither {rules.header} nor a Message-ID{via}",
        )
    own = text(msg.get("Message-ID"))
    verp_tenant = verp.groupdict().get("tenant") if verp else None
    named_tenant = text(returned.get("X-BG-Tenant")) or verp_tenant or tenant
    check_tenant(named_tenant)
    return _Context(
        dsn_id=own.strip("<>") if own else "sha256:" + hashlib.sha256(raw).hexdigest(),
        arrival=arrival,
        tenant=named_tenant,
        list_id=text(returned.get("X-BG-List")) or list_id(returned.get("List-Id")),
        campaign_id=text(returned.get("X-BG-Campaign")),
        message_id=join.strip("<>"),
    )


def _attempts(blocks: list[Message], context: _Context, sent: datetime | None) -> list[Attempt]:
    out, unreadable = [], 0
    for block in blocks:
        outcome = _outcome(block)
        if outcome is None:
            continue
        recipient = _recipient(block)
        if recipient is None:
            unreadable += 1
            continue
        out.append(_attempt(block, recipient, outcome, context, sent))
    if unreadable and not out:
        raise InvalidInput(Reason.BAD_ADDRESS, "no failed or delayed recipient is readable")
    return out


def _outcome(block: Message) -> Outcome | None:
    """The outcome a recipient block's Action stands for; None for the non-failures."""
    action = (text(block.get("Action")) or "").split()[:1]
    return _OUTCOMES.get(action[0].lower()) if action else None


def _attempt(
    block: Message, recipient: str, outcome: Outcome, context: _Context, sent: datetime | None
) -> Attempt:
    status_field = text(block.get("Status")) or ""
    # No Diagnostic-Code: the Status comment is the only text there is, e.g. RFC 3464's
    # "4.0.0 (hpnjld.njd.jp.com: host name lookup failure)", which the classifier can read.
    comment = re.search(r"\((.+)\)", status_field)
    diagnostic = _typed(block.get("Diagnostic-Code")) or (comment[1].strip() if comment else "")
    basic, in_text = extract_codes(diagnostic)
    status = _ENHANCED.search(status_field)
    enhanced = status[1] if status else in_text
    ts = date(block.get("Last-Attempt-Date")) or sent or context.arrival
    if ts is None:
        raise InvalidInput(Reason.BAD_TIMESTAMP, "no Last-Attempt-Date, Date or Arrival-Date")
    remote = _typed(block.get("Remote-MTA"))
    said = (basic, enhanced, diagnostic)
    return _build(recipient, outcome, context, ts=ts, said=said, remote_mta=remote, phase=None)


def _build(
    recipient: str,
    outcome: Outcome,
    context: _Context,
    *,
    ts: datetime,
    said: tuple[int | None, str | None, str],
    remote_mta: str | None,
    phase: str | None,
) -> Attempt:
    """One recipient's attempt; `said` is (basic code, enhanced code, diagnostic). A final
    failure with a 4.x.x status is `expired` (module doc)."""
    basic, enhanced, diagnostic = said
    if outcome is Outcome.BOUNCED and enhanced and enhanced.startswith("4"):
        outcome = Outcome.EXPIRED
    key = f"{context.dsn_id}\x1f{recipient}".encode()
    return Attempt(
        event_id="dsn:" + hashlib.sha256(key).hexdigest()[:32],
        ts=ts,
        recipient=recipient,
        outcome=outcome,
        tenant=context.tenant,
        list_id=context.list_id,
        campaign_id=context.campaign_id,
        message_id=context.message_id,
        smtp_code=basic,
        enhanced_code=enhanced,
        diagnostic=diagnostic,
        remote_mta=remote_mta,
        smtp_phase=phase,
        asynchronous=True,
    )


def _addresses(value: str) -> list[tuple[str, str]]:
    """getaddresses of one header value; [] when the stdlib parser cannot read it (it recurses
    on deeply nested comments: RecursionError)."""
    try:
        return getaddresses([value])
    except (RecursionError, ValueError, IndexError):
        return []


def _verp_match(msg: Message, verp: re.Pattern[str] | None) -> re.Match[str] | None:
    """The VERP pattern's match on the first address the bounce was mailed to that it fits.
    A header value too long for a return path, or one the address parser cannot read, is
    skipped: VERP only adds a way to attribute, it never makes a mail unreadable."""
    if verp is None:
        return None
    for name in _MAILED_TO:
        for value in msg.get_all(name) or ():
            if len(str(value)) > _MAX_MAILED_TO:
                continue
            for _, address in _addresses(str(value)):
                found = verp.search(address)
                if found:
                    return found
    return None


def _recipient(block: Message) -> str | None:
    """Final-Recipient, else Original-Recipient, when it is an rfc822 address we accept."""
    for name in ("Final-Recipient", "Original-Recipient"):
        value = text(block.get(name))
        if not value:
            continue
        kind, _, address = value.partition(";")
        if not address or kind.strip().lower() != "rfc822":
            continue
        try:
            return normalize_address(address)
        except InvalidInput:
            continue
    return None


def _typed(value: object) -> str | None:
    """A typed field ("smtp; 550 5.1.1 ...", "dns; mx.example.com") without its type, and a
    trailing RFC 822 comment of Action or Status ("5.0.0 (permanent failure)") kept as is."""
    found = text(value)
    if found is None:
        return None
    kind, sep, rest = found.partition(";")
    if sep and re.fullmatch(r"[A-Za-z0-9-]+", kind.strip()):
        return rest.strip() or None
    return found
