"""What the command line keeps beside its output: the checkpoint file and the run locks.

The output itself is written through a :class:`~spacetasks_async._formats.Sink` (JSON Lines,
CSV or a Parquet dataset, plain or compressed). Output and checkpoint are kept consistent
with one rule: the checkpoint is only ever rewritten between two pages, right after
:meth:`Sink.commit` made every page before it durable, and it stores the state that commit
returned (``output_state``). A resume hands that state back to the sink, which checks that
the output is still the one it wrote (size and a hash of its tail, or its list of Parquet
parts) and cuts off whatever came after the commit (lines of pages not yet checkpointed, a
torn line, half a gzip member, a part file renamed after the commit); those pages are
fetched again. So the output ends with every task exactly once however the run was stopped,
and an output that something else replaced is refused instead of being cut.

Checkpoint file (JSON, mode 0600, rewritten atomically: temporary file, fsync,
``os.replace``)::

    {"version": 3,
     "output": "/abs/path/tasks.parquet",  # the output this checkpoint describes
     "format": "parquet",                  # and its format and compression
     "compression": "none",
     "page_size": 100,                     # a resume must use the same page size
     "max_items": null,                    # and the same --max-items
     "output_state": {...},                # Sink.commit()'s state: what the output holds
     "spaces": {"TOKEN": {"done": false, "tasks": 600,
                          "walk": {...}}, ...}}   # the library's walk Checkpoint

``tasks`` is how many of the space's tasks are in the output as of ``output_state`` (their
sum is the state's ``rows``, which a load checks); ``done`` spaces are not fetched again;
``walk`` is the space's :class:`~spacetasks_async.Checkpoint` (count-from-the-end position,
anchor ids, seams still to prove), the one scheme of ``iter_tasks``, harvests and this
command: tasks created or deleted between two runs neither repeat nor go missing.

Version 2 checkpoints (a byte offset into a JSON Lines file) are refused with a message:
they cannot prove that the output is still theirs.

:class:`RunLock` is the exclusive lock a run holds on its output and its checkpoint, so
that a second run on either fails at once instead of interleaving its writes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import attrs
import orjson

from ._errors import CheckpointError, InvalidArgumentError, LockedError
from ._files import replace_file
from ._plan import Checkpoint

__all__ = [
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "CheckpointFile",
    "LockedError",
    "RunLock",
    "SpaceProgress",
    "lock_path",
]

CHECKPOINT_VERSION: Final = 3
_FILE_MODE: Final = 0o600


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


def _progress_from_json(token: str, obj: Any, page_size: int) -> SpaceProgress:
    if not isinstance(obj, dict):
        raise CheckpointError(f"space {token!r}: expected an object")
    done, tasks, walk = obj.get("done"), obj.get("tasks", 0), obj.get("walk")
    if not isinstance(done, bool):
        raise CheckpointError(f"space {token!r}: 'done' must be true or false")
    if not _is_count(tasks):
        raise CheckpointError(f"space {token!r}: 'tasks' must be an integer >= 0")
    point = None
    if walk is not None:
        if done:
            raise CheckpointError(f"space {token!r}: a done space has no walk to resume")
        try:
            point = Checkpoint.from_json(walk)
        except InvalidArgumentError as exc:
            raise CheckpointError(f"space {token!r}: {exc}") from None
        if point.space_token != token or point.page_size != page_size:
            raise CheckpointError(f"space {token!r}: its walk is for another space or size")
    return SpaceProgress(tasks=tasks, done=done, walk=point)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@attrs.define
class CheckpointFile:
    """The checkpoint of one harvest into one output; see the module docstring.

    Attributes:
        path: the checkpoint file.
        output: the output it describes (absolute).
        format: the output's format (``jsonl``, ``csv``, ``parquet``).
        compression: the output's compression (``none``, ``gzip``, ``zstd``).
        page_size: the page size of every walk.
        max_items: the ``--max-items`` of the run (``None``: all tasks).
        output_state: the sink's state at the last commit (``None`` before the first).
        spaces: each space's progress, in the order planned.
        resumed: whether this was loaded from an existing file.
    """

    path: Path
    output: Path
    format: str
    compression: str
    page_size: int
    max_items: int | None = None
    output_state: dict[str, Any] | None = None
    spaces: dict[str, SpaceProgress] = attrs.Factory(dict)
    resumed: bool = False

    @classmethod
    def open(
        cls,
        path: Path,
        output: Path,
        *,
        format: str,
        compression: str,
        page_size: int,
        max_items: int | None,
    ) -> CheckpointFile:
        """Load ``path`` if it exists, checked against this run; else a fresh checkpoint.

        Args:
            path: the checkpoint file.
            output: the output of this run.
            format: the output format of this run.
            compression: the output compression of this run.
            page_size: the page size of this run.
            max_items: the per-space limit of this run (``None``: none).

        Raises:
            CheckpointError: when the file cannot be read, is not a version 3 checkpoint, is
                inconsistent in itself, or was written for another output, format, page
                size or limit (the message says which option to pass, or to delete it).
        """
        output = output.resolve()
        fresh = cls(
            path=path,
            output=output,
            format=format,
            compression=compression,
            page_size=page_size,
            max_items=max_items,
        )
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return fresh
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
        hint = f"(delete {path} to start over)"
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise CheckpointError(f"checkpoint {path} is not valid JSON {hint}") from None
        if not isinstance(obj, dict) or "version" not in obj:
            raise CheckpointError(f"checkpoint {path} is not a spacetasks checkpoint {hint}")
        version = obj["version"]
        if version != CHECKPOINT_VERSION:
            if isinstance(version, int) and version < CHECKPOINT_VERSION:
                raise CheckpointError(
                    f"checkpoint {path} is version {version}, written by an older spacetasks; "
                    f"this one reads version {CHECKPOINT_VERSION} only (it can prove that the "
                    "output is still the one it wrote): finish that harvest with the older "
                    f"version, or delete {path} and the output to start over"
                )
            raise CheckpointError(
                f"checkpoint {path} is version {version!r}, not {CHECKPOINT_VERSION} {hint}"
            )
        saved_output = obj.get("output")
        if not isinstance(saved_output, str) or Path(saved_output) != output:
            # A resume cuts the output back: never do that to another file.
            raise CheckpointError(
                f"checkpoint {path} belongs to output {saved_output}, not {output}: pass "
                f"--output {saved_output} {hint}"
            )
        if obj.get("format") != format or obj.get("compression") != compression:
            raise CheckpointError(
                f"checkpoint {path} is for {obj.get('format')} output with compression "
                f"{obj.get('compression')}, not {format} with {compression}: pass "
                f"--format {obj.get('format')} {hint}"
            )
        saved_size = obj.get("page_size")
        if not isinstance(saved_size, int) or isinstance(saved_size, bool):
            raise CheckpointError(f"checkpoint {path} lacks page_size {hint}")
        if saved_size != page_size:
            raise CheckpointError(
                f"checkpoint {path} was written with --page-size {saved_size}, and a resumed "
                f"harvest must use the same page size: pass --page-size {saved_size} {hint}"
            )
        saved_max = obj.get("max_items")
        if saved_max != max_items:
            # Each space's task count is measured against the limit: another one would cut a
            # resumed space at another place than the spaces done before.
            option = "no --max-items" if saved_max is None else f"--max-items {saved_max}"
            raise CheckpointError(
                f"checkpoint {path} was written with {option}, and a resumed harvest must "
                f"use the same: pass {option} {hint}"
            )
        state = obj.get("output_state")
        if not isinstance(state, dict) or not _is_count(state.get("rows")):
            raise CheckpointError(f"checkpoint {path} lacks the output's state {hint}")
        spaces_obj = obj.get("spaces", {})
        if not isinstance(spaces_obj, dict):
            raise CheckpointError(f"checkpoint {path}: 'spaces' must be an object {hint}")
        try:
            spaces = {
                str(k): _progress_from_json(str(k), v, page_size) for k, v in spaces_obj.items()
            }
        except CheckpointError as exc:
            raise CheckpointError(f"checkpoint {path}: {exc} {hint}") from None
        counted = sum(p.tasks for p in spaces.values())
        if counted != state["rows"]:
            raise CheckpointError(
                f"checkpoint {path} is inconsistent: its spaces count {counted:,} tasks, its "
                f"output state {state['rows']:,} {hint}"
            )
        return attrs.evolve(fresh, output_state=state, spaces=spaces, resumed=True)

    def check_tokens(self, tokens: Iterable[str], *, all_spaces: bool) -> None:
        """Refuse a resume whose spaces are not this checkpoint's.

        A resume must name the spaces it started with: one that leaves an unfinished space
        out would report success with that space's tasks half written, and one that adds a
        space has no record of it. ``--all-spaces`` adds the organization's new spaces.

        Args:
            tokens: the spaces named by the command (``--all-spaces`` ones not included).
            all_spaces: whether the command also harvests every space of the organization.

        Raises:
            CheckpointError: naming the spaces that differ.
        """
        if not self.resumed:
            return
        given = list(dict.fromkeys(tokens))
        if not given:
            return  # the checkpoint's own spaces are used
        unknown = [t for t in given if t not in self.spaces]
        if unknown and not all_spaces:
            raise CheckpointError(
                f"checkpoint {self.path} has no record of space {unknown[0]}"
                f"{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}: a resume "
                "harvests the spaces it started with; use another checkpoint for other spaces"
            )
        missing = [t for t, p in self.spaces.items() if not p.done and t not in given]
        if missing and not all_spaces:
            raise CheckpointError(
                f"checkpoint {self.path} has unfinished space {missing[0]}"
                f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''} that this "
                "command leaves out: run the same command again (or give no space tokens, "
                "and the checkpoint's are used)"
            )

    def space(self, token: str) -> SpaceProgress:
        """The progress record of ``token`` (created, at the start, if new).

        Args:
            token: the space token.
        """
        progress = self.spaces.get(token)
        if progress is None:
            progress = self.spaces[token] = SpaceProgress()
        return progress

    def to_json(self) -> dict[str, Any]:
        """The JSON document written to the file."""
        return {
            "version": CHECKPOINT_VERSION,
            "output": str(self.output),
            "format": self.format,
            "compression": self.compression,
            "page_size": self.page_size,
            "max_items": self.max_items,
            "output_state": self.output_state,
            "spaces": {token: p.to_json() for token, p in self.spaces.items()},
        }

    def save(self) -> None:
        """Atomically replace the file: a reader (or a resume) sees the old or the new one.

        The file is created with mode 0600 (``mkstemp``): it names the output and the spaces.
        """
        replace_file(self.path, orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2))


def lock_path(path: Path) -> Path:
    """The lock file of an output or checkpoint ``path``: ``.NAME.lock`` beside it.

    Beside it, not inside (a Parquet dataset directory must hold only its parts), and hidden,
    like the sink's temporary files. The path is resolved first, so that two spellings of
    one file share one lock.

    Args:
        path: the output or checkpoint.
    """
    path = path.resolve()
    return path.with_name(f".{path.name}.lock")


class RunLock:
    """Exclusive ``flock`` locks on lock files, held for the whole run.

    ``flock`` locks are released by the kernel when the process ends, however it ends, so a
    killed run never leaves a stale lock. The lock files are removed on :meth:`release`;
    :meth:`acquire` checks after locking that the file it locked is still the one at the
    path, so a run that opened a lock file just before another run removed it does not
    think it holds the lock.
    """

    def __init__(self) -> None:
        """An empty set of locks; :meth:`acquire` adds to it."""
        self._held: list[tuple[Path, int]] = []

    def acquire(self, path: Path, what: str) -> None:
        """Lock ``lock_path(path)`` or raise :class:`LockedError` at once.

        Args:
            path: the output or checkpoint to lock.
            what: what ``path`` is, for the message (``"output"``, ``"checkpoint"``).

        Raises:
            LockedError: when another run holds the lock.
            OSError: when the lock file cannot be created.
        """
        target = lock_path(path)
        if any(held == target for held, _ in self._held):
            return  # the same file given twice (-o x --checkpoint x is refused elsewhere)
        while True:
            fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_pid(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    by = f" (process {holder})" if holder else ""
                    raise LockedError(
                        f"another spacetasks run{by} is using the {what} {path} (lock "
                        f"{target}): wait for it to end, or use another {what}"
                    ) from None
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(target).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # removed by the run that held it: lock the new file
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._held.append((target, fd))

    def release(self) -> None:
        """Remove the lock files and release the locks (in the reverse order)."""
        while self._held:
            target, fd = self._held.pop()
            # Removed while still locked: a run waiting on this file sees it is gone.
            with contextlib.suppress(OSError):
                os.unlink(target)
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return text
    return ""
