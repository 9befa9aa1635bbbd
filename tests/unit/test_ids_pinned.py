"""Event ids are a contract across processes, restarts and versions: pinned to literal values.

The guarantees rest on them: the apply function dedupes by (recipient, event id), so an
attempt id must come out the same from the same log line in any process (a re-shipped file, a
replay); a suppression re-emitted after a crash must carry the id of the first emission (a
consumer drops the duplicate by id). An id built from anything per-process (Python's `hash()`
is salted per process, PYTHONHASHSEED) would pass every single-process test and break all of
that. So the ids below are today's values, written out, and a child process with another
PYTHONHASHSEED must compute the very same ones.

If a change of id is ever intended, it is a breaking change of the state format (every event
already counted counts again once): update the literals and say so in the release notes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.core.arf import parse_arf
from pipeline.core.ids import suppression_event_id
from pipeline.core.messages import arf_feedback
from pipeline.core.models import Scope
from pipeline.core.outcomes import reactivation, sender_alert, suppression_from_decision
from pipeline.core.parsing import make_parser
from pipeline.core.parsing.base import event_id
from pipeline.core.policies import load_preset
from pipeline.core.wire import digest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
TS = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LOGS = {
    "postfix": "postfix.log",
    "exim": "exim.log",
    "sendmail": "sendmail.log",
    "pmta": "pmta-acct.csv",
    "kumo": "kumo.jsonl",
}


def file_ids(fmt: str, name: str) -> list[str]:
    """The event ids of every attempt the `fmt` parser reads from tests/data/logs/<name>."""
    parser = make_parser(fmt, year=2024)
    out: list[str] = []
    for line in (DATA / "logs" / name).read_bytes().splitlines(keepends=True):
        try:
            out.extend(a.event_id for a in parser.feed(line))
        except ValueError:  # InvalidInput: the files hold a few bad lines on purpose
            continue
    return out


@functools.cache
def current_ids() -> dict[str, str]:
    """Every kind of id, computed from fixed inputs (also run in a child process)."""
    policy = load_preset("default")
    rule = policy.rules[0]
    decision = {"rule": rule.id, "u": 1, "count": 1, "threshold": 1, "reason": "user_unknown"}
    suppression = suppression_from_decision(
        policy,
        decision,
        address="a@example.com",
        tenant="acme",
        list_id="l1",
        trigger_event_id="e2",
        ts=TS,
    )
    back = reactivation(
        policy,
        address="a@example.com",
        tenant="acme",
        scope=Scope.TENANT,
        list_id=None,
        request_id="req-1",
        ts=TS,
        cleared={"rule": rule.id},
    )
    alert = sender_alert(policy, rule, tenant="acme", count=3, sent=100, ts=TS)
    [arf] = arf_feedback(
        parse_arf((DATA / "arf" / "rfc5965-b2.eml").read_bytes()), b"raw", received=TS
    )
    ids = {
        "suppression_event_id": suppression_event_id(
            action="suppressed",
            address="a@example.com",
            tenant="acme",
            scope="tenant",
            list_id=None,
            rule="immediate_hard",
            trigger="e1",
        ),
        "attempt_event_id": event_id("postfix", "mx1", "3F2A1C0B1", "a@example.com", None),
        "digest": digest("e1"),
        "suppression": suppression.event_id,
        "reactivation": back.event_id,
        "sender_alert": alert.event_id,
        "arf_feedback": arf.event_id,
    }
    for fmt, name in LOGS.items():
        found = file_ids(fmt, name)
        ids[f"{fmt}:first"] = found[0]
        ids[f"{fmt}:all"] = hashlib.sha256(" ".join(found).encode()).hexdigest()[:16]
    return ids


PINNED = {
    "suppression_event_id": "cbc070168ae0f5086503a9c33063c628",
    "attempt_event_id": "af919fb6d3683de32604e20503feeef8",
    "digest": "fcb3209c5d09",
    "suppression": "ee84159ccee838eac82b63801b881516",
    "reactivation": "9b7fa56883327ddb960329c2cda1d8bb",
    "sender_alert": "74bebcbc31ed04802c0898a0c0d79c9f",
    "arf_feedback": "arf-ee1752b8f95a3206416c1bf0460317de",
    "postfix:first": "9a0453303d2d5cb7a3c554fb3a7efbef",
    "postfix:all": "1a410772177a9ba6",
    "exim:first": "877925b8fe627d7b288a23e78bfc431e",
    "exim:all": "3d26862c4bbe189f",
    "sendmail:first": "44bd4ddbe4774abc7797cd6dc9bfddd4",
    "sendmail:all": "cd3496ef00cc9ab0",
    "pmta:first": "438b25062e6f0225ea258df05d2cfc3c",
    "pmta:all": "f0a89befbdb79d2f",
    "kumo:first": "3806ae608c807c5adfee0dc9b5be956d",
    "kumo:all": "7f4eadb9e97a5d5a",
}


@pytest.mark.parametrize("kind", sorted(PINNED))
def test_ids_are_the_pinned_values(kind: str) -> None:
    """Catches: an id built from a per-process value (hash(), id(), a random salt) or any
    other change of how an id is derived (see the module docstring)."""
    assert current_ids()[kind] == PINNED[kind]


@pytest.mark.parametrize("seed", ["0", "4242"])
def test_ids_are_the_same_in_a_process_with_another_hash_seed(seed: str) -> None:
    """Catches: ids built with Python's hash() (salted per process): a child process with
    another PYTHONHASHSEED must compute exactly the ids this process does."""
    code = "import json; from tests.unit.test_ids_pinned import current_ids; "
    code += "print(json.dumps(current_ids()))"
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
    child = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(child.stdout) == current_ids()
