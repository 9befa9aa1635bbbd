"""Generate grafana/dashboards/*.json from code: `make dashboards` (or `python grafana/build.py`).

Built with grafana-foundation-sdk (Grafana Labs' own dashboards-as-code SDK; pinned in the
`dev` extras to the build for Grafana 11.1, the version docker-compose.yml runs). The JSON is
committed so that Grafana's file provisioning can load it without Python, and
tests/unit/test_dashboards.py fails when the committed JSON differs from this generator's
output. tests/integration/test_observability.py asks a real Prometheus every query below.

Every panel carries a description: the question it answers (docs/observability.md repeats
them). Queries use only `$__rate_interval` and, on the tenant dashboard, `$tenant`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import StackingMode
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    VariableRefresh,
    VariableSort,
)

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
RATE = "$__rate_interval"

# Complaint rate per tenant: complaints / delivered over an hour. Tenants with deliveries but no
# complaint show 0 (the `or 0 * delivered` arm) instead of no line at all.
COMPLAINT_RATE = (
    '(sum by (tenant) (rate(bounceguard_tenant_events_total{{class="complaint"{sel}}}[1h]))'
    ' or 0 * sum by (tenant) (rate(bounceguard_tenant_events_total{{class="delivered"{sel}}}[1h])))'
    ' / sum by (tenant) (rate(bounceguard_tenant_events_total{{class="delivered"{sel}}}[1h]))'
)
BOUNCE_RATE = (
    'sum by (tenant) (rate(bounceguard_tenant_events_total{{class=~"hard|soft"{sel}}}[1h]))'
    " / sum by (tenant) (rate(bounceguard_tenant_events_total{{{sel0}}}[1h]))"
)


@dataclass(frozen=True)
class P:
    """One panel: title, the question it answers, unit, (expr, legend) targets, kind."""

    title: str
    question: str
    unit: str
    targets: Sequence[tuple[str, str]]
    kind: str = "timeseries"
    stacked: bool = False


def quantiles(metric: str, sel: str = "") -> list[tuple[str, str]]:
    """p50 and p99 of histogram `metric` over the rate interval."""
    return [
        (
            f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{sel}[{RATE}])))",
            f"p{int(q * 100)}",
        )
        for q in (0.5, 0.99)
    ]


def build_panel(spec: P, panel_id: int) -> Any:
    """The SDK builder for `spec` (timeseries or stat)."""
    panel: Any
    if spec.kind == "stat":
        panel = stat.Panel().height(4).span(6)
    else:
        panel = timeseries.Panel().height(8).span(12).fill_opacity(10)
        if spec.stacked:
            panel = panel.stacking(common.StackingConfig().mode(StackingMode.NORMAL))
    panel = (
        panel.id(panel_id)
        .title(spec.title)
        .description(spec.question)
        .unit(spec.unit)
        .datasource(DATASOURCE)
    )
    for ref, (expr, legend) in zip("ABCDEFGH", spec.targets, strict=False):
        panel = panel.with_target(
            prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)
        )
    return panel


def assemble(title: str, uid: str, rows: Sequence[tuple[str, Sequence[P]]]) -> Any:
    """A dashboard builder with one row per (row title, panels)."""
    board = (
        gd.Dashboard(title)
        .uid(uid)
        .tags(["bounceguard"])
        .refresh("30s")
        .time("now-6h", "now")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .timezone("browser")
    )
    panel_id = 1
    for row_title, panels in rows:
        board = board.with_row(gd.Row(row_title).id(panel_id))
        panel_id += 1
        for spec in panels:
            board = board.with_panel(build_panel(spec, panel_id))
            panel_id += 1
    return board


def overview() -> Any:
    """The overview dashboard: flow, bounce mix, suppressions, tenants, health."""
    flow = [
        P(
            "Events consumed per second",
            "How much is flowing in, per input topic?",
            "ops",
            [(f"sum by (topic) (rate(bounceguard_events_consumed_total[{RATE}]))", "{{topic}}")],
        ),
        P(
            "Attempts per second by outcome",
            "How many delivery attempts are decided, and what did the MTAs report?",
            "ops",
            [(f"sum by (outcome) (rate(bounceguard_attempts_total[{RATE}]))", "{{outcome}}")],
        ),
        P(
            "Workers up",
            "How many workers does Prometheus scrape right now?",
            "short",
            [('sum(up{job="bounceguard"})', "workers")],
            kind="stat",
        ),
    ]
    bounces = [
        P(
            "Bounce mix by category",
            "What is bouncing, and why (user unknown, mailbox full, spam block...)?",
            "ops",
            [
                (
                    "sum by (category) (rate(bounceguard_attempts_total"
                    f'{{class!~"delivered|auto_reply"}}[{RATE}]))',
                    "{{category}}",
                )
            ],
            stacked=True,
        ),
        P(
            "Attempts by class",
            "Which share is delivered, soft, hard, block (the sender's problem)?",
            "ops",
            [(f"sum by (class) (rate(bounceguard_attempts_total[{RATE}]))", "{{class}}")],
            stacked=True,
        ),
    ]
    suppressions = [
        P(
            "Suppressions by rule",
            "What is being suppressed, and by which policy rule?",
            "ops",
            [
                (
                    f"sum by (policy, rule) (rate(bounceguard_suppressions_total[{RATE}]))",
                    "{{policy}}/{{rule}}",
                )
            ],
            stacked=True,
        ),
        P(
            "Suppressions by receiving-domain family",
            "Is one mailbox provider suddenly rejecting many addresses (a provider outage)?",
            "ops",
            [
                (
                    f"sum by (domain_family) (rate(bounceguard_domain_suppressions_total[{RATE}]))",
                    "{{domain_family}}",
                )
            ],
        ),
        P(
            "Held suppressions by provider group",
            "Is the provider-outage guard holding suppressions of a provider, and how many?",
            "short",
            [("sum by (group) (bounceguard_held_suppressions)", "{{group}}")],
        ),
        P(
            "Reactivations and sender alerts",
            "Are addresses being added back, and are tenants tripping tenant-level alerts?",
            "ops",
            [
                (
                    f"sum by (tenant) (rate(bounceguard_reactivations_total[{RATE}]))",
                    "reactivated {{tenant}}",
                ),
                (
                    f"sum by (rule, tenant) (rate(bounceguard_sender_alerts_total[{RATE}]))",
                    "alert {{rule}} {{tenant}}",
                ),
            ],
        ),
    ]
    tenants = [
        P(
            "Complaint rate by tenant (1h)",
            "Whose complaint rate is climbing towards its limit (ecomail: 0.1%)?",
            "percentunit",
            [(COMPLAINT_RATE.format(sel=""), "{{tenant}}")],
        ),
        P(
            "Bounce rate by tenant (1h, top 10)",
            "Which tenants send to the most bad addresses?",
            "percentunit",
            [(f"topk(10, {BOUNCE_RATE.format(sel='', sel0='')})", "{{tenant}}")],
        ),
    ]
    return assemble(
        "bounceguard overview",
        "bounceguard-overview",
        [
            ("Flow", flow),
            ("What bounces and why", bounces),
            ("Suppressions", suppressions),
            ("Tenants", tenants),
            ("Health", health()),
        ],
    )


def health() -> list[P]:
    """Overview panels about the worker itself: dead letters, latency, lag, Redis."""
    return [
        P(
            "Dead letters per second",
            "Is input being rejected, from which topic and why?",
            "ops",
            [
                (
                    f"sum by (topic, reason) (rate(bounceguard_dead_letters_total[{RATE}]))",
                    "{{topic}} {{reason}}",
                )
            ],
        ),
        P(
            "Dead-letter ratio",
            "Which share of consumed events is dead-lettered (alert at 5%)?",
            "percentunit",
            [
                (
                    f"sum(rate(bounceguard_dead_letters_total[{RATE}])) / "
                    f"clamp_min(sum(rate(bounceguard_events_consumed_total[{RATE}])), 1e-9)",
                    "ratio",
                )
            ],
        ),
        P(
            "Event time to decision",
            "How fresh are decisions: p50/p99 of decision time minus the attempt's event time?",
            "s",
            quantiles("bounceguard_decision_lag_seconds"),
        ),
        P(
            "Redis round trip per batch",
            "Is Redis keeping up: p50/p99 of one batch's counting scripts?",
            "s",
            quantiles("bounceguard_redis_batch_seconds"),
        ),
        P(
            "Consumer lag per partition",
            "Is the worker keeping up: messages not yet committed, per input partition?",
            "short",
            [
                (
                    "max by (topic, partition) (bounceguard_consumer_lag)",
                    "{{topic}}[{{partition}}]",
                )
            ],
        ),
        P(
            "Redis memory",
            "How much memory do the counters take in Redis?",
            "bytes",
            [("max(bounceguard_redis_memory_used_bytes)", "used")],
        ),
        P(
            "Batch processing time and retries",
            "How long does a batch take (p99), and are batches retried (Redis/Kafka errors)?",
            "s",
            [
                *quantiles("bounceguard_batch_seconds")[1:],
                (f"sum(rate(bounceguard_batch_retries_total[{RATE}]))", "retries/s"),
            ],
        ),
    ]


def tenant() -> Any:
    """The per-tenant dashboard, templated on $tenant."""
    sel = ', tenant="$tenant"'
    only = '{tenant="$tenant"}'
    panels = [
        P(
            "Attempts per second by class",
            "How much does this tenant send, and how much of it is delivered?",
            "ops",
            [
                (
                    f"sum by (class) (rate(bounceguard_tenant_events_total{only}[{RATE}]))",
                    "{{class}}",
                )
            ],
            stacked=True,
        ),
        P(
            "Bounce mix by category",
            "Why do this tenant's messages bounce?",
            "ops",
            [
                (
                    "sum by (category) (rate(bounceguard_tenant_events_total"
                    f'{{class!~"delivered|auto_reply"{sel}}}[{RATE}]))',
                    "{{category}}",
                )
            ],
            stacked=True,
        ),
        P(
            "Complaint rate (1h)",
            "Is this tenant's complaint rate near its limit?",
            "percentunit",
            [(COMPLAINT_RATE.format(sel=sel), "{{tenant}}")],
        ),
        P(
            "Bounce rate (1h)",
            "Which share of this tenant's attempts bounce hard or soft?",
            "percentunit",
            [(BOUNCE_RATE.format(sel=sel, sel0=sel.lstrip(", ")), "{{tenant}}")],
        ),
        P(
            "Suppressions by rule",
            "Which rules suppress this tenant's addresses, in which scope?",
            "ops",
            [
                (
                    "sum by (policy, rule, scope) "
                    f"(rate(bounceguard_suppressions_total{only}[{RATE}]))",
                    "{{policy}}/{{rule}} ({{scope}})",
                )
            ],
            stacked=True,
        ),
        P(
            "Suppressions by reason",
            "Which bounce reasons end in a suppression for this tenant?",
            "ops",
            [
                (
                    f"sum by (reason) (rate(bounceguard_suppressions_total{only}[{RATE}]))",
                    "{{reason}}",
                )
            ],
        ),
        P(
            "Sender alerts and reactivations",
            "Did this tenant trip a tenant-level alert, or get addresses added back?",
            "ops",
            [
                (
                    f"sum by (rule) (rate(bounceguard_sender_alerts_total{only}[{RATE}]))",
                    "alert {{rule}}",
                ),
                (
                    f"sum by (scope) (rate(bounceguard_reactivations_total{only}[{RATE}]))",
                    "reactivated ({{scope}})",
                ),
            ],
        ),
    ]
    variable = (
        gd.QueryVariable("tenant")
        .label("tenant")
        .datasource(DATASOURCE)
        .query("label_values(bounceguard_tenant_events_total, tenant)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    board = assemble("bounceguard tenant", "bounceguard-tenant", [("Tenant $tenant", panels)])
    return board.with_variable(variable)


def render() -> dict[str, str]:
    """Return {file name: JSON text} for every dashboard (what `main` writes)."""
    boards = {"overview.json": overview(), "tenant.json": tenant()}
    return {
        name: json.dumps(board.build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
        for name, board in boards.items()
    }


def main() -> int:
    """Write every dashboard under grafana/dashboards/; print the files written."""
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(OUT / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
