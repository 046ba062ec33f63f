"""The exact walk end to end, against an independent model server (``model_server.py``).

The cases measured on the walk before it was rebuilt on count-from-the-end coordinates:
heavy drift lost tasks, ``created`` that disagrees with the order dropped thousands of
tasks as "duplicates", one deletion started a re-read cascade, a page holding an id twice
handed it out twice. Each is exact and cheap here, with the request counts asserted.
"""

from __future__ import annotations

import collections
import random

import pytest
from model_server import ModelSpace, client_for, task

import spacetasks_async as st


def space_of(n: int, *, jitter: float = 0.0, seed: int = 0) -> ModelSpace:
    stamps = [f"2026-03-{1 + i % 28:02d}T{i % 24:02d}:00:00" for i in range(n)]
    return ModelSpace([task(i, stamps[i - 1]) for i in range(n, 0, -1)], jitter=jitter, seed=seed)


async def test_created_that_disagrees_with_the_order_drops_nothing() -> None:
    # The 100 newest tasks by insertion carry the oldest 'created' of all (an import, a
    # backfill): the walk must neither drop nor reorder anything by time.
    space = space_of(5000, jitter=0.002, seed=3)
    for i in range(100):
        space.tasks[i]["created"] = space.tasks[i]["modified"] = "2019-01-01T00:00:00"
    async with client_for(space) as client:
        walk = client.iter_tasks("S", page_size=100, window=8)
        ids = [t.task_id async for t in walk]
    assert ids == space.ids()
    assert walk.stats.requests == 50 + 1  # every page, and one small read of the front
    assert walk.stats.duplicates_dropped == 0


@pytest.mark.parametrize("seed", range(6))
async def test_heavy_drift_loses_nothing_and_repeats_nothing(seed: int) -> None:
    # On a third of the requests 1-3 tasks are created and 1-3 deleted anywhere, with
    # jitter so that pages in flight together are answered in any order.
    rng = random.Random(seed)
    page_size, window = rng.choice([10, 25, 50, 100]), rng.choice([1, 2, 4, 8, 16])
    space = space_of(1500, jitter=0.004, seed=seed)
    before = set(space.ids())

    def drift(space: ModelSpace) -> None:
        if rng.random() < 1 / 3:
            space.create(rng.randint(1, 3))
            for _ in range(rng.randint(1, 3)):
                space.delete(rng.randrange(len(space.tasks)))

    space.on_request = drift
    async with client_for(space) as client:
        ids = [t.task_id async for t in client.iter_tasks("S", page_size=page_size, window=window)]
    assert len(ids) == len(set(ids)), "a task was handed out twice"
    lost = (before & set(space.ids())) - set(ids)
    assert not lost, f"lost {len(lost)} (page size {page_size}, window {window})"


async def test_one_deletion_behind_the_walk_costs_a_few_requests_not_a_cascade() -> None:
    space = space_of(5000, jitter=0.002, seed=5)
    requests = {"n": 0}

    def delete_behind(space: ModelSpace) -> None:
        requests["n"] += 1
        if requests["n"] == 20:  # page ~20 is being read: delete on page 4
            space.delete(300)
            space.delete(300)

    space.on_request = delete_behind
    before = set(space.ids())
    async with client_for(space) as client:
        walk = client.iter_tasks("S", page_size=100, window=8)
        ids = [t.task_id async for t in walk]
    assert len(ids) == len(set(ids))
    assert (before & set(space.ids())) <= set(ids)
    # 50 pages, the read of the front, and a few verifications: not 182 requests
    assert walk.stats.requests <= 50 + 6, walk.stats


async def test_creations_alone_read_nothing_again_when_pages_come_in_order() -> None:
    space = space_of(3000)

    def create(space: ModelSpace) -> None:
        space.create(3)

    space.on_request = create
    before = set(space.ids())
    async with client_for(space) as client:
        walk = client.iter_tasks("S", page_size=100, window=1)
        ids = [t.task_id async for t in walk]
    assert len(ids) == len(set(ids))
    assert before <= set(ids)
    assert walk.stats.rereads == walk.stats.verifications == 0
    assert walk.stats.requests == len(space.requests)
    assert walk.stats.duplicates_dropped == 3 * (len(space.requests) - 1)


async def test_a_page_holding_one_id_twice_hands_it_out_once() -> None:
    space = space_of(250)
    space.duplicate_in_page = 2
    async with client_for(space) as client:
        ids = [t.task_id async for t in client.iter_tasks("S", page_size=100, window=1)]
    assert len(ids) == len(set(ids)) == 249  # page 2 held its first task twice


async def test_resume_after_creations_and_deletions_between_runs_is_exact() -> None:
    space = space_of(1000, jitter=0.002, seed=9)
    async with client_for(space) as client:
        first: list[str] = []
        async with client.iter_tasks("S", page_size=100, window=4) as walk:
            async for t in walk:
                first.append(t.task_id)
                if len(first) == 437:
                    break
            point = st.Checkpoint.from_json(walk.checkpoint.to_json())
        space.create(300)
        anchors = set(point.anchors)
        for position in (50, 500, 900):
            if space.tasks[position]["task_id"] not in anchors:
                space.delete(position)
        alive_before = set(space.ids())
        rest = [t.task_id async for t in client.iter_tasks("S", page_size=100, checkpoint=point)]
    counts = collections.Counter(first + rest)
    assert max(counts.values()) == 1, "a task was handed out twice"
    created = {f"T{n:08d}" for n in range(1001, 1301)}
    assert alive_before - created <= set(first) | set(rest)


async def test_a_server_that_ignores_page_stops_with_a_typed_error() -> None:
    space = space_of(10_000)
    space.ignore_page = True
    async with client_for(space) as client:
        with pytest.raises(st.WalkIncompleteError):
            async for _ in client.iter_tasks("S", page_size=100, window=4):
                pass
    assert len(space.requests) <= 40  # however large the count it claims


async def test_a_huge_count_over_empty_pages_is_a_protocol_error_not_a_long_walk() -> None:
    space = space_of(0)
    space.claimed_count = 10**12
    async with client_for(space) as client:
        with pytest.raises(st.ProtocolError, match="fewer than its count"):
            async for _ in client.iter_tasks("S", page_size=100, window=16):
                pass
    assert space.requests == [(1, 100), (1, 100)]  # read once more, then refused


async def test_more_tasks_than_asked_for_are_refused_not_handed_out() -> None:
    space = space_of(300)
    space.extra_items = 20
    async with client_for(space) as client:
        with pytest.raises(st.ProtocolError, match="120 tasks although 100"):
            async for _ in client.iter_tasks("S", page_size=100):
                pytest.fail("nothing may be handed out")
