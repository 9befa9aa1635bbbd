"""The store on a real Redis Cluster (deploy/redis-cluster.sh: 3 primaries + 3 replicas on
test ports of their own; issue 10, first step).

- `bounceguard replay` of the same attempts into the Cluster and into the single test Redis
  prints the same suppressions, and the Cluster's keys are spread over every primary.
- A slot moved between primaries mid-stream, under a client whose slot map was read before
  the move, and a slot left MIGRATING while a batch runs: the address's events are applied
  once and in order (the same suppressions, and byte for byte the same state documents, as
  without any move).
- `sweep`, `report`, `status` and the suppression history (CLI and web pages) cover every
  primary: contacts and tenants spread over all three give the same answers as one Redis,
  also when slots move (at once, or left MIGRATING a while) under the client's map during
  a report's scan and a sweep's calls; a slot that stays MIGRATING makes a report exit 1
  (Transient), not crash.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import redis

from bench.worker_data import generate
from pipeline import web
from pipeline.cli import main
from pipeline.config import Settings
from pipeline.core.decode import attempt_from_mapping, parse_ts
from pipeline.core.events import Event
from pipeline.core.plan import BatchPlan, Outcome
from pipeline.core.policies import load_preset
from pipeline.state import fanout, queries
from pipeline.state.store import Store
from tests.integration.clusters import SlotMove, node, owner, primaries, slot_of
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


def decided(lines: Sequence[str]) -> set[tuple[str, str, str, int, str]]:
    events = [orjson.loads(x) for x in lines if x]
    return {(e["address"], e["tenant"], e["rule"], e["count"], e["event_id"]) for e in events}


def test_replay_into_the_cluster_and_into_one_redis_prints_the_same_suppressions(
    redis_cluster: str, redis_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = generate(5000, addresses=1000, seed=11)
    file = tmp_path / "attempts.jsonl"
    file.write_bytes(b"\n".join(v for _, v in data.messages) + b"\n")
    namespace = f"rc{uuid.uuid4().hex[:8]}"
    printed = {}
    for name, url in (("single", redis_server), ("cluster", redis_cluster)):
        code = main(["replay", "--policy", "default", "--redis", url, "--namespace", namespace,
                     str(file)])  # fmt: skip
        out, _ = capsys.readouterr()
        assert code == 0
        printed[name] = decided(out.splitlines())
    assert len(printed["single"]) >= len(data.hard_pairs) > 50
    assert printed["cluster"] == printed["single"]
    # every primary holds a share of the addresses (one call per primary, not one node)
    for port, _ in primaries().values():
        held = list(node(port).scan_iter(match=f"{namespace}:*", count=1000))
        assert len(held) > 100


def batches(events: list[Event], size: int) -> list[list[Event]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


class CountingStore(Store):
    """A Store that counts its re-sends of skipped groups."""

    resent = 0

    async def resend(self, plan: BatchPlan, outcome: Outcome) -> Outcome:
        type(self).resent += len(set(outcome.skipped))
        return await super().resend(plan, outcome)


def state_of(clients: Sequence[redis.Redis], namespace: str, address: str) -> dict[bytes, Any]:
    """Every key of `address` (its {hash tag}) and its value, wherever it lives."""
    pattern = f"{namespace}:{{{address}}}*".replace("[", "\\[").replace("?", "\\?")
    found: dict[bytes, Any] = {}
    for client in clients:
        for key in client.scan_iter(match=pattern, count=1000):
            kind = client.type(key)
            found[key] = client.get(key) if kind == b"string" else client.lrange(key, 0, -1)
    return found


def test_a_slot_moved_mid_stream_applies_its_events_once_in_order(
    redis_cluster: str, redis_server: str, redis_client: redis.Redis
) -> None:
    data = generate(4000, addresses=300, seed=23)
    events: list[Event] = [attempt_from_mapping(orjson.loads(v)) for _, v in data.messages]
    counts: dict[str, int] = {}
    for e in events:
        counts[e.recipient] = counts.get(e.recipient, 0) + 1
    moved, migrating = sorted(counts, key=lambda a: -counts[a])[:2]
    namespace = f"mv{uuid.uuid4().hex[:8]}"
    slot_moved = slot_of(f"{namespace}:{{{moved}}}")
    slot_migrating = slot_of(f"{namespace}:{{{migrating}}}")
    assert slot_moved != slot_migrating
    chunks = batches(events, 400)
    assert sum(e.recipient == moved for e in events[: 4 * 400]) > 0
    assert sum(e.recipient == moved for e in events[4 * 400 :]) > 0

    async def run(url: str, during: dict[int, Any]) -> list[Any]:
        store = CountingStore.from_url(url, load_preset("default"), namespace=namespace)
        out: list[Any] = []
        try:
            for n, chunk in enumerate(chunks):
                hook = during.get(n)
                if hook is not None:
                    hook()
                applied = await store.apply(chunk)
                await store.mark_emitted(applied.suppressions, applied.alerts)
                out += [(s.address, s.rule, s.count, s.event_id) for s in applied.suppressions]
        finally:
            await store.close()
        return out

    expected = asyncio.run(run(redis_server, {}))
    assert any(a == moved for a, *_ in expected) or counts[moved] > 10

    first = SlotMove(slot_moved)

    def move_now() -> None:  # between two batches, under the store's cached map
        first.begin()
        first.finish()

    second = SlotMove(slot_migrating)

    def leave_migrating() -> None:  # keys moved, SETSLOT NODE only 0.3 s into the batch
        second.begin()
        timer = threading.Timer(0.3, second.finish)
        timer.start()

    CountingStore.resent = 0
    started = time.monotonic()
    got = asyncio.run(run(redis_cluster, {4: move_now, 7: leave_migrating}))
    assert time.monotonic() - started < 60
    assert CountingStore.resent >= 2  # both addresses were skipped once, then re-sent
    assert sorted(got) == sorted(expected)
    assert len(got) == len(set(got))  # no suppression twice
    assert owner(slot_moved)[0] == first.dst and owner(slot_migrating)[0] == second.dst

    cluster_nodes = [node(port) for port, _ in primaries().values()]
    for address in (moved, migrating):
        single = state_of([redis_client], namespace, address)
        assert single
        assert state_of(cluster_nodes, namespace, address) == single


# --- sweep, report, status and history on every primary -------------------------------------

SWEEP_AT = "2026-06-01T00:00:00Z"
Run = dict[str, Any]


def event_line(i: int, address: str, tenant: str, list_id: str, day: int, **fields: Any) -> bytes:
    base = {"event_id": f"e{i}", "ts": f"2026-03-{day:02d}T09:00:00Z", "recipient": address}
    return orjson.dumps({**base, "tenant": tenant, "list_id": list_id, **fields})


def contact_lines(n: int, address: str, tenant: str) -> list[bytes]:
    """Contact n's events, one of three kinds: a hard bounce (suppressed at once, joins the
    history), two timeouts on two campaigns (listrak's cleanup sweeps a transient failure at
    any count), or one mailbox-full deferral (reported; the cleanup needs 8)."""
    list_id = ("cart", "news")[n % 2]
    if n % 3 == 0:
        hard = {"outcome": "bounced", "smtp_code": 550, "enhanced_code": "5.1.1"}
        return [event_line(n * 10, address, tenant, list_id, 2, **hard,
                           diagnostic="550 5.1.1 user unknown")]  # fmt: skip
    if n % 3 == 1:
        slow = {"outcome": "deferred", "smtp_code": 451, "enhanced_code": "4.4.1"}
        return [event_line(n * 10 + d, address, tenant, list_id, 1 + d, **slow,
                           diagnostic="connection timed out", campaign_id=f"c{d}")
                for d in range(2)]  # fmt: skip
    full = {"outcome": "deferred", "smtp_code": 452, "enhanced_code": "4.2.2"}
    return [event_line(n * 10, address, tenant, list_id, 3, **full,
                       diagnostic="mailbox full")]  # fmt: skip


def spread_tenants(per_primary: int) -> list[str]:
    """Tenant names whose keys ({tenant:<t>}: history, alerts) land `per_primary` on each
    primary: a history read of one node only would miss the others."""
    chosen: dict[int, list[str]] = {}
    for n in range(1000):
        tenant = f"t{n}"
        port = owner(slot_of(f"x:{{tenant:{tenant}}}"))[1]
        if len(chosen.setdefault(port, [])) < per_primary:
            chosen[port].append(tenant)
    assert len(chosen) == 3 and all(len(t) == per_primary for t in chosen.values())
    return sorted(t for ts in chosen.values() for t in ts)


@pytest.fixture
def contacts(tmp_path: Path) -> tuple[Path, list[tuple[str, str]], list[str]]:
    """An input file of 120 contacts over 6 tenants (two per primary); returns the file, the
    (address, tenant) of each contact and the tenants."""
    tenants = spread_tenants(2)
    who = [(f"user{n}.{uuid.uuid4().hex[:6]}@example.com", tenants[n // 3 % 6]) for n in range(120)]
    lines = [
        x for n, (address, tenant) in enumerate(who) for x in contact_lines(n, address, tenant)
    ]
    file = tmp_path / "contacts.jsonl"
    file.write_bytes(b"\n".join(lines) + b"\n")
    return file, who, tenants


def cli_out(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return [x for x in out.splitlines() if x]


def web_reads(url: str, namespace: str, who: list[tuple[str, str]], tenants: list[str]) -> Run:
    """The web API's status of every contact, and every tenant's history read page by page
    (7 a page, so the cursor is used), through the pages' own functions."""
    settings = Settings.from_env({})
    query = _Query

    async def read() -> Run:
        store = Store.from_url(url, load_preset("listrak"), namespace=namespace)
        runtime: Any = SimpleNamespace(store=store)
        try:
            views = {}
            for n, (address, tenant) in enumerate(who):
                ask = query({"tenant": tenant, "list": ("cart", "news")[n % 2]})
                views[address] = await web.status(runtime, settings, ask, address)
            pages: dict[str, list[Any]] = {}
            for tenant in tenants:
                cursor: dict[str, str] = {}
                while True:
                    ask = query({"tenant": tenant, "limit": "7", **cursor})
                    page = await web.suppression_page(runtime, settings, ask)
                    pages.setdefault(tenant, []).extend(page["items"])
                    if page["next"] is None:
                        break
                    cursor = page["next"]
            return {"status": views, "history": pages}
        finally:
            await store.close()

    return asyncio.run(read())


