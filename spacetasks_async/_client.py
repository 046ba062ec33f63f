"""The session: configuration, authentication, one request, one page."""

from __future__ import annotations

import asyncio
import logging
import os
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import yarl

from ._convert import decode_space, decode_tasks
from ._errors import (
    ConfigurationError,
    DecodeError,
    HTTPStatusError,
    InvalidArgumentError,
    RequestTimeoutError,
    SpaceTasksError,
    TransportError,
    parse_envelope,
)
from ._gc import gc_paused
from ._models import Space, Task, TaskPage
from ._retry import RateController, RetryEvent, RetryPolicy

if TYPE_CHECKING:
    from ._harvest import Harvest
    from ._paginate import Checkpoint, PageWalk, TaskWalk

__all__ = ["DEFAULT_BASE_URL", "MAX_PAGE_SIZE", "Client"]

log = logging.getLogger("spacetasks_async")

DEFAULT_BASE_URL: Final = "https://unpod.ai"
#: The server has no maximum page size (and 0 means "everything"); a client-side ceiling
#: keeps one answer from holding a whole space in memory.
MAX_PAGE_SIZE: Final = 10_000
DEFAULT_PAGE_SIZE: Final = 100
#: Filters the backend understands beyond paging. ``space_id`` is deliberately absent: the
#: server forwards it to the backend, where it overrides the space the token authorised.
ALLOWED_FILTERS: Final = frozenset(
    {"search", "call_type", "from_ts", "to_ts", "status", "user_id", "thread_id"}
)
_TASKS_PATH: Final = "/api/v2/platform/spaces/{}/tasks/"
_SPACES_PATH: Final = "/api/v2/platform/spaces/"


def _version() -> str:
    from . import __version__

    return __version__


