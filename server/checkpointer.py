"""The checkpointer: LangGraph's Postgres saver, taking a connection from its pool per operation.

`AsyncPostgresSaver` holds one `asyncio.Lock` per saver around every operation, even when it is given a
pool, so a process's turns checkpoint one at a time however many connections are idle (langgraph
issue #7259; the fix proposed upstream, PR #7269, is not released as of langgraph-checkpoint-postgres
3.2). A pooled connection is used by one operation at a time anyway, so the lock is only needed for a
single shared connection, where this saver keeps it.
"""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

__all__ = ["PooledPostgresSaver"]


class PooledPostgresSaver(AsyncPostgresSaver):
    """`AsyncPostgresSaver` whose operations on a pool run side by side, each on its own connection."""

    @contextlib.asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        if not isinstance(self.conn, AsyncConnectionPool) or self.pipe is not None:
            async with super()._cursor(pipeline=pipeline) as cur:
                yield cur
            return
        async with self.conn.connection() as conn:
            if not pipeline:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            elif self.supports_pipeline:
                async with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            else:
                async with conn.transaction(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
