"""Small files written whole: a checkpoint or a state replaced atomically, owner-only."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["replace_file"]


def replace_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: a reader sees the old file or the new one.

    Written to a temporary file beside it (created 0600 by ``mkstemp``: these files name
    outputs, spaces and tasks), synced, then renamed over ``path``.

    Args:
        path: the file to replace (or create).
        data: its whole new content.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
