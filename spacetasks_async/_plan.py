"""The walk plan: every decision of a walk over one space, and no I/O.

A :class:`WalkPlan` is fed answers (which page, its ``count``, the ``task_id`` of each task,
and when the request went out and came back on the plan's own logical clock) and answers
with what to do: which requests to send, which tasks to hand out, when the walk is complete.
It has no asyncio, no clock and no network, so every decision is tested in microseconds
against adversarial model servers (``tests/test_plan.py``); the async driver in
:mod:`spacetasks_async._paginate` only performs what it says.

Coordinates
-----------
The server lists a space newest first by insertion. Count positions from the end: in an
answer served while the space held ``C`` tasks, the task at position ``i`` (0-based) has rank
``C - i``. Creating a task changes no existing rank; deleting a task changes only the ranks
of the tasks newer than it (by one). Ranks never grow. An answer for page ``p`` of size ``s``
holds the ranks ``(C - p*s, C - (p-1)*s]``; we write ``hi`` for the rank of its first task
and ``lo`` for the rank of its last. Insertion order itself never changes, so each answer
is also an *interval* of the insertion order: every task that existed when it was served
and lies between its newest and its oldest task is in it.

Why the walk is exact
---------------------
Call a task *persistent* if it exists from the first answer of the walk to the last. The
walk hands out the tasks of a chain of answers: the pages in order, and *verification
reads* inserted between two pages. It is complete when (1) the chain starts at the front
of the list (nothing persistent is newer than the first page's newest task), (2) its last
answer reaches the end (``lo <= 1``: nothing persistent is older than its oldest task),
and (3) every *seam* ``X | Y`` between consecutive answers is *gap-free*: no persistent
task is older than ``X``'s oldest and newer than ``Y``'s newest. Then every persistent task
lies in some answer, and is handed out there. A seam is proven gap-free in one of four ways:

* **Overlap.** ``X`` and ``Y`` share a task. Both are insertion intervals and they
  intersect, so their union is one interval: nothing persistent lies between them. This
  holds whatever the counts and whatever the order the server served them in.
* **Known order.** ``Y`` was sent after ``X`` came back, and ``Y.hi >= X.lo - 1``. A
  persistent task older than ``X``'s oldest had rank ``<= X.lo - 1`` when ``X`` was served,
  and ranks never grow, so it still has when ``Y`` is served; to be missed it would need a
  rank ``>= Y.hi + 1``. (For two pages of one size this reads ``C_Y >= C_X``.)
* **Measured, page by page.** Requests in flight together may be served in either order.
  If ``Y`` was served first, a gap needs a task of the seam whose rank dropped between the
  two answers, that is a deletion older than it in between (with ``C_Y >= C_X``, nothing
  else opens one). Take a page ``V`` that came back before ``Y`` was sent: such a deletion
  falls between two consecutive pages ``a, a+1`` from ``V`` to ``X``, read on either side
  of it, and is older than every task of both. When the two pages share a task, how far it
  moved less the change of count is exactly the number of deletions older than it between
  them (in either order); all zero, and the seam is gap-free.
* **A read of the front.** A task seen in two reads of page 1 (the walk's first page and
  one small read sent after ``X`` and ``Y`` came back) has dropped in rank by exactly the
  deletions older than it in between. Zero, and no rank of the seam moved: with
  ``C_Y >= C_X`` it is gap-free in either order. This is what a space that does not change
  costs: one small request at the end of a walk (and one per few thousand tasks, so that
  memory and checkpoints stay bounded on a space of any size).

Anything else (a count that fell across the seam, a deletion the front shows) is not
assumed away: the seams are *verified*. One read, sent after both sides came back, with a
page size chosen so that it covers the end of ``X`` and the start of ``Y`` as they stand
now (several seams in doubt share one read). Its seams with ``X`` and ``Y`` are proven by
overlap, and the tasks it holds between the two are the ones the seams could have hidden:
they are handed out unless handed out already. A read that misses (the space moved again,
or a side was deleted) is made again, wider, leaning on the next page out. Nothing is
accepted unproven: when the request budget (which grows with the progress and the change
the walk observes, never with a count a server claims) runs out, the walk raises
:class:`WalkIncompleteError` naming the pages in doubt.

Dedupe never looks at timestamps. A task is handed out unless its ``task_id`` is in the
memory of recent hand-outs, or it comes before (is newer than) such a task within the same
page: a task newer than one handed out was handed out too, or was created during the walk,
or lies in a seam whose verification hands it out. The memory holds the tasks handed out
since the last read of the front (about 10,000) plus twice the change of count observed:
flat on a space of any size.

Checkpoints are in the same coordinates: the rank and ids of the last task taken (anchors,
found again however many tasks were created or deleted since), the ids taken beyond it,
and the seams still to prove, each with a few ids of either side (proven on resume by a
read of the front against the walk's very first one, or verified). A resume that does not
find its anchors where their rank says reads on, as far as the deletions a read of the
front measures allow; only when the anchors were deleted does it go by rank, which may
repeat a task but loses none.

The proofs assume what every answer of the API claims: that its ``count`` was taken with
its data. The real server runs two queries; an answer whose length contradicts its own
count is read again, and raised as a :class:`ProtocolError` if it stays inconsistent. They
also assume that between two answers fewer tasks are created than the dedupe memory holds
while as many are deleted (the count would show anything else).
"""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal

import attrs

from ._errors import InvalidArgumentError, ProtocolError, WalkIncompleteError
from ._validate import validate_page_size, validate_space_token

#: The largest page the plan ever asks for (the client refuses larger ones).
MAX_PAGE_SIZE: Final = 10_000

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "OpenSeam",
    "HandOut",
    "Request",
    "WalkPlan",
]

CHECKPOINT_FORMAT: Final = 2
#: Ids of the last handed-out tasks a checkpoint keeps to find its place again.
ANCHORS: Final = 8

Purpose = Literal["page", "check", "verify", "resume", "front"]


@attrs.frozen
class Request:
    """Send ``GET ...?page=<page>&page_size=<size>`` and report the answer under ``key``."""

    key: int
    page: int
    size: int
    purpose: Purpose


@attrs.frozen
class HandOut:
    """Hand out the tasks at ``indices`` (positions in the answer ``key``), in that order.

    ``ids`` are their ``task_id``; ``page`` and ``size`` are the request's; ``recovered`` is
    true for tasks found by a verification read (they belong to a seam already passed).
    """

    key: int
    indices: tuple[int, ...]
    ids: tuple[str, ...]
    page: int
    size: int
    count: int
    recovered: bool


