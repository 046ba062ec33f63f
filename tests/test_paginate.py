"""The walk over one space: requests, order, window, drift, termination, resume, cleanup."""

from __future__ import annotations

import asyncio
import gc
from typing import TYPE_CHECKING, Any

import pytest

import spacetasks_async as st
from spacetasks_async import Client, RetryPolicy
from spacetasks_async.testing import DriftPlan, TaskRequest, UnpodServer

if TYPE_CHECKING:
    from conftest import Serve  # tests/ is on sys.path


def task_requests(server: UnpodServer, token: str) -> list[int]:
    return [page for page, _ in page_requests(server, token)]


def page_requests(server: UnpodServer, token: str) -> list[tuple[int, int]]:
    """(page, page_size) of every tasks request of the space, in arrival order."""
    return [
        (int(r.query["page"]), int(r.query["page_size"]))
        for r in server.request_log
        if r.space_token == token and r.path.endswith("/tasks/")
    ]


FRONT = (1, 16)  # the small read of the front that proves pages served in either order


async def collect(walk: Any) -> list[str]:
    return [task.task_id async for task in walk]


async def test_walk_yields_every_task_in_server_order_with_one_request_per_page(
    serve: Serve,
) -> None:
    async with serve(seed=3, spaces=[1234]) as (server, client):
        token = server.space_tokens[0]
        walk = client.iter_tasks(token, page_size=100)
        ids = await collect(walk)
    assert ids == server.expected_task_ids(token)
    # every page once, and one small read of the front at the end
    assert sorted(page_requests(server, token)) == sorted(
        [(p, 100) for p in range(1, 14)] + [FRONT]
    )
    assert page_requests(server, token)[-1] == FRONT
    assert walk.stats.requests == walk.stats.pages_fetched == 14
    assert walk.stats.tasks_yielded == 1234
    assert walk.stats.duplicates_dropped == 0
    assert walk.stats.drift_events == walk.stats.verifications == 0
    assert walk.stats.count_at_start == walk.stats.count_at_end == 1234


