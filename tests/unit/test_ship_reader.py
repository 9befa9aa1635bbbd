"""`LogReader`: reading and following a log file (rotation, truncation) with temp files.

The reader yields None whenever it has caught up, so these tests drive it step by step:
write, read until None, change the file, read until None again. No threads, no sleeps beyond
the reader's own short poll.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.stream.shipper import LINE_LIMIT, Line, LogReader


def until_idle(it: Iterator[Line | None]) -> list[tuple[int, bytes]]:
    """Lines yielded until the reader reports it has caught up."""
    out = []
    for item in it:
        if item is None:
            return out
        out.append((item.number, item.data))
    return out


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as fh:
        fh.write(data)


def test_reads_a_whole_file_and_a_last_line_without_newline(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_bytes(b"one\r\ntwo\n\nthree")
    lines = [(x.number, x.data) for x in LogReader(str(log)) if x is not None]
    assert lines == [(1, b"one"), (2, b"two"), (3, b""), (4, b"three")]


def test_a_missing_file_raises_without_follow(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(LogReader(str(tmp_path / "nope.log")))


def test_an_overlong_line_is_cut_and_the_next_line_is_intact(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_bytes(b"a\n" + b"x" * (3 * LINE_LIMIT) + b"\nb\n")
    lines = [x for x in LogReader(str(log)) if x is not None]
    assert [(x.number, len(x.data)) for x in lines] == [(1, 1), (2, LINE_LIMIT), (3, 1)]
    assert lines[2].data == b"b"


def test_follow_through_rotation_reads_every_line_once(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_bytes(b"1\n2\n")
    stop = False
    it = iter(LogReader(str(log), follow=True, poll=0.01, stop=lambda: stop))
    assert until_idle(it) == [(1, b"1"), (2, b"2")]
    append(log, b"3\n4")  # a partial line is held back while following
    assert until_idle(it) == [(3, b"3")]
    os.rename(log, tmp_path / "mail.log.1")
    # The writer still has the old file open and finishes its line there, then reopens.
    append(tmp_path / "mail.log.1", b"\n5\n")
    log.write_bytes(b"6\n")
    assert until_idle(it) == [(4, b"4"), (5, b"5"), (1, b"6")]
    append(log, b"7\n")
    assert until_idle(it) == [(2, b"7")]
    stop = True
    assert list(it) == []


def test_follow_waits_while_the_path_is_missing_after_a_move(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_bytes(b"1\n")
    it = iter(LogReader(str(log), follow=True, poll=0.01))
    assert until_idle(it) == [(1, b"1")]
    os.rename(log, tmp_path / "mail.log.1")
    append(tmp_path / "mail.log.1", b"2\n")
    assert until_idle(it) == [(2, b"2")]  # still reading the old file
    assert until_idle(it) == []
    log.write_bytes(b"3\n")
    assert until_idle(it) == [(1, b"3")]


def test_follow_after_truncation_reads_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_bytes(b"first line\nsecond line\n")
    it = iter(LogReader(str(log), follow=True, poll=0.01))
    assert len(until_idle(it)) == 2
    with log.open("r+b") as fh:  # logrotate copytruncate
        fh.truncate(0)
    assert until_idle(it) == []
    append(log, b"new\n")
    assert until_idle(it) == [(1, b"new")]


def test_follow_waits_for_the_file_and_from_end_skips_old_lines(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    it = iter(LogReader(str(log), follow=True, poll=0.01))
    assert next(it) is None  # waiting for the file
    log.write_bytes(b"hello\n")
    assert until_idle(it) == [(1, b"hello")]

    old = tmp_path / "old.log"
    old.write_bytes(b"old\n")
    tail = iter(LogReader(str(old), follow=True, from_end=True, poll=0.01))
    assert until_idle(tail) == []
    append(old, b"fresh\n")
    assert [data for _, data in until_idle(tail)] == [b"fresh"]


def test_stop_ends_a_follow_without_waiting(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_bytes(b"1\n")
    assert [x for x in LogReader(str(log), follow=True, stop=lambda: True) if x] == [Line(1, b"1")]


def test_a_pipe_yields_its_lines_before_it_closes() -> None:
    """`ship -` behind a long-lived writer (PowerMTA's accounting pipe): lines come out, and
    the reader signals idle, while the writer still holds the pipe open."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"a\nb\n")
        it = iter(LogReader(f"/dev/fd/{read_end}"))
        assert until_idle(it) == [(1, b"a"), (2, b"b")]
        os.write(write_end, b"c")
        os.close(write_end)
        write_end = -1
        assert [(x.number, x.data) for x in it if x is not None] == [(3, b"c")]
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def test_a_new_file_gone_between_stat_and_open_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "mail.log"
    log.write_bytes(b"1\n")
    it = iter(LogReader(str(log), follow=True, poll=0.01))
    assert until_idle(it) == [(1, b"1")]
    os.rename(log, tmp_path / "mail.log.1")
    log.write_bytes(b"2\n")
    real_open = open
    misses = [str(log)]

    def racing_open(path: str, mode: str = "r") -> object:
        if misses and path == misses[0]:  # the rotated-in file vanishes once, as in a race
            misses.pop()
            raise FileNotFoundError(path)
        return real_open(path, mode)

    monkeypatch.setattr("pipeline.stream.shipper.open", racing_open, raising=False)
    assert until_idle(it) == []  # still on the old file: nothing lost, nothing raised
    assert until_idle(it) == [(1, b"2")]
