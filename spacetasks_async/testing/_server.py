"""An in-process, Unpod-compatible HTTP server (aiohttp.web) with test controls.

It behaves like the *real* server (see the API notes): a 206 for business-logic errors, a
default page size of 50, ``page_size=0`` meaning "everything", newest first, naive UTC
timestamps, no ``_id``. On top of that it has knobs for tests and benchmarks: latency,
a request log and in-flight counters, hooks, a pause gate, drift (tasks created or deleted
while a client pages) and faults (5xx, 429, dropped connections, truncated bodies, ...).
"""

from __future__ import annotations

import asyncio
import email.utils
import hmac
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

import attrs
import orjson
from aiohttp import web

from ._config import DriftPlan, Endpoint, FaultKind, FaultPlan, ServerConfig
from ._data import SpaceData, SpaceInfo, derive_seed, generate_spaces

__all__ = [
    "Hook",
    "RequestRecord",
    "ServerStats",
    "TaskRequest",
    "UnpodServer",
]

HOST: Final = "127.0.0.1"
_API: Final = "/api/v2/platform/spaces/"
_AUTH_SCHEMES: Final = frozenset({"token", "bearer", "jwt"})
_ORG_ID: Final = 7001

_MSG_TASKS_OK: Final = "Tasks Fetched Successfully"
_MSG_SPACES_OK: Final = "Spaces fetched successfully"
_MSG_SPACE_OK: Final = "Space fetched successfully"
_MSG_INVALID_TOKEN: Final = "Invalid Space Token"
_MSG_NO_ACCESS: Final = "You Don't have Access to this Space"
_MSG_FETCH_FAILED: Final = "Tasks Fetch Failed"

# Faults answered instead of the real answer; the others (SLOW, DROP_MID_BODY,
# TRUNCATED_JSON) need or delay the real answer.
_REPLACING_FAULTS: Final = frozenset(
    {
        FaultKind.HTTP_500_JSON,
        FaultKind.HTTP_500_HTML,
        FaultKind.HTTP_502,
        FaultKind.HTTP_503,
        FaultKind.HTTP_504,
        FaultKind.HTTP_429,
        FaultKind.HTTP_429_DATE,
        FaultKind.HTTP_429_BARE,
        FaultKind.BACKEND_206,
    }
)

_DJANGO_500: Final = (
    b'<!doctype html>\n<html lang="en">\n<head>\n  <title>Server Error (500)</title>\n'
    b"</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n"
)


def _nginx_page(status: int, reason: str) -> bytes:
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


@attrs.frozen
class TaskRequest:
    """What a hook learns about a tasks request before it is served."""

    seq: int
    """Sequence number of the request among all requests (1-based)."""
    space_token: str
    page: int
    """The effective page (the default 1 if absent or not an integer)."""
    page_size: int
    """The effective page size (the default if absent or not an integer)."""
    attempt: int
    """How many times this (token, page, page_size) was requested, this one included."""
    query: Mapping[str, str]


Hook = Callable[[TaskRequest], Awaitable[None]]
"""An async callback run for each tasks request before it is served."""


@attrs.define
class RequestRecord:
    """One entry of the request log. ``Authorization`` is redacted."""

    seq: int
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    endpoint: Endpoint | None = None
    space_token: str | None = None
    status: int | None = None
    """HTTP status sent; None if the handler was cancelled or the connection dropped."""
    fault: FaultKind | None = None