@attrs.frozen
class OpenSeam:
    """A seam a walk had not proven yet when its checkpoint was taken.

    ``above`` are the ids of the last tasks before the seam (oldest last) and ``below``
    the ids of the first tasks after it, with the rank of the last of ``above`` and of the
    first of ``below`` and the counts they were measured in. A resumed walk proves it
    (by a read of the front, or by reading the seam again) and hands out what lay in it.
    """

    above: tuple[str, ...]
    above_rank: int
    above_count: int
    below: tuple[str, ...]
    below_rank: int
    below_count: int

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "above": list(self.above),
            "above_rank": self.above_rank,
            "above_count": self.above_count,
            "below": list(self.below),
            "below_rank": self.below_rank,
            "below_count": self.below_count,
        }

    @classmethod
    def from_json(cls, obj: Any) -> OpenSeam:
        """The inverse of :meth:`to_json`; raises :class:`InvalidArgumentError`."""
        if not isinstance(obj, Mapping):
            raise InvalidArgumentError("an open seam must be a JSON object")
        above, below = obj.get("above"), obj.get("below")
        numbers = [obj.get(k) for k in ("above_rank", "above_count", "below_rank", "below_count")]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
            raise InvalidArgumentError("an open seam needs integer ranks and counts >= 0")
        for ids in (above, below):
            if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
                raise InvalidArgumentError("an open seam needs task ids on both sides")
        assert isinstance(above, list) and isinstance(below, list)
        a_rank, a_count, b_rank, b_count = (int(n) for n in numbers)  # type: ignore[arg-type]
        return cls(tuple(above), a_rank, a_count, tuple(below), b_rank, b_count)


