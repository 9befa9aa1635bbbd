"""Bounce mails that are not RFC 3464 reports: the plain-text notices real MTAs still send.

RFC 3464 (`pipeline.core.dsn`) is what Postfix, Sendmail and most current servers write. Exim,
qmail, Yahoo's qmail-derived servers, Gmail before its switch to DSNs and Exchange 2003 mail the
return path a text notice instead: some prose, the failed recipients each with the remote
server's reply, then a copy of the returned message after a marker line. The layouts, as their
senders write them (checked against Sisimai's public corpus, tests/data/notices/README.md):

- Exim: "The following address(es) failed:" (a delay: "has not yet been delivered"), then per
  recipient a line indented two spaces holding the address, the reply on lines indented four.
- qmail and Yahoo: "<address>:" at the start of a line, the reply on the lines below it.
- Gmail: "Delivery to the following recipient(s) failed permanently:" (or "has been delayed:"),
  the addresses indented, then one "Technical details of ... failure:" text for all of them.
- Exchange 2000/2003: "did not reach the following recipient(s):" (or "The following
  recipient(s) could not be reached:"), then "address on <date>" lines, the reason indented
  below each.

`read_notice` finds the layout by its marker; a mail with none is not a notice (None): the
caller dead-letters it as not a bounce. Pure: stdlib `email` and `re` only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from email.message import Message

from pipeline.core.classify import MAX_TEXT
from pipeline.core.mailparts import body_text, header_block, header_fields, parts
from pipeline.core.parsing.base import normalize_phase

_ADDRESS = r"[^\s<>@:,;\"()]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
_RETURNED_MARKER = re.compile(
    r"^[ \t]*-{2,}[ \t]*(?:This is a copy of (?:the|your) message|Below this line is"
    r"|Enclosed is a copy|Original message|Message header follows"
    r"|The (?:header of the )?original message)[^\n]*$",
    re.MULTILINE | re.IGNORECASE,
)
"""The line after which a notice quotes the returned message (its headers first)."""
_COPY_NOTES = re.compile(r"\A(?:[ \t]*(?:-{2,}[^\n]*)?\n)*")
"""Blank lines and Exim's "------ The body of the message is N characters long; only the
first ..." lines between the marker and the returned header block."""
_REPLY = re.compile(r"(?:^|:\s|said:?\s|was:\s)(?P<reply>[245]\d\d(?:[\s:-].*)?)$", re.IGNORECASE)
"""Where the remote server's own words begin: its reply code at the start, after a colon or
after "said" (the text before is the MTA's account of what it tried)."""
_PHASE = re.compile(
    r"\bafter (?P<command>RCPT TO|MAIL FROM|end of data|DATA|initial connection"
    r"|HELO|EHLO|STARTTLS|AUTH)",
    re.IGNORECASE,
)
_HOST = re.compile(r"\bhost ([A-Za-z0-9.-]+\.[A-Za-z]{2,}) \[")
_QMAIL_PHASES = {
    "my name was rejected": "HELO",
    "sender was rejected": "MAIL FROM",
    "does not like recipient": "RCPT TO",
    "failed after i sent the message": "end of data",
    "failed on data command": "DATA",
}
"""qmail-remote's words for the command the server refused (qmail-remote.c's messages)."""
_QMAIL_PHRASE = re.compile("|".join(_QMAIL_PHASES), re.IGNORECASE)
_YAHOO_PHASE = re.compile(r"\[(RCPT_TO|MAIL_FROM|DATA)\]\s*$")
_GAVE_UP = re.compile(
    r"retry timeout exceeded|all hosts have been failing for a long time|did not accept our"
    r" requests to connect|not going to try again|in the queue too long|after multiple"
    r" retries, giving up",
    re.IGNORECASE,
)
"""How each MTA says its retry time ran out: Exim, Gmail, qmail, Yahoo (qmail's "Giving up on
<ip>" follows a permanent reply and is not one of these)."""
_TRAILER = re.compile(r"\s*(?:I'm not going to try again|Giving up on )")
"""qmail's own words after the quoted reply; they are not the remote server's."""


