"""Tests of the local Unpod-compatible server (spacetasks_async.testing)."""

from __future__ import annotations

import asyncio
import email.utils
import re
import signal
import sys
import tracemalloc
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
import pytest

from spacetasks_async.testing import (
    DriftPlan,
    Endpoint,
    FaultKind,
    FaultPlan,
    ServerConfig,
    TaskRequest,
    UnpodServer,
)

SIZES = [120, 0, 7, 300]
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")

# What the shared `server` fixture (conftest.py) serves to the tests that take it.
pytestmark = pytest.mark.served(seed=1, spaces=SIZES)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as sess:
        yield sess


class Answer:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)


def auth(server: UnpodServer, scheme: str = "Token", org: bool = False) -> dict[str, str]:
    headers = {"Authorization": f"{scheme} {server.api_key}"}
    if org:
        headers["Org-Handle"] = server.org_handle
    return headers


async def get(
    session: aiohttp.ClientSession,
    server: UnpodServer,
    path: str,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> Answer:
    url = server.base_url + path
    hdrs = auth(server) if headers is None else headers
    async with session.get(url, headers=hdrs, params={k: str(v) for k, v in params.items()}) as r:
        return Answer(r.status, r.headers, await r.read())


def tasks_path(token: str) -> str:
    return f"/api/v2/platform/spaces/{token}/tasks/"


async def tasks(
    session: aiohttp.ClientSession, server: UnpodServer, token: str, **params: Any
) -> Answer:
    return await get(session, server, tasks_path(token), **params)


# --- auth and business errors -------------------------------------------------------------


async def test_auth_missing_or_invalid_is_401_without_data(
    server: UnpodServer, session: aiohttp.ClientSession
) -> None:
    token = server.space_tokens[0]
    for headers in ({}, {"Authorization": "Token wrong"}, {"Authorization": server.api_key}):
        answer = await get(session, server, tasks_path(token), headers=headers)
        assert answer.status == 401
        assert answer.json() == {"message": "Invalid token.", "status_code": 401}
    answer = await get(session, server, "/api/v2/platform/spaces/", headers={"Org-Handle": "acme"})
    assert answer.status == 401


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "JWT", "token"])
async def test_auth_schemes_accepted(
    server: UnpodServer, session: aiohttp.ClientSession, scheme: str
) -> None:
    token = server.space_tokens[0]
    answer = await get(session, server, tasks_path(token), headers=auth(server, scheme))
    assert answer.status == 200


async def test_invalid_space_token_is_206(
    server: UnpodServer, session: aiohttp.ClientSession
) -> None:
    answer = await tasks(session, server, "NOPE0000000000000000NOPE")
    assert answer.status == 206
    assert answer.json() == {"status_code": 206, "message": "Invalid Space Token", "data": {}}


async def test_no_access_space_is_206(session: aiohttp.ClientSession) -> None:
    async with UnpodServer(
        seed=1, spaces=[3], no_access_tokens={"FORBIDDENTOKEN0000000000"}
    ) as srv:
        assert "FORBIDDENTOKEN0000000000" in srv.no_access_tokens
        assert len(srv.no_access_tokens) == 2  # one seeded + one configured
        for token in srv.no_access_tokens:
            answer = await tasks(session, srv, token)
            assert answer.status == 206
            assert answer.json() == {
                "status_code": 206,
                "message": "You Don't have Access to this Space",
                "data": {},
            }
            assert token not in srv.space_tokens


@pytest.mark.parametrize("page", [0, -1])
async def test_page_not_positive_is_206_fetch_failed(
    server: UnpodServer, session: aiohttp.ClientSession, page: int
) -> None:
    answer = await tasks(session, server, server.space_tokens[0], page=page, page_size=10)
    assert answer.status == 206
    body = answer.json()
    assert body["status_code"] == 206
    assert body["message"] == "Tasks Fetch Failed"
    assert isinstance(body["data"], dict)
    assert body["data"]["errors"] == body["errors"]
    assert body["errors"]


# --- paging -------------------------------------------------------------------------------


