"""The checkpointer on real Postgres: turns on different threads checkpoint side by side, not one at a
time behind a single lock, and nothing written concurrently is lost."""

from __future__ import annotations

import asyncio

import psycopg
from langgraph.checkpoint.base import empty_checkpoint

from booktutor.server.db import checkpointer, run_migrations


def _config(thread_id: str, checkpoint_id: str = "") -> dict:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}}


async def _save(saver, thread_id: str, checkpoint: dict | None = None, step: int = -1) -> dict:
    return await saver.aput(_config(thread_id), checkpoint or empty_checkpoint(), {"source": "input", "step": step}, {})


async def test_one_thread_blocked_in_postgres_does_not_hold_up_another(database_url):
    run_migrations(database_url)
    async with checkpointer(database_url) as saver:
        checkpoint = empty_checkpoint()
        blocked = await _save(saver, "blocked-thread", checkpoint)
        free = await _save(saver, "free-thread")
        # Another session holds a lock on the row a rewrite of that checkpoint needs, so it waits in Postgres.
        with psycopg.connect(database_url) as other:
            other.execute("SELECT * FROM checkpoints WHERE thread_id = 'blocked-thread' FOR UPDATE").fetchall()
            waiting = asyncio.create_task(_save(saver, "blocked-thread", checkpoint, step=0))
            await asyncio.sleep(0.3)

            # A write for another thread goes through meanwhile (behind one lock it would wait too).
            await asyncio.wait_for(saver.aput_writes(free, [("messages", "free")], task_id="t2"), timeout=5)

            assert not waiting.done()
            other.rollback()
        await asyncio.wait_for(waiting, timeout=10)
        assert (await saver.aget_tuple(blocked)).metadata["step"] == 0
        assert (await saver.aget_tuple(free)).pending_writes[0][1:] == ("messages", "free")


async def test_concurrent_checkpoints_are_all_kept(database_url):
    run_migrations(database_url)
    async with checkpointer(database_url) as saver:
        configs = await asyncio.gather(*(_save(saver, f"many-{i}") for i in range(60)))
        await asyncio.gather(
            *(saver.aput_writes(c, [("messages", f"w{i}")], task_id="t") for i, c in enumerate(configs))
        )

        found = await asyncio.gather(*(saver.aget_tuple(c) for c in configs))

    assert [t.config["configurable"]["thread_id"] for t in found] == [f"many-{i}" for i in range(60)]
    assert [t.pending_writes[0][2] for t in found] == [f"w{i}" for i in range(60)]


async def test_processes_setting_up_one_fresh_database_together_both_start(database_url):
    # Two servers starting at once on a new database: the checkpoint tables' set-up builds an index
    # CONCURRENTLY, which waits for every statement in flight, including one parked waiting for the
    # schema lock, so a waiter blocked inside Postgres deadlocked with the holder.
    import uuid

    admin, name = database_url.rsplit("/", 1)[0], f"booktutor_fresh_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{admin}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    fresh = f"{admin}/{name}"

    async def start() -> None:
        async with checkpointer(fresh) as saver:
            await _save(saver, f"thread-{uuid.uuid4().hex}")

    try:
        await asyncio.wait_for(asyncio.gather(*(start() for _ in range(3))), timeout=60)
    finally:
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