@dataclass(frozen=True, slots=True)
class Failure:
    """One recipient a notice reports, with the remote server's reply as the notice quotes it."""

    recipient: str
    diagnostic: str
    """The reply from its code on ("550 5.1.1 ... User Unknown") when the notice quotes one,
    else the notice's whole text for this recipient ("retry timeout exceeded")."""
    phase: str | None = None
    """The SMTP command the reply answered ("RCPT TO"), when the notice names it."""
    remote_mta: str | None = None
    """The host that answered, when the notice names it."""
    gave_up: bool = False
    """The MTA stopped retrying without a permanent reply (its retry time ran out): an
    expiry, not a verdict on the address."""


@dataclass(frozen=True, slots=True)
class Notice:
    """A plain-text bounce notice: who failed, whether it is only a delay, what was returned."""

    dialect: str
    delayed: bool
    failures: tuple[Failure, ...]
    returned: Message
    """Header block of the returned message (an empty Message when the notice quotes none)."""


@dataclass(frozen=True, slots=True)
class _Dialect:
    """How one MTA lays out its notice: the line its recipient list follows, how a recipient's
    entry begins, and the wording of a mere delay."""

    name: str
    start: re.Pattern[str]
    """The phrase of the line the recipient list follows."""
    colon: bool
    """That line must end with a colon (all but qmail's)."""
    entry: re.Pattern[str]
    delayed: re.Pattern[str] | None = None
    """The wording of a delay notice; None for MTAs that mail only final failures."""
    shared_reply: re.Pattern[str] | None = None
    """Where one reply for every recipient begins (Gmail), when entries carry none."""


_DIALECTS = (
    _Dialect(
        "exim",
        re.compile(
            r"following\s+address\(es\)\s+failed|address(?:\(es\))? to which the message has not"
            r" yet been delivered (?:is|are)|could not be delivered to (?:one or more|all) of"
            r" its\s+recipients",
            re.IGNORECASE,
        ),
        True,
        re.compile(rf"^ {{1,3}}<?(?P<address>{_ADDRESS})>?(?:[ \t]*:[ \t]*(?P<rest>.*))?$"),
        re.compile(r"has not yet been delivered", re.IGNORECASE),
    ),
    _Dialect(
        "qmail",
        re.compile(
            r"qmail-send program|unable to deliver your message to the following"
            r" address|wasn't able to deliver your message",
            re.IGNORECASE,
        ),
        False,
        re.compile(rf"^<(?P<address>{_ADDRESS})>:[ \t]*(?P<rest>.*)$"),
    ),
    _Dialect(
        "gmail",
        re.compile(
            r"^Delivery to the following recipients? (?:failed permanently|failed temporarily"
            r"|has been delayed)",
            re.MULTILINE | re.IGNORECASE,
        ),
        True,
        re.compile(rf"^[ \t]+<?(?P<address>{_ADDRESS})>?[ \t]*$"),
        re.compile(r"has been delayed|failed temporarily", re.IGNORECASE),
        shared_reply=re.compile(
            r"(?:The error that the other server returned was:|Technical details of"
            r" (?:permanent|temporary) failure:)",
            re.IGNORECASE,
        ),
    ),
    _Dialect(
        "exchange2003",
        re.compile(
            r"did not reach the following recipient\(s\)|following recipient\(s\) could not"
            r" be reached"
        ),
        True,
        re.compile(rf"^[ \t]*(?P<address>{_ADDRESS}) on [^\n]+$"),
    ),
)


def read_notice(msg: Message) -> Notice | None:
    """The plain-text bounce notice `msg` holds (module doc), or None when no known layout's
    marker is found or it lists no recipient. Addresses are as written (not yet normalized);
    diagnostics are unfolded to one line each."""
    text, returned = _notice_text(msg)
    copy = _RETURNED_MARKER.search(text)
    if copy:
        text, quoted = text[: copy.start()], text[copy.end() :]
        if not returned.keys():
            returned = header_fields(_COPY_NOTES.sub("", quoted).lstrip())
    for dialect in _DIALECTS:
        start = _section_start(dialect, text)
        if start is None:
            continue
        failures = _entries(dialect, text[start:])
        if failures:
            delayed = dialect.delayed is not None and bool(dialect.delayed.search(text))
            return Notice(dialect.name, delayed, failures, returned)
    return None