async def test_default_page_size_is_50(server: UnpodServer, session: aiohttp.ClientSession) -> None:
    token = server.space_tokens[0]
    answer = await tasks(session, server, token)
    assert answer.status == 200
    body = answer.json()
    assert list(body) == ["count", "status_code", "message", "data"]
    assert body["count"] == 120
    assert body["status_code"] == 200
    assert body["message"] == "Tasks Fetched Successfully"
    assert len(body["data"]) == 50
    assert answer.headers["Content-Type"].startswith("application/json")


async def test_non_integer_params_fall_back_to_defaults(
    server: UnpodServer, session: aiohttp.ClientSession
) -> None:
    token = server.space_tokens[0]
    expected = server.expected_task_ids(token)
    answer = await tasks(session, server, token, page="two", page_size="lots")
    assert answer.status == 200
    assert [t["task_id"] for t in answer.json()["data"]] == expected[:50]
    answer = await tasks(session, server, token, page="2", page_size="1.5")
    assert [t["task_id"] for t in answer.json()["data"]] == expected[50:100]


async def test_newest_first_and_pages_match_truth(
    server: UnpodServer, session: aiohttp.ClientSession
) -> None:
    token = server.space_tokens[3]
    expected = server.expected_tasks(token)
    got: list[dict[str, Any]] = []
    for page in range(1, 5):
        got.extend((await tasks(session, server, token, page=page, page_size=80)).json()["data"])
    assert got == expected
    created = [t["created"] for t in got]
    assert created == sorted(created, reverse=True)
    assert len(set(created)) == len(created)


async def test_page_past_end_is_empty_with_true_count(
    server: UnpodServer, session: aiohttp.ClientSession
) -> None:
    answer = await tasks(session, server, server.space_tokens[0], page=99, page_size=50)
    assert answer.status == 200
    assert answer.json() == {
        "count": 120,
        "status_code": 200,
        "message": "Tasks Fetched Successfully",
        "data": [],
    }
    empty = await tasks(session, server, server.space_tokens[1], page=1, page_size=10)
    assert empty.json()["count"] == 0
    assert empty.json()["data"] == []


async def test_page_size_zero_returns_everything(
    server: UnpodServer, session: aiohttp.ClientSession
) -> None:
    token = server.space_tokens[3]
    body = (await tasks(session, server, token, page_size=0)).json()
    assert body["count"] == 300
    assert body["data"] == server.expected_tasks(token)


async def test_space_id_param_overrides_space_like_the_real_server(
    server: UnpodServer, session: aiohttp.ClientSession
) -> None:
    other = server.space_data(server.space_tokens[2]).info
    body = (await tasks(session, server, server.space_tokens[0], space_id=other.id)).json()
    assert body["count"] == 7
    assert [t["task_id"] for t in body["data"]] == server.expected_task_ids(other.token)


# --- spaces endpoints ---------------------------------------------------------------------


async def test_spaces_list_needs_org_handle(
    server: UnpodServer, session: aiohttp.ClientSession
) -> None:
    path = "/api/v2/platform/spaces/"
    missing = await get(session, server, path)
    assert missing.status == 400
    body = missing.json()
    assert body["status_code"] == 400
    assert body["data"] == {}
    assert body["message"]
    unknown = await get(session, server, path, headers={**auth(server), "Org-Handle": "nobody"})
    assert unknown.status == 404
    assert unknown.json() == {"message": "Organization not found"}


async def test_spaces_list_newest_first(
    server: UnpodServer, session: aiohttp.ClientSession
) -> None:
    answer = await get(session, server, "/api/v2/platform/spaces/", headers=auth(server, org=True))
    assert answer.status == 200
    body = answer.json()
    assert body["count"] == len(SIZES)
    assert body["message"] == "Spaces fetched successfully"
    assert [s["token"] for s in body["data"]] == server.space_tokens[::-1]
    for space in body["data"]:
        assert set(space) == {"id", "name", "token", "agent_handle", "created_at"}
        assert re.fullmatch(r"[A-Z0-9]{24}", space["token"])
        assert TS_RE.match(space["created_at"])
    created = [s["created_at"] for s in body["data"]]
    assert created == sorted(created, reverse=True)


