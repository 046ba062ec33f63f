"""Many spaces at once: one limit on requests in flight, shared fairly, failures isolated."""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

import attrs

from ._closing import AsyncClosing
from ._errors import InvalidArgumentError, SpaceTasksError
from ._models import Task, TaskPage
from ._paginate import Checkpoint, PageWalk, WalkStats, checkpoint_within
from ._retry import FairLimiter

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["Harvest", "HarvestedPage", "HarvestedTask", "SpaceFailure"]

log = logging.getLogger("spacetasks_async")


@attrs.frozen
class HarvestedTask:
    """One task and the space it came from."""

    space_token: str
    task: Task


@attrs.frozen
class HarvestedPage:
    """One page of one space, as handed out by :meth:`Harvest.pages`."""

    space_token: str
    page: TaskPage


@attrs.frozen
class SpaceFailure:
    """A space whose walk failed, and why. Tasks it yielded before failing were correct."""

    space_token: str
    error: SpaceTasksError


@attrs.frozen
class _Done:
    space_token: str


@attrs.frozen
class _Crash:
    space_token: str
    error: Exception


class Harvest(AsyncClosing):
    """Walk many spaces concurrently and hand out their tasks as they come.

    All walks share one :class:`FairLimiter` of ``concurrency`` requests in flight, served
    round-robin across spaces, so a huge space does not starve small ones. A space that
    fails (invalid token, no access, retries exhausted) is recorded in ``failures`` and the
    others go on; with ``fail_fast=True`` the first failure is raised instead.

    Iterate tasks (``async for item in harvest``, each a :class:`HarvestedTask`) or pages
    (``async for item in harvest.pages()``); not both. ``stats`` maps each space to its
    :class:`WalkStats`, ``completed`` holds the spaces walked to the end, and
    :meth:`checkpoint` says where an unfinished space would resume.

    Example::

        async with client.harvest(["TOKEN_A", "TOKEN_B"]) as harvest:
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
        window: int,
        max_items_per_space: int | None = None,
        fail_fast: bool = False,
        checkpoints: Mapping[str, Checkpoint] | None = None,
    ) -> None:
        if concurrency < 1:
            raise InvalidArgumentError(f"concurrency must be at least 1, got {concurrency}")
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
        self._checkpoints = dict(checkpoints or {})
        self.limiter = FairLimiter(concurrency)
        self.failures: list[SpaceFailure] = []
        self.stats: dict[str, WalkStats] = {}
        self.completed: list[str] = []
        self._resume: dict[str, Checkpoint] = {}  # page level: pages fully taken
        self._position: dict[str, tuple[TaskPage, int]] = {}  # task level: page, taken
        self._gen: AsyncIterator[HarvestedPage] | None = None
        self._tasks_gen: AsyncIterator[HarvestedTask] | None = None
        self.space_tokens: list[str] = space_tokens or []

    # -- where each space stands -------------------------------------------------------

    def checkpoint(self, space_token: str) -> Checkpoint | None:
        """Where ``space_token`` resumes: ``None`` once completed or before it started.

        With task iteration, the checkpoint is at task granularity: the page being
        handed out and the tasks of it taken so far.
        """
        if space_token in self.completed:
            return None
        base = self._resume.get(space_token) or self._checkpoints.get(space_token)
        position = self._position.get(space_token)
        if base is None or position is None:
            return base
        return checkpoint_within(base, *position)

    # -- iteration -----------------------------------------------------------------------

    def pages(self) -> AsyncIterator[HarvestedPage]:
        """Hand out whole pages, in page order within each space."""
        if self._gen is None:
            self._gen = self._run()
        return self._gen

    async def __anext__(self) -> HarvestedTask:
        if self._tasks_gen is None:
            self._tasks_gen = self._flatten()
        return await self._tasks_gen.__anext__()

    async def _flatten(self) -> AsyncIterator[HarvestedTask]:
        async for item in self.pages():
            token, page = item.space_token, item.page
            for handed, task in enumerate(page.tasks, 1):
                self._position[token] = (page, handed)
                yield HarvestedTask(token, task)

    async def aclose(self) -> None:
        """Stop every walk; nothing keeps running after this returns."""
        if self._tasks_gen is not None:
            await self._tasks_gen.aclose()  # type: ignore[attr-defined]
        if self._gen is not None:
            await self._gen.aclose()  # type: ignore[attr-defined]

    async def _run(self) -> AsyncIterator[HarvestedPage]:
        if self._list_spaces:
            self.space_tokens = [s.token async for s in self._client.iter_spaces() if s.token]
        waiting = collections.deque(self.space_tokens)
        # Spaces walked at once: enough to keep the limit busy while each space is on its
        # first page, and at least two so that a huge space shares the limit round-robin
        # with the next ones. Each holds at most ``window`` pages, so memory stays bounded.
        active_cap = max(2, self.concurrency)
        queue: asyncio.Queue[HarvestedPage | SpaceFailure | _Done | _Crash] = asyncio.Queue(
            maxsize=active_cap
        )
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
            )
            self.stats[token] = walk.stats
            # The worker holds the walk and the queue, never the harvest itself, so that
            # a harvest dropped without being closed is collected and its workers cancelled.
            worker = asyncio.create_task(_walk_space(walk, queue), name=f"harvest:{token}")
            workers.add(worker)
            worker.add_done_callback(workers.discard)

        try:
            while waiting and len(workers) < active_cap:
                start_next()
            active = len(workers)
            while active:
                item = await queue.get()
                if isinstance(item, HarvestedPage):
                    token, page = item.space_token, item.page
                    if token not in self._resume:
                        self._resume[token] = self._checkpoints.get(token) or Checkpoint(
                            token, page.page, self.page_size
                        )
                    yield item
                    if not page.reread:
                        self._resume[token] = Checkpoint(token, page.page + 1, self.page_size)
                        self._position.pop(token, None)
                    continue
                active -= 1
                if isinstance(item, _Crash):
                    raise item.error
                if isinstance(item, SpaceFailure):
                    self.failures.append(item)
                    if self.fail_fast:
                        raise item.error
                else:
                    self.completed.append(item.space_token)
                if waiting:
                    start_next()
                    active += 1
        finally:
            for worker in list(workers):
                worker.cancel()
            if workers:
                await asyncio.gather(*workers, return_exceptions=True)


async def _walk_space(
    walk: PageWalk, queue: asyncio.Queue[HarvestedPage | SpaceFailure | _Done | _Crash]
) -> None:
    token = walk.space_token
    try:
        async with walk:
            async for page in walk:
                await queue.put(HarvestedPage(token, page))
    except SpaceTasksError as exc:
        log.error("space %s failed: %s", token, exc)
        await queue.put(SpaceFailure(token, exc))
        return
    except Exception as exc:  # a bug, not an answer: hand it to the consumer to raise
        await queue.put(_Crash(token, exc))
        return
    await queue.put(_Done(token))
