"""What goes over the wire for one page, and what every answer of the reference becomes."""

from __future__ import annotations

import gc
import logging
import re
from typing import TYPE_CHECKING, Any

import aiohttp
import cattrs
import pytest
from aioresponses import CallbackResult, aioresponses

import spacetasks_async as st
from spacetasks_async import Client, RetryPolicy
from spacetasks_async._convert import converter as package_converter
from spacetasks_async._convert import make_converter

if TYPE_CHECKING:
    from conftest import Serve  # tests/ is on sys.path

# https: a plain-http base URL to a host other than this machine warns (the key in clear).
BASE = "https://unpod.test"
KEY = "sk-live-SECRET-abc123"
TOKEN = "8KZAMRAHSXXXXXXMAYNASMJC"
TASKS_URL = re.compile(r"^https://unpod\.test/api/v2/platform/spaces/[^/]+/tasks/.*$")

SAMPLE_TASK: dict[str, Any] = {
    "thread_id": "thread_9xkL2mQpR7vNwY4sZ3cJ8hF1",
    "user_info": {"email": "u@example.com", "full_name": "John Doe", "user_token": "UTOK-xyz"},
    "task_id": "T8ff2ccdffe9a11f0878d43cd8a99e069",
    "task": {"objective": "Call the lead."},
    "input": {"name": "John Doe"},
    "output": {},
    "status": "pending",
    "created": "2026-02-07T05:57:45",
    "modified": "2026-02-07T05:57:45",
}


def ok_body(data: list[Any] | None = None, count: int = 1) -> dict[str, Any]:
    return {
        "count": count,
        "status_code": 200,
        "message": "Tasks Fetched Successfully",
        "data": [SAMPLE_TASK] if data is None else data,
    }


async def no_sleep(_: float) -> None:
    return None


def make_client(**kw: Any) -> Client:
    kw.setdefault("retry", RetryPolicy.never())
    return Client(KEY, base_url=BASE, **kw)


@pytest.fixture
def mocked() -> Any:
    with aioresponses() as m:
        yield m


def sent(m: aioresponses) -> list[tuple[str, Any, dict[str, Any]]]:
    return [(method, url, c.kwargs) for (method, url), calls in m.requests.items() for c in calls]


async def test_get_page_sends_token_auth_org_handle_user_agent_and_explicit_page_size(
    mocked: aioresponses,
) -> None:
    mocked.get(TASKS_URL, payload=ok_body())
    async with make_client(org_handle="acme") as client:
        page = await client.get_page(TOKEN, page=3, page_size=25)
    [(method, url, kw)] = sent(mocked)
    assert method == "GET"
    assert url.path == f"/api/v2/platform/spaces/{TOKEN}/tasks/"
    assert dict(url.query) == {"page": "3", "page_size": "25"}
    headers = kw["headers"]
    assert headers["Authorization"] == f"Token {KEY}"
    assert headers["Org-Handle"] == "acme"
    assert headers["User-Agent"].startswith(f"spacetasks_async/{st.__version__}")
    assert page.page == 3 and page.page_size == 25 and page.count == 1
    assert [t.task_id for t in page.tasks] == [SAMPLE_TASK["task_id"]]


async def test_filters_are_sent_but_space_id_never(mocked: aioresponses) -> None:
    mocked.get(TASKS_URL, payload=ok_body())
    async with make_client() as client:
        await client.get_page(TOKEN, filters={"status": "completed", "from_ts": 1700000000})
        with pytest.raises(st.InvalidArgumentError, match="space_id"):
            await client.get_page(TOKEN, filters={"space_id": "other"})  # type: ignore[dict-item]
    [(_, url, _)] = sent(mocked)
    assert dict(url.query) == {
        "page": "1",
        "page_size": "100",
        "status": "completed",
        "from_ts": "1700000000",
    }


