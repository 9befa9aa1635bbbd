"""The one mapping of Redis transport errors to `Transient` (retry, never dead-letter)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import (
    AskError,
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pipeline.core.errors import Transient

# Unreachable, or refusing writes for now (maxmemory reached, a replica after a failover):
# either way the batch must be retried, never dead-lettered as an internal error.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError, OutOfMemoryError, ReadOnlyError)

# Redis Cluster only: a key's slot moving or unserved (MOVED and ASK, as AskError; TRYAGAIN
# mid-migration; CLUSTERDOWN during a failover) still after redis-py's own redirects and
# retries. Retrying later, on a fresh slot map, is the cure; a standalone Redis never says it.
CLUSTER_MOVING = (AskError, TryAgainError, ClusterDownError, SlotNotCoveredError)


@contextmanager
def redis_errors() -> Iterator[None]:
    """Raise Transient (with the cause chained) for any REDIS_DOWN or CLUSTER_MOVING error
    inside the block, and for a Cluster none of whose seed nodes answers."""
    try:
        yield
    except REDIS_DOWN as exc:
        raise Transient(f"redis unreachable: {type(exc).__name__}: {exc}") from exc
    except CLUSTER_MOVING as exc:
        raise Transient(f"redis cluster: slots moving: {type(exc).__name__}: {exc}") from exc
    except RedisClusterException as exc:
        # redis-py's cluster client says "no seed node answers" (reading the slot map) as
        # this, the connection error chained; its other uses are programming errors
        if isinstance(exc.__cause__, REDIS_DOWN):
            raise Transient(f"redis unreachable: {exc}") from exc
        raise
