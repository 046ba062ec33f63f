"""Many spaces at once: one limit on requests in flight, shared fairly, failures isolated."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import functools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING

import attrs

from ._closing import AsyncClosing
from ._errors import HarvestError, SpaceTasksError
from ._models import Task, TaskPage
from ._paginate import DEFAULT_WINDOW, PageWalk, WalkStats
from ._plan import Checkpoint
from ._retry import FairLimiter
from ._validate import MAX_IN_FLIGHT, validate_limit

if TYPE_CHECKING:
    from ._client import Client

__all__ = [
    "Harvest",
    "HarvestedPage",
    "HarvestedTask",
    "SpaceEvent",
    "SpaceEventKind",
    "SpaceFailure",
]

log = logging.getLogger("spacetasks_async")


@attrs.frozen
class HarvestedTask:
    """One task, the space it came from, and its rank (counted from the end) when read."""

    space_token: str
    task: Task
    rank: int | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class HarvestedPage:
    """One page of one space, as handed out by :meth:`Harvest.pages`.

    ``ranks`` are its tasks' ranks (counted from the end of the list) when it was read.
    """

    space_token: str
    page: TaskPage
    ranks: tuple[int, ...] = attrs.field(default=(), eq=False, repr=False)


@attrs.frozen
class SpaceFailure:
    """A space whose walk failed, and why. Tasks it yielded before failing were correct."""

    space_token: str
    error: SpaceTasksError


class SpaceEventKind(enum.StrEnum):
    """What happened to a space of a harvest."""

    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"


@attrs.frozen
class SpaceEvent:
    """A space started, finished (every task handed out and taken) or failed.

    Attributes:
        kind: what happened.
        space_token: the space.
        stats: the space's walk statistics so far.
        error: the error of a failed space.
    """

    kind: SpaceEventKind
    space_token: str
    stats: WalkStats
    error: SpaceTasksError | None = None


@attrs.frozen
class _Done:
    space_token: str


@attrs.frozen
class _Crash:
    space_token: str
    error: Exception


_Item = HarvestedPage | SpaceFailure | _Done | _Crash


class Harvest(AsyncClosing):
    """Walk many spaces concurrently and hand out their tasks as they come.

    All walks share one :class:`FairLimiter` of ``concurrency`` requests in flight, served
    round-robin across spaces, so a huge space does not starve small ones. A space that
    fails (invalid token, no access, retries exhausted) does not stop the others: when the
    harvest ends, the failures are raised together as a :class:`HarvestError` (an
    exception group naming each space), unless ``collect_failures=True``, which leaves
    them in ``failures``; ``fail_fast=True`` raises the first one at once.

    Iterate tasks (``async for item in harvest``, each a :class:`HarvestedTask`) or pages
    (``async for item in harvest.pages()``); not both. ``stats`` maps each space to its
    :class:`WalkStats`, ``completed`` lists the spaces whose tasks were all taken, and
    :meth:`checkpoint` says where a space would resume.

    Args:
        client: the client that sends the requests.
        space_tokens: the spaces (None: every space of the client's organization).
        page_size: tasks per request.
        concurrency: requests in flight across all spaces.
        window: pages on order per space.
        max_items_per_space: stop each space after this many tasks.
        fail_fast: raise the first failure at once.
        checkpoints: where each space resumes (from :meth:`checkpoint` of an earlier run).
        collect_failures: keep failures in ``failures`` instead of raising them at the end.
        on_event: called with a :class:`SpaceEvent` when a space starts, finishes or fails.
        stop_at: per space, task ids before which its walk ends (an incremental sync).

    Example::

        async with client.harvest(["TOKEN_A", "TOKEN_B"], collect_failures=True) as harvest:
            async for item in harvest:
                print(item.space_token, item.task.task_id)
        for failure in harvest.failures:
            print(failure.space_token, failure.error)
    """

    def __init__(
        self,
        client: Client,
        space_tokens: list[str] | None,
        *,
        page_size: int,
        concurrency: int,
        window: int = DEFAULT_WINDOW,
        max_items_per_space: int | None = None,
        fail_fast: bool = False,
        checkpoints: Mapping[str, Checkpoint] | None = None,
        collect_failures: bool = False,
        on_event: Callable[[SpaceEvent], None] | None = None,
        stop_at: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        validate_limit("concurrency", concurrency, 1, MAX_IN_FLIGHT)
        if space_tokens is not None:
            space_tokens = list(dict.fromkeys(space_tokens))  # once each, order kept
            for token in space_tokens:
                # builds and throws away a walk: validates every argument now, not later
                # from inside the running harvest
                PageWalk(
                    client,
                    token,
                    page_size=page_size,
                    window=window,
                    max_items=max_items_per_space,
                    checkpoint=(checkpoints or {}).get(token),
                )
        self._client = client
        self._list_spaces = space_tokens is None  # the organization's spaces, found on start
        self.page_size = page_size
        self.concurrency = concurrency
        self.window = window
        self.max_items_per_space = max_items_per_space
        self.fail_fast = fail_fast
        self.collect_failures = collect_failures
        self._on_event = on_event
        self._checkpoints = dict(checkpoints or {})
        self._stop_at = dict(stop_at or {})
        self.limiter = FairLimiter(concurrency)
        self.failures: list[SpaceFailure] = []
        self.stats: dict[str, WalkStats] = {}
        self.completed: list[str] = []
        self._walks: dict[str, PageWalk] = {}
        self._current: tuple[str, int] | None = None  # space, tasks taken of its page
        self._gen: AsyncIterator[HarvestedPage] | None = None
        self._tasks_gen: AsyncIterator[HarvestedTask] | None = None
        self.space_tokens: list[str] = space_tokens or []

    # -- where each space stands -------------------------------------------------------

    def checkpoint(self, space_token: str) -> Checkpoint | None:
        """Where ``space_token`` resumes (a done checkpoint once completed).

        ``None`` before the space started (and with no checkpoint given for it). With task
        iteration, it counts exactly the tasks taken.

        Args:
            space_token: the space.
        """
        walk = self._walks.get(space_token)
        if walk is None:
            return self._checkpoints.get(space_token)
        if self._current is not None and self._current[0] == space_token:
            walk._report(self._current[1])
        return walk.checkpoint

    def stopped(self, space_token: str) -> bool:
        """Whether the walk of ``space_token`` ended at a ``stop_at`` id (a sync met the
        newest tasks of its last run) rather than at the end of the list.

        Args:
            space_token: the space.
        """
        walk = self._walks.get(space_token)
        return walk is not None and walk.stopped

    # -- iteration -----------------------------------------------------------------------

    def pages(self) -> AsyncIterator[HarvestedPage]:
        """Hand out whole pages, in page order within each space."""
        if self._gen is None:
            self._gen = self._pages(by_task=False)
        return self._gen

    async def __anext__(self) -> HarvestedTask:
        if self._tasks_gen is None:
            self._tasks_gen = self._flatten()
        return await self._tasks_gen.__anext__()

    async def _flatten(self) -> AsyncIterator[HarvestedTask]:
        async with contextlib.aclosing(self._pages(by_task=True)) as pages:
            async for item in pages:
                token = item.space_token
                ranks = item.ranks or (None,) * len(item.page.tasks)
                for taken, (task, rank) in enumerate(zip(item.page.tasks, ranks, strict=True), 1):
                    self._current = (token, taken)  # counting the task handed now
                    yield HarvestedTask(token, task, rank)
                    self.stats[token].tasks_yielded += 1
                self._current = None
                self._walks[token]._report(None)

    async def aclose(self) -> None:
        """Stop every walk; nothing keeps running after this returns."""
        if self._tasks_gen is not None:
            await self._tasks_gen.aclose()  # type: ignore[attr-defined]
        if self._gen is not None:
            await self._gen.aclose()  # type: ignore[attr-defined]

    def _event(self, kind: SpaceEventKind, token: str, error: SpaceTasksError | None) -> None:
        if self._on_event is not None:
            self._on_event(SpaceEvent(kind, token, self.stats[token], error))

    async def _pages(self, *, by_task: bool) -> AsyncGenerator[HarvestedPage, None]:
        if self._list_spaces:
            self.space_tokens = [s.token async for s in self._client.iter_spaces() if s.token]
        waiting = collections.deque(self.space_tokens)
        # Spaces walked at once: enough to keep the limit busy while each space is on its
        # first page, and at least two so that a huge space shares the limit round-robin
        # with the next ones. Each holds at most ``window`` pages, so memory stays bounded.
        active_cap = max(2, self.concurrency)
        queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=active_cap)
        workers: set[asyncio.Task[None]] = set()

        def start_next() -> None:
            token = waiting.popleft()
            walk = PageWalk(
                self._client,
                token,
                page_size=self.page_size,
                window=self.window,
                max_items=self.max_items_per_space,
                checkpoint=self._checkpoints.get(token),
                gate=functools.partial(self.limiter.slot, token),
                consume_on_yield=False,
                stop_at=self._stop_at.get(token, frozenset()),
            )
            self._walks[token] = walk
            self.stats[token] = walk.stats
            # The worker holds the walk and the queue, never the harvest itself, so that
            # a harvest dropped without being closed is collected and its workers cancelled.
            worker = asyncio.create_task(_walk_space(walk, queue), name=f"harvest:{token}")
            workers.add(worker)
            worker.add_done_callback(workers.discard)
            self._event(SpaceEventKind.STARTED, token, None)

        try:
            while waiting and len(workers) < active_cap:
                start_next()
            active = len(workers)
            while active:
                item = await queue.get()
                if isinstance(item, HarvestedPage):
                    if not by_task:
                        # a page handed out counts as taken (its tasks are the caller's)
                        self.stats[item.space_token].tasks_yielded += len(item.page.tasks)
                        self._walks[item.space_token]._report(None)
                    yield item
                    continue
                active -= 1
                if isinstance(item, _Crash):
                    raise item.error
                if isinstance(item, SpaceFailure):
                    self.failures.append(item)
                    self._event(SpaceEventKind.FAILED, item.space_token, item.error)
                    if self.fail_fast:
                        raise item.error
                else:
                    self.completed.append(item.space_token)
                    self._event(SpaceEventKind.FINISHED, item.space_token, None)
                if waiting:
                    start_next()
                    active += 1
            if self.failures and not self.collect_failures:
                raise HarvestError(
                    f"{len(self.failures)} of {len(self.space_tokens)} spaces failed",
                    [f.error for f in self.failures],
                )
        finally:
            for worker in list(workers):
                worker.cancel()
            if workers:
                await asyncio.gather(*workers, return_exceptions=True)


async def _walk_space(walk: PageWalk, queue: asyncio.Queue[_Item]) -> None:
    token = walk.space_token
    try:
        async with walk:
            async for page in walk:
                await queue.put(HarvestedPage(token, page, walk.last_ranks))
    except SpaceTasksError as exc:
        log.error("space %s failed: %s", token, exc)
        await queue.put(SpaceFailure(token, exc))
        return
    except Exception as exc:  # a bug, not an answer: hand it to the consumer to raise
        await queue.put(_Crash(token, exc))
        return
    await queue.put(_Done(token))
