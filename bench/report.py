"""Printing the figures: one block per run as it ends, then the profile, Redis's command
statistics, and the Markdown summary with each figure next to its target (issue 9). Prints
only; a missed target is shown, never raised."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bench.common import ROOT
from bench.profile import Profile
from bench.redis_probe import RedisUsage
from bench.runner import Run


@dataclass
class Measured:
    """One consumer run and what it is compared by."""

    label: str
    unit: str
    """What an item is: "attempts" or "lines"."""
    run: Run
    use_window: bool = False
    """Rate it by `Run.window` (first commit until everything consumed) instead of
    `Run.steady`; the normalize runs are defined so."""
    redis: RedisUsage | None = None
    """The worker runs only."""
    addresses: int = 0
    check: str = ""
    """The suppression check's line (worker runs only)."""
    check_ok: bool | None = None

    @property
    def verdict(self) -> str:
        """OK or MISMATCH (worker runs), else empty."""
        return "" if self.check_ok is None else "OK" if self.check_ok else "MISMATCH"

    @property
    def rate(self) -> float:
        """Items/s by the run's estimator."""
        return (self.run.window() if self.use_window else self.run.steady())[0]

    @property
    def cpu_us(self) -> float:
        """Consumer CPU µs per item over the same window as `rate`."""
        return (self.run.window() if self.use_window else self.run.steady())[1]

    @property
    def redis_us(self) -> float:
        """Redis CPU µs per item over the whole run."""
        return self.redis.cpu / self.run.items * 1e6 if self.redis else math.nan

    @property
    def bytes_per_item(self) -> float:
        """Redis used_memory growth per item."""
        return self.redis.memory / self.run.items if self.redis else math.nan

    @property
    def bytes_per_address(self) -> float:
        """Redis used_memory growth per distinct address of the data."""
        return self.redis.memory / max(self.addresses, 1) if self.redis else math.nan

    @property
    def peak_mb(self) -> float:
        """Peak RSS of the consumer (VmHWM at completion)."""
        return self.run.end.hwm_mb if self.run.end else math.nan


def print_run(m: Measured) -> None:
    """The block printed when a run ends."""
    r, unit = m.run, m.unit
    s_rate, s_cpu = r.steady()
    w_rate, w_cpu = r.window()
    first = r.samples[0]
    print(
        f"{m.label}: {r.items:,} {unit}; first commit after {first.t:.1f} s "
        f"({first.items:,} {unit}), all consumed after {r.total:.1f} s "
        f"({r.items / r.total:,.0f} {unit}/s incl. start-up); {len(r.samples)} commits seen"
    )
    print(
        f"  between commits: {s_rate:,.0f} {unit}/s, CPU {s_cpu:.1f} µs/{unit[:-1]}; "
        f"first commit -> all consumed: {w_rate:,.0f} {unit}/s, CPU {w_cpu:.1f} µs/{unit[:-1]}; "
        f"RSS {r.end.rss_mb if r.end else math.nan:.0f} MB, peak {m.peak_mb:.0f} MB"
    )
    if r.cpu_use:
        use = ", ".join(f"{name} {cores:.2f}" for name, cores in r.cpu_use.items())
        print(f"  CPUs used, first commit -> all consumed (of {os.cpu_count()}): {use}")
    if m.redis is not None:
        u = m.redis
        print(f"  /health after {r.healthy or math.nan:.1f} s; SIGTERM exit took {r.stop_s:.1f} s")
        print(
            f"  Redis: CPU {m.redis_us:.1f} µs/{unit[:-1]} ({u.cpu:.2f} s"
            + (f", +{u.child_cpu:.2f} s in AOF-rewrite children" if u.child_cpu > 0 else "")
            + f"); memory +{u.memory / 2**20:.1f} MB = {m.bytes_per_item:.0f} B/{unit[:-1]}, "
            f"{m.bytes_per_address:.0f} B/address ({m.addresses:,} addresses), "
            f"{u.keys:,} keys"
        )
        print(f"  {m.check}")
    print(flush=True)


def _short(frame: str) -> str:
    """A py-spy frame `func (path)` with the path shortened to the package-relative part."""
    frame = frame.replace(str(ROOT) + "/", "")
    return re.sub(r"\(\S*?site-packages/", "(", frame)


def print_profile(profile: Profile | None, run: str, top: int = 15) -> None:
    """The frames with the most samples of `run` ("arrays"), by own time and by total time."""
    if profile is None:
        return
    if profile.problem:
        print(f"py-spy: no profile: {profile.problem}\n")
        return
    if not profile.samples:
        print(f"py-spy: no samples in {profile.path}\n")
        return
    print(
        f"py-spy: {profile.samples:,} samples of the {run} run's steady window "
        f"(py-spy used {profile.spy_cpu:.1f} s CPU; {profile.path.relative_to(ROOT)})"
    )
    for title, counter in (("own", profile.own), ("total", profile.total)):
        print(f"  top {top} by {title} time:")
        for frame, n in counter.most_common(top):
            print(f"    {n / profile.samples:6.1%}  {_short(frame)}")
    print(flush=True)