@attrs.define
class ServerStats:
    """Counters of the server since it started or since ``reset_stats()``."""

    requests: int = 0
    requests_by_space: Counter[str] = attrs.field(factory=Counter)
    """Tasks requests per space token (invalid tokens included)."""
    faults: Counter[FaultKind] = attrs.field(factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0


@attrs.define
class _Scripted:
    kind: FaultKind
    remaining: int
    token: str | None
    page: int | None
    endpoint: Endpoint


def _int_or(value: str | None, default: int) -> int:
    # The real server falls back to the default for anything int() refuses.
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        return default


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _fetch_failed(text: str) -> web.Response:
    return _json(
        {
            "status_code": 206,
            "message": _MSG_FETCH_FAILED,
            "data": {"errors": text},
            "errors": text,
        },
        status=206,
    )


def _business_error(message: str) -> web.Response:
    return _json({"status_code": 206, "message": message, "data": {}}, status=206)


class UnpodServer:
    """A local Unpod-compatible server on an ephemeral 127.0.0.1 port.

    Use as ``async with UnpodServer(seed=1, spaces=[100, 0, 5000]) as server: ...`` or
    ``UnpodServer(config)``; keyword arguments override fields of :class:`ServerConfig`.
    """

    def __init__(self, config: ServerConfig | None = None, /, **overrides: Any) -> None:
        base = config if config is not None else ServerConfig()
        self.config: ServerConfig = attrs.evolve(base, **overrides) if overrides else base
        cfg = self.config
        self._api_key = cfg.resolved_api_key
        infos = generate_spaces(cfg.seed, cfg.space_sizes, extra=cfg.no_access_spaces)
        n_ok = len(cfg.space_sizes)
        names = cfg.space_names[:n_ok]
        infos[: len(names)] = [attrs.evolve(i, name=n) for i, n in zip(infos, names, strict=False)]
        self._data: dict[str, SpaceData] = {
            info.token: SpaceData(info, _ORG_ID) for info in infos[:n_ok]
        }
        self._by_id: dict[str, SpaceData] = {d.info.id: d for d in self._data.values()}
        self._no_access: tuple[str, ...] = tuple(
            [i.token for i in infos[n_ok:]] + sorted(cfg.no_access_tokens)
        )
        self._no_access_set = frozenset(self._no_access)
        self._latency_rng = random.Random(derive_seed("latency", cfg.seed))
        self._fault_plan = cfg.fault_plan
        self._drift_plan = cfg.drift_plan
        self._drift_rng = random.Random(
            derive_seed("drift", cfg.drift_plan.seed if cfg.drift_plan else 0)
        )
        self._fault_count = 0
        self._faults_per_key: Counter[tuple[Any, ...]] = Counter()
        self._attempts: Counter[tuple[Any, ...]] = Counter()
        self._drift_seen: Counter[str] = Counter()
        self._scripted: list[_Scripted] = []
        self._hooks: list[Hook] = []
        self._seq = 0
        self._stats = ServerStats()
        self._log: list[RequestRecord] = []
        self._gate = asyncio.Event()
        self._gate.set()
        self._changed = asyncio.Event()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def __repr__(self) -> str:
        # No api key here: reprs end up in logs.
        where = self.base_url if self._port is not None else "not started"
        return f"<UnpodServer {where} spaces={len(self._data)} seed={self.config.seed}>"

    # --- lifecycle -----------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(_API, self._handle_spaces)
        app.router.add_get(_API + "{space_token}/", self._handle_space)
        app.router.add_get(_API + "{space_token}/tasks/", self._handle_tasks)
        return app

    async def start(self) -> None:
        """Bind 127.0.0.1 and start serving."""
        if self._runner is not None:
            raise RuntimeError("the server is already started")
        runner = web.AppRunner(
            self._make_app(),
            access_log=None,
            # A client that hangs up (e.g. on a SLOW answer) cancels its handler.
            handler_cancellation=True,
            shutdown_timeout=0.5,
        )
        await runner.setup()
        site = web.TCPSite(runner, HOST, self.config.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def close(self) -> None:
        """Stop serving; requests still held (paused, hooks, SLOW) are cancelled."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for task in list(self._handlers):
            task.cancel()
        await runner.cleanup()

    async def __aenter__(self) -> UnpodServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- identity ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        return f"http://{HOST}:{self.port}"

    @property
    def api_key(self) -> str:
        """The one api key accepted."""
        return self._api_key

    @property
    def org_handle(self) -> str:
        """The one organisation handle known."""
        return self.config.org_handle

    @property
    def spaces(self) -> list[SpaceInfo]:
        """The accessible spaces, newest first (the order of the spaces list)."""
        return [d.info for d in reversed(self._data.values())]

    @property
    def space_tokens(self) -> list[str]:
        """Tokens of the accessible spaces, in configuration order."""
        return list(self._data)

    @property
    def no_access_tokens(self) -> list[str]:
        """Tokens that exist but the key has no access to (206 "no access")."""
        return list(self._no_access)

    def space_data(self, token: str) -> SpaceData:
        """The live data structure of a space (for white-box tests)."""
        return self._data[token]

    # --- observability -------------------------------------------------------------------

    @property
    def stats(self) -> ServerStats:
        """Request counters (live object)."""
        return self._stats

    @property
    def request_log(self) -> list[RequestRecord]:
        """Every request since start or ``reset_stats()``, in arrival order."""
        return self._log

    def reset_stats(self) -> None:
        """Clear the log and counters; ``max_in_flight`` restarts from the current value."""
        in_flight = self._stats.in_flight
        self._stats = ServerStats(in_flight=in_flight, max_in_flight=in_flight)
        self._log = []

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # The waits take a timeout (ASYNC109) on purpose: a test whose condition never comes
    # true must fail, not hang.
    async def _wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    async def wait_in_flight(self, n: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until at least ``n`` requests are in flight (raises TimeoutError)."""
        await self._wait_for(lambda: self._stats.in_flight >= n, timeout)

    async def wait_idle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until no request is in flight (raises TimeoutError)."""
        await self._wait_for(lambda: self._stats.in_flight == 0, timeout)

    async def wait_requests(self, n: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until at least ``n`` requests arrived since the last reset."""
        await self._wait_for(lambda: self._stats.requests >= n, timeout)

    # --- hooks and gate ------------------------------------------------------------------

    def add_hook(self, hook: Hook) -> None:
        """Run ``hook`` (awaited, in order of addition) for each tasks request before it is
        served; it may wait (hold the request in flight) and may change the data."""
        self._hooks.append(hook)

    def remove_hook(self, hook: Hook) -> None:
        """Remove a hook added with :meth:`add_hook`."""
        self._hooks.remove(hook)

    def pause(self) -> None:
        """Hold every new or not yet answered request until :meth:`resume`."""
        self._gate.clear()

    def resume(self) -> None:
        """Release the requests held by :meth:`pause`."""
        self._gate.set()

    # --- faults --------------------------------------------------------------------------

    @property
    def fault_plan(self) -> FaultPlan | None:
        """The random fault plan in effect."""
        return self._fault_plan

    def set_fault_plan(self, plan: FaultPlan | None) -> None:
        """Replace the random fault plan (None: no random faults)."""
        self._fault_plan = plan
        self._fault_count = 0
        self._faults_per_key.clear()

    def fail_next(
        self,
        kind: FaultKind | str,
        count: int = 1,
        token: str | None = None,
        page: int | None = None,
        endpoint: Endpoint | str = Endpoint.TASKS,
    ) -> None:
        """Make the next ``count`` matching requests fail with ``kind``.

        Matching: the endpoint (tasks by default), and the space token and effective page
        when given. Scripted faults take precedence over the random plan, oldest first.
        """
        if count < 1:
            raise ValueError("count must be >= 1")
        self._scripted.append(_Scripted(FaultKind(kind), count, token, page, Endpoint(endpoint)))

    def clear_faults(self) -> None:
        """Forget the scripted faults not used yet."""
        self._scripted.clear()

    def _pick_fault(
        self, endpoint: Endpoint, token: str, page: int, page_size: int, attempt: int
    ) -> FaultKind | None:
        for item in self._scripted:
            if (
                item.endpoint == endpoint
                and (item.token is None or item.token == token)
                and (item.page is None or item.page == page)
            ):
                item.remaining -= 1
                if item.remaining <= 0:
                    self._scripted.remove(item)
                return item.kind
        plan = self._fault_plan
        if plan is None:
            return None
        if plan.max_faults is not None and self._fault_count >= plan.max_faults:
            return None
        key = (endpoint, token, page, page_size)
        if (
            plan.max_faults_per_page is not None
            and self._faults_per_key[key] >= plan.max_faults_per_page
        ):
            return None
        kind = plan.draw(endpoint, token, page, page_size, attempt)
        if kind is not None:
            self._fault_count += 1
            self._faults_per_key[key] += 1
        return kind

    def _fault_response(self, kind: FaultKind) -> web.Response:
        retry_after = self.config.retry_after
        throttled = {
            "detail": f"Request was throttled. Expected available in {retry_after} seconds."
        }
        if kind is FaultKind.HTTP_500_JSON:
            return _json({"status_code": 500, "message": "Internal Server Error", "data": {}}, 500)
        if kind is FaultKind.HTTP_500_HTML:
            return web.Response(body=_DJANGO_500, status=500, content_type="text/html")
        if kind is FaultKind.HTTP_502:
            return web.Response(
                body=_nginx_page(502, "Bad Gateway"), status=502, content_type="text/html"
            )
        if kind is FaultKind.HTTP_503:
            return web.Response(
                body=_nginx_page(503, "Service Temporarily Unavailable"),
                status=503,
                content_type="text/html",
            )
        if kind is FaultKind.HTTP_504:
            return web.Response(
                body=_nginx_page(504, "Gateway Time-out"), status=504, content_type="text/html"
            )
        if kind is FaultKind.HTTP_429:
            response = _json(throttled, 429)
            response.headers["Retry-After"] = str(retry_after)
            return response
        if kind is FaultKind.HTTP_429_DATE:
            response = _json(throttled, 429)
            response.headers["Retry-After"] = email.utils.formatdate(
                time.time() + retry_after, usegmt=True
            )
            return response
        if kind is FaultKind.HTTP_429_BARE:
            return _json({"detail": "Request was throttled."}, 429)
        if kind is FaultKind.BACKEND_206:
            return _fetch_failed("Error while fetching tasks: backend query failed")
        raise AssertionError(f"{kind} does not replace the answer")

    async def _mangle(
        self, kind: FaultKind, request: web.Request, response: web.Response
    ) -> web.StreamResponse:
        body = response.body
        assert isinstance(body, bytes)
        if kind is FaultKind.TRUNCATED_JSON:
            cut = max(1, len(body) * 2 // 3)
            return web.Response(
                body=body[:cut], status=response.status, content_type="application/json"
            )
        # DROP_MID_BODY: announce the whole length, send half, then hang up.
        stream = web.StreamResponse(status=response.status)
        stream.content_type = "application/json"
        stream.content_length = len(body)
        await stream.prepare(request)
        await stream.write(body[: len(body) // 2])
        transport = request.transport
        if transport is not None:
            transport.close()
        # Ends the handler without aiohttp trying to finish a response on a dead connection.
        raise asyncio.CancelledError

    # --- drift ---------------------------------------------------------------------------

    @property
    def drift_plan(self) -> DriftPlan | None:
        """The drift plan in effect."""
        return self._drift_plan

    def set_drift_plan(self, plan: DriftPlan | None) -> None:
        """Replace the drift plan (None: no drift); its random stream restarts from its seed."""
        self._drift_plan = plan
        self._drift_rng = random.Random(derive_seed("drift", plan.seed if plan else 0))
        self._drift_seen.clear()

    def _apply_drift(self, space: SpaceData, plan: DriftPlan) -> None:
        if plan.create_per_request:
            space.create(plan.create_per_request)
        for _ in range(plan.delete_per_request):
            live = space.live_count
            if live == 0:
                break
            (index,) = space.indices(self._drift_rng.randrange(live), 1)
            space.delete_index(index)

    def create_tasks(self, token: str, n: int) -> list[str]:
        """Add ``n`` tasks as the newest of the space; their ids, newest first."""
        if n < 0:
            raise ValueError("n must be >= 0")
        space = self._data[token]
        return [space.task_id(i) for i in space.create(n)]

    def delete_tasks(self, token: str, task_ids: Iterable[str]) -> int:
        """Delete tasks by id; unknown or already deleted ids are ignored. Number deleted."""
        space = self._data[token]
        deleted = 0
        for task_id in task_ids:
            index = space.index_of(task_id)
            if index is not None and space.delete_index(index):
                deleted += 1
        return deleted

    def delete_at(self, token: str, positions: Iterable[int]) -> list[str]:
        """Delete the tasks at these positions of the current server order (0 = newest),
        all resolved before any is deleted; the deleted ids."""
        space = self._data[token]
        live = space.live_count
        indices: list[int] = []
        for position in sorted(set(positions)):
            if not 0 <= position < live:
                raise IndexError(f"position {position} out of range (count {live})")
            indices.extend(space.indices(position, 1))
        for index in indices:
            space.delete_index(index)
        return [space.task_id(i) for i in indices]

    # --- truth for tests -----------------------------------------------------------------

    def expected_tasks(self, token: str) -> list[dict[str, Any]]:
        """Every task of the space as the server would send it now, in server order."""
        space = self._data[token]
        return [orjson.loads(space.render(i)) for i in space.indices(0, None)]

    def expected_task_ids(self, token: str) -> list[str]:
        """The ``task_id`` of every task of the space now, in server order."""
        space = self._data[token]
        return [space.task_id(i) for i in space.indices(0, None)]

    # --- request handling ----------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.strip().partition(" ")
        if scheme.lower() not in _AUTH_SCHEMES:
            return False
        return hmac.compare_digest(key.strip().encode(), self._api_key.encode())

    def _redacted_headers(self, request: web.Request) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            if name.lower() == "authorization":
                scheme = value.strip().partition(" ")[0]
                value = f"{scheme} <redacted>" if scheme else "<redacted>"
            elif self._api_key in value:
                value = value.replace(self._api_key, "<redacted>")
            headers[name] = value
        return headers

    async def _serve(
        self,
        request: web.Request,
        endpoint: Endpoint,
        answer: Callable[[web.Request, RequestRecord], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        self._seq += 1
        query = {key: request.query.getall(key)[-1] for key in request.query}
        record = RequestRecord(
            seq=self._seq,
            method=request.method,
            path=request.path,
            query=query,
            headers=self._redacted_headers(request),
            endpoint=endpoint,
            space_token=request.match_info.get("space_token"),
        )
        stats = self._stats
        self._log.append(record)
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._notify()
        try:
            await self._gate.wait()
            cfg = self.config
            if cfg.latency > 0 or cfg.latency_jitter > 0:
                delay = cfg.latency + self._latency_rng.random() * cfg.latency_jitter
                await asyncio.sleep(delay)
            response = await answer(request, record)
            record.status = response.status
            return response
        finally:
            if record.fault is not None:
                # The stats object may have been replaced by reset_stats() meanwhile.
                self._stats.faults[record.fault] += 1
            if task is not None:
                self._handlers.discard(task)
            self._stats.in_flight -= 1
            self._notify()

    def _check_auth(self, request: web.Request) -> web.Response | None:
        """The real server's 401: a body without ``data``."""
        if self._authorized(request):
            return None
        return _json({"message": "Invalid token.", "status_code": 401}, 401)

    def _check_org(self, request: web.Request) -> web.Response | None:
        handle = request.headers.get("Org-Handle")
        if not handle:
            return _json(
                {"status_code": 400, "message": "Org-Handle header is required", "data": {}}, 400
            )
        if handle != self.config.org_handle:
            return _json({"message": "Organization not found"}, 404)
        return None

    def _space_fault(
        self, endpoint: Endpoint, record: RequestRecord, token: str, page: int, size: int
    ) -> FaultKind | None:
        attempt_key = (endpoint, token, page, size)
        self._attempts[attempt_key] += 1
        fault = self._pick_fault(endpoint, token, page, size, self._attempts[attempt_key])
        record.fault = fault
        return fault

    async def _finish(
        self, request: web.Request, record: RequestRecord, response: web.Response
    ) -> web.StreamResponse:
        fault = record.fault
        if fault is FaultKind.DROP_MID_BODY or fault is FaultKind.TRUNCATED_JSON:
            # The status line goes out even when the body is then cut.
            record.status = response.status
            return await self._mangle(fault, request, response)
        return response

    async def _pre_fault(self, fault: FaultKind | None) -> web.Response | None:
        if fault is None:
            return None
        if fault in _REPLACING_FAULTS:
            return self._fault_response(fault)
        if fault is FaultKind.SLOW:
            await asyncio.sleep(self.config.slow_seconds)
        return None

    async def _handle_spaces(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, Endpoint.SPACES, self._answer_spaces)

    async def _answer_spaces(
        self, request: web.Request, record: RequestRecord
    ) -> web.StreamResponse:
        error = self._check_auth(request) or self._check_org(request)
        if error is not None:
            return error
        cfg = self.config
        page = _int_or(record.query.get("page"), 1)
        size = _int_or(record.query.get("page_size"), cfg.default_page_size)
        fault = self._space_fault(Endpoint.SPACES, record, "", page, size)
        replaced = await self._pre_fault(fault)
        if replaced is not None:
            return replaced
        spaces = [info.as_json() for info in self.spaces]
        data = spaces
        if cfg.paginate_spaces:
            if page <= 0 or size < 0:
                return _json({"status_code": 400, "message": "Invalid page", "data": {}}, 400)
            data = spaces if size == 0 else spaces[(page - 1) * size : page * size]
        body = {"count": len(spaces), "status_code": 200, "message": _MSG_SPACES_OK, "data": data}
        return await self._finish(request, record, _json(body))

    async def _handle_space(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, Endpoint.SPACE, self._answer_space)

    async def _answer_space(
        self, request: web.Request, record: RequestRecord
    ) -> web.StreamResponse:
        error = self._check_auth(request) or self._check_org(request)
        if error is not None:
            return error
        token = request.match_info["space_token"]
        fault = self._space_fault(Endpoint.SPACE, record, token, 1, 0)
        replaced = await self._pre_fault(fault)
        if replaced is not None:
            return replaced
        if token in self._no_access_set:
            return _business_error(_MSG_NO_ACCESS)
        space = self._data.get(token)
        if space is None:
            return _business_error(_MSG_INVALID_TOKEN)
        body = {"status_code": 200, "message": _MSG_SPACE_OK, "data": space.info.as_json()}
        return await self._finish(request, record, _json(body))

    async def _handle_tasks(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, Endpoint.TASKS, self._answer_tasks)

    async def _answer_tasks(
        self, request: web.Request, record: RequestRecord
    ) -> web.StreamResponse:
        error = self._check_auth(request)
        if error is not None:
            return error
        token = request.match_info["space_token"]
        query = record.query
        page = _int_or(query.get("page"), 1)
        size = _int_or(query.get("page_size"), self.config.default_page_size)
        self._stats.requests_by_space[token] += 1
        attempt_key = (Endpoint.TASKS, token, page, size)
        self._attempts[attempt_key] += 1
        info = TaskRequest(
            seq=record.seq,
            space_token=token,
            page=page,
            page_size=size,
            attempt=self._attempts[attempt_key],
            query=dict(query),
        )
        for hook in list(self._hooks):
            await hook(info)
        fault = self._pick_fault(Endpoint.TASKS, token, page, size, info.attempt)
        record.fault = fault
        replaced = await self._pre_fault(fault)
        if replaced is not None:
            return replaced

        if token in self._no_access_set:
            return _business_error(_MSG_NO_ACCESS)
        space = self._data.get(token)
        if space is None:
            return _business_error(_MSG_INVALID_TOKEN)
        space_id = query.get("space_id")
        if space_id is not None and self.config.honour_space_id_param:
            # The real server forwards every parameter to its backend, and this one wins
            # over the space the token authorised.
            space = self._by_id.get(space_id, space)
        if page <= 0:
            return _fetch_failed("Invalid page: That page number is less than 1")
        if size < 0:
            return _fetch_failed("Invalid page size: must not be negative")

        plan = self._drift_plan
        drift = (
            plan is not None
            and (plan.tokens is None or space.info.token in plan.tokens)
            and self._drift_seen[space.info.token] >= plan.start_after
        )
        self._drift_seen[space.info.token] += 1
        if drift and plan is not None and not plan.between_count_and_data:
            self._apply_drift(space, plan)
        # The count is a separate query from the page itself.
        count = space.live_count
        if drift and plan is not None and plan.between_count_and_data:
            self._apply_drift(space, plan)
        if size == 0:
            tasks = space.page_bytes(0, None)
        else:
            tasks = space.page_bytes((page - 1) * size, size)
        body = b'{"count":%d,"status_code":200,"message":"%s","data":[%s]}' % (
            count,
            _MSG_TASKS_OK.encode(),
            tasks,
        )
        response = web.Response(body=body, content_type="application/json")
        return await self._finish(request, record, response)
