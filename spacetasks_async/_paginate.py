"""The walk over one space: prefetch window, strict order, drift, termination, checkpoint.

How a walk goes:

1. Page ``start`` is fetched alone; its ``count`` tells how many pages there are.
2. The following pages are fetched concurrently, at most ``window`` HTTP requests in flight
   and at most ``window`` answers held (fetched but not yet consumed), and are handed out
   strictly in page order. The consumer sets the pace, so memory does not grow with the
   size of the space.
3. Drift. The server orders newest first, and ``count`` comes with every answer. Between two
   adjacent pages read at different moments, tasks created push older ones later (the later
   page repeats the tail of the earlier one: dropped by ``task_id``) and tasks deleted pull
   later ones back (the head of the later page slides onto the earlier one after it was
   read: a miss). Requests in flight together may be served in either order, so each seam
   is judged on what the server did while either answer could have been served: the
   ``count`` of every answer in that span, and repeats. Repeats across the seam prove that
   nothing was skipped there; otherwise any change means the pages where skipped tasks can
   now be are re-read (only those), and each re-read is checked the same way, a few levels
   deep. While the space keeps changing the walk reads one page at a time, then widens
   back to the window once seams are calm again.
4. The walk ends when a page comes back short and its own ``count`` agrees, or full and the
   latest ``count`` says it was the last. An answer that contradicts its own ``count`` is
   checked once more before the walk trusts it, and a hard ceiling on requests stops a
   server that never settles.

Dedupe memory is bounded: exact ``task_id`` sets are kept for a horizon of recent pages,
which widens with the drift seen; tasks older than the horizon are recognised by their
``created`` time, since the server's order makes every task handed out before the horizon
at least as new as the horizon's newest (ties are kept exactly).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from ._client import validate_page, validate_page_size, validate_space_token
from ._closing import AsyncClosing
from ._errors import InvalidArgumentError, SpaceTasksError
from ._models import Task, TaskPage
from ._retry import RetryEvent

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["Checkpoint", "PageWalk", "TaskWalk", "WalkLimitError", "WalkStats"]

log = logging.getLogger("spacetasks_async")

Gate = Callable[[], contextlib.AbstractAsyncContextManager[Any]]


class WalkLimitError(SpaceTasksError):
    """The walk made more requests than any consistent server could need, and gave up."""


@attrs.define
class WalkStats:
    """Live statistics of one walk; read them during the walk or after it.

    ``pages_fetched`` counts answers (re-reads included), ``rereads`` the re-reads among
    them, ``retries`` the failed attempts that were retried, ``drift_events`` the times the
    walk saw the space change under it (a changed ``count`` or repeated tasks).
    """

    pages_fetched: int = 0
    tasks_yielded: int = 0
    duplicates_dropped: int = 0
    count_at_start: int | None = None
    count_at_end: int | None = None
    drift_events: int = 0
    rereads: int = 0
    retries: int = 0
    consistency_checks: int = 0


@attrs.frozen
class Checkpoint:
    """Where to resume a walk: the first page not yet fully consumed.

    ``consumed`` holds the ``task_id`` of the tasks of that page already handed out, so that
    a resumed walk skips exactly those. ``page_size`` must stay the same on resume.
    """

    space_token: str
    page: int
    page_size: int
    consumed: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for a checkpoint file)."""
        return {
            "space_token": self.space_token,
            "page": self.page,
            "page_size": self.page_size,
            "consumed": sorted(self.consumed),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Checkpoint:
        """The inverse of :meth:`to_json`; raises :class:`InvalidArgumentError` on bad data."""
        try:
            token, page, size = obj["space_token"], obj["page"], obj["page_size"]
            consumed = frozenset(obj.get("consumed", ()))
        except (KeyError, TypeError) as exc:
            raise InvalidArgumentError(f"not a checkpoint: missing or bad {exc}") from None
        validate_space_token(token)
        validate_page(page)
        validate_page_size(size)
        if not all(isinstance(i, str) for i in consumed):
            raise InvalidArgumentError("checkpoint 'consumed' must hold task_id strings")
        return cls(token, page, size, consumed)


@attrs.define
class _Answer:
    page: int
    tasks: tuple[Task, ...]
    count: int | None
    start: int  # ticks of the walk's clock: before the request, after the answer
    end: int
    message: str | None
    status_code: int
    reread: bool = False
    depth: int = 0  # 0 for a page read in order; n for a re-read caused by a re-read n - 1
    record: list[int] | None = None  # its entry in the fetcher's recent answers
    repeats: int = 0  # tasks of this answer already handed out (set when handed out)


class _Seen:
    """Which tasks were handed out, in memory bounded by a horizon of recent tasks.

    Only ``(task_id, created)`` pairs are kept, never the tasks themselves.
    """

    def __init__(self, horizon: int) -> None:
        self.horizon = horizon
        self._recent: set[str] = set()
        self._pages: collections.deque[list[tuple[str, datetime | None]]] = collections.deque()
        self._size = 0
        # Everything evicted is at least as new as ``_cut``; evicted tasks created exactly
        # at ``_cut`` are kept by id, since equal times do not order.
        self._cut: datetime | None = None
        self._ties: set[str] = set()
        self._undated: set[str] = set()
        self.by_time = 0  # tasks judged handed out by their time alone (past the horizon)

    def __contains__(self, task: Task) -> bool:
        tid = task.task_id
        if tid in self._recent or tid in self._undated:
            return True
        cut, created = self._cut, task.created
        if cut is None or created is None:
            return False
        if created > cut or (created == cut and tid in self._ties):
            self.by_time += 1
            return True
        return False

    def add(self, tasks: list[Task]) -> None:
        if not tasks:
            return
        entries = [(task.task_id, task.created) for task in tasks]
        self._pages.append(entries)
        self._recent.update(tid for tid, _ in entries)
        self._size += len(entries)
        while self._size > self.horizon and len(self._pages) > 1:
            self._evict(self._pages.popleft())

    def _evict(self, entries: list[tuple[str, datetime | None]]) -> None:
        self._size -= len(entries)
        for tid, created in entries:
            self._recent.discard(tid)
            if created is None:
                self._undated.add(tid)  # rare: no time to order by
            elif self._cut is None or created < self._cut:
                self._cut = created
                self._ties = {tid}
            elif created == self._cut:
                self._ties.add(tid)

    def preload(self, ids: frozenset[str]) -> None:
        """Task ids handed out before a resume: never evicted, never handed out again."""
        self._undated.update(ids)


class _Fetcher:
    """Fetches pages of one walk and stamps each answer with its arrival order.

    The prefetch tasks hold this object and not the walk, so that a walk dropped without
    being closed can be collected, and its generator finalised, which cancels them.
    """

    def __init__(
        self,
        client: Client,
        space_token: str,
        page_size: int,
        window: int,
        filters: dict[str, str | int] | None,
        gate: Gate | None,
        stats: WalkStats,
    ) -> None:
        self.client = client
        self.space_token = space_token
        self.page_size = page_size
        self.window = window
        self.filters = filters
        self.gate = gate
        self.stats = stats
        self.in_flight = asyncio.Semaphore(window)
        # A logical clock ticked at each request start and answer: two answers whose
        # [start, end] overlap may have been served by the server in either order.
        self.tick = 0
        self.latest_end = 0
        self.latest_count: int | None = None
        # [start, end, count, repeats] of recent answers; repeats is filled in when the
        # answer is handed out
        self.recent: collections.deque[list[int]] = collections.deque(maxlen=4 * window + 16)

    def _on_retry(self, event: RetryEvent) -> None:
        self.stats.retries += 1

    async def fetch(self, page: int, depth: int) -> _Answer:
        async with self.in_flight, self.gate() if self.gate else _NO_GATE:
            self.tick += 1
            start = self.tick
            result = await self.client.get_page(
                self.space_token,
                page,
                self.page_size,
                filters=self.filters,
                on_retry=self._on_retry,
            )
        self.tick += 1
        end = self.tick
        record: list[int] | None = None
        if result.count is not None:
            self.latest_end, self.latest_count = end, result.count
            record = [start, end, result.count, 0]
            self.recent.append(record)
        self.stats.pages_fetched += 1
        self.stats.count_at_end = self.latest_count
        return _Answer(
            page,
            result.tasks,
            result.count,
            start,
            end,
            result.message,
            result.status_code,
            depth > 0,
            depth,
            record,
        )


class PageWalk(AsyncClosing):
    """An async iterator of :class:`TaskPage`, for one space, in page order.

    Pages hold only tasks not handed out before in this walk. Use as ``async for`` directly,
    or inside ``async with`` (or :func:`contextlib.aclosing`) to cancel any prefetch at once
    on an early exit. ``stats`` and ``checkpoint`` can be read at any time.
    """

    def __init__(
        self,
        client: Client,
        space_token: str,
        *,
        page_size: int,
        start_page: int = 1,
        max_items: int | None = None,
        window: int = 8,
        filters: Mapping[str, str | int] | None = None,
        checkpoint: Checkpoint | None = None,
        gate: Gate | None = None,
        max_requests: int | None = None,
    ) -> None:
        validate_space_token(space_token)
        validate_page_size(page_size)
        validate_page(start_page)
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise InvalidArgumentError(f"window must be an int of at least 1, got {window!r}")
        if max_items is not None and (not isinstance(max_items, int) or max_items < 0):
            raise InvalidArgumentError(f"max_items must be a non-negative int, got {max_items!r}")
        consumed: frozenset[str] = frozenset()
        if checkpoint is not None:
            if checkpoint.space_token != space_token:
                raise InvalidArgumentError(
                    f"checkpoint is for space {checkpoint.space_token!r}, not {space_token!r}"
                )
            if checkpoint.page_size != page_size:
                raise InvalidArgumentError(
                    f"checkpoint was taken with page_size {checkpoint.page_size}, "
                    f"resuming needs the same, got {page_size}"
                )
            start_page, consumed = checkpoint.page, checkpoint.consumed
        self.space_token = space_token
        self.page_size = page_size
        self.start_page = start_page
        self.max_items = max_items
        self.window = window
        self.stats = WalkStats()
        self._fetcher = _Fetcher(
            client,
            space_token,
            page_size,
            window,
            dict(filters) if filters else None,
            gate,
            self.stats,
        )
        self._max_requests = max_requests
        self.preconsumed = consumed
        self._next_unconsumed = start_page
        self._gen: AsyncIterator[TaskPage] | None = None
        # Pages kept on order right now: the window, or one while the space is changing
        # (pages read one after the other can only miss what a drop of count shows).
        self._width = window
        self._calm_seams = 0
        self._warned_order = False

    # -- iterator protocol ---------------------------------------------------------------

    async def __anext__(self) -> TaskPage:
        if self._gen is None:
            self._gen = self._run()
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop the walk: cancel and await every request still in flight."""
        if self._gen is not None:
            await self._gen.aclose()  # type: ignore[attr-defined]

    @property
    def checkpoint(self) -> Checkpoint:
        """Resume point: the first page whose tasks were not all handed out."""
        return Checkpoint(self.space_token, self._next_unconsumed, self.page_size)

    def _mark_consumed(self, page: int) -> None:
        self._next_unconsumed = max(self._next_unconsumed, page + 1)

    # -- the walk ------------------------------------------------------------------------

    async def _run(self) -> AsyncIterator[TaskPage]:
        size = self.page_size
        start = self.start_page
        fetcher = self._fetcher
        fetches: dict[tuple[int, bool], asyncio.Task[_Answer]] = {}
        order: collections.deque[tuple[int, bool]] = collections.deque()
        seen = _Seen(horizon=(self.window + 3) * size)
        seen.preload(self.preconsumed)
        meta: dict[int, _Answer] = {}  # the answers of recent pages, for seam checks
        requests = 0
        budget = self._max_requests
        reread_budget = 32
        warned_rereads = False

        def schedule(page: int, depth: int = 0) -> None:
            nonlocal requests, warned_rereads
            reread = depth > 0
            key = (page, reread)
            if key in fetches:  # a re-read of a page already being re-read
                return
            if reread and self.stats.rereads >= reread_budget:
                if not warned_rereads:
                    warned_rereads = True
                    log.warning(
                        "space %s: the space changes faster than re-reads can follow; "
                        "stopped re-reading after %d re-reads, tasks moved by later "
                        "changes may be missed",
                        self.space_token,
                        reread_budget,
                    )
                return
            requests += 1
            if budget is not None and requests > budget:
                raise WalkLimitError(
                    f"gave up after {budget} page requests: the space kept changing",
                    space_token=self.space_token,
                    page=page,
                )
            fetches[key] = asyncio.create_task(fetcher.fetch(page, depth))
            if reread:
                self.stats.rereads += 1
                order.appendleft(key)
            else:
                order.append(key)

        try:
            schedule(start)
            first = await fetches.pop(order.popleft())
            self.stats.count_at_start = first.count
            pages = max(math.ceil((first.count or 0) / size) - start + 1, 1)
            reread_budget = 2 * pages + 32
            if budget is None:
                budget = 4 * pages + 64
            target = self._target(first.count, start)
            next_page = start + 1
            last_normal = first
            checks = 0
            checking: int | None = None  # a page re-read to settle where the space ends
            answer: _Answer | None = first
            remaining = self.max_items

            def top_up() -> None:
                # Keep ``window`` pages on order: in flight or answered, not yet handed out.
                nonlocal target, next_page
                # With max_items, a page is asked for only while the pages on order cannot
                # cover what is still wanted (each gives at most ``size`` tasks).
                target = max(target, self._target(fetcher.latest_count, start))
                while (
                    next_page <= target
                    and len(order) < self._width
                    and (remaining is None or len(order) * size < remaining)
                ):
                    schedule(next_page)
                    next_page += 1

            while True:
                if answer is not None:
                    page_out, remaining = self._emit(answer, seen, remaining)
                    self._check_seams(answer, meta, seen, schedule)
                    if self._short_inside(answer):
                        schedule(answer.page, 1)
                    if not answer.reread or answer.page == checking:
                        # the end is judged on the newest answer for the last page
                        if not answer.reread and page_out is not None and page_out.tasks:
                            checks = 0  # progress: the checks budget is for a stuck end
                        last_normal, checking = answer, None
                    if remaining != 0:
                        top_up()  # prefetch while the consumer works on this page
                    if not answer.reread:
                        self._mark_consumed(answer.page)
                    if page_out is not None:
                        yield page_out
                    if remaining == 0:
                        return
                    answer = None
                top_up()
                if not order:
                    more, is_check = self._more_after(last_normal, checks)
                    if more is None:
                        return
                    if is_check:
                        checks += 1
                        self.stats.consistency_checks += 1
                    if more == "next":
                        target = next_page
                        continue
                    checking = last_normal.page
                    schedule(last_normal.page, 1)
                key = order.popleft()
                answer = await fetches.pop(key)
        finally:
            for task in fetches.values():
                task.cancel()
            if fetches:
                await asyncio.gather(*fetches.values(), return_exceptions=True)
            self.stats.count_at_end = self._fetcher.latest_count

    def _target(self, count: int | None, start: int) -> int:
        if count is None:
            return start
        return max(start, math.ceil(count / self.page_size))

    def _short_inside(self, answer: _Answer) -> bool:
        """A page read in order came back short although its own count says pages follow.

        A server that drops part of a page (a glitch, a proxy) would otherwise lose those
        tasks silently: the page is read once more, and what it holds then is handed out.
        """
        count = answer.count
        if answer.reread or count is None or len(answer.tasks) >= self.page_size:
            return False
        if count <= answer.page * self.page_size:
            return False  # the last page by its own count: short is expected
        log.warning(
            "space %s: page %d has %d tasks but its count %d says it should be full; "
            "reading it again",
            self.space_token,
            answer.page,
            len(answer.tasks),
            count,
        )
        self.stats.consistency_checks += 1
        return True

    def _more_after(self, last: _Answer, checks: int) -> tuple[str | None, bool]:
        """Decide, with nothing left to fetch, whether the space really ended at ``last``.

        Returns what to do, None (it ended), "next" (fetch the next page) or "again"
        (re-read ``last``), and whether that is a check of a contradiction.
        """
        size = self.page_size
        if checks >= 3:
            log.warning(
                "space %s: answers kept contradicting their count after %d checks; "
                "ending the walk at page %d",
                self.space_token,
                checks,
                last.page,
            )
            return None, False
        raw = len(last.tasks)
        latest = self._fetcher.latest_count
        if raw == size:
            if latest is None or latest > last.page * size:
                return "next", False  # no count to go by, or one that says more: page on
            # Full, and a count no older than this answer says it was the last page: done.
            # Any other count (stale, or lower than what the page shows) gets one more look.
            if latest == last.page * size and self._fetcher.latest_end >= last.end:
                return None, False
            return "next", True
        expected_total = (last.page - 1) * size + raw
        if last.count is None or last.count <= expected_total:
            return None, False
        # A short page whose own count says more exists: count and data were taken at
        # different moments. Check once more before ending.
        log.info(
            "space %s: page %d has %d tasks but count %d says more; checking again",
            self.space_token,
            last.page,
            raw,
            last.count,
        )
        return "again", True

    def _emit(
        self,
        answer: _Answer,
        seen: _Seen,
        remaining: int | None,
    ) -> tuple[TaskPage | None, int | None]:
        by_time = seen.by_time
        fresh = [task for task in answer.tasks if task not in seen]
        if seen.by_time > by_time and not self._warned_order:
            self._warned_order = True
            log.warning(
                "space %s: page %d holds %d task(s) as new as tasks handed out beyond the "
                "dedupe horizon; treated as repeats, as the server orders by 'created'. If "
                "the server's order ever disagreed with 'created', they would be missed.",
                self.space_token,
                answer.page,
                seen.by_time - by_time,
            )
        dropped = answer.repeats = len(answer.tasks) - len(fresh)
        if answer.record is not None:
            answer.record[3] = dropped
        # Ids of this page already handed out: a checkpoint taken inside this page must
        # list them too, or a resumed walk (which has no memory) repeats them.
        repeated: frozenset[str] = frozenset()
        if dropped:
            repeated = frozenset(t.task_id for t in answer.tasks) - {t.task_id for t in fresh}
            if answer.page == self.start_page and not answer.reread:
                dropped -= len(repeated & self.preconsumed)  # handed out before a resume
        if dropped and not answer.reread:  # a re-read overlaps what was read: no news
            self.stats.duplicates_dropped += dropped
            self.stats.drift_events += 1
            log.warning(
                "space %s: page %d repeated %d task(s) already handed out "
                "(tasks were created during the walk); dropped them",
                self.space_token,
                answer.page,
                dropped,
            )
        if remaining is not None and len(fresh) > remaining:
            fresh = fresh[:remaining]
        seen.add(fresh)
        if remaining is not None:
            remaining -= len(fresh)
        self.stats.tasks_yielded += len(fresh)
        if answer.reread and not fresh:
            return None, remaining
        return (
            TaskPage(
                page=answer.page,
                page_size=self.page_size,
                count=answer.count,
                tasks=tuple(fresh),
                status_code=answer.status_code,
                message=answer.message,
                reread=answer.reread,
                repeated_ids=repeated,
            ),
            remaining,
        )

    def _check_seams(
        self,
        answer: _Answer,
        meta: dict[int, _Answer],
        seen: _Seen,
        schedule: Callable[[int, int], None],
    ) -> None:
        """Compare an answer with its neighbours' answers; re-read what drift hid.

        A page read in order is checked against the page before it. A re-read is checked
        against both neighbours too (the space may have moved again while it was made),
        up to a few levels deep so that a space that never settles cannot chain forever.
        """
        page = answer.page
        if answer.reread and answer.depth >= _MAX_REREAD_DEPTH:
            return
        meta[page] = answer
        if not answer.reread:
            meta.pop(page - self.window - 2, None)
        prev = meta.get(page - 1)
        if prev is not None:
            self._check_seam(prev, answer, seen, schedule, answer.depth + 1)
        nxt = meta.get(page + 1) if answer.reread else None
        if nxt is not None:
            self._check_seam(answer, nxt, seen, schedule, answer.depth + 1)

    def _check_seam(
        self,
        prev: _Answer,
        answer: _Answer,
        seen: _Seen,
        schedule: Callable[[int, int], None],
        depth: int,
    ) -> None:
        """Check the seam between the answers of two adjacent pages, ``prev`` first."""
        size = self.page_size
        if prev.count is None or answer.count is None:
            return
        seam = prev.page * size  # position of the first task of ``answer.page``
        # What the server did between the two reads, seen from the answers served while
        # either could have been: a change of count, or repeats (tasks pushed across a
        # seam by creations, visible even when deletions kept the count still).
        lo, hi = min(prev.start, answer.start), max(prev.end, answer.end)
        around = [r for r in self._fetcher.recent if r[1] >= lo and r[0] <= hi]
        counts = [r[2] for r in around]
        spread = max(counts) - min(counts) if counts else 0
        activity = max(spread, max((r[3] for r in around), default=0), prev.repeats)
        if activity == 0 and answer.repeats == 0:
            self._calm_seams += 1
            if self._width < self.window and self._calm_seams >= 2:
                self._width = min(self.window, self._width * 2)  # calm again: widen back
                self._calm_seams = 0
            return
        self._drift(seen, max(activity, answer.repeats))
        if self._width > 1:
            log.info(
                "space %s: the space is changing; reading pages one at a time until it settles",
                self.space_token,
            )
        self._width, self._calm_seams = 1, 0
        before = {task.task_id for task in prev.tasks}
        if any(task.task_id in before for task in answer.tasks):
            # This page repeats some of the previous page's tasks: the tasks moved later
            # across this very seam between the two reads, whichever came first, so none
            # can have been skipped here.
            return
        # The space may have kept changing since: where the missed tasks were then, they
        # are shifted now by up to the change of count since, so widen the re-read by it.
        latest = self._fetcher.latest_count or answer.count
        ahead = max(0, latest - max(prev.count, answer.count))  # net creations since
        back = max(0, min(prev.count, answer.count) - latest)  # net deletions since
        pages: set[int] = set()
        if prev.start < answer.end:
            # The previous page may have been served first: deletions before the seam
            # pulled this page's head back onto it after it was read. They lower the
            # count, so a drop bounds how many slid back.
            lost = max(prev.count - answer.count, 0) or activity
            first = max(self.start_page, (seam - lost - back) // size + 1)
            last = max(prev.page, (seam - 1 + ahead) // size + 1)
            pages.update(range(first, last + 1))
        if answer.start < prev.end:
            # This page may have been served first: creations since pushed the previous
            # page's tail onto it after it was read.
            first = max(self.start_page, (seam - back) // size + 1)
            last = (seam + activity + ahead - 1) // size + 1
            pages.update(range(first, last + 1))
        if not pages:
            return
        log.warning(
            "space %s: the space changed while pages %d and %d were read (count %d -> %d); "
            "re-reading page(s) %s so that no task is missed",
            self.space_token,
            prev.page,
            answer.page,
            prev.count,
            answer.count,
            ", ".join(map(str, sorted(pages))),
        )
        for page in sorted(pages, reverse=True):
            schedule(page, depth)

    def _drift(self, seen: _Seen, size: int) -> None:
        self.stats.drift_events += 1
        # Keep enough history to recognise every task drift of this size can move.
        seen.horizon = max(seen.horizon, 2 * size + (self.window + 3) * self.page_size)


_MAX_REREAD_DEPTH = 2


class _NoGate(contextlib.AbstractAsyncContextManager[None]):
    async def __aexit__(self, *exc: object) -> None:
        return None


_NO_GATE = _NoGate()


def checkpoint_within(base: Checkpoint, page: TaskPage, handed: int) -> Checkpoint:
    """The checkpoint of a walk whose consumer has taken ``handed`` tasks of ``page``.

    ``base`` is the walk's page-level checkpoint. A page of tasks recovered by a re-read
    (drift) is not part of a checkpoint: those few tasks are handed out before the walk
    moves on, but a crash in the middle of them loses the rest of them on resume.
    """
    if page.reread:
        return base
    if handed >= len(page.tasks):
        return attrs.evolve(base, page=max(base.page, page.page + 1), consumed=frozenset())
    consumed = frozenset(t.task_id for t in page.tasks[:handed]) | page.repeated_ids
    return attrs.evolve(base, page=page.page, consumed=consumed)


class TaskWalk(AsyncClosing):
    """An async iterator of :class:`Task`: a :class:`PageWalk` handed out task by task.

    ``checkpoint`` names the page being consumed and the tasks of it already handed out,
    so a walk interrupted in the middle of a page resumes without loss or repeat.
    """

    def __init__(self, pages: PageWalk) -> None:
        self.pages = pages
        self._page: TaskPage | None = None
        self._index = 0

    @property
    def stats(self) -> WalkStats:
        """The statistics of the underlying page walk."""
        return self.pages.stats

    @property
    def checkpoint(self) -> Checkpoint:
        """Resume point at task granularity (see :func:`checkpoint_within`)."""
        base = self.pages.checkpoint
        if self._page is None:
            return base
        return checkpoint_within(base, self._page, self._index)

    async def __anext__(self) -> Task:
        while self._page is None or self._index >= len(self._page.tasks):
            self._page = await self.pages.__anext__()
            self._index = 0
        task = self._page.tasks[self._index]
        self._index += 1
        return task

    async def aclose(self) -> None:
        """Stop the walk; see :meth:`PageWalk.aclose`."""
        await self.pages.aclose()
