"""Redis Cluster transport: the client over seed nodes, a batch's calls sent to their
primaries, and how a node's refusal of a moved slot is told apart (docs/scaling.md).

`Store` (pipeline.state.store) decides what to send and what a refusal means for a batch
(route again, resend skipped groups); this module only moves calls to nodes and back.
Each call is pinned to its primary (`target_nodes`: no COMMAND GETKEYS, no retry by
redis-py); the calls of different primaries run concurrently, one connection each, and a
primary's calls are followed by `WAIT 1 REPLICA_WAIT_MS` so that an acked unit survives a
failover.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.exceptions import ResponseError

from pipeline.core.errors import Transient
from pipeline.core.plan import Call
from pipeline.state import functions
from pipeline.state.connection import HiredisPackConnection
from pipeline.state.errors import REDIS_DOWN, redis_errors

log = logging.getLogger(__name__)
CLUSTER_SCHEME = "redis+cluster://"
RESEND_ROUNDS = 6
"""Slot-map refreshes (with backoff, 0.05 s doubling: ~3 s in all) before Transient."""
REPLICA_WAIT_MS = 1000
"""Most a Cluster batch waits for one replica to acknowledge its writes (WAIT)."""
UNREPLICATED_WAIT_MS = 10
"""The WAIT of a primary whose last WAIT no replica answered (promoted in a failover, its
replica not back yet): long enough to see a replica that is back, short enough that the
batches do not stall a second each until then."""
ROUTING_ERRORS = ("non local key", "moved", "ask ", "tryagain", "clusterdown")
"""A call refused (or cut short) because its node does not serve its keys now."""


def misrouted(reply: Any) -> bool:
    """True when `reply` is a Cluster node's refusal (or a cut-short call) because it does
    not serve a key's slot now: sending it again after a slot-map refresh is the cure."""
    if not isinstance(reply, ResponseError):
        return False
    text = str(reply).lower()
    return any(marker in text for marker in ROUTING_ERRORS)


def cluster_client(url: str) -> RedisCluster:
    """A RedisCluster over the seed nodes of `redis+cluster://host:port[,host:port...]`
    (no I/O yet), packing commands with hiredis like the standalone client."""
    rest = url[len(CLUSTER_SCHEME) :].split("/", 1)[0]
    nodes = []
    for seed in rest.split(","):
        part = urlsplit(f"//{seed}")
        nodes.append(ClusterNode(part.hostname or "127.0.0.1", part.port or 6379))
    client = RedisCluster(startup_nodes=nodes)
    # redis-py's asyncio RedisCluster hard-codes Connection (research §6): swap the class in
    # the kwargs every later ClusterNode is built with, and in the seed nodes.
    client.nodes_manager.connection_kwargs["connection_class"] = HiredisPackConnection
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = HiredisPackConnection
    return client


async def refresh(rc: RedisCluster) -> None:
    """Read the slot map again (after a skip or a refusal). Raises Transient."""
    with redis_errors():
        await rc.nodes_manager.initialize()


async def send(
    rc: RedisCluster,
    calls: Sequence[Call],
    route: Callable[[str], str | None],
    unreplicated: set[str],
) -> list[Any]:
    """Send each call to its node (`call.node`, else the primary `route` names for its
    `route` tag, else the default primary: the apply function's probe skips what is not
    local there); return the replies in call order, an error as a value (a node's whole
    round trip failing is that error for each of its calls). `unreplicated` holds the names
    of the primaries whose last WAIT no replica answered (`_on_node` keeps it). Raises
    Transient when no node can be reached at all."""
    try:
        with redis_errors():  # no seed node answers: redis-py's RedisClusterException
            # Initialize the client unless it is (a no-op after the first time): the calls
            # go to the nodes directly, so the client's own first command, which would
            # initialize it, may never come, and redis-py 8.1 then fails a later keyed
            # command on its empty command table.
            await rc.initialize()
        by_node: dict[str, tuple[ClusterNode, list[int]]] = {}
        for i, call in enumerate(calls):
            name = call.node or (route(call.route) if call.route else None)
            node = (rc.get_node(node_name=name) if name else None) or rc.get_default_node()
            by_node.setdefault(node.name, (node, []))[1].append(i)
        replies: list[Any] = [None] * len(calls)
        sent = [_on_node(node, calls, picked, unreplicated) for node, picked in by_node.values()]
        for (_node, picked), got in zip(
            by_node.values(), await asyncio.gather(*sent, return_exceptions=True), strict=True
        ):
            for i, reply in zip(picked, _spread(got, len(picked)), strict=True):
                replies[i] = reply
    except REDIS_DOWN as exc:
        await _refresh_quietly(rc)
        raise Transient(f"redis unreachable: {type(exc).__name__}: {exc}") from exc
    if any(isinstance(r, REDIS_DOWN) for r in replies):
        await _refresh_quietly(rc)  # a node down or failed over: the map changes
    return replies


async def _on_node(
    node: ClusterNode, calls: Sequence[Call], picked: Sequence[int], unreplicated: set[str]
) -> list[Any]:
    """Send the `picked` calls to `node` on one connection, then WAIT until a replica has
    their writes (or REPLICA_WAIT_MS passed): the unit is acked in Kafka after this, and a
    primary that died before its replica had them would lose them in a failover.

    A node without a replica in sync (just promoted, say) answers 0 and the batch goes on:
    there is no replica to wait for. Until one answers again, the node's WAITs are
    UNREPLICATED_WAIT_MS only, so its batches do not stall a second each meanwhile; the
    first WAIT a replica answers puts it back to REPLICA_WAIT_MS."""
    commands = [
        PipelineCommand(i, "FCALL", functions.name(calls[i].function), 0, *calls[i].args)
        for i in picked
    ]
    known_alone = node.name in unreplicated
    timeout = UNREPLICATED_WAIT_MS if known_alone else REPLICA_WAIT_MS
    wait = PipelineCommand(-1, "WAIT", 1, timeout)
    await node.execute_pipeline([*commands, wait])
    if wait.result == 0 and not known_alone:
        unreplicated.add(node.name)
        log.warning("redis cluster: no replica acknowledged a batch on %s", node.name)
    elif wait.result != 0 and known_alone:
        unreplicated.discard(node.name)
        log.info("redis cluster: a replica of %s acknowledges batches again", node.name)
    return [c.result for c in commands]


def _spread(got: list[Any] | BaseException, n: int) -> list[Any]:
    """One node's replies, or its whole round trip's error for each of its `n` calls."""
    return [got] * n if isinstance(got, BaseException) else got


async def _refresh_quietly(rc: RedisCluster) -> None:
    try:
        await refresh(rc)
    except Exception:
        return