@pytest.mark.parametrize("size", [0, 1, 99, 100, 101, 500])
async def test_walk_of_edge_sizes_makes_no_request_past_the_end(size: int, serve: Serve) -> None:
    async with serve(seed=5, spaces=[size]) as (server, client):
        token = server.space_tokens[0]
        ids = await collect(client.iter_tasks(token, page_size=100))
    assert ids == server.expected_task_ids(token)
    pages = max(1, -(-size // 100))
    # Two pages are read in a known order (page 2 is asked for once page 1 is in); from
    # three on, pages in flight together are proven by a read of the front.
    expected = [(p, 100) for p in range(1, pages + 1)] + ([FRONT] if pages > 2 else [])
    assert sorted(page_requests(server, token)) == sorted(expected)


async def test_iter_pages_gives_task_pages_in_order(serve: Serve) -> None:
    async with serve(seed=4, spaces=[250]) as (server, client):
        token = server.space_tokens[0]
        pages = [p async for p in client.iter_pages(token, page_size=100)]
    assert [p.page for p in pages] == [1, 2, 3]
    assert [len(p.tasks) for p in pages] == [100, 100, 50]
    assert all(p.count == 250 and not p.reread for p in pages)


async def test_prefetch_keeps_exactly_window_requests_in_flight_and_never_more(
    serve: Serve,
) -> None:
    window = 4
    all_in = asyncio.Event()
    release = asyncio.Event()
    arrived = 0

    async def hold(req: TaskRequest) -> None:
        nonlocal arrived
        if req.page >= 2:
            arrived += 1
            if arrived == window:
                all_in.set()
            await release.wait()

    async with serve(seed=1, spaces=[2000]) as (server, client):
        server.add_hook(hold)
        token = server.space_tokens[0]
        walk = client.iter_tasks(token, page_size=100, window=window)
        consumer = asyncio.create_task(collect(walk))
        await all_in.wait()
        for _ in range(20):  # let any extra request the client might wrongly send arrive
            await asyncio.sleep(0)
        assert server.stats.in_flight == window
        server.remove_hook(hold)
        release.set()
        ids = await consumer
    assert ids == server.expected_task_ids(token)
    assert server.stats.max_in_flight == window


async def test_pages_are_yielded_in_order_even_when_later_pages_answer_first(serve: Serve) -> None:
    page2_may_answer = asyncio.Event()

    async def late_page_two(req: TaskRequest) -> None:
        if req.page == 2:
            await page2_may_answer.wait()
        elif req.page == 5:
            page2_may_answer.set()

    async with serve(seed=2, spaces=[500]) as (server, client):
        server.add_hook(late_page_two)
        token = server.space_tokens[0]
        pages = [p.page async for p in client.iter_pages(token, page_size=100, window=8)]
    assert pages == [1, 2, 3, 4, 5]


async def test_a_consumer_that_stops_reading_holds_at_most_window_pages(serve: Serve) -> None:
    async with serve(seed=1, spaces=[5000]) as (server, client):
        token = server.space_tokens[0]
        async with client.iter_pages(token, page_size=100, window=3) as walk:
            first = await anext(walk)
            await server.wait_requests(4)
            await server.wait_idle()
            for _ in range(20):
                await asyncio.sleep(0)
            assert first.page == 1
            assert server.stats.requests == 4  # page 1 and a window of 3, nothing more


async def test_max_items_sends_no_request_beyond_what_it_needs(serve: Serve) -> None:
    async with serve(seed=1, spaces=[5000]) as (server, client):
        token = server.space_tokens[0]
        walk = client.iter_tasks(token, page_size=100, window=8, max_items=250)
        ids = await collect(walk)
    assert ids == server.expected_task_ids(token)[:250]
    assert sorted(task_requests(server, token)) == [1, 2, 3]


async def test_checkpoint_mid_page_resumes_without_loss_or_repeat(serve: Serve) -> None:
    async with serve(seed=9, spaces=[730]) as (server, client):
        token = server.space_tokens[0]
        first: list[str] = []
        async with client.iter_tasks(token, page_size=100) as walk:
            async for task in walk:
                first.append(task.task_id)
                if len(first) == 345:
                    break
            checkpoint = walk.checkpoint
        assert not checkpoint.done
        assert checkpoint.anchors[-1] == first[299]  # the last task of the last page taken
        assert set(first[300:]) <= checkpoint.handed  # and the 45 taken beyond it
        restored = st.Checkpoint.from_json(checkpoint.to_json())
        server.reset_stats()
        rest = await collect(client.iter_tasks(token, page_size=100, checkpoint=restored))
        requests = page_requests(server, token)
    assert first + rest == server.expected_task_ids(token)
    # pages 4 to 8 were left: five reads, and one of the front to prove what was in doubt
    assert len(requests) <= 5 + 1


async def test_resume_after_creations_hands_out_no_task_twice(serve: Serve) -> None:
    # The first run stops at task 420; 300 tasks are created before the resume.
    async with serve(seed=9, spaces=[1000]) as (server, client):
        token = server.space_tokens[0]
        before = server.expected_task_ids(token)
        first: list[str] = []
        async with client.iter_tasks(token, page_size=100) as walk:
            async for task in walk:
                first.append(task.task_id)
                if len(first) == 420:
                    break
            point = walk.checkpoint
        server.create_tasks(token, 300)
        rest = await collect(client.iter_tasks(token, page_size=100, checkpoint=point))
    assert not set(first) & set(rest)
    assert first + rest == before  # the new tasks are newer than the walk: not in it


async def test_resume_after_deletions_loses_nothing_alive(serve: Serve) -> None:
    async with serve(seed=9, spaces=[1000]) as (server, client):
        token = server.space_tokens[0]
        first: list[str] = []
        async with client.iter_tasks(token, page_size=100, window=4) as walk:
            async for task in walk:
                first.append(task.task_id)
                if len(first) == 350:
                    break
            point = walk.checkpoint
        # deletions on both sides of the checkpoint (never one of its anchors)
        anchors = set(point.anchors)
        ids = server.expected_task_ids(token)
        doomed = [i for i in (5, 120, 333, 400, 401, 777) if ids[i] not in anchors]
        server.delete_at(token, doomed)
        rest = await collect(client.iter_tasks(token, page_size=100, checkpoint=point))
        alive = server.expected_task_ids(token)
    assert not set(first) & set(rest)
    assert set(alive) <= set(first) | set(rest)


async def test_a_checkpoint_after_the_end_says_done_and_resumes_with_no_request(
    serve: Serve,
) -> None:
    async with serve(seed=9, spaces=[250]) as (server, client):
        token = server.space_tokens[0]
        walk = client.iter_tasks(token, page_size=100)
        ids = await collect(walk)
        point = walk.checkpoint
        assert point.done and point.remaining == 0
        assert st.Checkpoint.from_json(point.to_json()) == point
        server.reset_stats()
        assert await collect(client.iter_tasks(token, page_size=100, checkpoint=point)) == []
        assert server.stats.requests == 0
    assert len(ids) == 250


async def test_checkpoint_for_another_page_size_or_space_is_refused(serve: Serve) -> None:
    async with serve(seed=9, spaces=[10]) as (server, client):
        token = server.space_tokens[0]
        point = st.Checkpoint(token, 100, rank=5, count=10)
        with pytest.raises(st.InvalidArgumentError, match="page_size"):
            client.iter_tasks(token, page_size=50, checkpoint=point)
        with pytest.raises(st.InvalidArgumentError, match="for space"):
            client.iter_tasks("OTHERTOKEN00000000000000", page_size=100, checkpoint=point)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"format": 1}, "format"),
        ({"rank": 10**9}, "past its count"),
        ({"rank": 0}, "rank"),
        ({"anchors": "t1"}, "anchors"),
        ({"space_token": "a/b"}, "slash"),
        ({"open": [{"above": [], "below": ["x"]}]}, "open seam"),
    ],
)
def test_a_hand_edited_checkpoint_is_refused(edit: dict[str, Any], message: str) -> None:
    good = st.Checkpoint("TOKEN", 100, rank=5, count=10, anchors=("a",)).to_json()
    with pytest.raises(st.InvalidArgumentError, match=message):
        st.Checkpoint.from_json({**good, **edit})


