"""Many spaces under one limit: completeness, isolation of failures, fairness, spaces list."""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any

import pytest

import spacetasks_async as st
from spacetasks_async import Client
from spacetasks_async.testing import TaskRequest

if TYPE_CHECKING:
    from conftest import Serve  # tests/ is on sys.path


async def test_harvest_of_100_spaces_with_invalid_tokens_completes_the_rest(serve: Serve) -> None:
    sizes = [(i * 37) % 260 for i in range(100)]
    async with serve(seed=21, spaces=sizes) as (server, client):
        bad = ["BADTOKEN0000000000000001", "BADTOKEN0000000000000002"]
        denied = sorted(server.no_access_tokens)[:1]
        tokens = server.space_tokens[:50] + bad + denied + server.space_tokens[50:]
        got: dict[str, list[str]] = collections.defaultdict(list)
        events: list[st.SpaceEvent] = []
        async with client.harvest(
            tokens, page_size=50, concurrency=16, collect_failures=True, on_event=events.append
        ) as harvest:
            async for item in harvest:
                got[item.space_token].append(item.task.task_id)
        assert {f.space_token for f in harvest.failures} == set(bad) | set(denied)
        kinds = collections.Counter(e.kind for e in events)
        assert kinds == {"started": 103, "finished": 100, "failed": 3}
        errors = {f.space_token: type(f.error) for f in harvest.failures}
        assert errors[bad[0]] is st.InvalidSpaceTokenError
        assert errors[denied[0]] is st.SpaceAccessError
        for token in server.space_tokens:
            assert got.get(token, []) == server.expected_task_ids(token), token
        assert sorted(harvest.completed) == sorted(server.space_tokens)
        assert server.stats.max_in_flight <= 16


async def test_failed_spaces_are_raised_together_at_the_end_unless_collected(serve: Serve) -> None:
    async with serve(seed=22, spaces=[50, 50]) as (server, client):
        bad = ["BADTOKEN0000000000000001", "BADTOKEN0000000000000002"]
        got = 0
        with pytest.raises(st.HarvestError) as info:
            async with client.harvest([bad[0], *server.space_tokens, bad[1]]) as harvest:
                async for _ in harvest:
                    got += 1
    assert got == 100  # every good space was harvested first
    assert sorted(e.space_token for e in info.value.exceptions) == bad
    assert all(isinstance(e, st.InvalidSpaceTokenError) for e in info.value.exceptions)
    assert isinstance(info.value, st.SpaceTasksError)
    assert "BADTOKEN0000000000000001" in str(info.value)


async def test_fail_fast_raises_the_first_failure(serve: Serve) -> None:
    async with serve(seed=22, spaces=[50, 50]) as (server, client):
        tokens = ["BADTOKEN0000000000000001", *server.space_tokens]
        with pytest.raises(st.InvalidSpaceTokenError) as info:
            async with client.harvest(tokens, fail_fast=True) as harvest:
                async for _ in harvest:
                    pass
        assert info.value.space_token == "BADTOKEN0000000000000001"


async def test_one_limit_is_shared_by_all_spaces(serve: Serve) -> None:
    sizes = [1000] * 6
    async with serve(seed=23, spaces=sizes, latency=0.002) as (server, client):
        harvest = client.harvest(server.space_tokens, page_size=50, concurrency=5, window=8)
        n = sum([1 async for _ in harvest])
    assert n == 6000
    assert server.stats.max_in_flight == 5


async def test_a_huge_space_does_not_starve_small_ones(serve: Serve) -> None:
    # One slot, served round-robin: the small spaces get turns between the huge space's
    # pages, so all of them finish while the huge one is still early on.
    async with serve(seed=24, spaces=[20000, 100, 100, 100]) as (server, client):
        huge, *small = server.space_tokens
        harvest = client.harvest(server.space_tokens, page_size=50, concurrency=1, window=8)
        async for _ in harvest:
            if len(harvest.completed) == 3:
                break
        await harvest.aclose()
        assert sorted(harvest.completed) == sorted(small)
        huge_pages = [r for r in server.request_log if r.space_token == huge]
        # the huge space (400 pages) got about its share and no more while they ran
        assert len(huge_pages) <= 2 * 6 + 4