async def test_spaces_list_paging_knob(session: aiohttp.ClientSession) -> None:
    async with UnpodServer(seed=2, spaces=5, paginate_spaces=True) as srv:
        path = "/api/v2/platform/spaces/"
        hdrs = auth(srv, org=True)
        first = (await get(session, srv, path, headers=hdrs, page=1, page_size=2)).json()
        last = (await get(session, srv, path, headers=hdrs, page=3, page_size=2)).json()
        assert first["count"] == last["count"] == 5
        assert [s["token"] for s in first["data"]] == srv.space_tokens[::-1][:2]
        assert [s["token"] for s in last["data"]] == srv.space_tokens[::-1][4:]


async def test_one_space(server: UnpodServer, session: aiohttp.ClientSession) -> None:
    token = server.space_tokens[2]
    path = f"/api/v2/platform/spaces/{token}/"
    answer = await get(session, server, path, headers=auth(server, org=True))
    assert answer.status == 200
    body = answer.json()
    assert body["status_code"] == 200
    assert body["data"]["token"] == token
    assert body["data"]["agent_handle"].startswith("space-agent-")
    bad = await get(session, server, "/api/v2/platform/spaces/X/", headers=auth(server, org=True))
    assert bad.status == 206
    assert bad.json()["message"] == "Invalid Space Token"
    no_org = await get(session, server, path)
    assert no_org.status == 400


# --- data ---------------------------------------------------------------------------------


async def test_same_seed_same_bytes(session: aiohttp.ClientSession) -> None:
    bodies: list[bytes] = []
    tokens: list[list[str]] = []
    for seed in (5, 5, 6):
        async with UnpodServer(seed=seed, spaces=[200]) as srv:
            tokens.append(srv.space_tokens)
            answer = await tasks(session, srv, srv.space_tokens[0], page=2, page_size=30)
            bodies.append(answer.body)
    assert bodies[0] == bodies[1]
    assert tokens[0] == tokens[1]
    assert tokens[0] != tokens[2]
    assert bodies[0] != bodies[2]


async def test_million_task_space_is_lazy(session: aiohttp.ClientSession) -> None:
    tracemalloc.start()
    try:
        async with UnpodServer(seed=9, spaces=[1_000_000]) as srv:
            token = srv.space_tokens[0]
            answer = await tasks(session, srv, token, page=9000, page_size=100)
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    body = answer.json()
    assert body["count"] == 1_000_000
    assert len(body["data"]) == 100
    data = srv.space_data(token)
    expected = [data.task_id(i) for i in data.indices(899_900, 100)]
    assert [t["task_id"] for t in body["data"]] == expected
    assert data.deleted_count == 0
    # A million task dicts would take gigabytes; templates and the one page take a few MB.
    assert peak < 10_000_000


async def test_realistic_variety(session: aiohttp.ClientSession) -> None:
    async with UnpodServer(seed=3, spaces=[400]) as srv:
        token = srv.space_tokens[0]
        body = (await tasks(session, srv, token, page_size=0)).json()
    rows = body["data"]
    assert len({t["task_id"] for t in rows}) == 400
    outputs = [t["output"] for t in rows]
    native = [o for o in outputs if isinstance(o, dict) and "transcript" in o]
    provider = [o for o in outputs if isinstance(o, dict) and "assistantId" in o]
    assert native
    assert provider
    assert any(o["transcript"] for o in native)
    for o in native:
        for line in o["transcript"]:
            assert {"role", "content"} <= set(line)
    summaries = [o["post_call_data"].get("summary") for o in native if o["post_call_data"]]
    assert any(isinstance(s, str) for s in summaries)
    assert any(isinstance(s, dict) and "callback_datetime" in s for s in summaries)
    for o in provider:
        assert {"id", "startedAt", "endedAt", "recordingUrl", "costBreakdown", "analysis"} <= set(o)
        assert {"artifact", "costs", "monitor", "customer", "endedReason"} <= set(o)
    pending = [t for t in rows if t["status"] == "pending"]
    assert any(t["output"] == {} for t in pending)
    assert any(t["output"] is None for t in pending)
    assert any(t["execution_type"] == "email" for t in rows)
    assert {"completed", "failed"} <= {t["status"] for t in rows}
    text = orjson.dumps(rows).decode()
    assert re.search(r"[\u4e00-\u9fff]", text)  # CJK
    assert re.search(r"[\U0001F300-\U0001FAFF]", text)  # emoji
    assert "José" in text or "Zoë" in text
    for t in rows:
        assert "_id" not in t
        assert re.fullmatch(r"T[0-9a-f]{32}", t["task_id"])
        assert TS_RE.match(t["created"])
        assert TS_RE.match(t["modified"])
        assert t["user_info"]["user_token"]
        assert isinstance(t["user_info"]["id"], int)
        for key in ("space_id", "user", "user_org_id", "collection_ref", "attachments", "ref_id"):
            assert key in t