async def test_start_page_resumes_from_that_page(serve: Serve) -> None:
    async with serve(seed=9, spaces=[450]) as (server, client):
        token = server.space_tokens[0]
        ids = await collect(client.iter_tasks(token, page_size=100, start_page=3))
    assert ids == server.expected_task_ids(token)[200:]


# -- drift ---------------------------------------------------------------------------------


async def test_tasks_created_during_the_walk_cause_no_duplicates_and_no_loss(serve: Serve) -> None:
    async with serve(seed=11, spaces=[1500]) as (server, client):
        token = server.space_tokens[0]
        before = server.expected_task_ids(token)

        async def create(req: TaskRequest) -> None:
            if req.page in (2, 5, 9) and req.attempt == 1:
                server.create_tasks(token, 7)

        server.add_hook(create)
        walk = client.iter_tasks(token, page_size=100, window=1)
        ids = await collect(walk)
    assert len(ids) == len(set(ids))
    assert set(before) <= set(ids)
    assert walk.stats.duplicates_dropped > 0


async def test_deletions_behind_the_walk_are_recovered_by_rereading(serve: Serve) -> None:
    async with serve(seed=12, spaces=[1500]) as (server, client):
        token = server.space_tokens[0]
        before = server.expected_task_ids(token)
        deleted: list[str] = []

        async def delete_behind(req: TaskRequest) -> None:
            if req.page in (4, 8, 12) and req.attempt == 1:
                # delete tasks on pages already read: later tasks slide back onto them
                deleted.extend(server.delete_at(token, [10, 150]))

        server.add_hook(delete_behind)
        walk = client.iter_tasks(token, page_size=100, window=1)
        ids = await collect(walk)
    survivors = [t for t in before if t not in set(deleted)]
    assert len(ids) == len(set(ids))
    assert set(survivors) <= set(ids), f"lost {len(set(survivors) - set(ids))} tasks"
    assert walk.stats.rereads > 0


