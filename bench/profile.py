"""A py-spy profile of a running worker: `py-spy record --format raw` attached by pid.

Sampling is --nonblocking (py-spy reads the process's memory without pausing it), so the
measured run is not slowed by stops; py-spy itself still takes CPU on a shared machine, which
`Profile.spy_cpu` reports. py-spy comes from the dev extras (pyproject.toml); when it is not
installed or cannot attach (ptrace refused: containers without CAP_SYS_PTRACE, Yama
ptrace_scope), the run goes on without a profile and `Profile.problem` says why.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import ROOT, proc_stat

RATE = 100
"""Samples per second."""


def _binary() -> str | None:
    """py-spy next to this interpreter, else in this checkout's .venv (`make setup` installs
    it there; the bench may run from another venv), else on PATH."""
    for candidate in (Path(sys.executable).parent, ROOT / ".venv" / "bin"):
        if (candidate / "py-spy").exists():
            return str(candidate / "py-spy")
    return shutil.which("py-spy")


@dataclass
class Profile:
    """Samples of one py-spy run, or why there are none."""

    path: Path
    problem: str | None = None
    spy_cpu: float = 0.0
    """CPU seconds py-spy itself used."""
    samples: int = 0
    own: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)


class Profiler:
    """Attach with start(pid), detach with stop() (py-spy writes its output on SIGINT)."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr = output.with_suffix(".stderr")
        self.profile = Profile(output)

    def start(self, pid: int) -> None:
        """Begin sampling `pid`; records a problem instead of raising."""
        binary = _binary()
        if binary is None:
            self.profile.problem = "py-spy not installed (pip install -e '.[dev]')"
            return
        self.output.unlink(missing_ok=True)
        args = ["record", "--pid", str(pid), "--rate", str(RATE), "--nonblocking"]
        args += ["--nolineno", "--format", "raw", "--output", str(self.output)]
        with self._stderr.open("wb") as err:
            self._proc = subprocess.Popen([binary, *args], stdout=subprocess.DEVNULL, stderr=err)

    def stop(self) -> Profile:
        """Stop sampling and summarize what was written (see Profile)."""
        proc, self._proc = self._proc, None
        if proc is None:
            if self.profile.problem is None:
                self.profile.problem = "not started: the run ended before its first commit"
            return self.profile
        if proc.poll() is None:
            with contextlib.suppress(OSError):  # it may have exited on its own
                self.profile.spy_cpu = proc_stat(proc.pid).cpu
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if not self.output.exists():
            why = self._stderr.read_text(errors="replace").strip().splitlines()
            self.profile.problem = f"py-spy exited {proc.returncode}: " + (
                why[-1] if why else "no output (ptrace not permitted?)"
            )
            return self.profile
        _summarize(self.profile)
        return self.profile


def _summarize(profile: Profile) -> None:
    """Fill samples, own and total from a raw (collapsed-stack) file: `a;b;c count` lines."""
    for line in profile.path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        profile.samples += int(n)
        profile.own[frames[-1]] += int(n)
        for frame in set(frames):
            profile.total[frame] += int(n)