async def test_space_token_is_percent_encoded_as_one_segment(mocked: aioresponses) -> None:
    # Spaces and non-ASCII are refused now (see test_hostile); what a URL gives meaning to
    # is still allowed and encoded.
    mocked.get(TASKS_URL, payload=ok_body())
    async with make_client() as client:
        await client.get_page("A+B%C?#&=;")
    [(_, url, _)] = sent(mocked)
    assert url.raw_path == "/api/v2/platform/spaces/A%2BB%25C%3F%23%26%3D%3B/tasks/"


@pytest.mark.parametrize(
    ("token", "page", "page_size", "what"),
    [
        ("", 1, 10, "empty"),
        ("  ", 1, 10, "empty"),
        ("a/b", 1, 10, "slash"),
        (".", 1, 10, "not a token"),
        ("..", 1, 10, "not a token"),
        ("ok\n", 1, 10, "control"),
        (TOKEN, 0, 10, "page must be at least 1"),
        (TOKEN, -3, 10, "page must be at least 1"),
        (TOKEN, True, 10, "page must be an int"),
        (TOKEN, 1, 0, "page_size must be at least 1"),
        (TOKEN, 1, -5, "page_size must be at least 1"),
        (TOKEN, 1, 10_001, "at most 10000"),
        (TOKEN, 1, 2.5, "page_size must be an int"),
    ],
)
async def test_bad_arguments_are_rejected_before_any_request(
    mocked: aioresponses, token: str, page: Any, page_size: Any, what: str
) -> None:
    async with make_client() as client:
        with pytest.raises(st.InvalidArgumentError, match=what):
            await client.get_page(token, page=page, page_size=page_size)
    assert sent(mocked) == []


# Every status code and body of the reference, and what it becomes.
ANSWERS: list[tuple[str, int, Any, dict[str, str], type[st.SpaceTasksError]]] = [
    (
        "206 invalid token",
        206,
        {"status_code": 206, "message": "Invalid Space Token", "data": {}},
        {},
        st.InvalidSpaceTokenError,
    ),
    (
        "206 no access",
        206,
        {"status_code": 206, "message": "You Don't have Access to this Space", "data": {}},
        {},
        st.SpaceAccessError,
    ),
    (
        "206 backend failed",
        206,
        {
            "status_code": 206,
            "message": "Tasks Fetch Failed",
            "data": {"errors": "page must be >= 1"},
            "errors": "page must be >= 1",
        },
        {},
        st.BackendFailureError,
    ),
    ("400", 400, {"status_code": 400, "message": "Bad page", "data": {}}, {}, st.BadRequestError),
    (
        "401 no data key",
        401,
        {"message": "Invalid token.", "status_code": 401},
        {},
        st.AuthenticationError,
    ),
    ("403", 403, {"message": "Forbidden", "status_code": 403}, {}, st.PermissionDeniedError),
    ("404 no status_code", 404, {"message": "Organization not found"}, {}, st.NotFoundError),
    ("429 seconds", 429, {"detail": "slow down"}, {"Retry-After": "7"}, st.RateLimitError),
    ("429 bare", 429, {"detail": "slow down"}, {}, st.RateLimitError),
    ("500 json", 500, {"message": "boom", "status_code": 500}, {}, st.ServerError),
    ("500 html", 500, "<html><body><h1>Server Error (500)</h1></body></html>", {}, st.ServerError),
    ("502 html", 502, "<html>502 Bad Gateway</html>", {}, st.ServerError),
    ("503", 503, "<html>503</html>", {"Retry-After": "3"}, st.ServerError),
    ("504", 504, "<html>504</html>", {}, st.ServerError),
    (
        "200 with data as object",
        200,
        {"count": 0, "status_code": 200, "message": "x", "data": {}},
        {},
        st.ProtocolError,
    ),
    (
        "200 whose body says 206",
        200,
        {"status_code": 206, "message": "Invalid Space Token", "data": {}},
        {},
        st.InvalidSpaceTokenError,
    ),
    (
        "200 whose body says 500",
        200,
        {"status_code": 500, "message": "oops", "data": []},
        {},
        st.ProtocolError,
    ),
    ("200 truncated json", 200, '{"count": 3, "data": [{"t', {}, st.ProtocolError),
    ("200 html", 200, "<html>maintenance</html>", {}, st.ProtocolError),
    ("200 json list", 200, [1, 2], {}, st.ProtocolError),
    ("418 unknown json", 418, {"message": "teapot"}, {}, st.HTTPStatusError),
]


