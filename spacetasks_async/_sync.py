"""Incremental sync: each run hands out only the tasks created or changed since the last.

The list is newest first, so a run reads from the front only until it reaches the newest
tasks the last run saw (their ids are kept in the state): the exact walk, told to stop
there (``stop_at``), proves that every task created in between is handed out once. Then it
re-reads the part of the list that still holds tasks whose status was not final last
time (their ids and ranks are kept, at most ``refresh_limit``), and hands out those whose
JSON changed (a compact hash of each is kept). Deletions are counted by rank arithmetic:
``count then + created - count now``.

State (JSON, versioned, written atomically, 0600)::

    {"version": 1, "spaces": {"TOKEN": {
        "page_size": 100, "count": 10000, "front": ["T...", ...], "synced_at": "...",
        "pending": [["T...", rank, "hash"], ...], "walk": {...} or null}}}

``walk`` is set while a run is in progress (the walk's checkpoint): a run killed halfway
resumes like a harvest.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs
import orjson

from ._closing import AsyncClosing
from ._convert import encode_task
from ._errors import HarvestError, InvalidArgumentError
from ._files import replace_file
from ._harvest import Harvest
from ._models import Task, TaskStatus
from ._paginate import DEFAULT_WINDOW
from ._plan import ANCHORS, Checkpoint
from ._validate import validate_limit, validate_page_size, validate_space_token

if TYPE_CHECKING:
    from ._client import Client

__all__ = [
    "FINAL_STATUSES",
    "SYNC_STATE_VERSION",
    "SpaceSyncState",
    "SpaceSyncSummary",
    "Sync",
    "SyncState",
    "SyncedTask",
]

SYNC_STATE_VERSION: Final = 1
#: Statuses after which a task does not change any more; any other (``pending``,
#: ``in_progress``, ``hold``, or one this version does not know) is refreshed.
FINAL_STATUSES: Final = frozenset(
    {TaskStatus.COMPLETED.value, TaskStatus.FAILED.value, "partially_completed"}
)


def task_hash(task: Task) -> str:
    """A compact hash of the task's JSON as the API sent it (to tell a change)."""
    body = orjson.dumps(encode_task(task), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(body, digest_size=8).hexdigest()


def _final(task: Task) -> bool:
    status = task.status
    value = status.value if isinstance(status, TaskStatus) else status
    return value in FINAL_STATUSES


@attrs.frozen
class SpaceSyncState:
    """What a sync remembers of one space between runs.

    Attributes:
        space_token: the space.
        page_size: the page size of its walks.
        count: the space's count at the end of the last run.
        front: ids of the newest tasks the last run saw, newest first (where the next
            run stops reading).
        pending: ``(task_id, rank, hash)`` of tasks that were not final, newest first.
        synced_at: when the last run that completed started (ISO 8601, UTC).
        walk: the checkpoint of a run in progress (None between runs).
        run_front: with ``walk``: the newest tasks the run in progress handed out.
        run_pending: with ``walk``: the tasks not final the run in progress handed out.
    """

    space_token: str
    page_size: int
    count: int = 0
    front: tuple[str, ...] = ()
    pending: tuple[tuple[str, int, str], ...] = ()
    synced_at: str | None = None
    walk: Checkpoint | None = None
    run_front: tuple[str, ...] = ()
    run_pending: tuple[tuple[str, int, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "page_size": self.page_size,
            "count": self.count,
            "front": list(self.front),
            "pending": [list(p) for p in self.pending],
            "synced_at": self.synced_at,
            "walk": None if self.walk is None else self.walk.to_json(),
            "run_front": list(self.run_front),
            "run_pending": [list(p) for p in self.run_pending],
        }

    @classmethod
    def from_json(cls, token: str, obj: Any) -> SpaceSyncState:
        """The inverse of :meth:`to_json`; raises :class:`InvalidArgumentError`."""
        validate_space_token(token)
        if not isinstance(obj, Mapping):
            raise InvalidArgumentError(f"sync state of {token!r} must be an object")
        size, count = obj.get("page_size"), obj.get("count", 0)
        validate_page_size(size)
        validate_limit("count", count, 0, 2**62)
        walk = obj.get("walk")
        front, run_front = _ids(token, obj, "front"), _ids(token, obj, "run_front")
        rows, run_rows = _pending(token, obj, "pending"), _pending(token, obj, "run_pending")
        synced_at = obj.get("synced_at")
        if synced_at is not None and not isinstance(synced_at, str):
            raise InvalidArgumentError(f"sync state of {token!r}: bad 'synced_at'")
        point = None if walk is None else Checkpoint.from_json(walk)
        assert isinstance(size, int) and isinstance(count, int)
        return cls(token, size, count, front, rows, synced_at, point, run_front, run_rows)


def _ids(token: str, obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
    ids = obj.get(key, [])
    if not isinstance(ids, list) or not all(isinstance(t, str) for t in ids):
        raise InvalidArgumentError(f"sync state of {token!r}: {key!r} must be task ids")
    return tuple(ids)


def _pending(token: str, obj: Mapping[str, Any], key: str) -> tuple[tuple[str, int, str], ...]:
    rows = obj.get(key, [])
    out: list[tuple[str, int, str]] = []
    for row in rows if isinstance(rows, list) else [None]:
        if not (
            isinstance(row, list)
            and len(row) == 3
            and isinstance(row[0], str)
            and isinstance(row[1], int)
            and isinstance(row[2], str)
        ):
            raise InvalidArgumentError(f"sync state of {token!r}: bad {key!r} entry")
        out.append((row[0], row[1], row[2]))
    return tuple(out)


@attrs.frozen
class SyncState:
    """The state of a sync: one :class:`SpaceSyncState` per space.

    Attributes:
        spaces: the state of each space synced so far.
    """

    spaces: Mapping[str, SpaceSyncState] = attrs.Factory(dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, with the format version."""
        return {
            "version": SYNC_STATE_VERSION,
            "spaces": {token: s.to_json() for token, s in self.spaces.items()},
        }

    @classmethod
    def from_json(cls, obj: Any) -> SyncState:
        """The inverse of :meth:`to_json`; raises :class:`InvalidArgumentError`."""
        if not isinstance(obj, Mapping) or obj.get("version") != SYNC_STATE_VERSION:
            raise InvalidArgumentError(f"not a version {SYNC_STATE_VERSION} sync state")
        spaces = obj.get("spaces", {})
        if not isinstance(spaces, Mapping):
            raise InvalidArgumentError("sync state 'spaces' must be an object")
        return cls({str(t): SpaceSyncState.from_json(str(t), s) for t, s in spaces.items()})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SyncState:
        """Read a state file; a missing file is an empty state (the first run).

        Args:
            path: the state file.
        """
        try:
            raw = Path(path).read_bytes()
        except FileNotFoundError:
            return cls()
        try:
            return cls.from_json(orjson.loads(raw))
        except orjson.JSONDecodeError:
            raise InvalidArgumentError(f"{path} is not a sync state (not JSON)") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (temporary file, fsync, rename), readable by its owner only.

        Args:
            path: the state file.
        """
        replace_file(Path(path), orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2))


@attrs.frozen
class SyncedTask:
    """A task a sync hands out: ``change`` is ``"new"`` or ``"changed"``.

    Attributes:
        space_token: the space.
        task: the task as the API sends it now.
        change: ``"new"`` (created since the last run, or every task on a first run) or
            ``"changed"`` (its JSON differs from the last version handed out).
        synced_at: when this run started (UTC): consumers keep the latest per task_id.
    """

    space_token: str
    task: Task
    change: str
    synced_at: datetime.datetime


@attrs.define
class SpaceSyncSummary:
    """What one run did for one space.

    Attributes:
        new: tasks created since the last run (all tasks on a first run).
        changed: tasks whose JSON changed (among those not final last time).
        deleted: tasks deleted since the last run, by rank arithmetic.
        requests: requests made for the space.
        unresolved: tasks not final last time that this run did not find again (deleted,
            or moved further than it looked).
        over_limit: tasks not final that the refresh limit left out (reported, not lost
            from view: the oldest are dropped).
        full: this run read the whole space (first run, or the last run's newest tasks
            were all deleted).
    """

    new: int = 0
    changed: int = 0
    deleted: int = 0
    requests: int = 0
    unresolved: int = 0
    over_limit: int = 0
    full: bool = False


class Sync(AsyncClosing):
    """One run of an incremental sync; iterate it for :class:`SyncedTask` items.

    The spaces are walked concurrently, as a harvest (one limit on requests in flight,
    shared fairly); each walk ends at the newest tasks of the space's last run. The tasks
    not final last time are re-read once the walks are done. ``state`` is the state to
    save after the run, or at any moment during it: spaces in progress carry their walk's
    checkpoint, so a run stopped halfway resumes. ``summary`` says per space what the run
    did. Spaces that failed are raised together at the end as a
    :class:`~spacetasks_async.HarvestError` (the others are synced and in ``state``).

    Args:
        client: the client that sends the requests.
        space_tokens: the spaces.
        state: the state of the last run (an empty state: a first run).
        page_size: tasks per request (the spaces' states must have been written with it).
        window: pages on order per space.
        refresh_limit: at most this many tasks not final are remembered and re-read, per
            space.
        concurrency: requests in flight across all spaces (default: the client's
            ``max_in_flight``).
    """

    def __init__(
        self,
        client: Client,
        space_tokens: Iterable[str],
        state: SyncState,
        *,
        page_size: int,
        window: int = DEFAULT_WINDOW,
        refresh_limit: int = 1000,
        concurrency: int | None = None,
    ) -> None:
        self._client = client
        self.space_tokens = list(dict.fromkeys(space_tokens))
        validate_page_size(page_size)
        validate_limit("refresh_limit", refresh_limit, 0, 1_000_000)
        for token in self.space_tokens:
            validate_space_token(token)
            known = state.spaces.get(token)
            if known is not None and known.page_size != page_size:
                raise InvalidArgumentError(
                    f"the sync state of space {token!r} was written with page_size "
                    f"{known.page_size}; a sync must keep it, got {page_size}"
                )
        self._spaces = dict(state.spaces)
        self.page_size = page_size
        self.refresh_limit = refresh_limit
        self.started = datetime.datetime.now(datetime.UTC)
        self.summary: dict[str, SpaceSyncSummary] = {
            t: SpaceSyncSummary() for t in self.space_tokens
        }
        self._newest: dict[str, list[str]] = {}
        self._pending: dict[str, list[tuple[str, int, str]]] = {}
        for token in self.space_tokens:
            known = self._spaces.get(token)
            resuming = known is not None and known.walk is not None
            self._newest[token] = list(known.run_front) if resuming and known else []
            self._pending[token] = list(known.run_pending) if resuming and known else []
        self._harvest = Harvest(
            client,
            self.space_tokens,
            page_size=page_size,
            concurrency=client.max_in_flight if concurrency is None else concurrency,
            window=window,
            checkpoints={t: s.walk for t, s in self._spaces.items() if s.walk is not None},
            stop_at={t: frozenset(s.front) for t, s in self._spaces.items() if s.front},
            collect_failures=True,
        )
        self._gen: AsyncIterator[SyncedTask] | None = None

    @property
    def state(self) -> SyncState:
        """The state as of now (save it; see the class docstring)."""
        spaces = dict(self._spaces)
        for token in self.space_tokens:
            if token in self._harvest.completed or token not in self._harvest.stats:
                continue  # finished (its state is final below) or not started
            point = self._harvest.checkpoint(token)
            current = spaces.get(token) or SpaceSyncState(token, self.page_size)
            spaces[token] = attrs.evolve(
                current,
                walk=point,
                run_front=tuple(self._newest[token]),
                run_pending=tuple(self._pending[token][: self.refresh_limit]),
            )
        return SyncState(spaces)

    async def __anext__(self) -> SyncedTask:
        if self._gen is None:
            self._gen = self._run()
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop the run; nothing keeps running after this returns."""
        if self._gen is not None:
            await self._gen.aclose()  # type: ignore[attr-defined]
        await self._harvest.aclose()

    async def _run(self) -> AsyncIterator[SyncedTask]:
        async for item in self._harvest:
            token, task = item.space_token, item.task
            newest = self._newest[token]
            if len(newest) < ANCHORS:
                newest.append(task.task_id)
            if not _final(task) and item.rank is not None:
                self._pending[token].append((task.task_id, item.rank, task_hash(task)))
            self.summary[token].new += 1
            yield SyncedTask(token, task, "new", self.started)
        for token in self._harvest.completed:
            async for changed in self._finish(token):
                yield changed
        if self._harvest.failures:
            raise HarvestError(
                f"{len(self._harvest.failures)} of {len(self.space_tokens)} spaces failed",
                [f.error for f in self._harvest.failures],
            )

    async def _finish(self, token: str) -> AsyncIterator[SyncedTask]:
        """Refresh what was not final, count deletions, and write the space's new state."""
        before = self._spaces.get(token) or SpaceSyncState(token, self.page_size)
        summary = self.summary[token]
        stats = self._harvest.stats[token]
        count = stats.count_at_end or 0
        summary.requests = stats.requests
        # A run that reached the end of the list without meeting the last run's newest
        # tasks read the whole space (they were all deleted): every task came out as new.
        summary.full = not self._harvest.stopped(token)
        # This run's limit bounds the re-reads too (the newest tasks not final first).
        refresh = before.pending[: self.refresh_limit]
        summary.over_limit = len(before.pending) - len(refresh)
        changed, pending = await self._refresh(token, refresh, count, summary)
        for task in changed:
            yield SyncedTask(token, task, "changed", self.started)
        if before.count:
            summary.deleted = max(0, before.count + summary.new - count)
        everything = self._pending[token] + pending
        summary.over_limit += max(0, len(everything) - self.refresh_limit)
        self._spaces[token] = SpaceSyncState(
            token,
            self.page_size,
            count,
            tuple((self._newest[token] + list(before.front))[:ANCHORS]),
            tuple(everything[: self.refresh_limit]),
            self.started.isoformat(),
            None,
        )

    async def _refresh(
        self,
        token: str,
        pending: tuple[tuple[str, int, str], ...],
        count: int,
        summary: SpaceSyncSummary,
    ) -> tuple[list[Task], list[tuple[str, int, str]]]:
        """Re-read the tasks that were not final; the changed ones, and what stays pending.

        A task's rank only drops (by deletions older than it), so it is at the position
        its rank gives now, or later: each page is read, and the next one for what it did
        not hold.
        """
        if not pending or count == 0:
            summary.unresolved += len(pending)
            return [], []
        size = self.page_size
        wanted = {tid: (rank, digest) for tid, rank, digest in pending}
        by_page: dict[int, list[str]] = {}
        for tid, (rank, _) in wanted.items():
            page = max(0, count - rank) // size + 1
            by_page.setdefault(page, []).append(tid)
        changed: list[Task] = []
        still: list[tuple[str, int, str]] = []
        seen: set[str] = set()
        for page in sorted(by_page):
            for attempt_page in (page, page + 1):
                missing = [t for t in by_page[page] if t not in seen]
                if not missing:
                    break
                answer = await self._client.get_page(token, attempt_page, size)
                summary.requests += 1
                start = (attempt_page - 1) * size
                for i, task in enumerate(answer.tasks):
                    if task.task_id not in wanted or task.task_id in seen:
                        continue
                    seen.add(task.task_id)
                    digest = task_hash(task)
                    if digest != wanted[task.task_id][1]:
                        changed.append(task)
                        summary.changed += 1
                    if not _final(task):
                        rank = (answer.count or count) - start - i
                        still.append((task.task_id, rank, digest))
        summary.unresolved += len(wanted) - len(seen)
        return changed, still
