"""Classic syslog stamps have no year: it is inferred from a reference time (issue 15 item 4).

The rule (rsyslog / logstash practice): the reference's year, unless that puts the stamp more
than a day after the reference, then the year before; the year after only for a stamp just
past a New Year the reference has not reached. The reference is injected (`clock`) so these
tests pin it; the worker's is processing time.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.core.errors import InvalidInput, Reason
from pipeline.core.models import Outcome
from pipeline.core.parsing import make_parser, syslog
from pipeline.stream import normalize
from tests.unit.test_no_address_in_logs import Event

BOUNCED = (
    "{stamp} mx1 postfix/smtp[2500]: 39D9336AFA81: to=<a@example.org>, relay=mx.example.net"
    "[192.0.2.1]:25, delay=1, dsn=5.1.1, status=bounced (host mx.example.net[192.0.2.1] said: "
    "550 5.1.1 user unknown (in reply to RCPT TO command))"
)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("reference", "stamp", "expected"),
    [
        # a December line read in January is last year's
        (at(2027, 1, 2, 8), (12, 31, 23, 59, 0, 0), at(2026, 12, 31, 23, 59)),
        # same year when the stamp is not in the future
        (at(2026, 12, 3, 8), (3, 2, 9, 0, 0, 0), at(2026, 3, 2, 9)),
        (at(2026, 12, 3, 8), (12, 3, 7, 0, 0, 0), at(2026, 12, 3, 7)),
        # up to a day ahead of the reference (clock skew, local time taken as UTC) is this year
        (at(2026, 12, 3, 8), (12, 4, 8, 0, 0, 0), at(2026, 12, 4, 8)),
        # more than a day ahead is last year's
        (at(2026, 12, 3, 8), (12, 4, 8, 0, 1, 0), at(2025, 12, 4, 8, 0, 1)),
        # the mirror case: a January line read late on December 31st is next year's
        (at(2026, 12, 31, 23, 59, 50), (1, 1, 0, 0, 5, 0), at(2027, 1, 1, 0, 0, 5)),
        # Feb 29 read early in the year after a leap year
        (at(2025, 1, 10), (2, 29, 12, 0, 0, 0), at(2024, 2, 29, 12)),
    ],
)
def test_stamp_near_picks_the_latest_year_not_in_the_future(
    reference: datetime, stamp: tuple[int, int, int, int, int, int], expected: datetime
) -> None:
    assert syslog.stamp_near(stamp, reference) == expected


def test_stamp_near_rejects_a_date_of_no_nearby_year() -> None:
    with pytest.raises(ValueError, match="no year near 2026"):
        syslog.stamp_near((2, 29, 0, 0, 0, 0), at(2026, 6, 1))


def test_a_december_line_read_in_january_is_last_years() -> None:
    parser = make_parser("postfix", clock=lambda: at(2027, 1, 2, 8))
    (attempt,) = parser.feed(BOUNCED.format(stamp="Dec 31 23:59:00"))
    assert attempt.ts == at(2026, 12, 31, 23, 59)


def test_the_reference_is_read_per_line() -> None:
    """One long-lived parser across New Year: each line is judged by the time it is read."""
    now = [at(2026, 12, 31, 23, 0)]
    parser = make_parser("auto", clock=lambda: now[0])
    (before,) = parser.feed(BOUNCED.format(stamp="Dec 31 22:59:00"))
    now[0] = at(2027, 1, 1, 0, 5)
    (december,) = parser.feed(BOUNCED.format(stamp="Dec 31 23:59:00"))
    (january,) = parser.feed(BOUNCED.format(stamp="Jan  1 00:04:00"))
    assert [a.ts.year for a in (before, december, january)] == [2026, 2026, 2027]


def test_a_fixed_year_wins_over_the_clock() -> None:
    parser = make_parser("sendmail", year=2019, clock=lambda: at(2027, 1, 2))
    line = (
        "Dec 31 23:59:00 mx sm-mta[1]: x1A2B3C4D5E6F7: to=<a@example.org>, delay=00:00:01, "
        "mailer=esmtp, relay=mx.example.net. [192.0.2.1], dsn=5.1.1, stat=User unknown"
    )
    (attempt,) = parser.feed(line)
    assert attempt.ts == at(2019, 12, 31, 23, 59)


def test_an_impossible_date_is_a_bad_timestamp() -> None:
    parser = make_parser("postfix", clock=lambda: at(2026, 6, 1))
    with pytest.raises(InvalidInput) as caught:
        parser.feed(BOUNCED.format(stamp="Feb 29 10:00:00"))
    assert caught.value.reason is Reason.BAD_TIMESTAMP


def test_the_normalize_agent_reads_a_december_line_in_january_as_last_years() -> None:
    batch = normalize.NormalizeBatch(None, None, clock=lambda: at(2027, 1, 2, 8))  # type: ignore[arg-type]
    (attempt,) = batch.parse(Event(BOUNCED.format(stamp="Dec 31 23:59:00").encode()))
    assert attempt.ts == at(2026, 12, 31, 23, 59)


def test_the_normalize_agent_keeps_a_streams_parser_across_new_year() -> None:
    """The Postfix deferral memory spans New Year: the expired line still names its recipient
    (the parsers were keyed by year, so the first January line started an empty one)."""
    now = [at(2026, 12, 31, 23, 0)]
    batch = normalize.NormalizeBatch(None, None, clock=lambda: now[0])  # type: ignore[arg-type]
    deferred = (
        "Dec 31 22:59:00 mx1 postfix/smtp[2500]: 39D9336AFA81: to=<a@example.org>, relay=none, "
        "delay=1, dsn=4.4.1, status=deferred (connect to mx.example.net: Connection timed out)"
    )
    expired = (
        "Jan  1 00:04:00 mx1 postfix/qmgr[2]: 39D9336AFA81: from=<s@example.com>, "
        "status=expired, returned to sender"
    )
    (first,) = batch.parse(Event(deferred.encode(), key=b"mx1"))
    now[0] = at(2027, 1, 1, 0, 5)
    (last,) = batch.parse(Event(expired.encode(), key=b"mx1"))
    assert (first.outcome, last.outcome) == (Outcome.DEFERRED, Outcome.EXPIRED)
    assert (first.ts.year, last.ts.year, last.recipient) == (2026, 2027, "a@example.org")


def test_the_same_line_parsed_again_under_another_year_or_clock_is_parsed_anew() -> None:
    """Catches: a memo of the last line (detection then the format's parser parse the same
    text) keyed on the text alone, which would give the first call's year to the second."""
    line = "Mar  2 09:00:00 mx1 postfix/smtp[1]: 39D9336AFA81: removed"
    assert syslog.parse_syslog(line, 2024) is not None
    again = syslog.parse_syslog(line, 2025)
    assert again is not None and again.ts == at(2025, 3, 2, 9, 0, 0)
    later = syslog.parse_syslog(line, None, lambda: at(2030, 6, 1))
    assert later is not None and later.ts == at(2030, 3, 2, 9, 0, 0)
    sooner = syslog.parse_syslog(line, None, lambda: at(2031, 6, 1))
    assert sooner is not None and sooner.ts == at(2031, 3, 2, 9, 0, 0)
    assert syslog.parse_syslog("Mar  2 09:00:00 mx1 postfix/smtp[1]: X: y", 2025) != again
