"""Raw Postfix log lines for the normalize benchmark: a Dataset's attempts written as
Postfix's smtp client logs them, one line each:

  2026-03-02T09:00:00.020000+00:00 mta1.example-esp.net postfix/smtp[2101]: 4F3A9C1D2E0:
  to=<rcpt>, relay=gmail-smtp-in.l.google.com[142.250.27.26]:25, delay=0.6,
  delays=0.03/0.01/0.21/0.35, dsn=5.1.1, status=bounced (host gmail-smtp-in.l.google.com
  [142.250.27.26] said: 550-5.1.1 The email account ... (in reply to RCPT TO command))

(one line in the topic; wrapped here). RFC 3339 stamps (rsyslog's RSYSLOG_FileFormat) carry
their year, so the parsed times do not depend on the day the bench runs. Lines are bare (as
rsyslog omkafka sends them) and keyed by MTA host, as the normalize agent requires; the hosts
are picked so that each lands on a partition of its own. Their tenant is the worker's
BOUNCEGUARD_RAW_TENANT, so the Dataset is generated for that one tenant.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import orjson

from bench.common import redact
from bench.worker_data import DOMAINS, Dataset
from pipeline.core.classify import classify
from pipeline.core.parsing import make_parser
from pipeline.stream.shipper import partition_for

_STATUS = {"delivered": "sent", "deferred": "deferred", "bounced": "bounced"}
_RELAY = {
    "gmail": ("gmail-smtp-in.l.google.com", "142.250.27.26"),
    "yahoo": ("mta5.am0.yahoodns.net", "67.195.204.72"),
    "microsoft": ("{tld}-com.mail.protection.outlook.com", "52.101.68.3"),
}
_FAMILY = {d: f for d, f, _w in DOMAINS}


def mta_hosts(partitions: Sequence[int]) -> list[str]:
    """One MTA host name per partition: the first `mtaN.example-esp.net` names whose key the
    default partitioner maps to each partition."""
    found: dict[int, str] = {}
    for n in itertools.count(1):
        name = f"mta{n}.example-esp.net"
        found.setdefault(partition_for(name.encode(), partitions), name)
        if len(found) == len(partitions):
            return [found[p] for p in sorted(found)]
    raise AssertionError("unreachable")


def _relay(recipient: str) -> tuple[str, str]:
    domain = recipient.rpartition("@")[2]
    family = _FAMILY.get(domain, "generic")
    if family in _RELAY:
        host, ip = _RELAY[family]
        return host.format(tld=domain.split(".")[0]), ip
    return f"mx.{domain}", "198.51.100.25"


def line(attempt: dict[str, Any], host: str, pid: int) -> bytes:
    """The Postfix smtp line of one attempt (as bench.worker_data writes them)."""
    relay, ip = _relay(attempt["recipient"])
    status = _STATUS[attempt["outcome"]]
    code = attempt["smtp_code"]
    dsn = attempt["enhanced_code"] or f"{str(code)[0]}.0.0"
    text = attempt["diagnostic"]
    if status != "sent":
        command = "RCPT TO" if attempt["smtp_phase"] == "RCPT TO" else "end of DATA"
        text = f"host {relay}[{ip}] said: {text} (in reply to {command} command)"
    qid = attempt["message_id"][:11].upper()
    ts = attempt["ts"].replace("Z", "+00:00")
    return (
        f"{ts} {host} postfix/smtp[{pid}]: {qid}: to=<{attempt['recipient']}>, "
        f"relay={relay}[{ip}]:25, delay=0.6, delays=0.03/0.01/0.21/0.35, dsn={dsn}, "
        f"status={status} ({text})"
    ).encode()


def lines(data: Dataset, partitions: Sequence[int]) -> list[tuple[bytes, bytes]]:
    """(key, line) per attempt of `data`, in order; the MTA hosts take turns."""
    hosts = mta_hosts(partitions)
    out = []
    for i, (_key, value) in enumerate(data.messages):
        host = hosts[i % len(hosts)]
        out.append((host.encode(), line(orjson.loads(value), host, 2000 + i % 97)))
    return out


def check(raw: Sequence[tuple[bytes, bytes]], kinds: Sequence[str], sample: int = 5000) -> None:
    """Parse the first `sample` lines as the worker will and raise RuntimeError unless each
    gives one attempt whose classification is its generated class (the expected suppressions
    are computed from the classes)."""
    parser = make_parser("postfix", tenant="default", year=2026)
    for (_key, value), kind in zip(raw[:sample], kinds, strict=False):
        attempts = parser.feed(value)
        if len(attempts) != 1:
            raise RuntimeError(redact(f"bench line gives {len(attempts)} attempts: {value!r}"))
        a = attempts[0]
        verdict = classify(a.smtp_code, a.enhanced_code, a.diagnostic)
        if verdict.bounce_class.value != kind or (
            kind == "hard" and verdict.category.value != "user_unknown"
        ):
            raise RuntimeError(redact(f"bench line classifies as {verdict}, not {kind}: {value!r}"))