class _Secret:
    """Holds the API key so that no repr, log line or traceback local shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


def _is_header_safe(value: str) -> bool:
    return not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)


def validate_space_token(space_token: object) -> str:
    """Return the token as one percent-encoded path segment, or raise before any request."""
    if not isinstance(space_token, str):
        raise InvalidArgumentError(f"space_token must be a str, not {type(space_token).__name__}")
    if not space_token or not space_token.strip():
        raise InvalidArgumentError("space_token is empty")
    if "/" in space_token or "\\" in space_token:
        raise InvalidArgumentError(f"space_token {space_token!r} contains a slash")
    if space_token in {".", ".."}:
        raise InvalidArgumentError(f"space_token {space_token!r} is not a token")
    if not _is_header_safe(space_token):
        raise InvalidArgumentError("space_token contains a control character")
    return urllib.parse.quote(space_token, safe="")


def validate_page_size(page_size: object) -> int:
    """Reject a page size the client must never send (0 means "everything" on the server)."""
    if not isinstance(page_size, int) or isinstance(page_size, bool):
        raise InvalidArgumentError(f"page_size must be an int, not {type(page_size).__name__}")
    if page_size < 1:
        raise InvalidArgumentError(f"page_size must be at least 1, got {page_size}")
    if page_size > MAX_PAGE_SIZE:
        raise InvalidArgumentError(f"page_size must be at most {MAX_PAGE_SIZE}, got {page_size}")
    return page_size


def validate_page(page: object) -> int:
    """Reject a page number below 1 (the server answers those with a 206)."""
    if not isinstance(page, int) or isinstance(page, bool):
        raise InvalidArgumentError(f"page must be an int, not {type(page).__name__}")
    if page < 1:
        raise InvalidArgumentError(f"page must be at least 1, got {page}")
    return page


def _validate_filters(filters: Mapping[str, object] | None) -> dict[str, str]:
    if not filters:
        return {}
    out: dict[str, str] = {}
    for key, value in filters.items():
        if key not in ALLOWED_FILTERS:
            raise InvalidArgumentError(
                f"unknown filter {key!r}; allowed: {', '.join(sorted(ALLOWED_FILTERS))}"
            )
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise InvalidArgumentError(f"filter {key!r} must be a str or int")
        out[key] = str(value)
    return out


class Client:
    """An Unpod API session: owns (or borrows) one ``aiohttp.ClientSession``.

    Use it as an async context manager; leaving the block closes the session it created
    (a session passed in by the caller is left open).

    Unset arguments come from the environment, as in Unpod's own SDK: ``UNPOD_API_KEY``,
    ``UNPOD_BASE_URL`` (default ``https://unpod.ai``) and ``UNPOD_ORG_HANDLE``.

    Args:
        api_key: the API key, sent as ``Authorization: Token <key>``.
        base_url: scheme and host, e.g. ``https://unpod.ai``.
        org_handle: the organization's domain handle, sent as ``Org-Handle`` (needed to
            list spaces).
        timeout: total seconds for one request attempt.
        connect_timeout: seconds to establish a connection.
        retry: the :class:`RetryPolicy` (default: 8 attempts, full-jitter backoff).
        max_in_flight: ceiling on this client's requests in flight at once, across every
            walk and space; it halves on a 429 and recovers gradually.
        rate: optional ceiling in requests per second across the whole client.
        session: an ``aiohttp.ClientSession`` to use instead of creating one; not closed.
        trace_configs: ``aiohttp.TraceConfig`` objects for the session this client creates.
        on_retry: called with a :class:`RetryEvent` before each retry's wait.

    Example::

        async with Client() as client:
            async for task in client.iter_tasks("8KZAMRAHSXXXXXXMAYNASMJC"):
                print(task.task_id, task.status)
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        org_handle: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        max_in_flight: int = 32,
        rate: float | None = None,
        session: aiohttp.ClientSession | None = None,
        trace_configs: Iterable[aiohttp.TraceConfig] | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("UNPOD_API_KEY")
        if not key:
            raise ConfigurationError(
                "no API key: pass api_key=... or set the UNPOD_API_KEY environment variable"
            )
        if not _is_header_safe(key):
            raise ConfigurationError("the API key contains a control character")
        self._key = _Secret(key)
        base = base_url or os.environ.get("UNPOD_BASE_URL") or DEFAULT_BASE_URL
        parsed = yarl.URL(base)
        if parsed.user is not None or parsed.password is not None:
            raise ConfigurationError("base_url must not hold credentials; pass api_key instead")
        if parsed.scheme not in {"http", "https"} or not parsed.host:
            raise ConfigurationError(f"base_url must be an http(s) URL, got {base!r}")
        self.base_url = str(parsed).rstrip("/")
        self.org_handle = org_handle or os.environ.get("UNPOD_ORG_HANDLE") or None
        if self.org_handle is not None and not _is_header_safe(self.org_handle):
            raise ConfigurationError("org_handle contains a control character")
        if timeout <= 0 or connect_timeout <= 0:
            raise ConfigurationError("timeouts must be positive")
        if max_in_flight < 1:
            raise ConfigurationError("max_in_flight must be at least 1")
        if rate is not None and rate <= 0:
            raise ConfigurationError("rate must be positive")
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self.retry = retry if retry is not None else RetryPolicy()
        self.max_in_flight = max_in_flight
        self._control = RateController(
            self.retry, max_in_flight=max_in_flight, rate=rate, sleep=sleep
        )
        self._session = session
        self._owns_session = session is None
        self._trace_configs = list(trace_configs or ())
        self._on_retry = on_retry
        self._closed = False
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"spacetasks_async/{_version()} aiohttp/{aiohttp.__version__}",
        }
        if self.org_handle:
            headers["Org-Handle"] = self.org_handle
        self._headers = headers

    def _request_headers(self) -> dict[str, str]:
        # Built per request so that no attribute of the client holds the key in clear.
        return {**self._headers, "Authorization": f"Token {self._key.reveal()}"}

    def __repr__(self) -> str:
        return (
            f"Client(base_url={self.base_url!r}, org_handle={self.org_handle!r}, "
            f"api_key={self._key!r})"
        )

    async def __aenter__(self) -> Client:
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session this client created (a borrowed session is left open)."""
        self._closed = True
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise SpaceTasksError("this Client is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=max(self.max_in_flight, 8), limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector,
                trace_configs=self._trace_configs or None,
                raise_for_status=False,
            )
        return self._session

    # -- one request ---------------------------------------------------------------------

    async def request_envelope(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        on_retry: Callable[[RetryEvent], None] | None = None,
        data_type: type[list[Any]] | type[dict[str, Any]] = list,
        decode_data: Callable[[Any], Any] | None = None,
    ) -> dict[str, Any]:
        """GET ``path`` (already percent-encoded) and return the checked envelope.

        Retries as the client's :class:`RetryPolicy` says; raises a
        :class:`SpaceTasksError` subclass for any answer that is not a success.
        ``decode_data``, when given, replaces ``data`` with what it returns (a
        :class:`DecodeError` is not retried).
        """
        session = self._ensure_session()
        query = urllib.parse.urlencode(params or {})
        shown = f"{path}?{query}" if query else path
        url = yarl.URL(f"{self.base_url}{shown}", encoded=True)

        async def attempt() -> dict[str, Any]:
            try:
                async with session.get(
                    url,
                    headers=self._request_headers(),
                    timeout=self.timeout,
                    allow_redirects=False,
                ) as resp:
                    body = await resp.read()
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
                    location = resp.headers.get("Location")
            except TimeoutError:
                raise RequestTimeoutError(
                    f"request timed out (connect {self.timeout.connect}s, "
                    f"total {self.timeout.total}s)",
                    method="GET",
                    path=shown,
                ) from None
            except aiohttp.ClientError as exc:
                # Not chained: aiohttp's exceptions carry the request, headers (the key)
                # included, in their repr.
                raise TransportError(
                    f"{type(exc).__name__}: {exc}", method="GET", path=shown
                ) from None
            log.debug("GET %s -> %d (%d bytes)", shown, status, len(body))
            if 300 <= status < 400:
                raise HTTPStatusError(
                    f"HTTP {status}: the server redirects to {location!r}; "
                    "set base_url to where the API is",
                    status=status,
                    method="GET",
                    path=shown,
                )
            # One pause of the cyclic GC over parsing and decoding together: the collection
            # it defers then runs once per page instead of once per step.
            with gc_paused():
                envelope = parse_envelope(
                    status,
                    body,
                    method="GET",
                    path=shown,
                    retry_after=retry_after,
                    data_type=data_type,
                )
                if decode_data is not None:
                    envelope["data"] = decode_data(envelope["data"])
            return envelope

        def retried(event: RetryEvent) -> None:
            if on_retry is not None:
                on_retry(event)
            if self._on_retry is not None:
                self._on_retry(event)

        result: dict[str, Any] = await self._control.call(
            attempt, method="GET", path=shown, on_retry=retried
        )
        return result

    # -- pages ---------------------------------------------------------------------------

    async def get_page(
        self,
        space_token: str,
        page: int = 1,
        page_size: int = DEFAULT_PAGE_SIZE,
        *,
        filters: Mapping[str, str | int] | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
    ) -> TaskPage:
        """Fetch and decode one page of a space's tasks.

        Always sends ``page_size`` (the server's real default is 50, not the documented 20)
        and nothing else but ``filters`` (see ``ALLOWED_FILTERS``); never ``space_id``.

        >>> page = await client.get_page("8KZAMRAHSXXXXXXMAYNASMJC", page=2)  # doctest: +SKIP
        >>> page.count, len(page.tasks)  # doctest: +SKIP
        (45, 20)
        """
        segment = validate_space_token(space_token)
        validate_page(page)
        validate_page_size(page_size)
        params = {"page": str(page), "page_size": str(page_size), **_validate_filters(filters)}
        path = _TASKS_PATH.format(segment)
        try:
            envelope = await self.request_envelope(
                path, params, on_retry=on_retry, decode_data=decode_tasks
            )
            tasks: list[Task] = envelope["data"]
        except SpaceTasksError as exc:
            raise exc.with_context(space_token=space_token, page=page) from None
        count = envelope.get("count")
        return TaskPage(
            page=page,
            page_size=page_size,
            count=count if isinstance(count, int) else None,
            tasks=tuple(tasks),
            status_code=envelope.get("status_code", 200),
            message=envelope.get("message"),
        )

    def iter_pages(
        self,
        space_token: str,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        start_page: int = 1,
        max_items: int | None = None,
        window: int = 8,
        filters: Mapping[str, str | int] | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> PageWalk:
        """Walk a space page by page, prefetching up to ``window`` pages concurrently.

        See :class:`PageWalk`. Pages come in order; tasks already yielded earlier in the
        walk (page drift) are removed from later pages.
        """
        from ._paginate import PageWalk

        return PageWalk(
            self,
            space_token,
            page_size=page_size,
            start_page=start_page,
            max_items=max_items,
            window=window,
            filters=filters,
            checkpoint=checkpoint,
        )

    def iter_tasks(
        self,
        space_token: str,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        start_page: int = 1,
        max_items: int | None = None,
        window: int = 8,
        filters: Mapping[str, str | int] | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> TaskWalk:
        """Every task of a space, in the server's order, each exactly once.

        Example::

            async with client.iter_tasks(token, max_items=500) as tasks:
                async for task in tasks:
                    ...
            print(tasks.stats)
        """
        from ._paginate import TaskWalk

        return TaskWalk(
            self.iter_pages(
                space_token,
                page_size=page_size,
                start_page=start_page,
                max_items=max_items,
                window=window,
                filters=filters,
                checkpoint=checkpoint,
            )
        )

    # -- spaces --------------------------------------------------------------------------

    def _require_org(self) -> None:
        if not self.org_handle:
            raise ConfigurationError(
                "listing spaces needs an organization handle: pass org_handle=... or set "
                "UNPOD_ORG_HANDLE"
            )

    async def get_space(self, space_token: str) -> Space:
        """Fetch one space by its token."""
        self._require_org()
        segment = validate_space_token(space_token)
        try:
            envelope = await self.request_envelope(f"{_SPACES_PATH}{segment}/", data_type=dict)
            return decode_space(envelope["data"])
        except SpaceTasksError as exc:
            raise exc.with_context(space_token=space_token, page=None) from None

    async def iter_spaces(self, *, page_size: int = 100) -> AsyncIterator[Space]:
        """Every space of the organization (needs ``org_handle``).

        The server answers the whole list at once today; if it ever pages, the remaining
        pages are walked too, and a space is never yielded twice.
        """
        self._require_org()
        validate_page_size(page_size)
        seen: set[str] = set()
        page = 1
        while True:
            envelope = await self.request_envelope(
                _SPACES_PATH, {"page": str(page), "page_size": str(page_size)}
            )
            data = envelope["data"]
            fresh = 0
            for index, item in enumerate(data):
                try:
                    space = decode_space(item)
                except DecodeError as exc:
                    raise DecodeError(
                        exc.reason, path=f"$.data[{index}]{exc.json_path[1:]}", subject="space"
                    ) from None
                key = space.token or f"id:{space.id}"
                if key in seen:
                    continue
                seen.add(key)
                fresh += 1
                yield space
            count = envelope.get("count")
            if not data or fresh == 0 or not isinstance(count, int) or len(seen) >= count:
                return
            page += 1

    def harvest(
        self,
        space_tokens: Iterable[str] | None = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        concurrency: int | None = None,
        window: int = 4,
        max_items_per_space: int | None = None,
        fail_fast: bool = False,
        checkpoints: Mapping[str, Checkpoint] | None = None,
    ) -> Harvest:
        """Walk many spaces concurrently under one limit; see :class:`Harvest`."""
        from ._harvest import Harvest

        return Harvest(
            self,
            None if space_tokens is None else list(space_tokens),
            page_size=page_size,
            concurrency=self.max_in_flight if concurrency is None else concurrency,
            window=window,
            max_items_per_space=max_items_per_space,
            fail_fast=fail_fast,
            checkpoints=checkpoints,
        )