# --- drift --------------------------------------------------------------------------------


async def test_create_and_delete_tasks(server: UnpodServer, session: aiohttp.ClientSession) -> None:
    token = server.space_tokens[0]
    before = server.expected_task_ids(token)
    new_ids = server.create_tasks(token, 3)
    after = server.expected_task_ids(token)
    assert after == new_ids + before
    body = (await tasks(session, server, token, page_size=5)).json()
    assert body["count"] == 123
    assert [t["task_id"] for t in body["data"]][:3] == new_ids
    assert body["data"][0]["created"] > body["data"][3]["created"]

    # Deleting lazily generated tasks (never materialised) by id and by position.
    assert server.delete_tasks(token, [before[10], before[11], "T" + "0" * 32]) == 2
    assert server.delete_tasks(token, [before[10]]) == 0
    removed = server.delete_at(token, [0, 50])
    current = server.expected_task_ids(token)
    assert removed == [after[0], [i for i in after if i not in before[10:12]][50]]
    assert len(current) == 123 - 4
    assert not set(removed) & set(current)
    body = (await tasks(session, server, token, page_size=0)).json()
    assert body["count"] == 119
    assert [t["task_id"] for t in body["data"]] == current
    assert server.space_data(token).deleted_count == 4


async def test_drift_plan_duplicates_and_misses(session: aiohttp.ClientSession) -> None:
    plan = DriftPlan(create_per_request=1, start_after=1, seed=4)
    async with UnpodServer(seed=1, spaces=[100], drift_plan=plan) as srv:
        token = srv.space_tokens[0]
        page1 = (await tasks(session, srv, token, page=1, page_size=10)).json()
        page2 = (await tasks(session, srv, token, page=2, page_size=10)).json()
        assert page1["count"] == 100  # no drift on the first request
        assert page2["count"] == 101
        # A task created between the pages pushes the last item of page 1 onto page 2.
        assert page2["data"][0]["task_id"] == page1["data"][-1]["task_id"]


async def test_drift_plan_deletes_are_seeded(session: aiohttp.ClientSession) -> None:
    plan = DriftPlan(delete_per_request=3, seed=11)
    results: list[list[str]] = []
    for _ in range(2):
        async with UnpodServer(seed=1, spaces=[500], drift_plan=plan) as srv:
            token = srv.space_tokens[0]
            for page in range(1, 4):
                await tasks(session, srv, token, page=page, page_size=50)
            assert srv.space_data(token).live_count == 500 - 9
            results.append(srv.expected_task_ids(token))
    assert results[0] == results[1]


async def test_drift_between_count_and_data(session: aiohttp.ClientSession) -> None:
    plan = DriftPlan(create_per_request=2, between_count_and_data=True)
    async with UnpodServer(seed=1, spaces=[30], drift_plan=plan) as srv:
        token = srv.space_tokens[0]
        body = (await tasks(session, srv, token, page_size=0)).json()
        assert body["count"] == 30
        assert len(body["data"]) == 32
        srv.set_drift_plan(DriftPlan(delete_per_request=5, between_count_and_data=True))
        body = (await tasks(session, srv, token, page_size=0)).json()
        assert body["count"] == 32
        assert len(body["data"]) == 27
        srv.set_drift_plan(None)
        body = (await tasks(session, srv, token, page_size=0)).json()
        assert body["count"] == len(body["data"]) == 27