def print_commands(usage: RedisUsage | None, top: int = 12) -> None:
    """Redis INFO commandstats of the arrays run, most total time first."""
    if usage is None:
        return
    print("Redis commandstats, arrays run (most total time first):")
    print(f"  {'command':<22} {'calls':>10} {'usec':>12} {'usec/call':>10}")
    for c in usage.commands[:top]:
        print(f"  {c.name:<22} {c.calls:>10,} {c.usec:>12,} {c.usec_per_call:>10.2f}")
    print(flush=True)


def print_table(results: Sequence[Measured]) -> None:
    """Every run side by side (Markdown, like the summary)."""
    print(
        "| run | items | items/s | rated | consumer CPU µs/item | Redis CPU µs/item "
        "| Redis B/item | B/address | peak RSS MB | check |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---|")
    for m in results:
        redis = m.redis is not None
        print(
            f"| {m.label} | {m.run.items:,} {m.unit} | {m.rate:,.0f} "
            f"| {'to all consumed' if m.use_window else 'between commits'} | {m.cpu_us:.1f} "
            f"| {_opt(m.redis_us, redis, '.1f')} | {_opt(m.bytes_per_item, redis, '.0f')} "
            f"| {_opt(m.bytes_per_address, redis, '.0f')} "
            f"| {m.peak_mb:.0f} | {m.verdict} |"
        )
    print(flush=True)


def _opt(value: float, shown: bool, fmt: str) -> str:
    return format(value, fmt) if shown else ""


Target = tuple[str, str, str, bool | None]
"""(figure, measured, target, met); met None: not measured (its run failed)."""


def _arrays_rows(a: Measured) -> list[Target]:
    """The worker's own targets, judged on the arrays run."""
    memory = f"{a.bytes_per_item:.0f} B ({a.bytes_per_address:.0f} B/address)"
    return [
        ("worker on arrays, steady", f"{a.rate:,.0f} attempts/s", "≥ 40,000 attempts/s",
         a.rate >= 40_000),
        ("worker CPU per attempt (arrays)", f"{a.cpu_us:.1f} µs", "≤ 20 µs", a.cpu_us <= 20),
        ("Redis CPU per attempt (arrays)", f"{a.redis_us:.1f} µs", "≤ 8 µs", a.redis_us <= 8),
        ("Redis memory per attempt (arrays)", memory, "≤ 150 B", a.bytes_per_item <= 150),
        ("worker peak RSS (arrays)", f"{a.peak_mb:.0f} MB", "< 200 MB", a.peak_mb < 200),
    ]  # fmt: skip


def _ratio_row(
    figure: str, unit: str, m: Measured | None, base: Measured | None, target: float
) -> Target:
    """`m`'s rate over `base`'s, against `target`."""
    ratio = m.rate / base.rate if m and base and base.rate > 0 else math.nan
    measured = f"{_times(ratio)} ({_rate(m)} vs {_rate(base)} {unit}/s)"
    met = None if math.isnan(ratio) else ratio >= target
    return figure, measured, f"≥ {target:.2f}x", met


def targets(
    arrays: Measured | None,
    single: Measured | None,
    bare_single: Measured | None,
    normalize: Measured | None,
    bare_lines: Measured | None,
) -> list[Target]:
    """Issue 9's figures next to their targets (the worker's own on the arrays run)."""
    failed: Target = ("worker on arrays", "run failed", "", None)
    rows = _arrays_rows(arrays) if arrays else [failed]
    rows.append(_ratio_row("single-attempt messages / bare faust agent", "attempts", single,
                           bare_single, 0.9))  # fmt: skip
    rows.append(_ratio_row("normalize / bare faust agent (raw lines)", "lines", normalize,
                           bare_lines, 0.75))  # fmt: skip
    return rows


def _rate(m: Measured | None) -> str:
    return "failed" if m is None else "n/a" if math.isnan(m.rate) else f"{m.rate:,.0f}"


def _times(ratio: float) -> str:
    return "n/a" if math.isnan(ratio) else f"{ratio:.2f}x"


def print_summary(rows: Sequence[Target], checks: Sequence[tuple[str, str]]) -> None:
    """The Markdown summary: targets, then the suppression check of every worker run."""
    print("| figure | measured | target | met |")
    print("|---|---:|---:|:---:|")
    for figure, measured, target, met in rows:
        mark = "n/a" if met is None else "yes" if met else "**no**"
        print(f"| {figure} | {measured} | {target} | {mark} |")
    verdicts = ", ".join(f"{name} {verdict}" for name, verdict in checks)
    ok = bool(checks) and all(v == "OK" for _n, v in checks)
    print(
        f"| suppressions == hard-bounced pairs, no dead letters | {verdicts} | OK | "
        f"{'yes' if ok else '**no**'} |"
    )
    print(flush=True)
