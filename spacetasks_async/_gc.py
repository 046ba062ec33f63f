"""Pausing the cyclic garbage collector around one burst of allocations."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["gc_paused"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC for the block, and restore it as it was.

    Parsing a page (``orjson.loads``) and decoding it allocate tens of thousands of small
    objects that cannot form cycles. The cyclic GC, triggered by allocation counts, would
    scan them (and everything the walk holds) over and over: a third of a walk's CPU time,
    measured. The block must not await, so no other code of the program runs while the
    collector is off; it runs again at its next threshold afterwards.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
