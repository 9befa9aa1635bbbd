"""The Redis connection class every client of the state layer uses (standalone and Cluster)."""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio.connection import Connection


class HiredisPackConnection(Connection):
    """redis-py's asyncio connection, packing commands with hiredis (C) instead of Python.

    redis-py 8.1's asyncio client always packs in pure Python (redis-py #4176; the sync
    client uses hiredis): for a batch of a few thousand arguments that was the largest single
    cost of the hot path. hiredis takes str, bytes, int and float, the only types we send.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        """Pack one command; multi-word names ("SCRIPT LOAD") are split as redis-py does."""
        if isinstance(args[0], str) and " " in args[0]:
            args = (*args[0].split(), *args[1:])
        return [hiredis.pack_command(args)]

    def pack_commands(self, commands: Any) -> list[bytes]:
        """Pack a pipeline's commands into one buffer."""
        return [b"".join(self.pack_command(*c)[0] for c in commands)]