async def test_harvest_with_no_tokens_walks_every_space_of_the_organization(serve: Serve) -> None:
    async with serve(seed=25, spaces=[10, 0, 30]) as (server, client):
        spaces = [s async for s in client.iter_spaces()]
        assert {s.token for s in spaces} == set(server.space_tokens)
        got: dict[str, int] = collections.Counter()
        async with client.harvest(collect_failures=True) as harvest:
            async for item in harvest:
                got[item.space_token] += 1
        for token in server.space_tokens:
            assert got[token] == len(server.expected_task_ids(token))


async def test_spaces_list_without_org_handle_is_a_configuration_error(serve: Serve) -> None:
    async with serve(seed=26, spaces=[1], client={"org_handle": None}) as (_, client):
        with pytest.raises(st.ConfigurationError, match="org"):
            [s async for s in client.iter_spaces()]


async def test_spaces_list_is_walked_when_the_server_pages_it(serve: Serve) -> None:
    async with serve(seed=27, spaces=[1] * 23, paginate_spaces=True) as (server, client):
        tokens = [s.token async for s in client.iter_spaces(page_size=5)]
    assert len(tokens) == len(set(tokens))
    assert set(server.space_tokens) <= set(tokens)


async def test_get_space_returns_one_space(serve: Serve) -> None:
    async with serve(seed=28, spaces=[3]) as (server, client):
        space = await client.get_space(server.space_tokens[0])
    assert space.token == server.space_tokens[0]


async def test_breaking_out_of_a_harvest_leaves_nothing_running(serve: Serve) -> None:
    asyncio.get_running_loop().set_debug(True)
    release = asyncio.Event()

    async def hold(req: TaskRequest) -> None:
        if req.page > 1:
            await release.wait()

    async with serve(seed=29, spaces=[500] * 5) as (server, client):
        server.add_hook(hold)
        async with client.harvest(server.space_tokens, page_size=50) as harvest:
            async for _ in harvest:
                break
        running = [
            t
            for t in asyncio.all_tasks()
            if not t.done()
            and getattr(t.get_coro(), "__qualname__", "").startswith(
                ("_Shared.", "_drive", "_walk_space")
            )  # type: ignore[union-attr]
        ]
        assert running == []
        release.set()


async def test_harvest_checkpoints_resume_mid_page_without_loss_or_repeat(serve: Serve) -> None:
    async with serve(seed=30, spaces=[730, 415]) as (server, client):
        tokens = server.space_tokens
        first: dict[str, list[str]] = collections.defaultdict(list)
        async with client.harvest(tokens, page_size=100, concurrency=2) as harvest:
            async for item in harvest:
                first[item.space_token].append(item.task.task_id)
                if sum(map(len, first.values())) == 555:
                    break
        checkpoints = {t: c for t in tokens if (c := harvest.checkpoint(t)) is not None}
        assert any(c.handed for c in checkpoints.values())  # stopped inside a page
        checkpoints = {  # through JSON, as a file would keep them
            t: st.Checkpoint.from_json(c.to_json()) for t, c in checkpoints.items()
        }
        rest: dict[str, list[str]] = collections.defaultdict(list)
        todo = [t for t in tokens if t not in harvest.completed]
        async with client.harvest(todo, page_size=100, checkpoints=checkpoints) as again:
            async for item in again:
                rest[item.space_token].append(item.task.task_id)
        for token in tokens:
            assert first[token] + rest[token] == server.expected_task_ids(token)


async def test_a_bug_inside_one_walk_is_raised_not_left_hanging(
    monkeypatch: pytest.MonkeyPatch,
    serve: Serve,
) -> None:
    async with serve(seed=31, spaces=[50, 50]) as (server, client):
        broken = server.space_tokens[1]
        real = Client.get_page

        async def get_page(self: Client, token: str, *args: Any, **kw: Any) -> Any:
            if token == broken:
                raise RuntimeError("a bug, not an answer")
            return await real(self, token, *args, **kw)

        monkeypatch.setattr(Client, "get_page", get_page)
        with pytest.raises(RuntimeError, match="a bug"):
            async with client.harvest(server.space_tokens) as harvest:
                async for _ in harvest:
                    pass
