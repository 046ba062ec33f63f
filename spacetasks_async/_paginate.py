"""The walk over one space: the async driver of a :class:`~._plan.WalkPlan`.

Every decision (what to fetch, what to hand out, when the walk is complete, where a
checkpoint stands) is the plan's; see :mod:`spacetasks_async._plan` for the argument that
the walk is exact. This module only performs them: it sends the requests the plan asks
for (at most ``window`` pages on order, through the client's limits), reports each answer
to the plan the moment it arrives, and hands pages to the consumer in order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._closing import AsyncClosing
from ._errors import InvalidArgumentError, WalkIncompleteError, WalkLimitError
from ._models import Task, TaskPage
from ._plan import Checkpoint, Request, WalkPlan
from ._retry import RetryEvent
from ._validate import validate_limit, validate_page, validate_page_size, validate_space_token

if TYPE_CHECKING:
    from ._client import Client

__all__ = [
    "DEFAULT_WINDOW",
    "MAX_WINDOW",
    "Checkpoint",
    "PageWalk",
    "TaskWalk",
    "WalkIncompleteError",
    "WalkLimitError",
    "WalkStats",
]

log = logging.getLogger("spacetasks_async")

Gate = Callable[[], contextlib.AbstractAsyncContextManager[Any]]

# The slot of Task.task_id, read straight: a task the lazy converter has not decoded yet
# answers any other attribute read through Python code (see _models.deferred_subclass).
_task_id: Final[Callable[[Task], str]] = Task.__dict__["task_id"].__get__

#: Pages on order at once (in flight plus held), unless asked otherwise.
DEFAULT_WINDOW: Final = 8
#: The most pages a walk keeps on order (memory: a window of pages; sockets: the client's).
MAX_WINDOW: Final = 64


@attrs.define
class WalkStats:
    """Live statistics of one walk; read them during the walk or after it.

    Attributes:
        requests: requests sent (pages, re-reads, reads of the front, verifications).
        pages_fetched: answers received.
        tasks_yielded: tasks the consumer has taken.
        duplicates_dropped: tasks left out of a page because the walk had handed them out
            already (tasks created during the walk push older ones onto later pages).
        count_at_start: ``count`` of the first answer.
        count_at_end: ``count`` of the newest answer.
        drift_events: seams where the space was seen to change under the walk.
        rereads: requests other than the pages in order.
        verifications: reads made to prove a seam the answers alone did not.
        retries: failed attempts that were retried.
    """

    requests: int = 0
    pages_fetched: int = 0
    tasks_yielded: int = 0
    duplicates_dropped: int = 0
    count_at_start: int | None = None
    count_at_end: int | None = None
    drift_events: int = 0
    rereads: int = 0
    verifications: int = 0
    retries: int = 0


@attrs.define(eq=False)
class _Shared:
    """What the fetch tasks hold: never the walk, so a dropped walk is collected at once."""

    client: Client
    space_token: str
    filters: dict[str, str | int] | None
    gate: Gate | None
    stats: WalkStats
    closed: bool = False

    def on_retry(self, event: RetryEvent) -> None:
        self.stats.retries += 1

    async def fetch(self, request: Request) -> TaskPage:
        async with self.gate() if self.gate is not None else contextlib.nullcontext():
            if self.closed:  # the consumer went away while this waited for a slot
                raise asyncio.CancelledError
            return await self.client.get_page(
                self.space_token,
                request.page,
                request.size,
                filters=self.filters,
                on_retry=self.on_retry,
            )


def _announce(arrived: asyncio.Queue[int], key: int) -> Callable[[asyncio.Task[TaskPage]], None]:
    """A done-callback that reports ``key`` the moment its request completes."""

    def done(_: asyncio.Task[TaskPage]) -> None:
        arrived.put_nowait(key)

    return done


async def _drive(
    plan: WalkPlan, shared: _Shared, yielded: collections.deque[list[Any]]
) -> AsyncIterator[tuple[TaskPage, tuple[int, ...]]]:
    """Perform what ``plan`` says; yield pages in order. (No reference to the walk.)"""
    stats = shared.stats
    flights: dict[int, asyncio.Task[TaskPage]] = {}
    answers: dict[int, TaskPage] = {}
    arrived: asyncio.Queue[int] = asyncio.Queue()
    try:
        while True:
            for key in plan.cancelled():
                flight = flights.pop(key, None)
                if flight is not None:
                    flight.cancel()
            out = plan.next_handout()
            # (after the hand-out: the window refills while the consumer works on it)
            for request in plan.requests():
                flight = asyncio.create_task(shared.fetch(request))
                flight.add_done_callback(_announce(arrived, request.key))
                flights[request.key] = flight
                stats.requests += 1
            if out is not None:
                page = answers.pop(out.key)
                tasks = page.tasks
                stats.duplicates_dropped = plan.duplicates_dropped
                # the walk reports it taken when the consumer took it
                yielded.append([out, len(out.indices)])
                start = (out.page - 1) * out.size
                yield (
                    TaskPage(
                        page=out.page,
                        page_size=out.size,
                        count=out.count,
                        tasks=tuple(tasks[i] for i in out.indices),
                        status_code=page.status_code,
                        message=page.message,
                        reread=out.recovered,
                    ),
                    tuple(out.count - start - i for i in out.indices),
                )
                continue
            if plan.complete:
                return
            key = await arrived.get()
            flight = flights.pop(key, None)
            if flight is None:
                continue  # cancelled
            result = flight.result()  # raises the request's error
            stats.pages_fetched += 1
            if stats.count_at_start is None:
                stats.count_at_start = result.count
            stats.count_at_end = result.count
            plan.answered(key, result.count, list(map(_task_id, result.tasks)))
            if plan.keeps(key):
                answers[key] = result
            stats.rereads, stats.verifications = plan.rereads, plan.verifications
            stats.drift_events = plan.drift_events
    finally:
        shared.closed = True
        for flight in flights.values():
            flight.cancel()
        if flights:
            # retrieve every outcome: nothing is left unretrieved, nothing keeps running
            await asyncio.gather(*flights.values(), return_exceptions=True)


class PageWalk(AsyncClosing):
    """An async iterator of :class:`TaskPage`, for one space, in page order.

    Each task present from the start of the walk to its end is handed out exactly once
    (the argument is in :mod:`spacetasks_async._plan`); a walk that cannot prove that
    raises :class:`WalkIncompleteError`. Use as ``async for`` directly, or inside
    ``async with`` (or :func:`contextlib.aclosing`) to cancel any prefetch at once on an
    early exit; a walk dropped unclosed cancels its prefetch when it is collected.
    ``stats`` and ``checkpoint`` can be read at any time.

    Args:
        client: the :class:`~spacetasks_async.Client` that sends the requests.
        space_token: the space.
        page_size: tasks per request.
        start_page: the first page to walk (pages before it are skipped).
        max_items: stop after handing out this many tasks.
        window: pages on order at once (in flight plus held), 1 to ``MAX_WINDOW``.
        filters: backend filters (see ``ALLOWED_FILTERS``); the walk is exact over the
            filtered list.
        checkpoint: resume where a :class:`Checkpoint` of an earlier walk stands
            (``start_page`` is then ignored).
        gate: an async context manager factory every request goes through (a harvest's
            fair share of the client's limit).
        consume_on_yield: count a page as taken once it is handed out (a :class:`TaskWalk`
            or a harvest reports what was taken themselves).
        stop_at: end the walk before the first of these task ids (an incremental sync
            stops at the newest tasks its previous run saw).
    """

    def __init__(
        self,
        client: Client,
        space_token: str,
        *,
        page_size: int,
        start_page: int = 1,
        max_items: int | None = None,
        window: int = DEFAULT_WINDOW,
        filters: Mapping[str, str | int] | None = None,
        checkpoint: Checkpoint | None = None,
        gate: Gate | None = None,
        consume_on_yield: bool = True,
        stop_at: frozenset[str] = frozenset(),
    ) -> None:
        validate_space_token(space_token)
        validate_page_size(page_size)
        validate_page(start_page)
        validate_limit("window", window, 1, MAX_WINDOW)
        if max_items is not None:
            validate_limit("max_items", max_items, 0, 2**62)
        if checkpoint is not None:
            if not isinstance(checkpoint, Checkpoint):
                raise InvalidArgumentError(
                    f"checkpoint must be a Checkpoint, not {type(checkpoint).__name__}"
                )
            if checkpoint.space_token != space_token:
                raise InvalidArgumentError(
                    f"checkpoint is for space {checkpoint.space_token!r}, not {space_token!r}"
                )
            if checkpoint.page_size != page_size:
                raise InvalidArgumentError(
                    f"checkpoint was taken with page_size {checkpoint.page_size}, "
                    f"resuming needs the same, got {page_size}"
                )
        self.space_token = space_token
        self.page_size = page_size
        self.start_page = start_page
        self.max_items = max_items
        self.window = window
        self.stats = WalkStats()
        self._plan = WalkPlan(
            space_token,
            page_size,
            window,
            start_page=start_page,
            checkpoint=checkpoint,
            stop_at=stop_at,
        )
        #: Ranks (counted from the end, when read) of the tasks of the last page handed out.
        self.last_ranks: tuple[int, ...] = ()
        shared = _Shared(client, space_token, dict(filters) if filters else None, gate, self.stats)
        # [hand-out, tasks of it given to the consumer] of pages not reported taken yet
        self._yielded: collections.deque[list[Any]] = collections.deque()
        self._plan.wanted = max_items
        self._gen: AsyncIterator[tuple[TaskPage, tuple[int, ...]]] = _drive(
            self._plan, shared, self._yielded
        )
        self._auto = consume_on_yield
        self._taken = 0
        # A walk dropped unclosed: its requests not sent yet are never sent.
        weakref.finalize(self, setattr, shared, "closed", True)

    @property
    def checkpoint(self) -> Checkpoint:
        """Where to resume: every page handed out counts as taken (see :class:`TaskWalk`)."""
        return self._plan.checkpoint()

    @property
    def complete(self) -> bool:
        """True once the walk proved that every task was handed out."""
        return self._plan.complete

    @property
    def stopped(self) -> bool:
        """True when the walk ended at a ``stop_at`` task rather than the list's end."""
        return self._plan.stopped

    async def __anext__(self) -> TaskPage:
        if self.max_items is not None and self._taken >= self.max_items:
            raise StopAsyncIteration
        page, self.last_ranks = await self._gen.__anext__()
        if self.max_items is not None and self._taken + len(page.tasks) > self.max_items:
            page = attrs.evolve(page, tasks=page.tasks[: self.max_items - self._taken])
            self._yielded[-1][1] = len(page.tasks)  # the rest is not handed out
            if self._auto:
                self._report(None)
        elif self._auto:
            self._report(None)
        self._taken += len(page.tasks)
        if self._auto:
            self.stats.tasks_yielded = self._taken
        return page

    def _report(self, taken: int | None) -> None:
        """The consumer took ``taken`` tasks of the oldest page not reported (None: all)."""
        if not self._yielded:
            return
        out, given = self._yielded[0]
        if taken is None:
            self._yielded.popleft()
            self._plan.consumed(out, given)
        else:
            self._plan.consumed(out, min(taken, given))

    async def aclose(self) -> None:
        """Stop the walk: cancel and await every request still in flight."""
        await self._gen.aclose()  # type: ignore[attr-defined]


class TaskWalk(AsyncClosing):
    """An async iterator of :class:`Task`: a :class:`PageWalk` handed out task by task.

    ``checkpoint`` counts exactly the tasks the consumer took, so a walk interrupted in
    the middle of a page resumes without loss or repeat.

    Args:
        pages: the page walk to hand out (built with ``consume_on_yield=False``).
    """

    def __init__(self, pages: PageWalk) -> None:
        if pages._auto:
            raise InvalidArgumentError("a TaskWalk needs a PageWalk(consume_on_yield=False)")
        self.pages = pages
        self._page: TaskPage | None = None
        self._index = 0

    @property
    def stats(self) -> WalkStats:
        """The statistics of the underlying page walk."""
        return self.pages.stats

    @property
    def checkpoint(self) -> Checkpoint:
        """Resume point at task granularity."""
        if self._page is not None and self._index < len(self._page.tasks):
            self.pages._report(self._index)
        return self.pages.checkpoint

    async def __anext__(self) -> Task:
        while self._page is None or self._index >= len(self._page.tasks):
            if self._page is not None:
                self.pages._report(None)
            self._page = await self.pages.__anext__()
            self._index = 0
        task = self._page.tasks[self._index]
        self._index += 1
        self.pages.stats.tasks_yielded += 1
        return task

    async def aclose(self) -> None:
        """Stop the walk; see :meth:`PageWalk.aclose`."""
        await self.pages.aclose()