@attrs.frozen
class Checkpoint:
    """Where a walk stands, in count-from-the-end terms; JSON via :meth:`to_json`.

    Every task that existed when the walk started and has rank ``>= rank`` (counted in a
    space of ``count`` tasks) was handed out, and so were the ``handed`` ids beyond it.
    ``anchors`` are the ids of the last tasks handed out at ``rank``, newest first: a
    resumed walk finds them to know exactly where it stopped, whatever was created or
    deleted in between. ``done`` is true once the walk was complete.

    Attributes:
        space_token: the space.
        page_size: the walk's page size (a resume uses the same).
        rank: the rank of the oldest task of the proven prefix (``count + 1`` when nothing
            was handed out yet).
        count: the count of the answer ``rank`` was measured in.
        anchors: ids of the tasks at the end of the proven prefix, newest first.
        handed: ids handed out beyond the proven prefix (a resume skips them).
        done: the walk was complete.
        front: ids of the newest tasks when the walk started, and ``front_count`` the
            count then: a resume that does not find its anchors where their rank says
            reads the front to learn how far deletions can have moved them.
        front_count: see ``front``.
        open: seams above ``rank`` not proven yet (see :class:`OpenSeam`).
    """

    space_token: str
    page_size: int
    rank: int
    count: int
    anchors: tuple[str, ...] = ()
    handed: frozenset[str] = frozenset()
    done: bool = False
    front: tuple[str, ...] = ()
    front_count: int = 0
    open: tuple[OpenSeam, ...] = ()

    @property
    def remaining(self) -> int:
        """Tasks the space held below the checkpoint when it was taken (0 when done)."""
        return 0 if self.done else max(0, self.rank - 1 - len(self.handed))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``format`` is the checkpoint format version)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "space_token": self.space_token,
            "page_size": self.page_size,
            "rank": self.rank,
            "count": self.count,
            "anchors": list(self.anchors),
            "handed": sorted(self.handed),
            "done": self.done,
            "front": list(self.front),
            "front_count": self.front_count,
            "open": [seam.to_json() for seam in self.open],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Checkpoint:
        """The inverse of :meth:`to_json`; raises :class:`InvalidArgumentError` on bad data.

        Args:
            obj: a dict as written by :meth:`to_json`.
        """
        if not isinstance(obj, Mapping):
            raise InvalidArgumentError("a checkpoint must be a JSON object")
        if obj.get("format") != CHECKPOINT_FORMAT:
            raise InvalidArgumentError(
                f"not a format {CHECKPOINT_FORMAT} checkpoint (format {obj.get('format')!r})"
            )
        token, size = obj.get("space_token"), obj.get("page_size")
        validate_space_token(token)
        validate_page_size(size)
        assert isinstance(token, str) and isinstance(size, int)
        rank, count, done = obj.get("rank"), obj.get("count"), obj.get("done", False)
        for name, value, low in (("rank", rank, 1), ("count", count, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidArgumentError(f"checkpoint {name!r} must be an integer >= {low}")
        assert isinstance(rank, int) and isinstance(count, int)
        if rank > count + 1:
            raise InvalidArgumentError(
                f"checkpoint rank {rank} is past its count {count}: it was edited"
            )
        if not isinstance(done, bool):
            raise InvalidArgumentError("checkpoint 'done' must be true or false")
        anchors, handed = obj.get("anchors", []), obj.get("handed", [])
        front, front_count = obj.get("front", []), obj.get("front_count", 0)
        for name, ids in (("anchors", anchors), ("handed", handed), ("front", front)):
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise InvalidArgumentError(f"checkpoint {name!r} must be a list of task ids")
        if not isinstance(front_count, int) or isinstance(front_count, bool) or front_count < 0:
            raise InvalidArgumentError("checkpoint 'front_count' must be an integer >= 0")
        seams = obj.get("open", [])
        if not isinstance(seams, list):
            raise InvalidArgumentError("checkpoint 'open' must be a list")
        open_seams = tuple(OpenSeam.from_json(seam) for seam in seams)
        return cls(
            token,
            size,
            rank,
            count,
            tuple(anchors),
            frozenset(handed),
            done,
            tuple(front),
            front_count,
            open_seams,
        )


@attrs.define(eq=False)
class _Answer:
    key: int
    page: int
    size: int
    purpose: Purpose
    sent: int
    received: int = -1
    count: int = 0
    ids: tuple[str, ...] = ()
    handed: bool = False
    given: frozenset[str] = frozenset()  # the ids this answer handed out
    index: int = -1  # its place in the chain (-1: not in it)
    offset: int | None = None  # position of its first task, where not page-aligned

    @property
    def start(self) -> int:
        return (self.page - 1) * self.size if self.offset is None else self.offset

    @property
    def hi(self) -> int:
        """Rank of the first task (or of the position where it would be)."""
        return self.count - self.start

    @property
    def lo(self) -> int:
        """Rank of the last task; ``hi + 1`` for an empty answer."""
        return self.hi - len(self.ids) + 1

    @property
    def expected(self) -> int:
        return max(0, min(self.size, self.count - self.start))

    @property
    def consistent(self) -> bool:
        return len(self.ids) == self.expected

    @property
    def reaches_end(self) -> bool:
        return self.lo <= 1


@attrs.frozen
class _Front:
    """A read of the front of the list: when, its count and the ids of its tasks."""

    sent: int
    received: int
    count: int
    ids: tuple[str, ...]

    def drop_to(self, later: _Front) -> int | None:
        """Deletions older than a task of this read, up to ``later`` (None: unknown)."""
        where = {tid: i for i, tid in enumerate(later.ids)}
        for i, tid in enumerate(self.ids):
            j = where.get(tid)
            if j is not None:
                return (self.count - i) - (later.count - j)
        return None


@attrs.define(eq=False)
class _Verify:
    """Verification of the seams ``first .. last - 1`` (chain entries ``first .. last``)."""

    first: int
    last: int
    attempt: int = 0


@attrs.define(eq=False)
class _Given:
    """A hand-out given to the driver, and how much of it the consumer took."""

    out: HandOut
    entry: int | None  # chain index of a page's hand-out
    seams: tuple[int, int] | None  # (first, last) entries of a verification's hand-out
    taken: int = 0

    @property
    def done(self) -> bool:
        return self.taken >= len(self.out.indices)


class WalkPlan:
    """Every decision of one walk; see the module docstring for the argument.

    The driver's loop: send what :meth:`requests` returns; report each answer with
    :meth:`answered` as soon as it arrives (that is when the plan's clock ticks); take
    hand-outs from :meth:`next_handout` and report what the consumer took with
    :meth:`consumed`; stop when :meth:`next_handout` returns None and :attr:`complete` is
    true. :meth:`cancelled` names requests no longer needed.

    Args:
        space_token: the space (for errors and checkpoints).
        page_size: tasks per page.
        window: the most page requests in flight plus answers held at once.
        start_page: the first page to walk (pages before it are not walked).
        checkpoint: resume from this (``start_page`` is then ignored).
        stop_at: end the walk at the first of these ids (exclusive): the newest tasks an
            earlier run saw, for an incremental sync.
    """

    def __init__(
        self,
        space_token: str,
        page_size: int,
        window: int,
        *,
        start_page: int = 1,
        checkpoint: Checkpoint | None = None,
        stop_at: frozenset[str] = frozenset(),
    ) -> None:
        self.space_token = space_token
        # A page holding one of these ids ends the walk there, before that id (a sync:
        # everything from it on was handed out by an earlier run).
        self._stop_at = stop_at
        self.size = page_size
        self.window = window
        self.requests_made = 0
        self.rereads = 0
        self.verifications = 0
        self.duplicates_dropped = 0
        self.drift_events = 0
        self.count_at_start: int | None = None
        self.latest_count: int | None = None
        #: Tasks the consumer still wants (None: all); no page is asked for beyond them.
        self.wanted: int | None = None
        self._tick = 0
        self._next_key = 0
        self._answers: dict[int, _Answer] = {}
        self._chain: list[int] = []  # keys of the chain's page answers, in order
        # _proven[i]: the seam chain[i] | chain[i+1] is proven (True), in doubt and to be
        # verified (False), or waiting for a read of the front to show no deletion (None).
        self._proven: list[bool | None] = []
        self._doubt: set[int] = set()  # the seams whose state is not True
        # Counted apart, so that each answer costs no pass over _doubt (which holds up to
        # a bracket period of seams: 10,000 with pages of 1).
        self._refuted: set[int] = set()  # the seams of _doubt in state False
        self._awaiting_front = 0  # the seams of _doubt in state None
        self._forgotten = 0  # chain entries before this index have been forgotten
        self._in_verification: set[int] = set()  # seams a verification read covers
        # Tasks recovered by verification reads (a later, overlapping verification must
        # not hand them out again); few: at most what the space changed by.
        self._recovered_ids: set[str] = set()
        self._fronts: list[_Front] = []  # reads of the front (page 1 counts as the first)
        self._front_key: int | None = None  # a read of the front in flight
        self._evaluated = 0  # seams evaluated so far
        self._verifying: dict[int, _Verify] = {}  # by request key
        self._waiting: list[_Verify] = []  # verifications to send once their pages are in
        self._handed_upto = 0  # chain entries handed out
        self._recovered: collections.deque[HandOut] = collections.deque()
        self._given: list[_Given] = []  # hand-outs not yet behind the checkpoint's prefix
        self._next_page = start_page
        self._end: int | None = None  # chain index of the answer that reaches the end
        self._outbox: list[Request] = []
        # A sync usually stops on its first page or two: it asks for one page, then doubles
        # while no stop is met, instead of a full window of pages it will not need.
        self._width = 1 if stop_at else window
        self._calm = 0
        self._memory: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._change = 0  # sum of |count differences| between answers, in arrival order
        self._progress = 0  # pages that handed out at least one task
        self._rechecked: set[int] = set()  # chain indices read again for inconsistency
        self._checking: set[int] = set()  # keys of those re-reads not answered yet
        self._done = False
        self._drop: set[int] = set()  # keys of requests to cancel
        # The proven prefix, for checkpoints (rank, count, anchors).
        self._prefix: tuple[int, int, tuple[str, ...]] | None = None
        self._skip: frozenset[str] = frozenset()
        # Resuming: the first reads look for the checkpoint's anchors; nothing is handed
        # out until they are found (or known to be gone).
        self._searching = False
        self._search_moved = False
        self._search_limit: int | None = None  # last position the search may read
        self._front: tuple[tuple[str, ...], int] | None = None  # (ids, count) at the start
        self._cut: dict[int, int] = {}  # chain index -> last position not to hand out
        self._resume_index = 0  # chain index of the first read of a resumed walk
        self._inherited = 0  # open seams taken over from an earlier run
        # The chain starts at the front of the list (nothing above its first page).
        self._from_front = checkpoint is None and start_page == 1
        if checkpoint is not None and not checkpoint.anchors and not checkpoint.done:
            # Taken before any task was: the walk starts from the front again.
            self._skip = checkpoint.handed
            checkpoint = None
            self._from_front = True
        if checkpoint is None:
            self._request_page()
        else:
            self._prefix = (checkpoint.rank, checkpoint.count, checkpoint.anchors)
            self._skip = checkpoint.handed | frozenset(checkpoint.anchors)
            if checkpoint.front:
                self._front = (checkpoint.front, checkpoint.front_count)
                # Seen when the first run started: before anything this run sends.
                self._fronts.append(_Front(0, 0, checkpoint.front_count, checkpoint.front))
            if checkpoint.done:
                self._done = True
            else:
                self._inherit(checkpoint.open)
                if checkpoint.rank > 1:
                    self._searching = True
                    self._request_resume(checkpoint.count)
                elif self._chain:
                    self._end = len(self._chain) - 1  # all handed out: only seams to prove
                    self._advance()
                else:
                    self._done = True

    # -- what the driver asks -------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """True once every task is proven handed out."""
        return self._done and not self._recovered

    @property
    def stopped(self) -> bool:
        """True when the walk ended at a ``stop_at`` id (not at the end of the list)."""
        if self._end is None or self._end >= len(self._chain):
            return False
        answer = self._answers.get(self._chain[self._end])
        return answer is not None and self._stops(answer)

    @property
    def width(self) -> int:
        """Page requests kept on order now: the window, or 1 while the space changes."""
        return self._width

    def requests(self) -> list[Request]:
        """The requests to send now (each is returned once)."""
        self._top_up()
        out, self._outbox = self._outbox, []
        return out

    def cancelled(self) -> list[int]:
        """Keys of requests in flight that are no longer needed (cancel them)."""
        out = sorted(self._drop)
        self._drop.clear()
        return out

    def keeps(self, key: int) -> bool:
        """Whether tasks of the answer ``key`` will be handed out (keep them until then)."""
        answer = self._answers.get(key)
        if answer is None:
            return any(out.key == key for out in self._recovered)
        return answer.purpose in ("page", "check", "resume") and not answer.handed

    def answered(self, key: int, count: object, ids: Sequence[str]) -> None:
        """Report the answer to request ``key``: its ``count`` and the ids of its tasks.

        Raises :class:`ProtocolError` for an answer no consistent server gives (more tasks
        than asked for, no count, a page that contradicts its count twice) and
        :class:`WalkIncompleteError` when the request budget is spent.
        """
        answer = self._answers.get(key)
        if answer is None or answer.received >= 0:
            return  # cancelled, or reported twice
        self._tick += 1
        answer.received = self._tick
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ProtocolError(
                f"page {answer.page} came without a usable count: the walk cannot prove "
                "that it is complete without one",
                space_token=self.space_token,
                page=answer.page,
            )
        if len(ids) > answer.size:
            raise ProtocolError(
                f"page {answer.page} holds {len(ids)} tasks although {answer.size} were asked "
                "for: the server does not honour page_size",
                space_token=self.space_token,
                page=answer.page,
            )
        answer.count = count
        answer.ids = tuple(ids)
        self._checking.discard(key)
        if self.count_at_start is None:
            self.count_at_start = count
            if self._front is None and answer.page == 1 and answer.purpose == "page":
                self._front = (answer.ids[:ANCHORS], count)
                self._fronts.append(_Front(answer.sent, answer.received, count, answer.ids))
        if self.latest_count is not None:
            self._change += abs(count - self.latest_count)
        self.latest_count = count
        if answer.purpose == "verify":
            self._on_verify(answer)
        elif key == self._front_key:
            self._front_key = None
            del self._answers[key]
            front = _Front(answer.sent, answer.received, count, answer.ids)
            if (
                self._fronts
                and self._fronts[-1].drop_to(front) is None
                and (len(answer.ids) == answer.size < MAX_PAGE_SIZE)
            ):
                # More tasks were created than it held: read a longer front.
                self._read_front(2 * answer.size)
            else:
                self._fronts.append(front)
                self._resolve_brackets()
        else:
            self._on_page(answer)
        self._advance()

    def next_handout(self) -> HandOut | None:
        """The next tasks to hand out, or None while the next page is not in yet."""
        if self._recovered:
            return self._recovered.popleft()
        if self._searching or self._handed_upto >= len(self._chain):
            return None
        index = self._handed_upto
        answer = self._answers[self._chain[index]]
        if answer.received < 0 or not answer.consistent:
            return None
        self._handed_upto += 1
        answer.handed = True
        front = self._front
        if (
            self._from_front
            and front is not None
            and len(front[0]) < ANCHORS
            and answer.count == front[1]
            and answer.start == len(front[0])
            and index > 0
        ):
            # Small pages: the checkpoint's front takes the first tasks of the next pages
            # too (read at the same count, so their ranks are known).
            self._front = ((*front[0], *answer.ids[: ANCHORS - len(front[0])]), front[1])
        if self._stop_at and not self._stops(answer):
            self._width = min(self.window, 2 * self._width)
        fresh = any(tid not in self._memory for tid in answer.ids)
        out = self._hand(answer, range(len(answer.ids)), recovered=False)
        if self.wanted is not None:
            self.wanted = max(0, self.wanted - len(out.indices))
        self._given.append(_Given(out, index, None))
        if fresh:
            self._progress += 1  # the server shows tasks this walk had not seen
        self._advance()
        return out

    def consumed(self, handout: HandOut, taken: int | None = None) -> None:
        """The consumer took the first ``taken`` tasks of ``handout`` (default: all)."""
        for given in reversed(self._given):
            if given.out is handout:
                given.taken = len(handout.indices) if taken is None else taken
                break
        # Hand-outs fully taken are behind the checkpoint; keep the others.
        self._given = [g for g in self._given if not g.done]

    def checkpoint(self) -> Checkpoint:
        """Where the walk stands, counting only what the consumer took.

        The position is the last page whose tasks were all taken; seams above it that are
        not proven yet travel in ``open``, and tasks taken beyond it in ``handed``.
        """
        front, front_count = self._front or ((), 0)
        if self._done and not self._recovered and not self._given:
            return Checkpoint(
                self.space_token,
                self.size,
                1,
                0,
                done=True,
                front=front,
                front_count=front_count,
            )
        frontier = self._handed_upto - 1
        handed: set[str] = set(self._skip)
        open_from: set[int] = set()
        for given in self._given:
            handed.update(given.out.ids[: given.taken])
            if given.entry is not None:
                frontier = min(frontier, given.entry - 1)
            elif given.seams is not None:
                # recovered tasks not all taken: their seams stay open
                open_from.update(range(given.seams[0], given.seams[1]))
        if frontier < self._resume_index or self._chain[frontier] not in self._answers:
            first = self._first_count()
            rank, count, anchors = self._prefix or (first + 1, first, ())
            seams = [
                self._open_seam(i)
                for i in range(0, self._resume_index, 2)
                if self._proven[i] is not True or i in open_from
            ]
        else:
            entry = self._answers[self._chain[frontier]]
            rank, count = entry.lo, entry.count
            ids: list[str] = []
            for k in reversed(self._chain[: frontier + 1]):
                earlier = self._answers.get(k)
                if earlier is None or len(ids) >= ANCHORS:
                    break
                ids[:0] = earlier.ids[-(ANCHORS - len(ids)) :]
            anchors = tuple(ids)
            doubt = {i for i in self._doubt if i < frontier}
            seams = [self._open_seam(i) for i in sorted(doubt | open_from) if i < frontier]
            handed -= set(anchors)
            if self._skip:
                for k in self._chain[self._resume_index : frontier + 1]:
                    passed = self._answers.get(k)
                    if passed is not None:
                        handed -= set(passed.ids)  # behind the position now
        return Checkpoint(
            self.space_token,
            self.size,
            rank,
            count,
            anchors,
            frozenset(handed),
            front=front,
            front_count=front_count,
            open=tuple(seams),
        )

    def _first_count(self) -> int:
        first = self._answers.get(self._chain[0]) if self._chain else None
        return first.count if first is not None and first.received >= 0 else 0

    def _open_seam(self, i: int) -> OpenSeam:
        x = self._answers[self._chain[i]]
        y = self._answers[self._chain[i + 1]]
        # A few ids either side, from the neighbouring pages too when pages are small.
        above: list[str] = []
        for k in reversed(self._chain[: i + 1]):
            entry = self._answers.get(k)
            if entry is None or len(above) >= ANCHORS:
                break
            above[:0] = entry.ids[-(ANCHORS - len(above)) :]
        below: list[str] = []
        for k in itertools.islice(self._chain, i + 1, None):
            entry = self._answers.get(k)
            if entry is None or entry.received < 0 or len(below) >= ANCHORS:
                break
            below.extend(entry.ids[: ANCHORS - len(below)])
        return OpenSeam(tuple(above), x.lo, x.count, tuple(below), y.hi, y.count)

    # -- requests -------------------------------------------------------------------------

    def _inherit(self, seams: Sequence[OpenSeam]) -> None:
        """Put the open seams of an earlier run at the head of the chain, still to prove.

        Each becomes two entries holding a few ids of either side, as if read before this
        run began (so the read of the front taken when the walk first started, and one
        at the end of this run, bracket them); the seams between them, and the one down
        to the resumed position, were proven by the earlier run.
        """
        for seam in seams:
            for ids, rank, count, top in (
                (seam.above, seam.above_rank, seam.above_count, True),
                (seam.below, seam.below_rank, seam.below_count, False),
            ):
                self._next_key += 1
                start = count - rank - len(ids) + 1 if top else count - rank
                entry = _Answer(
                    self._next_key,
                    1,
                    len(ids),
                    "page",
                    1,
                    1,
                    count,
                    tuple(ids),
                    handed=True,
                    given=frozenset(ids),
                    offset=start,
                )
                self._answers[entry.key] = entry
                self._enchain(entry)
            self._proven.extend([None, True])
        self._resume_index = len(self._chain)
        self._inherited = len(seams)
        self._tick = 2  # everything this run sends comes after them
        self._handed_upto = self._evaluated = len(self._chain)

    def _new(self, page: int, size: int, purpose: Purpose) -> _Answer:
        self._next_key += 1
        self._tick += 1
        answer = _Answer(self._next_key, page, size, purpose, sent=self._tick)
        self._answers[answer.key] = answer
        self._outbox.append(Request(answer.key, page, size, purpose))
        self.requests_made += 1
        if purpose != "page":
            self.rereads += 1
        return answer

    def _enchain(self, answer: _Answer, index: int | None = None) -> None:
        """Put ``answer`` at the end of the chain (or in place of entry ``index``)."""
        if index is None:
            answer.index = len(self._chain)
            self._chain.append(answer.key)
        else:
            answer.index = index
            self._chain[index] = answer.key

    def _request_page(self) -> None:
        self._enchain(self._new(self._next_page, self.size, "page"))
        self._next_page += 1

    def _request_resume(self, count: int) -> None:
        """Ask for the checkpoint's last task at ``count`` and the page of tasks after it.

        One read of a size chosen to hold both, so that a resume costs no more requests
        than the pages that were left (ranks only drop: the anchors are here or later).
        """
        assert self._prefix is not None
        last = max(0, count - self._prefix[0])  # position of the last task handed out
        page, size = covering_page(last, last + self.size)
        if size > MAX_PAGE_SIZE:
            page, size = last // self.size + 1, self.size
        self._enchain(self._new(page, size, "resume"))
        self._next_page = (page * size) // self.size + 1

    def _budget(self) -> int:
        # Grows with what the walk saw: pages that brought tasks and change of count. A
        # server cannot inflate it by claiming a huge count or by repeating pages.
        # The change term is capped by the progress, so a server that keeps changing while
        # showing nothing new (or claims any count) cannot keep the walk going.
        progress = self._progress + self._inherited
        return 16 + 4 * progress + 2 * min(self._change, 4 * progress)

    def _spend(self) -> None:
        if self.requests_made < self._budget():
            return
        doubt = sorted(
            {
                self._answers[self._chain[v.first]].page
                for v in [*self._verifying.values(), *self._waiting]
                if self._chain[v.first] in self._answers
            }
        )
        where = f"; pages in doubt: {', '.join(map(str, doubt))}" if doubt else ""
        raise WalkIncompleteError(
            f"gave up after {self.requests_made} requests without proving that no task was "
            f"missed (the space kept changing, or its answers contradict each other){where}",
            space_token=self.space_token,
            page=doubt[0] if doubt else None,
        )

    def _top_up(self) -> None:
        while (
            not self._done
            and not self._searching
            and not self._checking  # no prefetch on a count a re-read is checking
            and self._end is None
            and self._chain
        ):
            held = sum(1 for k in self._chain[self._handed_upto :] if not self._answers[k].handed)
            if held >= self._width:
                return
            if self.wanted is not None and held * self.size >= self.wanted:
                return  # the pages on order hold all that is still wanted
            last = self._answers[self._chain[-1]]
            if last.received >= 0 and not last.consistent:
                return  # being read again
            if last.received >= 0 and (last.reaches_end or self._stops(last)):
                return
            # Page on while the newest count says more pages exist, or past a full page.
            target = math.ceil((self.latest_count or 0) / self.size)
            if last.received >= 0:
                target = max(target, last.page + 1)
            if self._next_page > target:
                return
            self._spend()
            self._request_page()

    # -- answers --------------------------------------------------------------------------

    def _on_page(self, answer: _Answer) -> None:
        if answer.purpose == "front" or (
            answer.purpose == "resume" and self._searching and answer.consistent
        ):
            self._on_resume(answer)
            return
        if answer.consistent or answer.index < 0:
            return
        index = answer.index
        if index in self._rechecked:
            what = "fewer" if len(answer.ids) < answer.expected else "more"
            raise ProtocolError(
                f"page {answer.page} holds {len(answer.ids)} tasks, {what} than its count "
                f"{answer.count} implies ({answer.expected}), twice in a row: the server or "
                "a proxy does not serve the page size asked for",
                space_token=self.space_token,
                page=answer.page,
            )
        # Count and data are two queries on the real server: read the page once more.
        self._rechecked.add(index)
        self._spend()
        again = self._new(answer.page, answer.size, "check")
        again.purpose = answer.purpose
        self._enchain(again, index)
        self._checking.add(again.key)
        del self._answers[answer.key]

    def _on_resume(self, answer: _Answer) -> None:
        """A read of a resumed walk's search for the checkpoint's anchors.

        Ranks only drop, so the anchors are at the position their rank gives or later;
        how much later is bounded by the deletions older than them, which a read of the
        front measures (the walk's first tasks, and the count then, are in the checkpoint).
        Nothing is handed out until the anchors are found, or known to be out of reach:
        then the walk goes by rank, which may repeat a task but loses none.
        """
        assert self._prefix is not None
        _, count, anchors = self._prefix
        if answer.purpose == "front":
            del self._answers[answer.key]
            limit = self._limit_from_front(answer)
            if limit < 0 and len(answer.ids) == answer.size < MAX_PAGE_SIZE:
                # More tasks were created than it held: read a longer front.
                self._spend()
                self._new(1, min(MAX_PAGE_SIZE, 2 * answer.size), "front")
                return
            self._search_limit = limit
            self._search_next()
            return
        index = answer.index
        found = [i for i, t in enumerate(answer.ids) if t in set(anchors)]
        if found:
            self._searching = False
            for j in range(self._resume_index, index):
                self._cut[j] = len(self._answers[self._chain[j]].ids) - 1
            self._cut[index] = found[-1]
            return
        if answer.count != count and not self._search_moved and index == self._resume_index:
            # The first read went by the checkpoint's count; read where the rank is now.
            self._search_moved = True
            self._chain.pop()
            del self._answers[answer.key]
            self._request_resume(answer.count)
            return
        if not anchors or answer.reaches_end:
            self._give_up_search()
            return
        if self._search_limit is None:
            if self._front is not None:
                # How far can deletions have moved the anchors? The front tells.
                self._spend()
                self._new(1, max(self.size, 2 * ANCHORS), "front")
                return
            self._search_limit = -1  # nothing to tell: go by rank
        self._search_next()

    def _limit_from_front(self, answer: _Answer) -> int:
        """The last position the anchors can be at, from a read of the front."""
        assert self._front is not None and self._prefix is not None
        ids, count_then = self._front
        for j, tid in enumerate(ids):
            if tid in answer.ids:
                # Deletions older than this task since the start: its drop of rank.
                drop = (count_then - j) - (answer.count - answer.ids.index(tid))
                return answer.count - self._prefix[0] + max(0, drop)
        return -1  # the front is gone too: no bound

    def _search_next(self) -> None:
        """Read the next page of the search, or give up when past the limit."""
        if self._search_limit is not None and (self._next_page - 1) * self.size > (
            self._search_limit
        ):
            self._give_up_search()
            return
        self._progress += 1  # a search read is bounded by the front, not by the budget
        self._spend()
        self._enchain(self._new(self._next_page, self.size, "resume"))
        self._next_page += 1

    def _give_up_search(self) -> None:
        """No anchor can be found: hand out by rank (the tasks below the checkpoint)."""
        assert self._prefix is not None
        rank = self._prefix[0]
        self._searching = False
        for j in range(self._resume_index, len(self._chain)):
            a = self._answers[self._chain[j]]
            if a.received < 0:
                continue
            older = [i for i in range(len(a.ids)) if a.hi - i >= rank]
            self._cut[j] = older[-1] if older else -1

    # -- proving seams --------------------------------------------------------------------

    def _ready(self, index: int) -> bool:
        if index >= len(self._chain):
            return False
        answer = self._answers[self._chain[index]]
        return answer.received >= 0 and answer.consistent and answer.handed

    def _advance(self) -> None:
        """Find the end, prove seams, read the front, send verifications, finish."""
        chain = self._chain
        if self._end is None:
            for i in range(self._evaluated, len(chain)):
                a = self._answers[chain[i]]
                if a.received < 0 or not a.consistent:
                    break
                if a.reaches_end or self._stops(a):
                    self._end = i
                    self._cut_after_end()
                    break
        last_seam = len(chain) - 1 if self._end is None else self._end
        while self._evaluated < last_seam and self._ready(self._evaluated + 1):
            proven = self._prove(self._evaluated)
            self._seam(self._evaluated, proven)
            self._evaluated += 1
            if proven is False:
                self.drift_events += 1
                self._width, self._calm = 1, 0
            elif proven:
                self._calm += 1
                if self._width < self.window and self._calm >= 2:
                    self._width, self._calm = min(self.window, 2 * self._width), 0
        at_end = self._end is not None and self._evaluated >= self._end and self._ready(self._end)
        pending = self._awaiting_front
        if pending and self._front_key is None and (at_end or pending >= self._bracket_period()):
            self._read_front()
        self._group(closed=at_end)
        self._send_verifications()
        if (
            at_end
            and not self._verifying
            and not self._waiting
            and self._front_key is None
            and not self._doubt
        ):
            self._done = True
        self._forget()

    def _read_front(self, size: int | None = None) -> None:
        """Ask for the newest tasks: enough to find the first read's tasks again."""
        if size is None:
            grown = max(0, (self.latest_count or 0) - (self.count_at_start or 0))
            size = 2 * ANCHORS + 2 * grown
        self._spend()
        self._front_key = self._new(1, min(MAX_PAGE_SIZE, size), "front").key

    def _bracket_period(self) -> int:
        # Seams left waiting for a read of the front keep their answers in memory: read
        # the front at least every so many pages, so memory stays bounded on any space.
        return max(4 * self.window + 8, 10_000 // self.size)

    def _resolve_brackets(self) -> None:
        """Settle the seams waiting for the front: proven when nothing older was deleted."""
        for i in sorted(self._doubt):
            if self._proven[i] is not None:
                continue
            x = self._answers[self._chain[i]]
            y = self._answers[self._chain[i + 1]]
            first, last = min(x.sent, y.sent), max(x.received, y.received)
            before = [f for f in self._fronts if f.received < first]
            after = [f for f in self._fronts if f.sent > last]
            if not after:
                continue  # a later read of the front settles it
            drop = before[-1].drop_to(after[0]) if before else None
            self._seam(i, drop == 0)
            if drop != 0:
                self.drift_events += 1

    def _seam(self, i: int, state: bool | None) -> None:
        """Set the state of seam ``i`` (appending the next one), keeping ``_doubt``."""
        if i == len(self._proven):
            self._proven.append(state)
        else:
            if i in self._doubt and self._proven[i] is None:
                self._awaiting_front -= 1
            self._proven[i] = state
        if state is True:
            self._doubt.discard(i)
        else:
            self._doubt.add(i)
        if state is None:
            self._awaiting_front += 1
        if state is False:
            self._refuted.add(i)
        else:
            self._refuted.discard(i)

    def _stops(self, answer: _Answer) -> bool:
        return bool(self._stop_at) and not self._stop_at.isdisjoint(answer.ids)

    def _prove(self, i: int) -> bool | None:
        x = self._answers[self._chain[i]]
        y = self._answers[self._chain[i + 1]]
        if not x.ids:
            return x.reaches_end
        if not set(x.ids).isdisjoint(y.ids):
            return True  # overlap
        if y.hi < x.lo - 1:
            return False  # a gap is possible: the count fell across the seam
        if y.sent > x.received:
            return True  # known order: y after x
        # Served in either order: find a page that came back before y was sent, and check
        # that nothing older than the seam was deleted from there to x.
        for j in range(i - 1, -1, -1):
            v = self._answers.get(self._chain[j])
            if v is None:
                break
            if v.received < y.sent:
                if all(self._quiet_pair(a) for a in range(j, i)):
                    return True
                break
        return None  # a read of the front will tell whether anything older was deleted

    def _quiet_pair(self, a: int) -> bool:
        """Did nothing older than page ``a``'s tasks get deleted between it and the next?

        Only a task found in both answers measures it: how far it moved, less the change
        of count, is exactly the number of deletions older than it in between.
        """
        first = self._answers.get(self._chain[a])
        second = self._answers.get(self._chain[a + 1])
        if first is None or second is None:
            return False
        where = {tid: i for i, tid in enumerate(first.ids)}
        for i, tid in enumerate(second.ids):
            j = where.get(tid)
            if j is not None:
                moved = (second.start + i) - (first.start + j)
                return moved == second.count - first.count
        return False

    def _reach(self) -> int:
        """How many pages creations observed so far can have pushed a task down."""
        return 2 + self.window + math.ceil(2 * self._change / self.size)

    def _group_limit(self) -> int:
        # Seams verified by one read: several pages, never a page larger than the client
        # may ask for.
        return max(1, min(4 * self.window, MAX_PAGE_SIZE // (2 * self.size)))

    def _group(self, *, closed: bool) -> None:
        """Queue verifications for seams in doubt; one read covers several (and any proven
        seams between them: re-covering those costs no request)."""
        limit = self._group_limit()
        n = len(self._proven)
        starts = sorted(i for i in self._refuted if i not in self._in_verification)
        i = starts[0] if starts else n
        while i < n:
            if self._proven[i] is not False or i in self._in_verification:
                later = [k for k in starts if k > i]
                i = later[0] if later else n
                continue
            j, k = i, i + 1
            # (a seam inherited from an earlier run is verified on its own: the pages
            # between two of them are not in this run's chain)
            while (
                k < n
                and i >= self._resume_index
                and k - i < limit
                and k not in self._in_verification
            ):
                if self._proven[k] is None:
                    break
                if self._proven[k] is False:
                    j = k
                k += 1
            # A run that reaches the last seam evaluated may still grow: wait, unless it
            # is full or the walk has reached its end.
            if k >= n and not closed and j + 1 - i < limit:
                break
            self._in_verification.update(range(i, j + 1))
            self._waiting.append(_Verify(i, j + 1))
            later = [k for k in starts if k > j]
            i = later[0] if later else n

    def _send_verifications(self) -> None:
        waiting = []
        for v in self._waiting:
            if self._ready(v.last):
                self._send_verify(v)
            else:
                waiting.append(v)
        self._waiting = waiting

    def _send_verify(self, v: _Verify) -> None:
        top = self._answers[self._chain[v.first]]
        bottom = self._answers[self._chain[v.last]]
        now = self.latest_count or 0
        margin = (2 + min(self._change, 2 * self.size)) * 2**v.attempt
        # Where the end of ``top`` and the start of ``bottom`` are now: at their ranks
        # counted from the newest count, or later by the deletions older than them since
        # (ranks only drop), which the fall of the count estimates.
        fallen = max(0, max(top.count, bottom.count) - now)
        first = max(0, now - top.lo - margin)
        last = max(first, now - bottom.hi + fallen + margin)
        if last - first + 1 > MAX_PAGE_SIZE:
            raise WalkIncompleteError(
                f"the space moved too far to verify pages {top.page} to {bottom.page} with "
                f"one read of at most {MAX_PAGE_SIZE} tasks",
                space_token=self.space_token,
                page=top.page,
            )
        page, size = covering_page(first, last)
        self._spend()
        answer = self._new(page, size, "verify")
        self.verifications += 1
        self._verifying[answer.key] = v

    def _on_verify(self, answer: _Answer) -> None:
        v = self._verifying.pop(answer.key)
        top = self._answers[self._chain[v.first]]
        bottom = self._answers[self._chain[v.last]]
        ids = answer.ids
        top_ids, bottom_ids = set(top.ids), set(bottom.ids)
        top_at = max((i for i, t in enumerate(ids) if t in top_ids), default=None)
        bottom_at = min((i for i, t in enumerate(ids) if t in bottom_ids), default=None)
        # Both seams by overlap, so that the read is one interval with the pages around it
        # (at the front of the list, the read itself is the top; at the end, the bottom).
        top_ok = top_at is not None or (v.first == 0 and self._from_front and answer.start == 0)
        if not top_ok and answer.consistent and v.attempt >= 2 and v.first <= self._resume_index:
            # The tasks above were deleted (an inherited seam has only a few ids): take
            # the tasks below the rank they had. Nothing in the seam is missed (ranks only
            # drop); a task above it is repeated only if deletions moved it down too.
            above = [i for i in range(len(ids)) if answer.hi - i >= top.lo]
            top_at, top_ok = (above[-1] if above else -1), True
        bottom_ok = bottom_at is not None or (
            v.last == self._end and (answer.reaches_end or self._stops(answer))
        )
        if (
            not answer.consistent
            or not (top_ok and bottom_ok)
            or (top_at is not None and bottom_at is not None and bottom_at <= top_at)
        ):
            # The space moved again, or the tasks of a side were deleted: read once more,
            # with a wider margin, and lean on the next page out where a side is gone.
            v.attempt += 1
            if (
                answer.consistent
                and not top_ok
                and v.first > self._resume_index
                and self._chain[v.first - 1] in self._answers
            ):
                v.first -= 1
                self._in_verification.add(v.first)
            if (
                answer.consistent
                and not bottom_ok
                and self._resume_index <= v.last < len(self._proven)
                and self._proven[v.last] is not None
                and v.last not in self._in_verification
            ):
                self._in_verification.add(v.last)
                v.last += 1
            self._send_verify(v)
            return
        for seam in range(v.first, v.last):
            self._seam(seam, True)
            self._in_verification.discard(seam)
        answer.handed = True
        lo = 0 if top_at is None else top_at + 1  # (-1 + 1: from the first task)
        # Through the last task of ``bottom``: a page leaves out tasks newer than one it
        # knows (they lie in the seam above it), so some of its own may not be out yet.
        hi = len(ids)
        if bottom_at is not None:
            hi = max(i for i, t in enumerate(ids) if t in bottom_ids) + 1
        # The pages between top and bottom were handed out already (the dedupe memory may
        # have moved on since: their answers are kept while their seams are in doubt).
        # Tasks handed out by pages just above or below can lie in the seams too (pages
        # read at other moments, the space moving in between): their pages are kept for
        # as far as the change observed can move a task.
        inside: set[str] = set(self._recovered_ids)
        reach = self._reach()
        for k in self._chain[max(0, v.first - reach) : v.last + reach + 1]:
            earlier = self._answers.get(k)
            if earlier is not None:
                inside.update(earlier.given)
        out = self._hand(answer, [i for i in range(lo, hi) if ids[i] not in inside], recovered=True)
        if out.indices:
            self._recovered_ids.update(out.ids)
            self._recovered.append(out)
            self._given.append(_Given(out, None, (v.first, v.last)))
        del self._answers[answer.key]

    # -- handing out and remembering ------------------------------------------------------

    def _hand(self, answer: _Answer, positions: Iterable[int], *, recovered: bool) -> HandOut:
        memory, skip, ids = self._memory, self._skip, answer.ids
        places = list(positions)
        last_known = -1
        if not recovered:
            # In a page, a task before (newer than) one already handed out was handed out
            # too, or created during the walk, or lies in a gap that a verification hands
            # out. (A verification read spans several pages: there, only ids count.)
            known = [i for i in places if ids[i] in memory or ids[i] in skip]
            last_known = known[-1] if known else -1
        if answer.index >= 0:
            last_known = max(last_known, self._cut.pop(answer.index, -1))
        if self._stop_at:
            # the stop id and what follows it were handed out by the earlier run
            stop = next((i for i in places if ids[i] in self._stop_at), None)
            if stop is not None:
                places = [i for i in places if i < stop]
        chosen: list[int] = []
        here: set[str] = set()
        for i in places:
            tid = ids[i]
            if i > last_known and tid not in memory and tid not in skip and tid not in here:
                here.add(tid)
                chosen.append(i)
        if not recovered:
            self.duplicates_dropped += len(places) - len(chosen)
            if any(ids[i] in memory for i in places):
                self.drift_events += 1  # tasks created during the walk pushed these on
        for i in chosen:
            memory[ids[i]] = None
        if not recovered:
            answer.given = frozenset(ids[i] for i in chosen)
        # At least every task handed out since the last read of the front (a bracket's
        # worth, about 10,000 ids): creations and deletions that cancel out between two
        # answers move tasks without moving the count, so the count alone cannot size it.
        window = max(self._group_limit() + self.window + 3, self._bracket_period() + 2)
        capacity = window * self.size + 2 * self._change
        while len(memory) > capacity:
            memory.popitem(last=False)
        return HandOut(
            answer.key,
            tuple(chosen),
            tuple(ids[i] for i in chosen),
            answer.page,
            answer.size,
            answer.count,
            recovered,
        )

    def _forget(self) -> None:
        """Drop answers no proof or checkpoint can need any more: memory stays flat."""
        keep = min(self._evaluated, self._handed_upto) - 2 * self.window - 8
        for v in [*self._verifying.values(), *self._waiting]:
            keep = min(keep, v.first - self._reach())  # see _on_verify
        if self._doubt:
            keep = min(keep, min(self._doubt) - self._reach())  # a verification may need them
        for given in self._given:
            if given.entry is not None:
                keep = min(keep, given.entry - 1)
            elif given.seams is not None:
                keep = min(keep, given.seams[0])
        for i in range(self._forgotten, max(0, keep)):
            self._answers.pop(self._chain[i], None)
        self._forgotten = max(self._forgotten, keep)

    def _cut_after_end(self) -> None:
        assert self._end is not None
        for k in self._chain[self._end + 1 :]:
            answer = self._answers.pop(k)
            if answer.received < 0:
                self._drop.add(k)
        del self._chain[self._end + 1 :]


def covering_page(first: int, last: int) -> tuple[int, int]:
    """The smallest ``(page, size)`` whose positions include ``first`` to ``last``.

    Args:
        first: the first position (0-based) the page must hold.
        last: the last position it must hold (``>= first``).
    """
    span = last - first + 1
    for size in range(span, 2 * span + 64):
        if first // size == last // size:
            return first // size + 1, size
    return 1, last + 1
