"""Peak resident memory of one streaming walk, measured in a process of its own.

``python -m benchmarks._memory BASE_URL API_KEY TOKEN PAGE_SIZE`` walks the space with
``iter_tasks``, keeping nothing but a count, and prints one JSON line: the tasks seen, the
seconds taken, and the peak resident memory (KiB) before the walk and at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import resource
import sys
import time
from pathlib import Path

from spacetasks_async import Client


def _peak_kib() -> int:
    # VmHWM, the peak of this process image. ``ru_maxrss`` is kept across exec on Linux, so in
    # a child it can report the parent's peak at fork time; it is the fallback elsewhere.
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def _walk(base_url: str, api_key: str, token: str, page_size: int) -> int:
    count = 0
    async with Client(api_key, base_url=base_url) as client:
        async for _task in client.iter_tasks(token, page_size=page_size):
            count += 1
    return count


def main() -> int:
    """Walk once and print the measurements."""
    base_url, api_key, token, page_size = sys.argv[1:5]
    gc.collect()
    before = _peak_kib()
    started = time.perf_counter()
    count = asyncio.run(_walk(base_url, api_key, token, int(page_size)))
    seconds = time.perf_counter() - started
    result = {"tasks": count, "seconds": seconds, "rss_before_kib": before, "peak_kib": _peak_kib()}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
