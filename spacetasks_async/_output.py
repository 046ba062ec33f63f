"""What the command line writes: JSON Lines of tasks, and the checkpoint file beside them.

The output and the checkpoint are kept consistent with one rule: the checkpoint is only ever
rewritten between two pages, after every line of the pages before it was written and flushed,
and it records the byte size of the output at that moment (``output_offset``). Whatever the
output holds beyond that offset (lines of pages not yet checkpointed, or half a line written
when the process was killed) is cut off on resume, and those pages are fetched again. So the
output ends with every task exactly once however the run was stopped.

Checkpoint file (JSON, rewritten atomically: temporary file, fsync, ``os.replace``)::

    {"version": 1,
     "output": "/abs/path/tasks.jsonl",   # the file this checkpoint describes
     "output_offset": 123456,             # bytes of output that are complete and recorded
     "page_size": 100,                    # a resume must use the same page size
     "spaces": {"TOKEN": {"done": false, "page": 7, "tasks": 600,
                          "recent": [[ids of page 5], [ids of page 6]]}, ...}}

``page`` is the next page to fetch for that space and ``tasks`` how many of its tasks are in
the output (up to ``output_offset``); ``done`` spaces are not fetched again. A resume starts
at ``page - 1`` and skips the ``recent`` ids, which absorbs tasks created or deleted between
the runs (up to a page's worth); older checkpoints without ``recent`` resume at ``page``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Final

import attrs
import orjson

from ._convert import encode_task
from ._models import Task
from ._paginate import Checkpoint

__all__ = [
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "CheckpointFile",
    "OutputFile",
    "SpaceProgress",
    "encode_line",
    "encode_lines",
]

CHECKPOINT_VERSION: Final = 1


class CheckpointError(Exception):
    """The checkpoint file cannot be used for this run (the message says why and what to do)."""


def encode_line(space_token: str, task: Task) -> bytes:
    """One JSON Lines line: every key the API sent for the task, plus ``space_token``.

    ``space_token`` goes first so that a person reading the file sees where a task came
    from; a key of the same name sent by the API (none is today) would win, unchanged.
    """
    return orjson.dumps(
        {"space_token": space_token, **encode_task(task)}, option=orjson.OPT_APPEND_NEWLINE
    )


def encode_lines(space_token: str, tasks: Iterable[Task]) -> bytes:
    """The lines of several tasks of one space, joined."""
    return b"".join(encode_line(space_token, task) for task in tasks)


@attrs.define
class SpaceProgress:
    """Where one space stands in the output: next page to fetch, tasks written, done.

    ``recent`` holds the ids written for the last two pages (and tasks recovered by
    re-reads since). A resume re-reads the last written page and skips those ids: tasks
    created between the runs push written tasks onto it (repeats, skipped), tasks deleted
    pull unwritten ones back onto it (found), up to a page's worth either way.
    """

    page: int = 1
    tasks: int = 0
    done: bool = False
    recent: list[list[str]] = attrs.Factory(list)

    def wrote(self, page: int, ids: list[str], *, reread: bool) -> None:
        """Record a page (or a re-read's tasks) as written."""
        if reread:
            if self.recent:
                self.recent[-1].extend(ids)
            return
        self.page = page + 1
        self.recent = [*self.recent[-1:], list(ids)]

    def finished(self) -> None:
        """The space is done: nothing to resume, nothing to remember."""
        self.done = True
        self.recent = []

    def to_json(self) -> dict[str, Any]:
        """The JSON form stored in the checkpoint file."""
        return {"done": self.done, "page": self.page, "tasks": self.tasks, "recent": self.recent}

    def resume_point(self, space_token: str, page_size: int) -> Checkpoint | None:
        """The library checkpoint to resume this space from (None: start at page 1)."""
        if self.page <= 1:
            return None
        ids = frozenset(i for page in self.recent for i in page)
        if not ids:
            return Checkpoint(space_token, self.page, page_size)
        return Checkpoint(space_token, self.page - 1, page_size, ids)


def _progress_from_json(token: str, obj: Any) -> SpaceProgress:
    if not isinstance(obj, dict):
        raise CheckpointError(f"space {token!r}: expected an object")
    done, page, tasks = obj.get("done"), obj.get("page"), obj.get("tasks", 0)
    if not isinstance(done, bool):
        raise CheckpointError(f"space {token!r}: 'done' must be true or false")
    for name, value, low in (("page", page, 1), ("tasks", tasks, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise CheckpointError(f"space {token!r}: '{name}' must be an integer >= {low}")
    assert isinstance(page, int) and isinstance(tasks, int)
    recent = obj.get("recent", [])
    if not (
        isinstance(recent, list)
        and all(isinstance(p, list) and all(isinstance(i, str) for i in p) for p in recent)
    ):
        raise CheckpointError(f"space {token!r}: 'recent' must be lists of task ids")
    return SpaceProgress(page=page, tasks=tasks, done=done, recent=recent)


@attrs.define
class CheckpointFile:
    """The checkpoint of one harvest into one output file; see the module docstring."""

    path: Path
    output: Path
    page_size: int
    output_offset: int = 0
    spaces: dict[str, SpaceProgress] = attrs.Factory(dict)
    resumed: bool = False
    """True when this was loaded from an existing file (a resumed run)."""

    @classmethod
    def open(cls, path: Path, output: Path, page_size: int) -> CheckpointFile:
        """Load ``path`` if it exists (checking it fits this run), else a fresh checkpoint."""
        output = output.resolve()
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path=path, output=output, page_size=page_size)
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
        hint = f"(delete {path} to start over)"
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise CheckpointError(f"checkpoint {path} is not valid JSON {hint}") from None
        if not isinstance(obj, dict) or obj.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"checkpoint {path} is not a version {CHECKPOINT_VERSION} checkpoint {hint}"
            )
        saved_size, offset = obj.get("page_size"), obj.get("output_offset")
        if not isinstance(saved_size, int) or not isinstance(offset, int) or offset < 0:
            raise CheckpointError(f"checkpoint {path} lacks page_size or output_offset {hint}")
        if saved_size != page_size:
            raise CheckpointError(
                f"checkpoint {path} was written with --page-size {saved_size}, and a resumed "
                f"harvest must use the same page size: pass --page-size {saved_size} {hint}"
            )
        saved_output = obj.get("output")
        if saved_output is not None and Path(saved_output) != output:
            # Resuming truncates the output to output_offset: never do that to another file.
            raise CheckpointError(
                f"checkpoint {path} belongs to output {saved_output}, not {output}: pass "
                f"--output {saved_output} {hint}"
            )
        spaces_obj = obj.get("spaces", {})
        if not isinstance(spaces_obj, dict):
            raise CheckpointError(f"checkpoint {path}: 'spaces' must be an object {hint}")
        try:
            spaces = {str(k): _progress_from_json(str(k), v) for k, v in spaces_obj.items()}
        except CheckpointError as exc:
            raise CheckpointError(f"checkpoint {path}: {exc} {hint}") from None
        return cls(
            path=path,
            output=output,
            page_size=page_size,
            output_offset=offset,
            spaces=spaces,
            resumed=True,
        )

    def space(self, token: str) -> SpaceProgress:
        """The progress record of ``token`` (created at page 1 if new)."""
        progress = self.spaces.get(token)
        if progress is None:
            progress = self.spaces[token] = SpaceProgress()
        return progress

    def to_json(self) -> dict[str, Any]:
        """The JSON document written to the file."""
        return {
            "version": CHECKPOINT_VERSION,
            "output": str(self.output),
            "output_offset": self.output_offset,
            "page_size": self.page_size,
            "spaces": {token: p.to_json() for token, p in self.spaces.items()},
        }

    def save(self) -> None:
        """Atomically replace the file: a reader (or a resume) sees the old or the new one."""
        data = orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2)
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class OutputFile:
    """The JSON Lines output: a file (resumable) or standard output."""

    def __init__(self, handle: IO[bytes], name: str, *, durable: bool) -> None:
        self._handle = handle
        self.name = name
        self.durable = durable
        self.offset = handle.tell() if durable else 0

    @classmethod
    def create(cls, path: Path) -> OutputFile:
        """Start ``path`` afresh (truncated)."""
        return cls(open(path, "wb"), str(path), durable=True)  # closed by close()

    @classmethod
    def resume(cls, path: Path, offset: int) -> OutputFile:
        """Reopen ``path`` and cut it back to ``offset``: lines past it were not recorded."""
        try:
            handle = open(path, "r+b")  # noqa: SIM115 (closed by close)
        except FileNotFoundError:
            if offset == 0:
                return cls.create(path)
            raise CheckpointError(
                f"the checkpoint says {path} holds {offset:,} bytes, but it does not exist"
            ) from None
        size = os.fstat(handle.fileno()).st_size
        if size < offset:
            handle.close()
            raise CheckpointError(
                f"{path} is shorter ({size:,} bytes) than the checkpoint says ({offset:,}): "
                "it was changed since; delete both to start over"
            )
        handle.truncate(offset)
        handle.seek(offset)
        return cls(handle, str(path), durable=True)

    @classmethod
    def stdout(cls, handle: IO[bytes]) -> OutputFile:
        """Standard output (not resumable)."""
        return cls(handle, "standard output", durable=False)

    def write(self, data: bytes) -> None:
        """Write and flush whole lines (a reader of the file never waits for a page)."""
        self._handle.write(data)
        self._handle.flush()
        self.offset += len(data)

    def sync(self) -> None:
        """Make what was written durable before a checkpoint refers to it."""
        if self.durable:
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Flush and close (standard output is flushed, not closed)."""
        try:
            self._handle.flush()
        finally:
            if self.durable:
                self._handle.close()
