"""The session: configuration, authentication, one request, one page."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import math
import os
import urllib.parse
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import cattrs
import yarl

from ._convert import converter as _package_converter
from ._convert import (
    decode_space,
    decode_tasks,
    defers_tasks,
    derived_from_package,
    mark_source,
)
from ._errors import (
    ConfigurationError,
    DecodeError,
    HTTPStatusError,
    InsecureTransportWarning,
    InvalidArgumentError,
    RequestTimeoutError,
    ResponseTooLargeError,
    SecretScrubber,
    SpaceTasksError,
    TransportError,
    parse_envelope,
    parse_page_envelope,
    snippet_of,
)
from ._models import Space, Task, TaskPage
from ._paginate import DEFAULT_WINDOW, PageWalk, TaskWalk
from ._plan import Checkpoint
from ._retry import RateController, RetryEvent, RetryPolicy
from ._validate import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_IN_FLIGHT,
    MAX_BODY_BYTES,
    MAX_IN_FLIGHT,
    MAX_PAGE_SIZE,
    MIN_BODY_BYTES,
    validate_header_value,
    validate_limit,
    validate_page,
    validate_page_size,
    validate_space_token,
)

if TYPE_CHECKING:
    from ._harvest import Harvest, SpaceEvent
    from ._sync import Sync, SyncState

# The validators and MAX_PAGE_SIZE live in ._validate; they are re-exported here because
# other modules (and users) have always imported them from this one.
__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_PAGE_SIZE",
    "Client",
    "validate_page",
    "validate_page_size",
    "validate_space_token",
]

log = logging.getLogger("spacetasks_async")

DEFAULT_BASE_URL: Final = "https://unpod.ai"
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


def _positive_number(name: str, value: object) -> float:
    # nan and inf pass a plain "> 0" test; neither is a timeout or a rate.
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: 127.0.0.0/8, ::1 (also IPv4-mapped), localhost."""
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always loopback
        return True
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _check_base_url(base: str) -> str:
    """The base URL without a trailing slash, or :class:`ConfigurationError`.

    Only scheme, host, optional port and optional path prefix are allowed: the client
    appends ``/api/v2/...`` and a query to it as text, so a query, fragment or ``;params``
    would swallow or misroute every request (``GET /?q=1/api/v2/...``), and credentials in
    it would be sent to wherever it points. The message never quotes the URL: a query or
    userinfo may hold a secret.
    """
    if any(ch.isspace() or not ch.isprintable() for ch in base):
        raise ConfigurationError("base_url contains a space or a control character")
    parsed: yarl.URL | None
    try:
        parsed = yarl.URL(base)
        port = parsed.port
    except (ValueError, TypeError):
        parsed = port = None
    if parsed is None:  # raised out here so that the parser's message (the URL) is not kept
        raise ConfigurationError("base_url is not a valid URL")
    if parsed.user is not None or parsed.password is not None or "@" in parsed.raw_authority:
        raise ConfigurationError("base_url must not hold credentials; pass api_key instead")
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise ConfigurationError(
            "base_url must be an http(s) URL with a host, like https://unpod.ai"
        )
    if "?" in base:
        raise ConfigurationError("base_url must not have a query ('?...')")
    if "#" in base:
        raise ConfigurationError("base_url must not have a fragment ('#...')")
    if ";" in parsed.raw_path:
        raise ConfigurationError("base_url must not have path parameters (';...')")
    if port is not None and not 0 < port < 65536:
        raise ConfigurationError(f"base_url has an invalid port {port}")
    return str(parsed).rstrip("/")


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
        api_key: the API key, sent as ``Authorization: Token <key>``: visible ASCII, at
            most 1024 characters. It is removed, in any spelling, from every text quoted
            from a server (errors, logs, retry events).
        base_url: scheme, host, optional port and optional path prefix, e.g.
            ``https://unpod.ai``; nothing else (no query, fragment or credentials). An
            ``http://`` URL to a host other than this machine sends the key in clear and
            issues an :class:`InsecureTransportWarning` (once per client).
        org_handle: the organization's domain handle, sent as ``Org-Handle`` (needed to
            list spaces); visible ASCII.
        timeout: total seconds for one request attempt, body included: a body that drips
            or never ends is cut off by it.
        connect_timeout: seconds to establish a connection.
        retry: the :class:`RetryPolicy` (default: 8 attempts, full-jitter backoff).
        max_in_flight: ceiling on this client's requests in flight at once, across every
            walk and space, from 1 to 256 (``MAX_IN_FLIGHT``; each may hold a socket, and
            many processes may open only 1024 files); it halves on a 429 and recovers
            gradually.
        rate: optional ceiling in requests per second across the whole client.
        max_body_bytes: ceiling on one response body, counted after decompression, from
            1 KiB to 16 GiB; default 64 MiB, far above a real page (100 tasks are tens to
            hundreds of KiB). A larger body, announced or read, raises
            :class:`ResponseTooLargeError` (not retried) without being read further, so a
            hostile or broken server cannot exhaust memory.
        session: an ``aiohttp.ClientSession`` to use instead of creating one; not closed.
        trace_configs: ``aiohttp.TraceConfig`` objects for the session this client creates.
        on_retry: called with a :class:`RetryEvent` before each retry's wait.
        sleep: the coroutine function used to wait between retries (tests pass a fake).
        converter: the cattrs converter every page, task and space this client fetches is
            decoded with (get_page, every walk and harvest, the command line): one made by
            :func:`~spacetasks_async.make_converter` (or a ``copy()`` of one), with your
            hooks registered on it, for instance one that decodes ``Task.input`` into your
            own class. Default: the package's converter, :data:`~spacetasks_async.converter`.
            Hooks registered on it later are used from the next page on.

    Raises:
        ConfigurationError: for any argument above that is missing or out of bounds, or a
            converter that is not a cattrs ``Converter`` derived from ``make_converter()``.

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
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        rate: float | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        session: aiohttp.ClientSession | None = None,
        trace_configs: Iterable[aiohttp.TraceConfig] | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        converter: cattrs.Converter | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("UNPOD_API_KEY")
        if not key:
            raise ConfigurationError(
                "no API key: pass api_key=... or set the UNPOD_API_KEY environment variable"
            )
        validate_header_value("the API key", key, secret=True)
        self._key = _Secret(key)
        # Built once: every text a server sends back goes through it (see _scrub).
        self._scrubber = SecretScrubber([key])
        base = base_url or os.environ.get("UNPOD_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = _check_base_url(base)
        host = yarl.URL(self.base_url).host or ""
        if self.base_url.startswith("http://") and not _is_loopback(host):
            warnings.warn(
                f"base_url {self.base_url!r} is plain http to a host that is not this "
                "machine: the API key will be sent in clear; use https",
                InsecureTransportWarning,
                stacklevel=2,
            )
        self.org_handle = org_handle or os.environ.get("UNPOD_ORG_HANDLE") or None
        if self.org_handle is not None:
            validate_header_value("org_handle", self.org_handle)
        _positive_number("timeout", timeout)
        _positive_number("connect_timeout", connect_timeout)
        validate_limit("max_in_flight", max_in_flight, 1, MAX_IN_FLIGHT, error=ConfigurationError)
        if rate is not None:
            _positive_number("rate", rate)
        self.max_body_bytes = validate_limit(
            "max_body_bytes",
            max_body_bytes,
            MIN_BODY_BYTES,
            MAX_BODY_BYTES,
            error=ConfigurationError,
        )
        if converter is None:
            converter = _package_converter
        elif not isinstance(converter, cattrs.Converter) or not derived_from_package(converter):
            # Checked here, not at the first page: a plain cattrs converter would decode
            # tasks with cattrs' own hooks, silently losing timestamps' text and nulls.
            raise ConfigurationError(
                "converter must be a cattrs Converter made by "
                "spacetasks_async.make_converter() (or a copy of one), "
                f"got {type(converter).__name__}"
            )
        #: The converter every page, task and space of this client is decoded with.
        self.converter: cattrs.Converter = converter
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
        # Per-request work done once: the percent-encoded path segment of each space token
        # seen (validating a token costs more than the rest of building the request), and
        # the page decoder bound to this client's converter.
        self._segments: dict[str, str] = {}
        self._decode_page: Callable[[Any], list[Task]] = functools.partial(
            decode_tasks, converter=converter
        )
        # A converter that keeps tasks unread takes a page's items as JSON text, which
        # msgspec splits without building them; an eager one decodes every task at once,
        # from one orjson parse of the body (cheaper for it than parsing each item).
        self._pages_as_text = defers_tasks(converter)

    def _scrub(self, text: str) -> str:
        """``text`` from a server, without the API key (any spelling) or other credentials.

        The one place server text passes before it reaches an error, a log line or an event.
        """
        return self._scrubber(text)

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

        Args:
            path: the path under ``base_url``, percent-encoded already.
            params: the query, encoded here.
            on_retry: called with a :class:`RetryEvent` before each retry's wait (as well
                as the client's own ``on_retry``).
            data_type: the type ``data`` must have (``list`` or ``dict``).
            decode_data: when given, ``data`` is replaced with what it returns (a
                :class:`DecodeError` is not retried).

        Returns:
            the envelope (``data``, ``count``, ``status_code``, ``message``, ...).
        """
        query = urllib.parse.urlencode(params or {})
        shown = f"{path}?{query}" if query else path
        return await self._request(
            shown, on_retry=on_retry, data_type=data_type, decode_data=decode_data
        )

    async def _request(
        self,
        shown: str,
        *,
        on_retry: Callable[[RetryEvent], None] | None = None,
        data_type: type[list[Any]] | type[dict[str, Any]] = list,
        decode_data: Callable[[Any], Any] | None = None,
        tasks_page: bool = False,
    ) -> dict[str, Any]:
        """:meth:`request_envelope` for a path and query encoded already (``shown``).

        ``tasks_page``: the answer is a page of tasks, whose items ``decode_data`` takes as
        JSON text (see :func:`~._errors.parse_page_envelope`).
        """
        session = self._ensure_session()
        url = yarl.URL(f"{self.base_url}{shown}", encoded=True)

        async def attempt() -> dict[str, Any]:
            timed_out = False
            failure: str | None = None
            try:
                async with session.get(
                    url,
                    headers=self._request_headers(),
                    timeout=self.timeout,
                    allow_redirects=False,
                ) as resp:
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
                    location = resp.headers.get("Location")
                    body = await self._read_body(resp, shown)
            except TimeoutError:
                timed_out = True
            except aiohttp.ClientError as exc:
                # aiohttp's parser errors quote the server's bytes: scrubbed like a body.
                failure = self._scrub(f"{type(exc).__name__}: {exc}")
            # Raised here, outside the except blocks, so that the new error has no
            # __context__: aiohttp's exceptions carry the request, headers (the key)
            # included, in their repr.
            if timed_out:
                raise RequestTimeoutError(
                    f"request timed out (connect {self.timeout.connect}s, "
                    f"total {self.timeout.total}s)",
                    method="GET",
                    path=shown,
                )
            if failure is not None:
                raise TransportError(failure, method="GET", path=shown)
            log.debug("GET %s -> %d (%d bytes)", shown, status, len(body))
            if 300 <= status < 400:
                target = self._scrub(repr(location))
                raise HTTPStatusError(
                    f"HTTP {status}: the server redirects to {target}; "
                    "set base_url to where the API is",
                    status=status,
                    method="GET",
                    path=shown,
                )
            if tasks_page:
                envelope = parse_page_envelope(
                    status,
                    body,
                    method="GET",
                    path=shown,
                    retry_after=retry_after,
                    scrub=self._scrub,
                )
            else:
                envelope = parse_envelope(
                    status,
                    body,
                    method="GET",
                    path=shown,
                    retry_after=retry_after,
                    data_type=data_type,
                    scrub=self._scrub,
                )
            if decode_data is not None:
                envelope["data"] = decode_data(envelope["data"])
            return envelope

        result: dict[str, Any] = await self._control.call(
            attempt, method="GET", path=shown, on_retry=self._both(on_retry)
        )
        return result

    def _both(
        self, on_retry: Callable[[RetryEvent], None] | None
    ) -> Callable[[RetryEvent], None] | None:
        """The request's ``on_retry`` and the client's, as one callback (None: neither)."""
        mine = self._on_retry
        if on_retry is None or mine is None:
            # No closure per request when one of them is unset, the usual case.
            return mine if on_retry is None else on_retry

        def both(event: RetryEvent) -> None:
            on_retry(event)
            mine(event)

        return both

    async def _read_body(self, resp: aiohttp.ClientResponse, shown: str) -> bytes:
        """The whole body, read in chunks under the ``max_body_bytes`` ceiling.

        Counts the bytes aiohttp hands over, which are decompressed already, so a gzip
        bomb stops at the ceiling; memory stays within the ceiling plus one chunk (and
        the join at the end). A ``Content-Length`` above the ceiling fails before any of
        the body is read. The request's total timeout bounds a body that drips forever.
        """
        limit = self.max_body_bytes
        announced = resp.content_length
        if announced is not None and announced > limit:
            raise ResponseTooLargeError(
                f"HTTP {resp.status} announces a body of {announced} bytes, above the "
                f"limit of {limit} bytes (max_body_bytes)",
                limit=limit,
                content_length=announced,
                status=resp.status,
                method="GET",
                path=shown,
            )
        chunks: list[bytes] = []
        received = 0
        async for chunk in resp.content.iter_any():
            received += len(chunk)
            if received > limit:
                head = chunks[0] if chunks else chunk
                raise ResponseTooLargeError(
                    f"HTTP {resp.status} body is larger than the limit of {limit} bytes "
                    "(max_body_bytes); stopped reading",
                    limit=limit,
                    content_length=announced,
                    received=received,
                    snippet=snippet_of(head, self._scrub),
                    status=resp.status,
                    method="GET",
                    path=shown,
                )
            chunks.append(chunk)
        return b"".join(chunks)

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
        segment = self._segments.get(space_token) if type(space_token) is str else None
        if segment is None:
            segment = validate_space_token(space_token)
            if len(self._segments) >= 4096:  # a bound, for clients that see endless spaces
                self._segments.clear()
            self._segments[space_token] = segment
        validate_page(page)
        validate_page_size(page_size)
        # The query as urlencode writes it ("page=2&page_size=100&..."), without its cost
        # for the two integers that every request has.
        shown = f"{_TASKS_PATH.format(segment)}?page={page!s}&page_size={page_size!s}"
        if filters:
            shown += "&" + urllib.parse.urlencode(_validate_filters(filters))
        try:
            envelope = await self._request(
                shown,
                on_retry=on_retry,
                decode_data=self._decode_page,
                tasks_page=self._pages_as_text,
            )
            tasks: list[Task] = envelope["data"]
        except SpaceTasksError as exc:
            raise exc.with_context(space_token=space_token, page=page) from None
        if self._pages_as_text:
            mark_source(tasks, space_token, page)  # named by a DecodeError when read
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
        window: int = DEFAULT_WINDOW,
        filters: Mapping[str, str | int] | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> PageWalk:
        """Walk a space page by page, prefetching up to ``window`` pages concurrently.

        Pages come in order and hold only tasks not handed out before in the walk; every
        task present from the start of the walk to its end is handed out exactly once,
        or the walk raises :class:`~spacetasks_async.WalkIncompleteError`.

        Args:
            space_token: the space.
            page_size: tasks per request (the server's own default is 50).
            start_page: the first page to walk.
            max_items: stop after this many tasks.
            window: pages on order at once (in flight plus held), 1 to 64.
            filters: backend filters, see ``ALLOWED_FILTERS``.
            checkpoint: resume where ``walk.checkpoint`` of an earlier walk stood.

        Returns:
            a :class:`~spacetasks_async.PageWalk`.
        """
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
        window: int = DEFAULT_WINDOW,
        filters: Mapping[str, str | int] | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> TaskWalk:
        """Every task of a space, in the server's order, each exactly once.

        Takes the arguments of :meth:`iter_pages`; ``walk.checkpoint`` counts exactly the
        tasks taken, so a walk stopped anywhere resumes without loss or repeat.

        Args:
            space_token: the space.
            page_size: tasks per request.
            start_page: the first page to walk.
            max_items: stop after this many tasks.
            window: pages on order at once, 1 to 64.
            filters: backend filters, see ``ALLOWED_FILTERS``.
            checkpoint: resume where an earlier walk's ``checkpoint`` stood.

        Returns:
            a :class:`~spacetasks_async.TaskWalk`.

        Example::

            async with client.iter_tasks(token, max_items=500) as tasks:
                async for task in tasks:
                    ...
            print(tasks.stats)
        """
        return TaskWalk(
            PageWalk(
                self,
                space_token,
                page_size=page_size,
                start_page=start_page,
                max_items=max_items,
                window=window,
                filters=filters,
                checkpoint=checkpoint,
                consume_on_yield=False,
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
            return decode_space(envelope["data"], self.converter)
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
                    space = decode_space(item, self.converter)
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
        window: int = DEFAULT_WINDOW,
        max_items_per_space: int | None = None,
        fail_fast: bool = False,
        checkpoints: Mapping[str, Checkpoint] | None = None,
        collect_failures: bool = False,
        on_event: Callable[[SpaceEvent], None] | None = None,
    ) -> Harvest:
        """Walk many spaces concurrently under one limit; see :class:`Harvest`.

        Args:
            space_tokens: the spaces (None: every space of the organization).
            page_size: tasks per request.
            concurrency: requests in flight across all spaces (default: the client's
                ``max_in_flight``).
            window: pages on order per space.
            max_items_per_space: stop each space after this many tasks.
            fail_fast: raise the first failure at once.
            checkpoints: where each space resumes (``harvest.checkpoint(token)`` of an
                earlier run, through JSON if need be).
            collect_failures: keep failed spaces in ``harvest.failures`` instead of raising
                a :class:`~spacetasks_async.HarvestError` at the end.
            on_event: called with a :class:`~spacetasks_async.SpaceEvent` when a space
                starts, finishes or fails.

        Returns:
            a :class:`~spacetasks_async.Harvest`.
        """
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
            collect_failures=collect_failures,
            on_event=on_event,
        )

    def sync(
        self,
        space_tokens: Iterable[str],
        state: SyncState | None = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        window: int = DEFAULT_WINDOW,
        refresh_limit: int = 1000,
        concurrency: int | None = None,
    ) -> Sync:
        """One run of an incremental sync: only the tasks created or changed since the last.

        Args:
            space_tokens: the spaces.
            state: the state the last run left (``sync.state``, or
                ``SyncState.load(path)``); None or empty for a first run (every task).
            page_size: tasks per request (a space keeps the size of its first run).
            window: pages on order per space.
            refresh_limit: at most this many tasks not final are remembered and re-read.
            concurrency: requests in flight across all spaces (default: the client's
                ``max_in_flight``); the spaces are walked concurrently, as a harvest.

        Returns:
            a :class:`~spacetasks_async.Sync`: iterate it, then save ``sync.state``.
        """
        from ._sync import Sync, SyncState

        return Sync(
            self,
            space_tokens,
            state if state is not None else SyncState(),
            page_size=page_size,
            window=window,
            refresh_limit=refresh_limit,
            concurrency=concurrency,
        )
