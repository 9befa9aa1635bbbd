"""Reads and writes that span many slots, alike on a standalone Redis and on a Cluster: SCAN
over every primary (`scan`), GET of keys of many slots (`read_many`), and one function call
over many addresses cut per primary (`run_split`). The sweep and the report
(pipeline.state.queries) are built on them.

On a standalone Redis each is the one command it always was: one SCAN loop, one MGET, one
FCALL. On a Cluster:
- `scan` walks every primary in turn (a node only ever answers SCAN with its own keys), and
  when the slot map changed while it ran, or a slot is still migrating, walks again for the
  keys of those slots only (see `scan` for what it promises);
- `read_many` is redis-py's `mget_nonatomic`: one MGET per slot, pipelined per node, MOVED,
  ASK and TRYAGAIN followed by redis-py;
- `run_split` sends one call per primary, concurrently, each pinned to its node, and cuts the
  calls a node refused on a moved slot again after a slot-map refresh (the apply path's
  `Store.run` does the same for its one-address calls).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from itertools import chain
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster

from pipeline.core.errors import Transient
from pipeline.core.plan import Arg, Call
from pipeline.state.cluster import RESEND_ROUNDS, misrouted
from pipeline.state.errors import redis_errors
from pipeline.state.store import Store, raise_error

SCAN_PAGE = 500
"""Keys asked for per SCAN call."""
SCAN_ROUNDS = 6
"""Walks of the Cluster before a scan gives up on slots that keep moving (Transient; with
the backoff, ~1.5 s of waiting in all, as `Store.resend`). Each walk after the first
covers only the slots that moved during the one before, so a resharding of a few slots
costs a few small walks."""
Entry = tuple[str, Sequence[Arg]]
"""One entry of a split call: the hash tag of its keys (an address), and its arguments."""


def _backoff(attempt: int) -> float:
    """Seconds to wait before round `attempt` (0: none; then 0.05 s doubling, as `resend`)."""
    return 0.0 if attempt == 0 else 0.05 * 2 ** (attempt - 1)


async def scan(store: Store, pattern: str) -> AsyncIterator[list[str]]:
    """Pages of the names of the keys that match `pattern`, on every primary.

    Promise (SCAN's own, made true across a Cluster): every key that matches for the whole
    scan is yielded at least once. A key may be yielded twice (its slot moved while the scan
    ran and it was seen on both sides), so callers dedupe; a key created or deleted during
    the scan may or may not be yielded. The caller may do work between pages (SCAN keeps
    no server-side state). Raises Transient when a node is unreachable, or when slots were
    still moving after SCAN_ROUNDS walks (calling again later is safe)."""
    if store.cluster is None:
        async for page in _scan_node(store.client, pattern, None):
            yield page
        return
    rc = store.cluster
    wanted: frozenset[int] | None = None  # None: every slot
    for attempt in range(SCAN_ROUNDS):
        await asyncio.sleep(_backoff(attempt))
        await store.refresh()  # a primary added since the map was read must be walked too
        before = _owners(rc)
        for node in rc.get_primaries():
            async for page in _scan_node(rc, pattern, node):
                kept = page if wanted is None else [k for k in page if rc.keyslot(k) in wanted]
                if kept:
                    yield kept
        await store.refresh()
        # A slot whose owner changed during the walk may have had keys on a node walked
        # before they arrived; one still migrating may have keys on either side. Walk again
        # for those slots only: every other slot stayed on one node the whole walk.
        moved = _changed(before, _owners(rc)) | await _migrating(rc)
        if not moved:
            return
        wanted = frozenset(moved)
    raise Transient(f"redis cluster: {len(wanted or ())} slots still moving after a scan")


async def _scan_node(
    client: Any, pattern: str, node: ClusterNode | None
) -> AsyncIterator[list[str]]:
    """SCAN one node (`node` None: the standalone client) to its end, page by page."""
    cursor = 0
    target = {} if node is None else {"target_nodes": node}
    while True:
        with redis_errors():
            reply, found = await client.scan(cursor, match=pattern, count=SCAN_PAGE, **target)
        # pinned to a node, redis-py's cluster client answers {node name: cursor}
        cursor = int(next(iter(reply.values()))) if isinstance(reply, dict) else int(reply)
        names = [k.decode() if isinstance(k, bytes) else str(k) for k in found]
        if names:
            yield names
        if cursor == 0:
            return


def _owners(rc: RedisCluster) -> dict[int, str]:
    """Slot -> name of its primary, as the client's slot map has it now."""
    return {slot: str(nodes[0].name) for slot, nodes in rc.nodes_manager.slots_cache.items()}


def _changed(before: dict[int, str], after: dict[int, str]) -> set[int]:
    return {slot for slot in before.keys() | after.keys() if before.get(slot) != after.get(slot)}


async def _migrating(rc: RedisCluster) -> set[int]:
    """Slots some primary reports MIGRATING or IMPORTING now (each node shows only its own
    migrations, on its `myself` line of CLUSTER NODES)."""
    primaries = rc.get_primaries()
    with redis_errors():
        views = await asyncio.gather(
            *(rc.execute_command("CLUSTER NODES", target_nodes=n) for n in primaries)
        )
    slots: set[int] = set()
    for view in views:
        for info in view.values():
            if "myself" in info["flags"]:
                slots.update(int(m["slot"]) for m in info["migrations"])
    return slots


async def read_many(store: Store, names: Sequence[str]) -> list[Any]:
    """The values of the string keys `names`, in order (None for an absent key): one MGET on
    a standalone Redis; on a Cluster one MGET per slot, pipelined per node, redirects
    followed by redis-py. Not atomic across slots. Raises Transient when Redis is
    unreachable or a slot stays unservable."""
    with redis_errors():
        if store.cluster is None:
            return list(await store.client.mget(names))
        return list(await store.cluster.mget_nonatomic(names))


async def run_split(
    store: Store, function: str, header: Sequence[Arg], entries: Sequence[Entry]
) -> list[tuple[list[int], Any]]:
    """Call `function` over `entries` as `FCALL function 0 *header n *args_1 .. *args_n`:
    one call on a standalone Redis; on a Cluster one per primary, concurrently, each with
    the entries whose hash tag it serves. Returns, per call, the indexes (into `entries`)
    of the entries it held, and its reply (whose own entry numbers, 1-based, index that
    list); the order of the calls is not specified.

    A call a node refused as misrouted (a slot moved under the map: "non local key") may
    have run some of its entries: they are cut again after a slot-map refresh and sent
    again, up to RESEND_ROUNDS rounds with backoff, then Transient. `function` must
    therefore answer the same when re-run on entries it ran already (the sweep does: a
    pending decision is returned again). Raises Transient when Redis is unreachable."""
    await store.ready()
    todo = list(range(len(entries)))
    done: list[tuple[list[int], Any]] = []
    for attempt in range(RESEND_ROUNDS):
        if attempt:
            await asyncio.sleep(_backoff(attempt))
            await store.refresh()
        groups = _cut(store, entries, todo)
        calls = [
            Call(
                function,
                [*header, len(idx), *chain.from_iterable(entries[i][1] for i in idx)],
                node,
            )
            for node, idx in groups
        ]
        todo = []
        for (_, idx), reply in zip(groups, await store.send(calls), strict=True):
            if store.cluster is not None and misrouted(reply):
                todo += idx
                continue
            raise_error(reply)
            done.append((idx, reply))
        if not todo:
            return done
        todo.sort()
    raise Transient(f"redis cluster: {len(todo)} entries of {function} still misrouted")


def _cut(
    store: Store, entries: Sequence[Entry], todo: list[int]
) -> list[tuple[str | None, list[int]]]:
    """`todo` grouped by the primary that serves each entry's hash tag now (in order within
    a group); standalone: one group."""
    if store.cluster is None:
        return [(None, todo)]
    groups: dict[str | None, list[int]] = {}
    for i in todo:
        groups.setdefault(store.route(entries[i][0]), []).append(i)
    return list(groups.items())
