"""What the command line writes: JSON Lines of tasks, and the checkpoint file beside them.

The output and the checkpoint are kept consistent with one rule: the checkpoint is only ever
rewritten between two pages, after every line of the pages before it was written and flushed,
and it records the byte size of the output at that moment (``output_offset``). Whatever the
output holds beyond that offset (lines of pages not yet checkpointed, or half a line written
when the process was killed) is cut off on resume, and those pages are fetched again. So the
output ends with every task exactly once however the run was stopped.

Checkpoint file (JSON, rewritten atomically: temporary file, fsync, ``os.replace``)::

    {"version": 2,
     "output": "/abs/path/tasks.jsonl",   # the file this checkpoint describes
     "output_offset": 123456,             # bytes of output that are complete and recorded
     "page_size": 100,                    # a resume must use the same page size
     "spaces": {"TOKEN": {"done": false, "tasks": 600,
                          "walk": {...}}, ...}}   # the library's walk Checkpoint

``tasks`` is how many of the space's tasks are in the output (up to ``output_offset``);
``done`` spaces are not fetched again; ``walk`` is the space's
:class:`~spacetasks_async.Checkpoint` (count-from-the-end position, anchor ids, seams
still to prove), the one scheme of ``iter_tasks``, harvests and this command: tasks created
or deleted between two runs neither repeat nor go missing.
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
from ._errors import InvalidArgumentError
from ._models import Task
from ._plan import Checkpoint

__all__ = [
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "CheckpointFile",
    "OutputFile",
    "SpaceProgress",
    "encode_line",
    "encode_lines",
]

CHECKPOINT_VERSION: Final = 2


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
    """Where one space stands in the output: tasks written, done, the walk's checkpoint."""

    tasks: int = 0
    done: bool = False
    walk: Checkpoint | None = None

    def finished(self) -> None:
        """The space is done: nothing to resume."""
        self.done = True
        self.walk = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form stored in the checkpoint file."""
        return {
            "done": self.done,
            "tasks": self.tasks,
            "walk": None if self.walk is None else self.walk.to_json(),
        }

    def resume_point(self, space_token: str, page_size: int) -> Checkpoint | None:
        """The library checkpoint to resume this space from (None: from the start)."""
        del space_token, page_size  # checked when the file was read
        return self.walk


def _progress_from_json(token: str, obj: Any, page_size: int) -> SpaceProgress:
    if not isinstance(obj, dict):
        raise CheckpointError(f"space {token!r}: expected an object")
    done, tasks, walk = obj.get("done"), obj.get("tasks", 0), obj.get("walk")
    if not isinstance(done, bool):
        raise CheckpointError(f"space {token!r}: 'done' must be true or false")
    if not isinstance(tasks, int) or isinstance(tasks, bool) or tasks < 0:
        raise CheckpointError(f"space {token!r}: 'tasks' must be an integer >= 0")
    point = None
    if walk is not None:
        try:
            point = Checkpoint.from_json(walk)
        except InvalidArgumentError as exc:
            raise CheckpointError(f"space {token!r}: {exc}") from None
        if point.space_token != token or point.page_size != page_size:
            raise CheckpointError(f"space {token!r}: its walk is for another space or size")
    return SpaceProgress(tasks=tasks, done=done, walk=point)


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
            spaces = {
                str(k): _progress_from_json(str(k), v, page_size) for k, v in spaces_obj.items()
            }
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
