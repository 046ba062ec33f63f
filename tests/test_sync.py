"""Incremental sync against the independent model server: new, changed, deleted, resumed."""

from __future__ import annotations

import collections
import os
import stat
from pathlib import Path

import pytest
from model_server import ModelSpace, client_for, task

import spacetasks_async as st
from spacetasks_async import Client, SyncState


def space_of(n: int, *, pending_every: int = 0) -> ModelSpace:
    tasks = [task(i, f"2026-03-01T00:{i % 60:02d}:00") for i in range(n, 0, -1)]
    if pending_every:
        for t in tasks[::pending_every]:
            t["status"] = "pending"
    return ModelSpace(tasks)


async def run(client: Client, state: SyncState | None) -> tuple[list[st.SyncedTask], st.Sync]:
    sync = client.sync(["S"], state, page_size=100)
    async with sync:
        items = [item async for item in sync]
    return items, sync


async def test_first_run_hands_out_everything_and_an_unchanged_space_costs_one_request() -> None:
    space = space_of(5000)
    async with client_for(space) as client:
        first, sync = await run(client, None)
        assert [i.task.task_id for i in first] == space.ids()
        assert {i.change for i in first} == {"new"}
        assert sync.summary["S"].full
        state = sync.state
        space.requests.clear()
        again, sync2 = await run(client, state)
    assert again == []
    assert space.requests == [(1, 100)]  # the first page holds the last run's newest tasks
    assert sync2.summary["S"].requests == 1 and not sync2.summary["S"].full


async def test_new_tasks_are_handed_out_once_and_deletions_are_counted() -> None:
    space = space_of(5000)
    async with client_for(space) as client:
        _, sync = await run(client, None)
        space.create(50)  # 1% new
        for position in (4000, 2000, 100):
            space.delete(position)
        space.requests.clear()
        items, sync2 = await run(client, sync.state)
    assert [i.task.task_id for i in items] == space.ids()[:50]
    assert sync2.summary["S"].new == 50
    assert sync2.summary["S"].deleted == 3
    assert len(space.requests) == 1


async def test_tasks_that_were_not_final_are_refreshed_and_changes_handed_out() -> None:
    space = space_of(3000, pending_every=97)
    async with client_for(space) as client:
        _, sync = await run(client, None)
        pending = [t for t in space.tasks if t["status"] == "pending"]
        pending[0]["status"] = "completed"
        pending[5]["output"] = {"call_id": "C1", "duration": 12}
        space.create(3)
        items, sync2 = await run(client, sync.state)
    changed = {i.task.task_id for i in items if i.change == "changed"}
    assert changed == {pending[0]["task_id"], pending[5]["task_id"]}
    assert [i.task.task_id for i in items if i.change == "new"] == space.ids()[:3]
    summary = sync2.summary["S"]
    assert summary.changed == 2 and summary.unresolved == 0
    # the completed one is not pending any more; the others are, with their new ranks
    pending_ids = {p[0] for p in sync2.state.spaces["S"].pending}
    assert pending[0]["task_id"] not in pending_ids and pending[5]["task_id"] in pending_ids


async def test_creations_during_the_run_lose_nothing_created_before_it() -> None:
    space = space_of(3000)

    def create(space: ModelSpace) -> None:
        space.create(2)

    async with client_for(space) as client:
        _, sync = await run(client, None)
        space.create(250)
        before_run = set(space.ids()[:250])
        space.on_request = create
        items, _ = await run(client, sync.state)
    got = [i.task.task_id for i in items]
    assert len(got) == len(set(got))
    assert before_run <= set(got)


async def test_a_run_stopped_halfway_resumes_from_its_state(tmp_path: Path) -> None:
    space = space_of(2000)
    path = tmp_path / "sync.json"
    async with client_for(space) as client:
        _, sync = await run(client, None)
        sync.state.save(path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        space.create(640)
        first: list[str] = []
        partial = client.sync(["S"], SyncState.load(path), page_size=100)
        async with partial:
            async for item in partial:
                first.append(item.task.task_id)
                if len(first) == 333:
                    break
            partial.state.save(path)  # carries the walk's checkpoint
        rest, sync3 = await run(client, SyncState.load(path))
        # the next run starts from the newest tasks of the interrupted one
        space.requests.clear()
        after, _ = await run(client, sync3.state)
    got = first + [i.task.task_id for i in rest]
    assert collections.Counter(got) == collections.Counter(space.ids()[:640])
    assert after == [] and space.requests == [(1, 100)]


async def test_when_the_last_runs_newest_tasks_were_deleted_the_run_reads_everything() -> None:
    space = space_of(500)
    async with client_for(space) as client:
        _, sync = await run(client, None)
        for _ in range(8):
            space.delete(0)  # the front the state remembers
        items, sync2 = await run(client, sync.state)
    assert sync2.summary["S"].full
    assert [i.task.task_id for i in items] == space.ids()


def test_a_bad_state_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sync.json"
    path.write_text('{"version": 9}')
    with pytest.raises(st.InvalidArgumentError, match="version 1"):
        SyncState.load(path)
    assert SyncState.load(tmp_path / "missing.json") == SyncState()