# --- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "content_type"),
    [
        (FaultKind.HTTP_500_JSON, 500, "application/json"),
        (FaultKind.HTTP_500_HTML, 500, "text/html"),
        (FaultKind.HTTP_502, 502, "text/html"),
        (FaultKind.HTTP_503, 503, "text/html"),
        (FaultKind.HTTP_504, 504, "text/html"),
        (FaultKind.HTTP_429, 429, "application/json"),
        (FaultKind.HTTP_429_DATE, 429, "application/json"),
        (FaultKind.HTTP_429_BARE, 429, "application/json"),
        (FaultKind.BACKEND_206, 206, "application/json"),
    ],
)
async def test_status_faults(
    server: UnpodServer,
    session: aiohttp.ClientSession,
    kind: FaultKind,
    status: int,
    content_type: str,
) -> None:
    token = server.space_tokens[0]
    server.fail_next(kind)
    answer = await tasks(session, server, token, page=1, page_size=10)
    assert answer.status == status
    assert answer.headers["Content-Type"].startswith(content_type)
    if content_type == "text/html":
        assert answer.body.lstrip().lower().startswith((b"<html", b"<!doctype"))
    retry_after = answer.headers.get("Retry-After")
    if kind is FaultKind.HTTP_429:
        assert retry_after == "1"
    elif kind is FaultKind.HTTP_429_DATE:
        assert retry_after is not None
        assert email.utils.parsedate_to_datetime(retry_after).tzinfo is not None
    else:
        assert retry_after is None
    if kind is FaultKind.BACKEND_206:
        body = answer.json()
        assert body["message"] == "Tasks Fetch Failed"
        assert body["data"]["errors"] == body["errors"]
    assert server.request_log[-1].fault is kind
    assert server.request_log[-1].status == status
    assert server.stats.faults[kind] == 1
    # Only the next request failed.
    assert (await tasks(session, server, token, page=1, page_size=10)).status == 200


async def test_drop_mid_body(server: UnpodServer, session: aiohttp.ClientSession) -> None:
    server.fail_next(FaultKind.DROP_MID_BODY)
    url = server.base_url + tasks_path(server.space_tokens[0])
    statuses: list[int] = []

    async def fetch() -> bytes:
        async with session.get(url, headers=auth(server)) as response:
            statuses.append(response.status)
            return await response.read()

    with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        await fetch()
    assert statuses == [200]  # the headers came, the body did not
    await server.wait_idle()
    assert server.request_log[-1].fault is FaultKind.DROP_MID_BODY
    assert server.stats.faults[FaultKind.DROP_MID_BODY] == 1
    assert (await tasks(session, server, server.space_tokens[0])).status == 200


async def test_truncated_json(server: UnpodServer, session: aiohttp.ClientSession) -> None:
    server.fail_next(FaultKind.TRUNCATED_JSON)
    answer = await tasks(session, server, server.space_tokens[0], page_size=20)
    assert answer.status == 200
    assert int(answer.headers["Content-Length"]) == len(answer.body)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(answer.body)


async def test_slow_is_cancelled_when_client_leaves(session: aiohttp.ClientSession) -> None:
    async with UnpodServer(seed=1, spaces=[10], slow_seconds=60.0) as srv:
        srv.fail_next(FaultKind.SLOW)
        url = srv.base_url + tasks_path(srv.space_tokens[0])
        with pytest.raises(asyncio.TimeoutError):
            async with session.get(
                url, headers=auth(srv), timeout=aiohttp.ClientTimeout(total=0.2)
            ) as response:
                await response.read()
        # The handler is cancelled when the client hangs up, long before 60 s.
        await srv.wait_idle(timeout=5)
        assert srv.request_log[-1].fault is FaultKind.SLOW
        assert srv.request_log[-1].status is None


async def test_slow_then_answers(session: aiohttp.ClientSession) -> None:
    async with UnpodServer(seed=1, spaces=[10], slow_seconds=0.01) as srv:
        srv.fail_next(FaultKind.SLOW)
        answer = await tasks(session, srv, srv.space_tokens[0])
        assert answer.status == 200
        assert answer.json()["count"] == 10