class _Query:
    """What the web pages read of an aiohttp request: its query and headers."""

    def __init__(self, query: dict[str, str]) -> None:
        self.query = query
        self.headers: dict[str, str] = {}


def sweep_and_mark(url: str, namespace: str) -> list[str]:
    """The sweep as the worker runs it (queries.sweep, then mark_emitted): its events as JSON."""

    async def run() -> list[str]:
        store = Store.from_url(url, load_preset("listrak"), namespace=namespace)
        try:
            found = await queries.sweep(store, parse_ts(SWEEP_AT))
            await store.mark_emitted(found)
            return [orjson.dumps(s.to_json()).decode() for s in found]
        finally:
            await store.close()

    return asyncio.run(run())


def everything(capsys: pytest.CaptureFixture[str], url: str, namespace: str, contacts: Any) -> Run:
    """Replay the contacts into `url`, then read back all that covers many addresses: the
    report of each tenant (before and after the sweep), the sweep (--print-only, then as the
    worker runs it), and the web API's status and history."""
    file, who, tenants = contacts
    engine = ["--policy", "listrak", "--redis", url, "--namespace", namespace]
    out: Run = {"replay": cli_out(capsys, "replay", *engine, str(file))}
    out["report"] = {t: cli_out(capsys, "report", *engine, "--tenant", t) for t in tenants}
    sweep = ["sweep", *engine, "--at", SWEEP_AT, "--print-only"]
    out["sweep"] = cli_out(capsys, *sweep)
    out["swept"] = sweep_and_mark(url, namespace)
    out["report_after"] = {t: cli_out(capsys, "report", *engine, "--tenant", t) for t in tenants}
    out["sweep_again"] = cli_out(capsys, *sweep)
    return {**out, **web_reads(url, namespace, who, tenants)}