async def test_deletions_ahead_of_the_walk_lose_nothing(serve: Serve) -> None:
    async with serve(seed=13, spaces=[1500]) as (server, client):
        token = server.space_tokens[0]
        before = server.expected_task_ids(token)
        deleted: list[str] = []

        async def delete_ahead(req: TaskRequest) -> None:
            if req.page in (3, 6) and req.attempt == 1:
                deleted.extend(server.delete_at(token, [1400, 1300]))

        server.add_hook(delete_ahead)
        ids = await collect(client.iter_tasks(token, page_size=100, window=1))
    survivors = [t for t in before if t not in set(deleted)]
    assert ids == survivors


@pytest.mark.parametrize("window", [1, 4, 16])
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(
    ("creates", "deletes"),
    [(2, 1), (1, 2), (3, 0), (0, 2), (1, 1)],
    ids=["more-creates", "more-deletes", "creates-only", "deletes-only", "count-unchanged"],
)
async def test_creates_and_deletes_on_every_request_lose_nothing_and_repeat_nothing(
    window: int, seed: int, creates: int, deletes: int, serve: Serve
) -> None:
    # The harshest drift the server can make: every request changes the space, with
    # latency jitter so that concurrent pages are served out of order.
    plan = DriftPlan(
        create_per_request=creates, delete_per_request=deletes, seed=seed, start_after=1
    )
    async with serve(seed=seed, spaces=[3000], latency=0.002, latency_jitter=0.004) as (
        server,
        client,
    ):
        token = server.space_tokens[0]
        before = server.expected_task_ids(token)
        server.set_drift_plan(plan)
        walk = client.iter_tasks(token, page_size=100, window=window)
        ids = await collect(walk)
        server.set_drift_plan(None)
        after = set(server.expected_task_ids(token))
    stable = [t for t in before if t in after]  # existed from start to end
    assert len(ids) == len(set(ids)), "a task was yielded twice"
    missing = set(stable) - set(ids)
    assert not missing, f"lost {len(missing)} of {len(stable)} tasks"
    assert walk.stats.drift_events > 0


async def test_count_that_grows_extends_the_walk_past_the_planned_last_page(serve: Serve) -> None:
    async with serve(seed=14, spaces=[300]) as (server, client):
        token = server.space_tokens[0]

        async def grow(req: TaskRequest) -> None:
            if req.page == 2 and req.attempt == 1:
                server.create_tasks(token, 150)

        server.add_hook(grow)
        before = server.expected_task_ids(token)
        ids = await collect(client.iter_tasks(token, page_size=100, window=1))
    assert set(before) <= set(ids)
    assert len(ids) == len(set(ids))
    assert max(task_requests(server, token)) >= 4


async def test_a_server_that_never_settles_stops_with_a_typed_error(serve: Serve) -> None:
    async with serve(seed=15, spaces=[300]) as (server, client):
        token = server.space_tokens[0]

        async def grow_forever(req: TaskRequest) -> None:
            server.create_tasks(token, 100)  # every page shows the previous one again

        server.add_hook(grow_forever)
        with pytest.raises(st.WalkIncompleteError, match="without proving"):
            await collect(client.iter_tasks(token, page_size=100, window=2))
    # the budget grows with what the walk saw, not with the count the server claims
    assert len(task_requests(server, token)) <= 40


async def test_a_page_short_of_its_count_is_read_again_and_then_trusted(serve: Serve) -> None:
    async with serve(seed=16, spaces=[250]) as (server, client):
        token = server.space_tokens[0]
        stale = {"armed": True}

        async def stale_count_on_last_page(req: TaskRequest) -> None:
            # page 3 is computed with a count taken before 5 deletions (the server runs
            # two queries): short of its count. Read again, it agrees.
            if req.page == 3 and stale["armed"]:
                stale["armed"] = False
                server.set_drift_plan(
                    DriftPlan(delete_per_request=5, seed=1, between_count_and_data=True)
                )
            else:
                server.set_drift_plan(None)

        server.add_hook(stale_count_on_last_page)
        walk = client.iter_tasks(token, page_size=100, window=1)
        ids = await collect(walk)
        truth = server.expected_task_ids(token)
    assert set(truth) <= set(ids) and len(ids) == len(set(ids))
    assert task_requests(server, token)[:4] == [1, 2, 3, 3]


