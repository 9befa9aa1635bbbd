"""The WAIT after a primary's calls (pipeline.state.cluster._on_node), with the node faked:
a primary found without a replica gets short WAITs until a replica answers again, so a
failover's promoted primary does not stall every batch for REPLICA_WAIT_MS. Against a real
Cluster: tests/integration/test_cluster_faults.py (the failover case)."""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.core.plan import Call
from pipeline.state import cluster


class Node:
    """A ClusterNode that answers each FCALL "ok" and each WAIT with the next of `replicas`."""

    def __init__(self, replicas: list[int]) -> None:
        self.name = "127.0.0.1:7001"
        self.replicas = replicas
        self.timeouts: list[int] = []

    async def execute_pipeline(self, commands: list[Any]) -> bool:
        for command in commands:
            if command.args[0] == "WAIT":
                self.timeouts.append(command.args[2])
                command.result = self.replicas.pop(0)
            else:
                command.result = "ok"
        return True


def run(node: Node, unreplicated: set[str]) -> list[Any]:
    calls = [Call("apply", ["x"], None), Call("apply", ["y"], None)]
    return asyncio.run(cluster._on_node(node, calls, [0, 1], unreplicated))  # type: ignore[arg-type]


def test_a_primary_without_a_replica_gets_short_waits_until_one_answers() -> None:
    node, unreplicated = Node([1, 0, 0, 0, 1, 1]), set[str]()
    for _ in range(6):
        assert run(node, unreplicated) == ["ok", "ok"]
    long, short = cluster.REPLICA_WAIT_MS, cluster.UNREPLICATED_WAIT_MS
    # replicated; none answers (still a full wait); known alone: short; short; one is back
    # (seen by a short wait); replicated again: a full wait.
    assert node.timeouts == [long, long, short, short, short, long]
    assert unreplicated == set()


def test_the_hint_is_per_primary() -> None:
    alone, other = Node([0]), Node([1])
    other.name = "127.0.0.1:7002"
    unreplicated: set[str] = set()
    run(alone, unreplicated)
    run(other, unreplicated)
    assert unreplicated == {"127.0.0.1:7001"}