def test_sweep_report_status_and_history_cover_every_primary(
    redis_cluster: str,
    redis_server: str,
    capsys: pytest.CaptureFixture[str],
    contacts: tuple[Path, list[tuple[str, str]], list[str]],
) -> None:
    _, who, tenants = contacts
    namespace = f"rd{uuid.uuid4().hex[:8]}"
    held: dict[int, int] = {}
    for address, _ in who:
        port = owner(slot_of(f"{namespace}:{{{address}}}"))[1]
        held[port] = held.get(port, 0) + 1
    assert len(held) == 3 and min(held.values()) >= 20  # every primary holds a third or so

    single = everything(capsys, redis_server, namespace, contacts)
    cluster = everything(capsys, redis_cluster, namespace, contacts)

    # the standalone run covers all: a read of one primary would miss about two thirds
    assert len(single["replay"]) == 40  # the hard bounces
    assert sum(len(r) for r in single["report"].values()) == 120
    assert len(single["sweep"]) == 40 and single["swept"] == single["sweep"]
    assert single["sweep_again"] == []  # marked emitted: the run decides nothing twice
    assert all("bounce_cleanup" in x for x in single["sweep"])
    assert sum(len(h) for h in single["history"].values()) == 80
    assert all(single["history"][t] for t in tenants)
    assert all(v["bounce_log"] for v in single["status"].values())
    # a batch's suppressions print in trip order per primary, the primaries concurrently
    assert sorted(cluster["replay"]) == sorted(single["replay"])
    for part in ("report", "sweep", "swept", "report_after", "sweep_again"):
        assert cluster[part] == single[part], part
    assert cluster["history"] == single["history"]
    assert cluster["status"] == single["status"]


