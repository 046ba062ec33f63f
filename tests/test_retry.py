"""Retries, Retry-After, rate and concurrency control, timeouts, and zero loss under faults."""

from __future__ import annotations

import asyncio
import collections
import email.utils
import logging
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import tenacity
from aioresponses import aioresponses
from test_client import BASE, KEY, TASKS_URL, TOKEN, ok_body

import spacetasks_async as st
from spacetasks_async import Client, FairLimiter, RetryPolicy
from spacetasks_async._retry import _TokenBucket
from spacetasks_async.testing import DriftPlan, FaultKind, FaultPlan

if TYPE_CHECKING:
    from conftest import Serve  # tests/ is on sys.path


class Sleeps:
    """A stand-in for asyncio.sleep that records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def mocked_client(policy: RetryPolicy, sleeps: Sleeps, **kw: Any) -> Client:
    return Client(KEY, base_url=BASE, retry=policy, sleep=sleeps, **kw)


@pytest.fixture
def mocked() -> Any:
    with aioresponses() as m:
        yield m


def calls(m: aioresponses) -> int:
    return sum(len(c) for c in m.requests.values())


# -- what is retried -------------------------------------------------------------------------

RETRYABLE: list[tuple[str, dict[str, Any]]] = [
    ("429", {"status": 429, "payload": {"detail": "slow"}}),
    ("500 json", {"status": 500, "payload": {"message": "boom"}}),
    ("500 html", {"status": 500, "body": "<html>Server Error</html>"}),
    ("502", {"status": 502, "body": "<html>bad gateway</html>"}),
    ("503", {"status": 503, "body": "<html>unavailable</html>"}),
    ("504", {"status": 504, "body": "<html>timeout</html>"}),
    ("truncated json", {"status": 200, "body": '{"count": 1, "data": [{"task_id"'}),
    ("html with 200", {"status": 200, "body": "<html>maintenance</html>"}),
    ("connection error", {"exception": aiohttp.ClientConnectionError("reset")}),
    ("payload cut", {"exception": aiohttp.ClientPayloadError("cut")}),
    ("timeout", {"exception": TimeoutError()}),
]


@pytest.mark.parametrize("failure", [f for _, f in RETRYABLE], ids=[n for n, _ in RETRYABLE])
async def test_transient_failures_are_retried_until_success(
    mocked: aioresponses, failure: dict[str, Any]
) -> None:
    sleeps = Sleeps()
    mocked.get(TASKS_URL, **failure)
    mocked.get(TASKS_URL, **failure)
    mocked.get(TASKS_URL, payload=ok_body())
    async with mocked_client(RetryPolicy(max_attempts=3, initial_wait=0.5), sleeps) as client:
        page = await client.get_page(TOKEN)
    assert len(page.tasks) == 1
    assert calls(mocked) == 3
    assert len(sleeps.waits) == 2


NOT_RETRYABLE: list[tuple[str, int, dict[str, Any], type[st.SpaceTasksError]]] = [
    ("400", 400, {"status_code": 400, "message": "bad", "data": {}}, st.BadRequestError),
    ("401", 401, {"message": "Invalid token.", "status_code": 401}, st.AuthenticationError),
    ("403", 403, {"message": "nope", "status_code": 403}, st.PermissionDeniedError),
    ("404", 404, {"message": "Organization not found"}, st.NotFoundError),
    (
        "invalid token",
        206,
        {"status_code": 206, "message": "Invalid Space Token", "data": {}},
        st.InvalidSpaceTokenError,
    ),
    (
        "no access",
        206,
        {"status_code": 206, "message": "You Don't have Access to this Space", "data": {}},
        st.SpaceAccessError,
    ),
    (
        "wrong shape",
        200,
        {"count": 1, "status_code": 200, "message": "x", "data": {"a": 1}},
        st.ProtocolError,
    ),
]


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [a[1:] for a in NOT_RETRYABLE],
    ids=[a[0] for a in NOT_RETRYABLE],
)
async def test_answers_that_cannot_succeed_are_never_retried(
    mocked: aioresponses, status: int, body: Any, error: type[st.SpaceTasksError]
) -> None:
    sleeps = Sleeps()
    mocked.get(TASKS_URL, status=status, payload=body, repeat=True)
    async with mocked_client(RetryPolicy(max_attempts=5), sleeps) as client:
        with pytest.raises(error):
            await client.get_page(TOKEN)
    assert calls(mocked) == 1
    assert sleeps.waits == []


async def test_backend_failure_is_retried_like_a_server_error_then_raised(
    mocked: aioresponses,
) -> None:
    body = {"status_code": 206, "message": "Tasks Fetch Failed", "data": {"errors": "x"}}
    mocked.get(TASKS_URL, status=206, payload=body, repeat=True)
    async with mocked_client(RetryPolicy(max_attempts=5), Sleeps()) as client:
        with pytest.raises(st.BackendFailureError):
            await client.get_page(TOKEN)
    assert calls(mocked) == 5


async def test_backend_failure_retries_can_be_capped_lower(mocked: aioresponses) -> None:
    body = {"status_code": 206, "message": "Tasks Fetch Failed", "data": {"errors": "x"}}
    mocked.get(TASKS_URL, status=206, payload=body, repeat=True)
    policy = RetryPolicy(max_attempts=5, backend_failure_retries=1)
    async with mocked_client(policy, Sleeps()) as client:
        with pytest.raises(st.BackendFailureError):
            await client.get_page(TOKEN)
    assert calls(mocked) == 2


async def test_attempts_are_capped_and_the_last_error_is_raised(mocked: aioresponses) -> None:
    mocked.get(TASKS_URL, status=503, body="<html>down</html>", repeat=True)
    sleeps = Sleeps()
    async with mocked_client(RetryPolicy(max_attempts=4), sleeps) as client:
        with pytest.raises(st.ServerError) as info:
            await client.get_page(TOKEN, page=2)
    assert calls(mocked) == 4
    assert info.value.page == 2


def test_backoff_is_exponential_full_jitter_under_the_cap() -> None:
    policy = RetryPolicy(initial_wait=0.5, max_wait=3.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        waits = [policy.backoff(attempt) for _ in range(300)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # spread over the whole range: full jitter
        assert min(waits) < ceiling * 0.2


# -- Retry-After -------------------------------------------------------------------------------


async def test_retry_after_seconds_is_the_wait(mocked: aioresponses) -> None:
    mocked.get(TASKS_URL, status=429, payload={}, headers={"Retry-After": "7"})
    mocked.get(TASKS_URL, payload=ok_body())
    sleeps = Sleeps()
    async with mocked_client(RetryPolicy(max_wait=1.0), sleeps) as client:
        await client.get_page(TOKEN)
    assert sleeps.waits == [7.0]


async def test_retry_after_http_date_is_the_wait(mocked: aioresponses) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    mocked.get(TASKS_URL, status=503, body="<html/>", headers={"Retry-After": when})
    mocked.get(TASKS_URL, payload=ok_body())
    sleeps = Sleeps()
    async with mocked_client(RetryPolicy(), sleeps) as client:
        await client.get_page(TOKEN)
    [wait] = sleeps.waits
    assert 28 <= wait <= 30


async def test_retry_after_beyond_the_ceiling_raises_instead_of_sleeping(
    mocked: aioresponses,
) -> None:
    mocked.get(TASKS_URL, status=429, payload={}, headers={"Retry-After": "3600"})
    sleeps = Sleeps()
    async with mocked_client(RetryPolicy(max_retry_after=60), sleeps) as client:
        with pytest.raises(st.RateLimitError) as info:
            await client.get_page(TOKEN)
    assert info.value.retry_after == 3600
    assert sleeps.waits == []
    assert calls(mocked) == 1


async def test_retry_after_is_honoured_by_real_waits_against_the_server(serve: Serve) -> None:
    waits: list[float] = []
    retries = {"retry": RetryPolicy(), "on_retry": lambda e: waits.append(e.wait)}
    async with serve(seed=1, spaces=[10], retry_after=1, client=retries) as (server, client):
        server.fail_next(FaultKind.HTTP_429, count=1)
        start = time.monotonic()
        await client.get_page(server.space_tokens[0])
        elapsed = time.monotonic() - start
    assert waits == [1.0]
    assert elapsed >= 1.0  # it really waited (a lower bound only: no timing luck needed)


# -- rate and concurrency control ----------------------------------------------------------


async def test_token_bucket_spaces_requests_at_the_rate() -> None:
    now = 0.0
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        nonlocal now
        waits.append(seconds)
        now += seconds

    bucket = _TokenBucket(10.0, sleep=fake_sleep, clock=lambda: now)
    for _ in range(30):
        await bucket.take()
    # 10 in the first burst, then one every 0.1 s: 20 more take 2 s of (simulated) time
    assert now == pytest.approx(2.0)


async def test_fair_limiter_serves_keys_round_robin() -> None:
    limiter = FairLimiter(1)
    order: list[str] = []
    await limiter.acquire("hold")

    async def user(key: str) -> None:
        async with limiter.slot(key):
            order.append(key)

    waiters = [asyncio.create_task(user(k)) for k in ["a", "a", "a", "b", "c"]]
    for _ in range(5):
        await asyncio.sleep(0)
    limiter.release()
    await asyncio.gather(*waiters)
    assert order == ["a", "b", "c", "a", "a"]


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    limiter = FairLimiter(1)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    limiter.release()
    assert limiter.in_flight == 0
    await asyncio.wait_for(limiter.acquire(), 1)  # not blocked by the cancelled waiter


def test_limiter_halves_on_throttle_and_regrows_gradually() -> None:
    limiter = FairLimiter(16)
    limiter.throttled()
    limiter.throttled()
    assert int(limiter.limit) == 4
    for _ in range(3):
        limiter.succeeded()
    assert int(limiter.limit) == 4  # no jump back up
    for _ in range(2):
        limiter.succeeded()
    assert int(limiter.limit) == 5  # about one more per limit's worth of successes
    for _ in range(200):
        limiter.succeeded()
    assert limiter.limit == 16


async def test_429s_slow_the_whole_client_down(serve: Serve) -> None:
    plan = FaultPlan({FaultKind.HTTP_429_BARE: 0.3}, seed=3, max_faults_per_page=2)
    options = {"max_in_flight": 16, "retry": RetryPolicy(max_attempts=5), "sleep": Sleeps()}
    config = {"seed": 2, "spaces": [3000], "fault_plan": plan, "latency": 0.002}
    async with serve(**config, client=options) as (server, client):
        limits: list[float] = []
        walk = client.iter_tasks(server.space_tokens[0], page_size=50, window=16)
        async for _ in walk:
            limits.append(client._control.concurrency.limit)
        ids_ok = walk.stats.tasks_yielded == 3000
    assert ids_ok
    assert min(limits) < 16  # the 429s cut the ceiling for every request of the client
    assert walk.stats.retries > 0


# -- timeouts ------------------------------------------------------------------------------


async def test_a_slow_answer_times_out_and_is_retried(serve: Serve) -> None:
    events: list[st.RetryEvent] = []
    options = {"timeout": 0.3, "retry": RetryPolicy(initial_wait=0.01), "on_retry": events.append}
    async with serve(seed=1, spaces=[10], slow_seconds=30, client=options) as (server, client):
        server.fail_next(FaultKind.SLOW, count=1)
        page = await client.get_page(server.space_tokens[0])
    assert len(page.tasks) == 10
    assert [type(e.error) for e in events] == [st.RequestTimeoutError]


async def test_connect_and_total_timeouts_are_configurable() -> None:
    client = Client(KEY, base_url=BASE, timeout=12, connect_timeout=3)
    assert client.timeout.total == 12
    assert client.timeout.connect == 3
    with pytest.raises(st.ConfigurationError):
        Client(KEY, base_url=BASE, timeout=0)


# -- observability -------------------------------------------------------------------------


async def test_each_retry_is_logged_with_attempt_wait_reason_and_path(
    mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="spacetasks_async")
    mocked.get(TASKS_URL, status=502, body="<html/>")
    mocked.get(TASKS_URL, payload=ok_body())
    async with mocked_client(RetryPolicy(), Sleeps()) as client:
        await client.get_page(TOKEN, page=3)
    [line] = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert f"GET /api/v2/platform/spaces/{TOKEN}/tasks/?page=3&page_size=100" in line
    assert "attempt 1" in line and "ServerError" in line and "HTTP 502" in line


async def test_trace_configs_and_on_retry_let_an_application_observe_requests(
    mocked: aioresponses,
) -> None:
    started: list[str] = []

    async def on_start(session: Any, ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
        started.append(params.url.path)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    events: list[st.RetryEvent] = []
    mocked.get(TASKS_URL, status=500, payload={})
    mocked.get(TASKS_URL, payload=ok_body())
    async with mocked_client(
        RetryPolicy(), Sleeps(), trace_configs=[trace], on_retry=events.append
    ) as client:
        await client.get_page(TOKEN)
    assert [e.attempt for e in events] == [1]
    assert events[0].path.startswith("/api/v2/platform/spaces/")


# -- zero loss under faults ----------------------------------------------------------------

FAST_RETRY = RetryPolicy(max_attempts=8, initial_wait=0.001, max_wait=0.01)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


async def harvest_all(client: Client, tokens: list[str]) -> tuple[dict[str, list[str]], Any]:
    got: dict[str, list[str]] = collections.defaultdict(list)
    async with client.harvest(
        tokens, page_size=100, concurrency=16, collect_failures=True
    ) as harvest:
        async for item in harvest:
            got[item.space_token].append(item.task.task_id)
    return got, harvest


async def test_20_spaces_of_2000_tasks_with_a_fifth_of_requests_failing_lose_nothing(
    debug_logs: pytest.LogCaptureFixture,
    serve: Serve,
) -> None:
    plan = FaultPlan.uniform(0.2, seed=7)
    config = {"seed": 31, "spaces": [2000] * 20, "fault_plan": plan, "retry_after": 0}
    async with serve(**config, client={"retry": FAST_RETRY}) as (server, client):
        got, harvest = await harvest_all(client, server.space_tokens)
        assert harvest.failures == []
        for token in server.space_tokens:
            assert got[token] == server.expected_task_ids(token)
        faults = collections.Counter(r.fault for r in server.request_log if r.fault)
        assert sum(faults.values()) > 0.15 * len(server.request_log)
        assert len(faults) >= 8  # a real mix of kinds
        key = server.api_key
    assert sum(s.retries for s in harvest.stats.values()) == sum(faults.values())
    for record in debug_logs.records:  # no secret in any log line at DEBUG
        assert key not in record.getMessage()
        assert "user_token" not in record.getMessage()


async def test_faults_and_drift_together_lose_nothing_and_repeat_nothing(serve: Serve) -> None:
    plan = FaultPlan.uniform(0.15, seed=8)
    drift = DriftPlan(create_per_request=2, delete_per_request=1, seed=4, start_after=1)
    config = {"seed": 32, "spaces": [1500] * 4, "fault_plan": plan, "retry_after": 0}
    async with serve(**config, client={"retry": FAST_RETRY}) as (server, client):
        before = {t: server.expected_task_ids(t) for t in server.space_tokens}
        server.set_drift_plan(drift)
        got, harvest = await harvest_all(client, server.space_tokens)
        server.set_drift_plan(None)
        assert harvest.failures == []
        for token in server.space_tokens:
            after = set(server.expected_task_ids(token))
            stable = [t for t in before[token] if t in after]
            assert len(got[token]) == len(set(got[token])), "a task was yielded twice"
            assert not set(stable) - set(got[token]), "a task was lost"


async def test_a_space_that_keeps_failing_is_named_with_its_page_and_others_complete(
    serve: Serve,
) -> None:
    async with serve(seed=33, spaces=[500] * 3, client={"retry": FAST_RETRY}) as (server, client):
        broken = server.space_tokens[1]
        server.fail_next(FaultKind.HTTP_500_HTML, count=100, token=broken, page=3)
        got, harvest = await harvest_all(client, server.space_tokens)
        [failure] = harvest.failures
        assert failure.space_token == broken
        assert isinstance(failure.error, st.ServerError)
        assert failure.error.page == 3
        assert f"space {broken!r}" in str(failure.error) and "page 3" in str(failure.error)
        assert got[broken] == server.expected_task_ids(broken)[:200]
        for token in (server.space_tokens[0], server.space_tokens[2]):
            assert got[token] == server.expected_task_ids(token)


async def test_dropped_connections_and_truncated_bodies_are_retried_over_the_wire(
    serve: Serve,
) -> None:
    events: list[st.RetryEvent] = []
    options = {"retry": FAST_RETRY, "on_retry": events.append}
    async with serve(seed=34, spaces=[300], client=options) as (server, client):
        token = server.space_tokens[0]
        server.fail_next(FaultKind.DROP_MID_BODY, count=1, page=2)
        server.fail_next(FaultKind.TRUNCATED_JSON, count=1, page=3)
        ids = [t.task_id async for t in client.iter_tasks(token)]
    assert ids == server.expected_task_ids(token)
    assert sorted(type(e.error).__name__ for e in events) == ["ProtocolError", "TransportError"]


# -- the fast path: tenacity only after a failure ----------------------------------------------


async def test_a_first_attempt_that_succeeds_builds_no_retry_loop(
    mocked: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Per-request overhead: the loop is built only once an attempt failed and is retried.
    def forbidden(*_: object, **__: object) -> None:
        raise AssertionError("tenacity was set up for a request that succeeded at once")

    monkeypatch.setattr(tenacity, "AsyncRetrying", forbidden)
    mocked.get(TASKS_URL, payload=ok_body())
    async with mocked_client(RetryPolicy(), Sleeps()) as client:
        page = await client.get_page(TOKEN)
    assert len(page.tasks) == 1


@pytest.mark.parametrize("failures", [1, 2, 3])
async def test_a_replayed_first_failure_counts_as_attempt_one(
    mocked: aioresponses, failures: int
) -> None:
    sleeps = Sleeps()
    events: list[st.RetryEvent] = []
    for _ in range(failures):
        mocked.get(TASKS_URL, status=503, payload={"detail": "busy"})
    mocked.get(TASKS_URL, payload=ok_body())
    async with mocked_client(
        RetryPolicy(max_attempts=4, initial_wait=0.5), sleeps, on_retry=events.append
    ) as client:
        await client.get_page(TOKEN)
    assert [e.attempt for e in events] == list(range(1, failures + 1))
    assert len(sleeps.waits) == failures
    assert calls(mocked) == failures + 1


async def test_a_first_failure_not_retried_is_raised_as_is(mocked: aioresponses) -> None:
    sleeps = Sleeps()
    mocked.get(TASKS_URL, status=404, payload={"detail": "no"})
    async with mocked_client(RetryPolicy(), sleeps) as client:
        with pytest.raises(st.NotFoundError) as info:
            await client.get_page(TOKEN)
    assert not sleeps.waits
    assert info.value.__context__ is None