async def test_a_page_that_stays_short_of_its_count_is_a_protocol_error(
    monkeypatch: pytest.MonkeyPatch,
    serve: Serve,
) -> None:
    import spacetasks_async._errors as errors

    real = errors.parse_page_envelope

    def capped(*args: Any, **kw: Any) -> dict[str, Any]:
        envelope = real(*args, **kw)
        envelope["data"] = envelope["data"][:50]  # a proxy that serves 50 at most
        return envelope

    monkeypatch.setattr("spacetasks_async._client.parse_page_envelope", capped)
    async with serve(seed=17, spaces=[250]) as (server, client):
        with pytest.raises(st.ProtocolError, match="does not serve the page size"):
            await collect(client.iter_tasks(server.space_tokens[0], page_size=100))


async def test_answers_without_count_are_a_protocol_error(
    monkeypatch: pytest.MonkeyPatch,
    serve: Serve,
) -> None:
    import spacetasks_async._errors as errors

    real = errors.parse_page_envelope

    def without_count(*args: Any, **kw: Any) -> dict[str, Any]:
        envelope = real(*args, **kw)
        envelope.pop("count", None)
        return envelope

    monkeypatch.setattr("spacetasks_async._client.parse_page_envelope", without_count)
    async with serve(seed=17, spaces=[1050]) as (server, client):
        with pytest.raises(st.ProtocolError, match="without a usable count"):
            await collect(client.iter_tasks(server.space_tokens[0], page_size=100))


async def test_a_page_cut_short_in_the_middle_is_read_again(
    monkeypatch: pytest.MonkeyPatch,
    serve: Serve,
) -> None:
    import spacetasks_async._errors as errors

    real = errors.parse_page_envelope
    cut = {"done": False}

    def cut_page_three_once(*args: Any, **kw: Any) -> dict[str, Any]:
        envelope = real(*args, **kw)
        if "page=3&" in kw["path"] and not cut["done"]:
            cut["done"] = True
            envelope["data"] = envelope["data"][:40]  # a glitch: part of the page is lost
        return envelope

    monkeypatch.setattr("spacetasks_async._client.parse_page_envelope", cut_page_three_once)
    async with serve(seed=19, spaces=[750]) as (server, client):
        token = server.space_tokens[0]
        walk = client.iter_tasks(token, page_size=100, window=4)
        ids = await collect(walk)
    assert ids == server.expected_task_ids(token)
    assert task_requests(server, token).count(3) == 2


async def test_page_walk_checkpoint_after_a_page_resumes_at_the_next_one(serve: Serve) -> None:
    async with serve(seed=18, spaces=[500]) as (server, client):
        token = server.space_tokens[0]
        async with client.iter_pages(token, page_size=100) as walk:
            async for page in walk:
                if page.page == 2:
                    break
        point = walk.checkpoint
        rest = [p async for p in client.iter_pages(token, page_size=100, checkpoint=point)]
    assert [t.task_id for p in rest for t in p.tasks] == server.expected_task_ids(token)[200:]


# -- cleanup -------------------------------------------------------------------------------


def _our_tasks() -> set[asyncio.Task[Any]]:
    """The client's background tasks still running (the server's own are not counted)."""
    return {
        t
        for t in asyncio.all_tasks()
        if not t.done()
        and getattr(t.get_coro(), "__qualname__", "").startswith(
            ("_Shared.", "_drive", "_walk_space")
        )  # type: ignore[union-attr]
    }


async def _hold_pages(server: UnpodServer) -> tuple[asyncio.Event, asyncio.Event]:
    in_flight = asyncio.Event()
    release = asyncio.Event()
    count = 0

    async def hold(req: TaskRequest) -> None:
        nonlocal count
        if req.page >= 2:
            count += 1
            if count >= 4:
                in_flight.set()
            await release.wait()

    server.add_hook(hold)
    return in_flight, release


@pytest.fixture
async def asyncio_debug() -> None:
    """asyncio debug mode, with warnings as errors: a coroutine never awaited fails the test."""
    asyncio.get_running_loop().set_debug(True)