async def test_close_cancels_held_requests(session: aiohttp.ClientSession) -> None:
    srv = UnpodServer(seed=1, spaces=[10], slow_seconds=60.0)
    await srv.start()
    try:
        srv.fail_next(FaultKind.SLOW)
        request = asyncio.create_task(tasks(session, srv, srv.space_tokens[0]))
        await srv.wait_in_flight(1)
    finally:
        async with asyncio.timeout(5):
            await srv.close()
    with pytest.raises(aiohttp.ClientError):
        await request


async def test_scripted_faults_match_token_and_page(
    server: UnpodServer, session: aiohttp.ClientSession
) -> None:
    first, other = server.space_tokens[0], server.space_tokens[3]
    server.fail_next(FaultKind.HTTP_503, count=2, token=first, page=2)
    assert (await tasks(session, server, other, page=2)).status == 200
    assert (await tasks(session, server, first, page=1)).status == 200
    assert (await tasks(session, server, first, page=2)).status == 503
    assert (await tasks(session, server, first, page=2)).status == 503
    assert (await tasks(session, server, first, page=2)).status == 200
    server.fail_next(FaultKind.HTTP_502, endpoint=Endpoint.SPACES)
    path = "/api/v2/platform/spaces/"
    assert (await get(session, server, path, headers=auth(server, org=True))).status == 502
    assert (await get(session, server, path, headers=auth(server, org=True))).status == 200


async def test_fault_plan_is_deterministic(session: aiohttp.ClientSession) -> None:
    plan = FaultPlan(
        rates={FaultKind.HTTP_503: 0.3, FaultKind.BACKEND_206: 0.2},
        seed=8,
        max_faults_per_page=2,
    )
    runs: list[list[int]] = []
    for _ in range(2):
        async with UnpodServer(seed=1, spaces=[500], fault_plan=plan) as srv:
            statuses: list[int] = []
            for page in range(1, 11):
                # Retry each page until it succeeds: max_faults_per_page bounds the failures.
                for _attempt in range(3):
                    answer = await tasks(session, srv, srv.space_tokens[0], page=page)
                    statuses.append(answer.status)
                    if answer.status == 200:
                        break
                assert answer.status == 200
            runs.append(statuses)
            assert srv.stats.faults.total() == len(statuses) - 10
    assert runs[0] == runs[1]
    assert {503, 206} <= set(runs[0])


def test_fault_plan_validation() -> None:
    with pytest.raises(ValueError, match="add up"):
        FaultPlan(rates={FaultKind.HTTP_502: 0.7, FaultKind.HTTP_503: 0.7})
    plan = FaultPlan.uniform(0.5, seed=1)
    assert FaultKind.SLOW not in plan.rates
    assert abs(sum(plan.rates.values()) - 0.5) < 1e-9
    draws = [plan.draw(Endpoint.TASKS, "T", p, 50, 1) for p in range(2000)]
    assert 800 < sum(d is not None for d in draws) < 1200


# --- hooks, gate, observability -----------------------------------------------------------


async def test_hooks_hold_requests_and_see_them(
    server: UnpodServer, session: aiohttp.ClientSession
) -> None:
    token = server.space_tokens[3]
    release = asyncio.Event()
    seen: list[TaskRequest] = []

    async def hold(info: TaskRequest) -> None:
        seen.append(info)
        await release.wait()

    server.add_hook(hold)
    requests = [
        asyncio.create_task(tasks(session, server, token, page=p, page_size=20)) for p in (1, 2, 3)
    ]
    await server.wait_in_flight(3)
    assert server.stats.in_flight == 3
    assert not any(r.done() for r in requests)
    release.set()
    answers = await asyncio.gather(*requests)
    assert [a.status for a in answers] == [200, 200, 200]
    assert server.stats.max_in_flight == 3
    assert server.stats.in_flight == 0
    assert sorted(i.page for i in seen) == [1, 2, 3]
    assert all(i.page_size == 20 and i.space_token == token and i.attempt == 1 for i in seen)
    assert len({i.seq for i in seen}) == 3
    server.remove_hook(hold)


async def test_hook_can_drift_its_own_request(
    server: UnpodServer, session: aiohttp.ClientSession
) -> None:
    token = server.space_tokens[2]
    created: list[str] = []

    async def drift(info: TaskRequest) -> None:
        created.extend(server.create_tasks(info.space_token, 1))

    server.add_hook(drift)
    body = (await tasks(session, server, token, page_size=0)).json()
    assert body["count"] == 8
    assert body["data"][0]["task_id"] == created[0]