def move_now(slot: int, to_port: int | None = None) -> None:
    """Move `slot` to the primary on `to_port` (default: another one) at once."""
    move = SlotMove(slot, to_port)
    move.begin()
    move.finish()


def port_of(name: str) -> int:
    return int(name.rsplit(":", 1)[1])


def test_slots_moved_during_a_report_and_a_sweep_change_nothing(
    redis_cluster: str,
    redis_server: str,
    capsys: pytest.CaptureFixture[str],
    contacts: tuple[Path, list[tuple[str, str]], list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two moves no client map knows of: (a) after the scan walked its first primary, a
    slot of a primary not walked yet moves to it (a one-walk scan misses its keys; the
    scan walks again for the moved slot); (b) just before a sweep call, a slot of one of
    its addresses moves away (the node refuses mid-call; the call is cut again and sent
    again, and what it decided before the refusal comes back as the same decision)."""
    file, who, tenants = contacts
    namespace = f"ms{uuid.uuid4().hex[:8]}"
    sweepers = [a for n, (a, _) in enumerate(who) if n % 3 == 1]  # tripped by the sweep
    tenant_of = dict(who)
    engine = ["--policy", "listrak", "--namespace", namespace]
    for url in (redis_server, redis_cluster):
        cli_out(capsys, "replay", *engine, "--redis", url, str(file))

    def slot(address: str) -> int:
        return slot_of(f"{namespace}:{{{address}}}")

    walked: list[str] = []
    split_moved: list[str] = []  # the contact (b) moved away during the sweep's first call
    # a tenant (None: any) to move a contact of, once; True: leave its slot MIGRATING (the
    # keys moved already) and end the move 0.3 s later
    pending: list[tuple[str | None, bool]] = []
    moved: list[str] = []
    timers: list[threading.Timer] = []
    real_scan = fanout._scan_node

    async def scan_node(client: Any, pattern: str, node: Any) -> Any:
        async for page in real_scan(client, pattern, node):
            yield page
        if node is None:  # the standalone run
            return
        walked.append(node.name)
        if len(walked) == 1 and pending:  # a contact of a primary not walked yet moves here
            (tenant, later), here = pending.pop(), port_of(node.name)
            taken = {slot(a) for a in split_moved}  # moved by (b) already: not that one
            address = next(
                a
                for a in sweepers
                if tenant in (None, tenant_of[a])
                and owner(slot(a))[1] != here
                and slot(a) not in taken
            )
            moved.append(address)
            if not later:
                move_now(slot(address), to_port=here)
                return
            move = SlotMove(slot(address), to_port=here)
            move.begin()
            timers.append(threading.Timer(0.3, move.finish))
            timers[-1].start()

    misroutes: list[Any] = []
    real_misrouted = fanout.misrouted
    monkeypatch.setattr(fanout, "_scan_node", scan_node)
    monkeypatch.setattr(
        fanout, "misrouted", lambda r: real_misrouted(r) and (misroutes.append(r) or True)
    )

    async def read(url: str, part: str, tenant: str) -> list[Any]:
        store = Store.from_url(url, load_preset("listrak"), namespace=namespace)
        try:
            await store.ready()
            if part == "report":
                return [r.to_json() for r in await queries.report(store, tenant)]
            return [s.to_json() for s in await queries.sweep(store, parse_ts(SWEEP_AT))]
        finally:
            await store.close()

    # (a) during a report, moved at once, then left MIGRATING for a while
    for tenant, later in ((tenants[0], False), (tenants[1], True)):
        expected = asyncio.run(read(redis_server, "report", tenant))
        walked.clear()
        moved.clear()
        pending.append((tenant, later))
        got = asyncio.run(read(redis_cluster, "report", tenant))
        for timer in timers:
            timer.join()
        [moved_a] = moved
        assert len(walked) > 6  # 3 primaries x 2 scans (list and tenant keys), then more
        assert owner(slot(moved_a))[1] == port_of(walked[0])
        assert any(r["address"] == moved_a for r in got)
        assert got == expected

    # (a) and (b) during a sweep
    real_split = fanout.run_split

    async def split_moving(store: Store, function: str, header: Any, entries: Any) -> Any:
        if not split_moved:  # a contact in the middle of the first call moves away
            tags = [tag for tag, _ in entries]
            later = tags[len(tags) // 2 :] + tags[1 : len(tags) // 2]  # never the first
            split_moved.append(next(a for a in later if a in sweepers))
            move_now(slot(split_moved[0]))
        return await real_split(store, function, header, entries)

    expected = asyncio.run(read(redis_server, "sweep", ""))
    walked.clear()
    moved.clear()
    pending.append((None, False))
    monkeypatch.setattr(fanout, "run_split", split_moving)
    misroutes.clear()
    got = asyncio.run(read(redis_cluster, "sweep", ""))
    assert moved and split_moved and misroutes and len(walked) > 6
    assert len(got) == len(expected) == 40
    assert got == expected


def test_a_slot_that_stays_migrating_makes_a_report_transient_not_a_crash(
    redis_cluster: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The paired error path: a scan that sees a slot migrating walk after walk gives up
    with Transient (`report` exits 1 and says so), and succeeds once the move ends."""
    namespace = f"mg{uuid.uuid4().hex[:8]}"
    report = ["report", "--policy", "listrak", "--redis", redis_cluster,
              "--namespace", namespace, "--tenant", "t1"]  # fmt: skip
    move = SlotMove(slot_of(f"{namespace}:{{stuck@example.com}}"))
    move.begin()
    try:
        started = time.monotonic()
        code = main(report)
        _, err = capsys.readouterr()
        assert code == 1 and "slots still moving" in err
        assert 1.0 < time.monotonic() - started < 30  # the walks waited before giving up
    finally:
        move.finish()
    assert main(report) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--tenant", "t1"],
        ["status", "a@example.com"],
        ["sweep", "--print-only"],
        ["replay", "-"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_cluster_no_seed_of_which_answers_is_unreachable_not_a_traceback(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py says "Redis Cluster cannot be connected" as a RedisClusterException (the
    connection error chained): the state layer makes it Transient, so each command exits 1
    with a line, and the worker retries instead of failing the batch."""
    line = event_line(1, "a@example.com", "t1", "cart", 2, outcome="bounced", smtp_code=550)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(line + b"\n")))
    url = f"redis+cluster://127.0.0.1:{free_port()}"
    code = main([*argv, "--policy", "listrak", "--redis", url])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.startswith(f"{argv[0]}: redis unreachable") and "Traceback" not in err
