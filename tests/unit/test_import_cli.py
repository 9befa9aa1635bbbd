"""`bounceguard import-suppressions` without servers: --check, exit codes, the progress line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.cli.import_suppressions import Progress

DATA = Path(__file__).resolve().parents[1] / "data" / "imports"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["import-suppressions", *argv])
    return code, capsys.readouterr().err


def test_check_reports_bad_rows_by_line_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "--check", "--tenant", "acme", "--format", "ses", str(DATA / "ses.csv"))
    assert code == 1
    assert err.splitlines() == [
        "line 4: bad_address: recipient is not a plausible e-mail address",
        "line 5: bad_timestamp: the date is not one we read",
        "rows=4 imported=0 already=0 reactivated=0 skipped=0 bad=2",
    ]


def test_a_clean_file_checks_with_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean = tmp_path / "ok.csv"
    clean.write_text("one@example.com\ntwo@example.com\n")
    assert run(capsys, "--check", "--tenant", "acme", str(clean))[0] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tenant", "a b"], "tenant must be"),
        (["--tenant", "acme", "--format", "ses"], "no address column"),
        (["--tenant", "acme", "--at", "soon"], "RFC 3339"),
    ],
)
def test_unusable_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    names = tmp_path / "names.csv"
    names.write_text("name\nJane\n")
    code, err = run(capsys, "--check", *argv, str(names))
    assert code == 2
    assert message in err


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "--tenant", "acme", str(tmp_path / "nope.csv"))
    assert code == 2
    assert "cannot read" in err


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_only() -> None:
    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        progress = Progress(10, stream)
        progress.show(5)
        progress.show(10)
        progress.done()
    assert tty.getvalue() == "\rimport-suppressions: 5/10 rows\rimport-suppressions: 10/10 rows\n"
    assert pipe.getvalue() == ""