def _section_start(dialect: _Dialect, text: str) -> int | None:
    """Where the recipient list of `dialect` starts in `text`: after the first line holding
    its phrase (and, for most, ending with a colon). Linear in the text, whatever it holds
    (a bounce address receives arbitrary mail): each line's end is looked up once."""
    pos, failed_eol = 0, -1
    while (found := dialect.start.search(text, pos)) is not None:
        pos = found.end()
        if pos <= failed_eol:
            continue  # ends on a line already found wanting
        eol = text.find("\n", pos)
        eol = len(text) if eol == -1 else eol
        if not dialect.colon or text[pos:eol].rstrip(" \t").endswith(":"):
            return eol
        failed_eol = eol
    return None


def _notice_text(msg: Message) -> tuple[str, Message]:
    """The notice's prose (a single part's body, else the first text/plain part of a
    multipart) and the header block of a returned message/* part when the mail has one."""
    if not msg.is_multipart():
        return _plain(body_text(msg)), Message()
    text, returned = "", Message()
    for part in _own_parts(msg):
        kind = part.get_content_type()
        if kind == "text/plain" and not text:
            text = _plain(body_text(part))
        elif kind in ("message/rfc822", "text/rfc822-headers") and not returned.keys():
            returned = header_block(part)
    return text, returned


def _own_parts(msg: Message) -> list[Message]:
    """The notice's parts, depth first, without looking inside a message/* part: the text
    of the returned message (our own mail) must never be read as the notice."""
    out = []
    for part in parts(msg):
        out.append(part)
        if part.is_multipart() and not part.get_content_type().startswith("message/"):
            out += _own_parts(part)
    return out


def _plain(body: str) -> str:
    return body.replace("\r\n", "\n")


def _entries(dialect: _Dialect, section: str) -> tuple[Failure, ...]:
    """The recipients listed in `section` with the reply lines under each (a blank line ends
    an entry); a shared reply (Gmail) is given to every recipient."""
    entries: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for line in section.split("\n"):
        found = dialect.entry.match(line)
        if found:
            current = [found["rest"]] if found.groupdict().get("rest") else []
            entries.append((found["address"], current))
        elif not line.strip():
            current = None
        elif current is not None:
            current.append(line)
    if dialect.shared_reply is not None:
        # Read once for all: a notice may list thousands of recipients under one reply.
        shared = _failure("", _shared_reply(dialect.shared_reply, section))
        return tuple(replace(shared, recipient=address) for address, _ in entries)
    return tuple(_failure(address, " ".join(" ".join(lines).split())) for address, lines in entries)


def _failure(address: str, said: str) -> Failure:
    """A recipient's failure from the notice's text about it: the quoted reply split from the
    MTA's own words around it (Exim: "SMTP error from remote mail server after RCPT TO:<a>:
    host mx.example.jp [192.0.2.1]: 550 5.1.1 ..."; qmail: "Remote host said: 550 ..."). Cut
    at MAX_TEXT first: the classifier reads no more, and an attempt must stay small."""
    said = said[:MAX_TEXT]
    reply = _REPLY.search(said)
    host = _HOST.search(said)
    permanent = reply is not None and reply["reply"].startswith("5")
    text = reply["reply"] if reply else said
    return Failure(
        address,
        _TRAILER.split(text, maxsplit=1)[0].strip() or text.strip(),
        normalize_phase(_command(said)),
        host[1] if host else None,
        gave_up=not permanent and _GAVE_UP.search(said) is not None,
    )


def _command(said: str) -> str | None:
    """The SMTP command the reply answered, as Exim ("after RCPT TO:"), qmail ("does not like
    recipient") or Yahoo ("... User Unknown [RCPT_TO]") words it; None when it does not say."""
    exim = _PHASE.search(said)
    if exim:
        return exim["command"]
    qmail = _QMAIL_PHRASE.search(said)
    if qmail:
        return _QMAIL_PHASES[qmail[0].lower()]
    yahoo = _YAHOO_PHASE.search(said)
    return yahoo[1].replace("_", " ") if yahoo else None


def _shared_reply(marker: re.Pattern[str], section: str) -> str:
    """The text after the last reply marker (Gmail names its two markers in that order)."""
    found = list(marker.finditer(section))
    return " ".join(section[found[-1].end() :].split()) if found else ""