@pytest.mark.parametrize(
    ("status", "body", "headers", "error"),
    [a[1:] for a in ANSWERS],
    ids=[a[0] for a in ANSWERS],
)
async def test_each_documented_answer_raises_its_exception(
    mocked: aioresponses,
    status: int,
    body: Any,
    headers: dict[str, str],
    error: type[st.SpaceTasksError],
) -> None:
    if isinstance(body, str):
        mocked.get(TASKS_URL, status=status, body=body, headers=headers)
    else:
        mocked.get(TASKS_URL, status=status, payload=body, headers=headers)
    async with make_client() as client:
        with pytest.raises(error) as info:
            await client.get_page(TOKEN, page=2)
    exc = info.value
    assert type(exc) is error
    assert exc.status == status
    assert exc.method == "GET"
    assert exc.path is not None and exc.path.startswith(f"/api/v2/platform/spaces/{TOKEN}/tasks/")
    assert exc.space_token == TOKEN and exc.page == 2
    assert KEY not in str(exc) and KEY not in repr(exc)


async def test_retry_after_is_parsed_into_the_rate_limit_error(mocked: aioresponses) -> None:
    mocked.get(TASKS_URL, status=429, payload={"detail": "x"}, headers={"Retry-After": "7"})
    async with make_client() as client:
        with pytest.raises(st.RateLimitError) as info:
            await client.get_page(TOKEN)
    assert info.value.retry_after == 7.0


async def test_backend_failure_keeps_the_servers_error_text(mocked: aioresponses) -> None:
    body = {"status_code": 206, "message": "Tasks Fetch Failed", "data": {"errors": "bad task"}}
    mocked.get(TASKS_URL, status=206, payload=body)
    async with make_client() as client:
        with pytest.raises(st.BackendFailureError) as info:
            await client.get_page(TOKEN)
    assert info.value.errors == "bad task"
    assert info.value.server_message == "Tasks Fetch Failed"


async def test_html_error_page_is_a_server_error_with_a_short_snippet(mocked: aioresponses) -> None:
    mocked.get(TASKS_URL, status=500, body="<html>" + "x" * 5000 + "</html>")
    async with make_client() as client:
        with pytest.raises(st.ServerError) as info:
            await client.get_page(TOKEN)
    assert len(str(info.value)) < 400


async def test_connection_failure_is_a_transport_error(mocked: aioresponses) -> None:
    mocked.get(TASKS_URL, exception=aiohttp.ClientConnectionError("connection refused"))
    async with make_client() as client:
        with pytest.raises(st.TransportError) as info:
            await client.get_page(TOKEN)
    assert not isinstance(info.value, TimeoutError)


async def test_timeout_is_a_transport_error_that_is_also_a_timeout_error(
    mocked: aioresponses,
) -> None:
    mocked.get(TASKS_URL, exception=TimeoutError())
    async with make_client() as client:
        with pytest.raises(st.RequestTimeoutError) as info:
            await client.get_page(TOKEN)
    assert isinstance(info.value, st.TransportError)
    assert isinstance(info.value, TimeoutError)