async def test_pause_resume_and_max_in_flight(
    server: UnpodServer, session: aiohttp.ClientSession
) -> None:
    token = server.space_tokens[0]
    server.pause()
    requests = [asyncio.create_task(tasks(session, server, token, page=p)) for p in range(1, 5)]
    await server.wait_in_flight(4)
    assert server.stats.max_in_flight == 4
    assert not any(r.done() for r in requests)
    server.resume()
    answers = await asyncio.gather(*requests)
    assert [a.status for a in answers] == [200] * 4
    await server.wait_idle()
    server.reset_stats()
    assert server.stats.max_in_flight == 0
    assert server.request_log == []
    await tasks(session, server, token)
    assert server.stats.max_in_flight == 1
    assert server.stats.requests == 1


async def test_request_log_and_counts_redact_the_key(
    server: UnpodServer, session: aiohttp.ClientSession
) -> None:
    first, second = server.space_tokens[0], server.space_tokens[3]
    await tasks(session, server, first, page=2, page_size=7)
    await get(session, server, tasks_path(first), headers=auth(server, "Bearer"))
    await tasks(session, server, second)
    record = server.request_log[0]
    assert record.method == "GET"
    assert record.path == tasks_path(first)
    assert record.query == {"page": "2", "page_size": "7"}
    assert record.endpoint is Endpoint.TASKS
    assert record.space_token == first
    assert record.status == 200
    assert record.headers["Authorization"] == "Token <redacted>"
    assert server.request_log[1].headers["Authorization"] == "Bearer <redacted>"
    assert server.stats.requests_by_space == {first: 2, second: 1}
    key = server.api_key
    for text in (repr(server.request_log), repr(server), repr(server.config), repr(server.stats)):
        assert key not in text


async def test_latency_does_not_block_the_loop(session: aiohttp.ClientSession) -> None:
    async with UnpodServer(seed=1, spaces=[10], latency=0.1, latency_jitter=0.02) as srv:
        token = srv.space_tokens[0]
        answers = await asyncio.gather(*(tasks(session, srv, token) for _ in range(10)))
        # All ten were waiting out their latency at once: a blocking sleep would have let
        # the server take them one at a time.
        assert srv.stats.max_in_flight == 10
    assert all(a.status == 200 for a in answers)


def test_config_builds_spaces() -> None:
    assert ServerConfig(spaces=3, tasks_per_space=7).space_sizes == (7, 7, 7)
    assert ServerConfig(spaces=[1, 2]).space_sizes == (1, 2)
    assert "upk_test_" in ServerConfig().resolved_api_key
    assert "secret" not in repr(ServerConfig(api_key="secret"))
    with pytest.raises(ValueError, match=">= 0"):
        ServerConfig(spaces=[-1])


# --- standalone runner ---------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_standalone_runner(session: aiohttp.ClientSession, sig: signal.Signals) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "spacetasks_async.testing",
        *("--port", "0", "--seed", "3", "--spaces", "2", "--tasks-per-space", "10"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        values: dict[str, str] = {}
        async with asyncio.timeout(20):
            while "SPACE_TOKENS" not in values:
                line = (await proc.stdout.readline()).decode()
                assert line, "the runner exited early"
                name, _, value = line.strip().partition("=")
                values[name] = value
        tokens = values["SPACE_TOKENS"].split(",")
        assert len(tokens) == 2
        url = f"{values['UNPOD_BASE_URL']}/api/v2/platform/spaces/{tokens[0]}/tasks/"
        headers = {"Authorization": f"Token {values['UNPOD_API_KEY']}"}
        async with session.get(url, headers=headers) as response:
            assert response.status == 200
            assert (await response.json())["count"] == 10
        proc.send_signal(sig)
        async with asyncio.timeout(20):
            stdout, stderr = await proc.communicate()
        assert proc.returncode == 0, stderr.decode()
        assert b"Stopped." in stdout
        assert values["UNPOD_API_KEY"].encode() not in stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
