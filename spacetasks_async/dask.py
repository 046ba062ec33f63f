"""The harvest as a Dask collection: one partition per space, walked on the workers.

``read_tasks`` returns a lazy :class:`dask.dataframe.DataFrame` with one partition per space.
Each partition is harvested on a worker by the library's exact walk (every task present from
the start of that space's walk to its end, exactly once, or the partition fails) and converted
to rows with the library's Parquet layout: the columns, types and values of
:func:`spacetasks_async._formats.parquet_schema` (``space_token`` first), the same as the
Parquet dataset the command line writes. Install it with ``pip install
'spacetasks-async[dask]'`` (dask[dataframe], distributed and pyarrow).

::

    from distributed import Client as DaskClient
    from spacetasks_async.dask import read_tasks, to_parquet

    dask_client = DaskClient("tcp://scheduler:8786")     # UNPOD_API_KEY set on every worker
    tasks = read_tasks(None, org_handle="acme", max_in_flight=32, rate=20)
    to_parquet(tasks, "s3://bucket/unpod/tasks.parquet") # the CLI's columns and types
    tasks.groupby("status").size().compute()             # or any other Dask computation

When one process is enough, and when to use Dask
-------------------------------------------------
One process (``spacetasks`` on the command line, or :meth:`Client.harvest`) walks many spaces
concurrently under one limit of requests in flight. Measured on a 2-core machine against the
local test server in a process of its own (8 spaces of 5,000 tasks, page size 100): one
process walks about 95,000 tasks/s (tasks kept as the server sent them until read), and
walking and turning them into rows of the Parquet layout, about 30,000 tasks/s per core.
The API gives at most ``max_in_flight * page_size / latency`` tasks/s: 32 requests
of 100 tasks at 0.5 s per answer is 6,400 tasks/s. So one process is enough when:

- the API's answers, not the CPU, are the limit (slow answers, a modest ``max_in_flight``,
  a ``rate``, or 429s); more processes would only wait on the same API;
- the output fits on one machine's disk (the command line streams to it; its memory does
  not grow with a space's size).

Use Dask when:

- the API (and its owner) allows more than one core converts: many spaces, fast answers,
  and a total ``max_in_flight`` that is agreed to be safe;
- the rows go where a cluster writes anyway (object storage, a lake) or the next step is
  a Dask computation (join, aggregate) that should not wait for a file;
- many organizations (one key each, one call each) are harvested on shared workers.

Dask does not make the API faster. What the API allows is the plan's ceiling: each request
returns at most one page, a space is walked page after page (a window of pages is
prefetched, but a space's walk is one sequence, so one huge space is one partition and
one worker, however large the cluster), and the server, or a proxy in front of it, may
answer 429 when too many requests arrive. A cluster harvest is at most as fast as
``max_in_flight`` concurrent requests allow, whatever the number of workers.

Partitions, memory and the API's limits
----------------------------------------
- One partition per space: a partition holds the whole space in the worker's memory
  (Arrow columns, built in chunks so the Python objects of a page are short-lived):
  about 1.8 KiB per task for the test server's tasks (with transcripts), so a space of a
  million tasks is a partition of about 2 GB. Give the workers the memory, or harvest
  such a space with the command line, which streams to disk.
- A partition that fails (no access, a walk that could not be made exact, retries
  exhausted) fails the computation with the library's exception (it is raised by
  ``compute``); nothing is silently dropped. Dask may run a partition again (a lost
  worker): that re-walks the space from its start, so it is still exact, but as of then.
- Each call of :func:`read_tasks` is a new harvest: its task names hold a fresh nonce, so
  a collection persisted earlier is never mistaken for a new harvest of the same spaces.

Rate limits across the cluster
------------------------------
``max_in_flight`` and ``rate`` are totals for the whole harvest. Each partition runs its own
:class:`~spacetasks_async.Client` (inside ``asyncio.run`` on a worker thread) with a share:
``max(1, max_in_flight // slots)`` requests in flight and ``rate / slots`` requests per
second, where ``slots`` is the number of partitions that can run at once:
``min(number of spaces, worker threads)``. The worker threads are counted, when the
collection is built, from the current ``distributed`` client (the sum of its workers'
threads; with ``threads_per_worker=1`` that is the number of workers), or from Dask's local
scheduler (``num_workers``, else the CPU count); pass ``workers=`` to set it (an adaptive
cluster that grows later must be told its largest size). Because every running partition
gets at least one request, the cluster-wide ceiling is ``max(max_in_flight, slots)``. A 429
halves the in-flight limit of the partition that received it (each client adapts on its
own), and retries honour ``Retry-After``.

Credentials
-----------
By default the workers read the key from their own environment (``UNPOD_API_KEY``, like
every :class:`~spacetasks_async.Client`): it never enters the task graph, its repr, the
pickled graph, the scheduler, logs or the dashboard. Set it on each worker (for
``distributed.LocalCluster``, in the environment of the process that starts it; for a
deployed cluster, in the workers' environment or secret store).

``api_key=`` (a ``str`` or an :class:`ApiKey`) instead ships the key to the workers inside
the graph: no repr, str, log line or task name shows it, and its Dask token is random, but
the pickled graph holds it and crosses the network to the scheduler and workers (use TLS
between them). Prefer the environment.

The spaces of an organization (``tokens_or_org=None``) are listed on the calling side first,
with the key from ``api_key=`` or the calling process's ``UNPOD_API_KEY``, and
``org_handle=`` or ``UNPOD_ORG_HANDLE``.

Note: the row conversion is the Parquet sink's own, which is private to
:mod:`spacetasks_async._formats` (``_task_values``); this module uses it on purpose, so that
both can never drift apart.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import secrets
import threading
from collections.abc import Coroutine, Mapping, Sequence
from types import ModuleType
from typing import Any, Final, TypeAlias, TypeVar, cast

import attrs

from ._client import (
    DEFAULT_PAGE_SIZE,
    Client,
    _check_base_url,
    _positive_number,
    _validate_filters,
)
from ._convert import encode_task
from ._errors import ConfigurationError, InvalidArgumentError
from ._formats import MissingDependencyError, _pyarrow, _task_values, parquet_schema
from ._paginate import DEFAULT_WINDOW, MAX_WINDOW
from ._retry import RetryPolicy
from ._validate import (
    DEFAULT_MAX_IN_FLIGHT,
    MAX_IN_FLIGHT,
    MAX_PAGE_SIZE,
    validate_header_value,
    validate_limit,
    validate_space_token,
)

try:
    import dask
    import dask.dataframe as dd

    # Through importlib: pandas ships no type information (pandas-stubs is not required).
    pd: ModuleType = importlib.import_module("pandas")
except ImportError as exc:  # pragma: no cover - the extra is installed in the tests
    raise MissingDependencyError(
        "spacetasks_async.dask needs dask[dataframe], distributed and pyarrow, which are not "
        "all installed: pip install 'spacetasks-async[dask]'"
    ) from exc

# A pandas.DataFrame (untyped: see the import of pandas above).
PandasFrame: TypeAlias = Any

__all__ = ["ApiKey", "frame_of_tasks", "read_tasks", "to_parquet", "worker_slots"]

# Rows converted to Python lists before they become one Arrow record batch: bounds the
# short-lived Python objects of a partition (the Arrow columns are compact).
_CHUNK_ROWS: Final = 10_000
_LABEL: Final = "unpod-tasks"

_T = TypeVar("_T")


class ApiKey:
    """An Unpod API key that no repr, str, log line or Dask task name shows.

    Pass it (or a plain ``str``, which is wrapped in one) as ``read_tasks(api_key=...)`` when
    the workers cannot read ``UNPOD_API_KEY`` from their environment. It is pickled with the
    graph, so it travels to the scheduler and the workers: the bytes sent hold the key (use
    TLS between the cluster's processes). Its Dask token is random, so the names of the
    graph's tasks are not derived from the key.

    :param value: the key, as ``Client(api_key=...)`` takes it (visible ASCII).
    :raises ConfigurationError: when the value is empty or not a valid header value.
    """

    __slots__ = ("_token", "_value")

    def __init__(self, value: str, *, _token: str | None = None) -> None:
        if not isinstance(value, str) or not value:
            raise ConfigurationError("the API key must be a non-empty str")
        validate_header_value("the API key", value, secret=True)
        self._value = value
        self._token = _token if _token is not None else secrets.token_hex(16)

    def reveal(self) -> str:
        """The key itself, for the client that sends it."""
        return self._value

    def __repr__(self) -> str:
        return "ApiKey('***')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, ...]:
        # Explicit, so that the pickle holds only the key and the random token (and not,
        # through a copy of some default, anything else): documented, the key ships.
        return (_rebuild_key, (self._value, self._token))

    def __dask_tokenize__(self) -> str:
        # Dask hashes the arguments of a task into its name; a hash of the key would be
        # a stable fingerprint of the secret in every log and the dashboard.
        return self._token


def _rebuild_key(value: str, token: str) -> ApiKey:
    return ApiKey(value, _token=token)


@attrs.frozen(kw_only=True)
class _WorkerPlan:
    """What one partition needs to harvest its space: picklable, and its repr is safe."""

    api_key: ApiKey | None
    base_url: str | None
    max_in_flight: int
    rate: float | None
    page_size: int
    window: int
    filters: tuple[tuple[str, str], ...]
    max_items: int | None
    timeout: float
    connect_timeout: float
    retry: RetryPolicy | None
    nonce: str

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        # The nonce makes every read_tasks call a new harvest (see the module docstring);
        # the key contributes only its random token.
        key = None if self.api_key is None else self.api_key.__dask_tokenize__()
        return (
            _LABEL,
            key,
            self.base_url,
            self.max_in_flight,
            self.rate,
            self.page_size,
            self.window,
            self.filters,
            self.max_items,
            self.timeout,
            self.connect_timeout,
            repr(self.retry),
            self.nonce,
        )


# --- rows ----------------------------------------------------------------------------------


def _empty_frame() -> PandasFrame:
    """The meta: no rows, the columns of :func:`parquet_schema` as Arrow-backed dtypes."""
    return parquet_schema().empty_table().to_pandas(types_mapper=pd.ArrowDtype)


class _Columns:
    """Column buffers of one space's rows, turned into Arrow record batches as they fill."""

    def __init__(self, space_token: str) -> None:
        self._pa, _ = _pyarrow()
        self._schema = parquet_schema()
        self._token = space_token
        self._buffer: list[list[Any]] = [[] for _ in self._schema.names]
        self._rows = 0
        self._batches: list[Any] = []

    def add(self, raw_tasks: Sequence[Mapping[str, Any]]) -> None:
        # The Parquet sink's own conversion: the same values for the same task.
        columns = self._buffer
        for raw in raw_tasks:
            row = [self._token, *_task_values(raw)]
            for column, value in zip(columns, row, strict=True):
                column.append(value)
            self._rows += 1
            if self._rows >= _CHUNK_ROWS:
                self._flush()
                columns = self._buffer

    def _flush(self) -> None:
        pa = self._pa
        arrays = [
            pa.array(column, type=field.type)
            for column, field in zip(self._buffer, self._schema, strict=True)
        ]
        self._batches.append(pa.RecordBatch.from_arrays(arrays, schema=self._schema))
        self._buffer = [[] for _ in self._schema.names]
        self._rows = 0

    def frame(self) -> PandasFrame:
        if self._rows:
            self._flush()
        table = self._pa.Table.from_batches(self._batches, schema=self._schema)
        self._batches = []
        return table.to_pandas(types_mapper=pd.ArrowDtype)


def frame_of_tasks(space_token: str, raw_tasks: Sequence[Mapping[str, Any]]) -> PandasFrame:
    """The rows of tasks of one space as a pandas DataFrame of the Parquet layout.

    The columns and values are the Parquet sink's (:func:`parquet_schema`), every dtype a
    ``pandas.ArrowDtype`` of the schema's type; it is what one partition of
    :func:`read_tasks` holds.

    :param space_token: the space the tasks come from (the ``space_token`` column).
    :param raw_tasks: the task objects as the API sent them (for a decoded
        :class:`~spacetasks_async.Task`, ``encode_task(task)``).
    :raises InvalidArgumentError: when a task cannot be converted (a value that is not JSON).
    """
    validate_space_token(space_token)
    columns = _Columns(space_token)
    columns.add(raw_tasks)
    return columns.frame()


# --- one partition: harvested on a worker ----------------------------------------------------


async def _harvest_space(space_token: str, plan: _WorkerPlan) -> PandasFrame:
    try:
        client = Client(
            None if plan.api_key is None else plan.api_key.reveal(),
            base_url=plan.base_url,
            timeout=plan.timeout,
            connect_timeout=plan.connect_timeout,
            retry=plan.retry,
            max_in_flight=plan.max_in_flight,
            rate=plan.rate,
        )
    except ConfigurationError as exc:
        if plan.api_key is None and not os.environ.get("UNPOD_API_KEY"):
            raise ConfigurationError(
                "no API key on this Dask worker: set UNPOD_API_KEY in the environment of "
                "every worker, or pass read_tasks(api_key=...) (which ships it in the graph)"
            ) from None
        raise exc from None
    columns = _Columns(space_token)
    async with client:
        walk = client.iter_pages(
            space_token,
            page_size=plan.page_size,
            max_items=plan.max_items,
            window=plan.window,
            filters=dict(plan.filters) or None,
        )
        async with walk:
            async for page in walk:
                columns.add([encode_task(task) for task in page.tasks])
    return columns.frame()


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(coro)``, also from a thread whose event loop is running.

    Dask workers run partitions in plain threads (no loop); the synchronous scheduler
    called from a notebook runs them in the notebook's thread, whose loop is running, and
    ``asyncio.run`` refuses that: then the walk runs in a thread of its own.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[_T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="spacetasks-dask-walk")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _read_space(space_token: str, plan: _WorkerPlan) -> PandasFrame:
    """One partition: the whole space, walked exactly, as rows of the Parquet layout."""
    return _run(_harvest_space(space_token, plan))


# --- the collection ---------------------------------------------------------------------------


def worker_slots() -> int:
    """How many partitions can run at once: the threads of the cluster, or of this machine.

    The sum of the threads of the workers of the current ``distributed`` client, when there
    is one (and it has workers); else Dask's ``num_workers`` setting, else the CPU count.
    """
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        client = None
    if client is not None:
        threads = sum(client.nthreads().values())
        if threads > 0:
            return int(threads)
    configured = dask.config.get("num_workers", None)
    if isinstance(configured, int) and configured > 0:
        return configured
    return os.cpu_count() or 1


async def _list_spaces(
    api_key: ApiKey | None, base_url: str | None, org_handle: str | None, plan: _WorkerPlan
) -> list[str]:
    client = Client(
        None if api_key is None else api_key.reveal(),
        base_url=base_url,
        org_handle=org_handle,
        timeout=plan.timeout,
        connect_timeout=plan.connect_timeout,
        retry=plan.retry,
    )
    async with client:
        # Like Harvest: a space without a token has no tasks endpoint to walk.
        return [space.token async for space in client.iter_spaces() if space.token]


def read_tasks(
    tokens_or_org: Sequence[str] | None,
    *,
    api_key: str | ApiKey | None = None,
    base_url: str | None = None,
    org_handle: str | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    rate: float | None = None,
    workers: int | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    window: int = DEFAULT_WINDOW,
    filters: Mapping[str, str | int] | None = None,
    max_items_per_space: int | None = None,
    timeout: float = 60.0,
    connect_timeout: float = 10.0,
    retry: RetryPolicy | None = None,
) -> dd.DataFrame:
    """The tasks of spaces as a lazy Dask DataFrame: one partition per space.

    Nothing is fetched to build it except, with ``tokens_or_org=None``, the organization's
    list of spaces; its ``meta`` comes from :func:`parquet_schema`. Each partition walks its
    space exactly on a worker (see the module docstring) and holds the Parquet layout's
    columns, with ``pandas.ArrowDtype`` dtypes of the schema's types; its index is a
    per-partition range (divisions unknown).

    :param tokens_or_org: the space tokens, one partition each in this order (a token given
        twice is harvested once); or ``None`` for every space of the organization, listed
        here first (needs ``org_handle`` or ``UNPOD_ORG_HANDLE``, and a key here). A single
        ``str`` is refused: it could be a token or an organization. No spaces at all give
        one empty partition.
    :param api_key: ``None`` (the default): each worker reads ``UNPOD_API_KEY`` from its own
        environment and the key never enters the graph. A ``str`` or :class:`ApiKey`: the
        key is shipped to the workers inside the pickled graph (masked in every repr).
    :param base_url: the API's base URL; default ``UNPOD_BASE_URL`` of this process, else
        the workers' own ``UNPOD_BASE_URL``, else ``https://unpod.ai``.
    :param org_handle: the organization whose spaces are listed when ``tokens_or_org`` is
        ``None``; default ``UNPOD_ORG_HANDLE``. Not sent by the workers.
    :param max_in_flight: requests in flight for the whole harvest, 1 to 256; each running
        partition gets ``max(1, max_in_flight // slots)``.
    :param rate: requests per second for the whole harvest (``None``: no ceiling); each
        running partition gets ``rate / slots``.
    :param workers: the number of partitions that run at once (``slots`` is the smaller of
        it and the number of spaces); default :func:`worker_slots`, counted now.
    :param page_size: tasks per request, 1 to ``MAX_PAGE_SIZE``.
    :param window: pages on order at once in each space's walk, 1 to 64.
    :param filters: backend filters for every space (see ``ALLOWED_FILTERS``).
    :param max_items_per_space: stop each space after this many tasks (``None``: all).
    :param timeout: total seconds of one request attempt.
    :param connect_timeout: seconds to establish a connection.
    :param retry: the :class:`~spacetasks_async.RetryPolicy` of every worker's client.
    :returns: a ``dask.dataframe.DataFrame``; write it with :func:`to_parquet` for the
        command line's exact dataset schema.
    :raises InvalidArgumentError: for a bad token list, token, filter or limit.
    :raises ConfigurationError: for a bad key, URL, handle, rate or worker count; with
        ``None``, when the organization cannot be listed without a key or handle here.
    :raises SpaceTasksError: when listing the organization's spaces fails.
    """
    if isinstance(tokens_or_org, str | bytes):
        raise InvalidArgumentError(
            "tokens_or_org must be a list of space tokens, or None to list the organization's "
            "spaces (with org_handle=... or UNPOD_ORG_HANDLE); a single str is ambiguous"
        )
    key = api_key if isinstance(api_key, ApiKey) or api_key is None else ApiKey(api_key)
    base = base_url or os.environ.get("UNPOD_BASE_URL") or None
    if base is not None:
        base = _check_base_url(base)
    validate_limit("max_in_flight", max_in_flight, 1, MAX_IN_FLIGHT, error=ConfigurationError)
    total_rate = None if rate is None else _positive_number("rate", rate)
    if workers is not None:
        validate_limit("workers", workers, 1, 1_000_000, error=ConfigurationError)
    validate_limit("page_size", page_size, 1, MAX_PAGE_SIZE)
    validate_limit("window", window, 1, MAX_WINDOW)
    if max_items_per_space is not None:
        validate_limit("max_items_per_space", max_items_per_space, 0, 2**62)
    filter_items = tuple(sorted(_validate_filters(filters).items()))
    _positive_number("timeout", timeout)
    _positive_number("connect_timeout", connect_timeout)

    plan = _WorkerPlan(
        api_key=key,
        base_url=base,
        max_in_flight=max_in_flight,
        rate=total_rate,
        page_size=page_size,
        window=window,
        filters=filter_items,
        max_items=max_items_per_space,
        timeout=float(timeout),
        connect_timeout=float(connect_timeout),
        retry=retry,
        nonce=secrets.token_hex(8),
    )
    if tokens_or_org is None:
        handle = org_handle or os.environ.get("UNPOD_ORG_HANDLE") or None
        if not handle:
            raise ConfigurationError(
                "tokens_or_org=None lists the organization's spaces: pass org_handle=... or "
                "set UNPOD_ORG_HANDLE (or pass the space tokens)"
            )
        tokens: list[str] = _run(_list_spaces(key, base, handle, plan))
    else:
        tokens = list(tokens_or_org)
    for token in tokens:
        validate_space_token(token)
    tokens = list(dict.fromkeys(tokens))  # one partition per space, in the given order

    meta = _empty_frame()
    if not tokens:
        return cast(dd.DataFrame, dd.from_pandas(meta, npartitions=1))
    slots = min(len(tokens), workers if workers is not None else worker_slots())
    share = attrs.evolve(
        plan,
        max_in_flight=max(1, max_in_flight // slots),
        rate=None if total_rate is None else total_rate / slots,
    )
    collection = dd.from_map(_read_space, tokens, plan=share, meta=meta, label=_LABEL)
    return cast(dd.DataFrame, collection)


def to_parquet(df: dd.DataFrame, path: str | os.PathLike[str], **kwargs: Any) -> None:
    """Write a collection of :func:`read_tasks` as a Parquet dataset of the CLI's schema.

    ``df.to_parquet(path)`` alone writes the same columns and types, plus Dask's index
    column (``__null_dask_index__``) and without ``space_token``'s ``not null``; this
    writes exactly :func:`parquet_schema` (no index, the schema's metadata), one part file
    per partition, i.e. per space.

    :param df: the collection (its columns must be the Parquet layout's).
    :param path: the dataset directory (any fsspec URL Dask takes).
    :param kwargs: more arguments for ``dask.dataframe.DataFrame.to_parquet``; they win
        over ``write_index=False`` and ``schema=parquet_schema()``.
    """
    options: dict[str, Any] = {"write_index": False, "schema": parquet_schema()}
    options.update(kwargs)
    df.to_parquet(path, **options)