async def test_undecodable_task_names_task_and_page(mocked: aioresponses) -> None:
    # An eager converter refuses the page, naming the task, the path and the page.
    bad = dict(SAMPLE_TASK, created="not a time")
    mocked.get(TASKS_URL, payload=ok_body([bad]))
    async with make_client(converter=st.make_converter(lazy=False)) as client:
        with pytest.raises(st.DecodeError) as info:
            await client.get_page(TOKEN, page=4)
    assert info.value.task_id == SAMPLE_TASK["task_id"]
    assert info.value.json_path.endswith(".created")
    assert info.value.page == 4
    assert "UTOK-xyz" not in str(info.value)


async def test_undecodable_task_raises_when_first_read_with_the_default_converter(
    mocked: aioresponses,
) -> None:
    # The package's converter keeps a task as sent until it is read: the page comes, the
    # first read of the bad task raises (every read), and it encodes back as it came.
    bad = dict(SAMPLE_TASK, created="not a time")
    mocked.get(TASKS_URL, payload=ok_body([bad]))
    async with make_client() as client:
        page = await client.get_page(TOKEN, page=4)
    (task,) = page.tasks
    assert task.task_id == SAMPLE_TASK["task_id"]
    for _ in range(2):
        with pytest.raises(st.DecodeError) as info:
            task.created  # noqa: B018
        assert info.value.task_id == SAMPLE_TASK["task_id"]
        assert info.value.json_path == "$.created"
        assert (info.value.space_token, info.value.page) == (TOKEN, 4)
        assert "UTOK-xyz" not in str(info.value) and "UTOK-xyz" not in repr(info.value)
    assert st.encode_task(task) == bad


def test_no_api_key_anywhere_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNPOD_API_KEY", raising=False)
    with pytest.raises(st.ConfigurationError, match="UNPOD_API_KEY"):
        Client()