@pytest.mark.usefixtures("asyncio_debug")
async def test_breaking_out_of_async_for_cancels_prefetch_and_leaves_nothing_running(
    serve: Serve,
) -> None:
    async with serve(seed=1, spaces=[5000]) as (server, client):
        in_flight, _release = await _hold_pages(server)
        walk = client.iter_tasks(server.space_tokens[0], page_size=100, window=4)
        async for _ in walk:
            await in_flight.wait()
            break
        await walk.aclose()
        assert _our_tasks() == set()
        await server.wait_idle()


@pytest.mark.usefixtures("asyncio_debug")
async def test_dropping_an_unclosed_walk_cancels_its_prefetch(serve: Serve) -> None:
    async with serve(seed=1, spaces=[5000]) as (server, client):
        in_flight, _release = await _hold_pages(server)

        async def consume_and_break() -> None:
            async for _ in client.iter_tasks(server.space_tokens[0], page_size=100, window=4):
                await in_flight.wait()
                break

        await consume_and_break()
        gc.collect()
        # the event loop's async-generator finaliser closes the walk; wait for that
        for _ in range(50):
            if not _our_tasks():
                break
            await asyncio.sleep(0)
        assert _our_tasks() == set()
        await server.wait_idle()


@pytest.mark.usefixtures("asyncio_debug")
async def test_cancelling_the_consumer_cancels_every_request_in_flight(serve: Serve) -> None:
    async with serve(seed=1, spaces=[5000]) as (server, client):
        in_flight, _release = await _hold_pages(server)
        consumer = asyncio.create_task(
            collect(client.iter_tasks(server.space_tokens[0], page_size=100, window=4))
        )
        await in_flight.wait()
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        assert _our_tasks() == set()
        await server.wait_idle()


@pytest.mark.usefixtures("asyncio_debug")
async def test_an_exception_in_the_consumer_leaves_nothing_running(serve: Serve) -> None:
    async with serve(seed=1, spaces=[5000]) as (server, client):
        in_flight, _release = await _hold_pages(server)
        with pytest.raises(RuntimeError, match="consumer broke"):
            async with client.iter_tasks(server.space_tokens[0], page_size=100) as walk:
                async for _ in walk:
                    await in_flight.wait()
                    raise RuntimeError("consumer broke")
        assert _our_tasks() == set()


async def test_errors_name_the_space_and_page_and_keep_what_was_yielded(serve: Serve) -> None:
    async with serve(seed=1, spaces=[500]) as (server, client):
        token = server.space_tokens[0]
        from spacetasks_async.testing import FaultKind

        server.fail_next(FaultKind.HTTP_500_HTML, count=1, token=token, page=3)
        got: list[str] = []
        with pytest.raises(st.ServerError) as info:
            async for task in client.iter_tasks(token, page_size=100, window=1):
                got.append(task.task_id)
    assert info.value.space_token == token
    assert info.value.page == 3
    assert got == server.expected_task_ids(token)[:200]


async def test_invalid_space_token_fails_on_the_first_page(serve: Serve) -> None:
    async with serve(seed=1, spaces=[5]) as (_server, client):
        with pytest.raises(st.InvalidSpaceTokenError):
            await collect(client.iter_tasks("NOSUCHTOKEN0000000000000"))


@pytest.mark.usefixtures("asyncio_debug")
async def test_break_then_drop_the_walk_then_close_the_client_is_silent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Measured on the walk before: 8 "Task exception was never retrieved" errors, and with
    # the client left open the prefetched requests were still sent.
    async with UnpodServer(seed=1, spaces=[5000]) as server:
        client = Client(server.api_key, base_url=server.base_url, retry=RetryPolicy.never())
        in_flight, release = await _hold_pages(server)
        walk = client.iter_tasks(server.space_tokens[0], page_size=100, window=8)
        async for _ in walk:
            await in_flight.wait()
            break
        sent = server.stats.requests
        del walk
        gc.collect()
        for _ in range(50):  # the loop's async-generator finaliser closes the walk
            if not _our_tasks():
                break
            await asyncio.sleep(0)
        assert _our_tasks() == set()
        await client.close()
        release.set()
        await server.wait_idle()
        assert server.stats.requests == sent  # nothing sent once the consumer had gone
    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