def test_environment_supplies_key_base_url_and_org(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNPOD_API_KEY", KEY)
    monkeypatch.setenv("UNPOD_BASE_URL", "https://example.test/")
    monkeypatch.setenv("UNPOD_ORG_HANDLE", "org-x")
    client = Client()
    assert client.base_url == "https://example.test"
    assert client.org_handle == "org-x"


def test_base_url_defaults_to_unpod_ai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNPOD_BASE_URL", raising=False)
    assert Client(KEY).base_url == "https://unpod.ai"


def test_api_key_is_absent_from_repr_and_str() -> None:
    client = make_client()
    assert KEY not in repr(client)
    assert KEY not in str(client)
    assert KEY not in repr(vars(client))


async def test_api_key_never_reaches_a_log_line_even_at_debug(
    mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mocked.get(TASKS_URL, status=503, body="<html>down</html>")
    mocked.get(TASKS_URL, status=429, payload={}, headers={"Retry-After": "0"})
    mocked.get(TASKS_URL, payload=ok_body())
    async with make_client(retry=RetryPolicy(max_attempts=3), sleep=no_sleep) as client:
        await client.get_page(TOKEN)
    assert caplog.records, "expected retry log lines"
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert "UTOK-xyz" not in record.getMessage()


async def test_borrowed_session_is_left_open_and_owned_one_is_closed(
    mocked: aioresponses,
) -> None:
    mocked.get(TASKS_URL, payload=ok_body(), repeat=True)
    async with aiohttp.ClientSession() as session:
        async with make_client(session=session) as client:
            await client.get_page(TOKEN)
        assert not session.closed
    client = make_client()
    async with client:
        await client.get_page(TOKEN)
        owned = client._session
    assert owned is not None and owned.closed


async def test_a_closed_client_refuses_requests() -> None:
    client = make_client()
    async with client:
        pass
    with pytest.raises(st.SpaceTasksError, match="closed"):
        await client.get_page(TOKEN)


async def test_user_token_inside_a_task_is_absent_from_repr(mocked: aioresponses) -> None:
    mocked.get(TASKS_URL, payload=ok_body())
    async with make_client() as client:
        page = await client.get_page(TOKEN)
    assert "UTOK-xyz" not in repr(page)
    assert page.tasks[0].user_info is not None
    assert page.tasks[0].user_info.user_token == "UTOK-xyz"


async def test_callback_sees_exactly_what_was_sent(mocked: aioresponses) -> None:
    seen: list[str] = []

    def callback(url: Any, **kw: Any) -> CallbackResult:
        seen.append(str(url))
        return CallbackResult(payload=ok_body([]), status=200)

    mocked.get(TASKS_URL, callback=callback)
    async with make_client() as client:
        await client.get_page(TOKEN, page=9, page_size=7)
    assert seen == [f"{BASE}/api/v2/platform/spaces/{TOKEN}/tasks/?page=9&page_size=7"]


async def test_undecodable_space_names_the_item_and_path(mocked: aioresponses) -> None:
    body = {
        "count": 2,
        "status_code": 200,
        "message": "Spaces fetched successfully",
        "data": [{"token": "A", "name": "ok"}, {"token": "B", "created_at": 12}],
    }
    mocked.get(re.compile(r"^https://unpod\.test/api/v2/platform/spaces/\?.*$"), payload=body)
    async with make_client(org_handle="acme") as client:
        with pytest.raises(st.DecodeError) as info:
            [s async for s in client.iter_spaces()]
    assert str(info.value).startswith("cannot decode a space at $.data[1].created_at")


SECRET_BODIES: list[tuple[str, int, str]] = [
    ("html 500", 500, "<html><td>user_token: UTOK-xyz</td></html>"),
    ("python repr", 502, "{'user_info': {'user_token': 'UTOK-xyz'}}"),
    ("escaped key", 500, '{"message": "x", "data": {"user\\u005ftoken": "UTOK-xyz"}}'),
    (
        "206 errors",
        206,
        '{"status_code": 206, "message": "Tasks Fetch Failed", '
        '"errors": "bad task {\\"user_token\\": \\"UTOK-xyz\\"}"}',
    ),
    ("wrong shape", 200, '{"count": 1, "status_code": 200, "data": {"user_token": "UTOK-xyz"}}'),
]


@pytest.mark.parametrize(
    ("status", "body"), [b[1:] for b in SECRET_BODIES], ids=[b[0] for b in SECRET_BODIES]
)
async def test_a_users_token_in_an_error_body_never_reaches_the_error(
    mocked: aioresponses, status: int, body: str
) -> None:
    mocked.get(TASKS_URL, status=status, body=body)
    async with make_client() as client:
        with pytest.raises(st.SpaceTasksError) as info:
            await client.get_page(TOKEN)
    exc: BaseException | None = info.value
    while exc is not None:  # the whole chain, as a traceback would print it
        for text in (str(exc), repr(exc), repr(vars(exc))):
            assert "UTOK-xyz" not in text
            assert KEY not in text
        exc = exc.__cause__ or exc.__context__


async def test_a_transport_error_does_not_chain_aiohttps_request_with_the_key(
    mocked: aioresponses,
) -> None:
    mocked.get(TASKS_URL, exception=aiohttp.ClientConnectionError("reset"))
    async with make_client() as client:
        with pytest.raises(st.TransportError) as info:
            await client.get_page(TOKEN)
    assert info.value.__cause__ is None


async def test_a_redirect_is_an_error_naming_where_and_is_not_retried(
    mocked: aioresponses,
) -> None:
    mocked.get(TASKS_URL, status=301, headers={"Location": "https://new.example/api/"})
    async with make_client(retry=RetryPolicy(max_attempts=3), sleep=no_sleep) as client:
        with pytest.raises(st.HTTPStatusError, match=re.escape("https://new.example/api/")):
            await client.get_page(TOKEN)
    assert len(sent(mocked)) == 1


@pytest.mark.parametrize(
    ("kw", "what"),
    [
        ({"base_url": "https://user:pw@unpod.test"}, "credentials"),
        ({"org_handle": "acme\r\nX-Evil: 1"}, "org_handle"),
        ({"api_key": "k\n"}, "API key"),
    ],
)
def test_bad_configuration_is_refused_at_construction(kw: dict[str, str], what: str) -> None:
    kw = {"api_key": KEY, "base_url": BASE, **kw}
    with pytest.raises(st.ConfigurationError, match=what):
        Client(**kw)


@pytest.mark.parametrize(
    "body",
    [
        '{"count": "a-value-of-the-body", "status_code": 200, "data": []}',
        '{"count": 1, "status_code": "a-value-of-the-body", "data": []}',
    ],
)
async def test_protocol_errors_name_a_wrong_value_by_its_type_not_its_content(
    mocked: aioresponses, body: str
) -> None:
    mocked.get(TASKS_URL, body=body)
    async with make_client() as client:
        with pytest.raises(st.ProtocolError) as info:
            await client.get_page(TOKEN)
    assert "a-value-of-the-body" not in info.value.message
    assert "str" in info.value.message


# -- Client(converter=...) -------------------------------------------------------------------


# The user's class and converter are the converter tests' (one example of a user's hook).
from test_converter import Lead  # noqa: E402  (tests/ is on sys.path)
from test_converter import _lead_converter as lead_converter  # noqa: E402


async def test_a_users_converter_decodes_every_task_of_a_walk(serve: Serve) -> None:
    theirs = lead_converter()
    async with serve(seed=3, spaces=[250], client={"converter": theirs}) as (server, client):
        token = server.space_tokens[0]
        assert client.converter is theirs
        async with client.iter_tasks(token, page_size=40, window=4) as walk:
            tasks = [task async for task in walk]
        page = await client.get_page(token, page=2, page_size=10)
        async with client.harvest([token], page_size=50) as harvest:
            harvested = [item.task async for item in harvest]
        # The package's own client still hands out plain dicts.
        async with Client(server.api_key, base_url=server.base_url) as plain:
            first = await plain.get_page(token, page_size=1)
    assert len(tasks) == len(harvested) == 250
    for task in [*tasks, *page.tasks, *harvested]:
        assert type(task.input) is Lead
    assert len({t.task_id for t in tasks}) == 250
    raw = first.tasks[0].input
    assert isinstance(raw, dict)
    assert tasks[0].input == Lead(**raw)  # the same object, decoded by the user's hook


@pytest.mark.parametrize(
    "bad",
    [object(), cattrs.Converter(), cattrs.BaseConverter(), package_converter.structure],
    ids=["object", "plain cattrs Converter", "BaseConverter", "a function"],
)
def test_a_converter_not_derived_from_the_packages_is_refused(bad: Any) -> None:
    with pytest.raises(st.ConfigurationError, match="make_converter"):
        make_client(converter=bad)


def test_a_copy_of_a_package_converter_is_accepted() -> None:
    conv = make_converter().copy()
    assert make_client(converter=conv).converter is conv
    assert make_client().converter is package_converter


# -- no global side effects ------------------------------------------------------------------


async def test_a_walk_and_a_harvest_never_touch_the_garbage_collector(
    monkeypatch: pytest.MonkeyPatch,
    serve: Serve,
) -> None:
    def forbidden(*_: object) -> None:
        raise AssertionError("the library toggled the process-wide garbage collector")

    for name in ("disable", "enable", "freeze", "unfreeze", "set_threshold"):
        monkeypatch.setattr(gc, name, forbidden)
    async with serve(seed=4, spaces=[300, 20]) as (server, client):
        tokens = server.space_tokens
        async with client.iter_tasks(tokens[0], page_size=25, window=8) as walk:
            assert len([t async for t in walk]) == 300
        async with client.harvest(tokens, page_size=10) as harvest:
            assert len([i async for i in harvest]) == 320
    assert gc.isenabled()


def test_make_converter_is_exported_from_the_package() -> None:
    assert st.make_converter is make_converter
    assert "make_converter" in st.__all__
    assert st.converter is package_converter
