"""Memory of a walk stays flat however large the space.

The server runs in its own process and each walk in a fresh one, so the peak resident size
measured is the client's alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

WALK = textwrap.dedent(
    """
    import asyncio, os, resource, sys
    from spacetasks_async import Client

    async def main(token: str) -> None:
        async with Client() as client:
            walk = client.iter_tasks(token, page_size=200, window=8)
            seen = sum([1 async for _ in walk])
        print(seen, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux

    asyncio.run(main(sys.argv[1]))
    """
)

SIZES = (20_000, 250_000)


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, str]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spacetasks_async.testing",
            "--space-sizes",
            ",".join(map(str, SIZES)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    env: dict[str, str] = {}
    for line in proc.stdout:  # the runner prints its settings, then serves
        key, _, value = line.strip().partition("=")
        if key in {"UNPOD_BASE_URL", "UNPOD_API_KEY", "SPACE_TOKENS"}:
            env[key] = value
        if "SPACE_TOKENS" in env:
            break
    try:
        yield env
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        proc.stdout.close()


def walk_peak_kib(server: dict[str, str], index: int) -> int:
    token = server["SPACE_TOKENS"].split(",")[index]
    env = dict(
        os.environ,
        UNPOD_BASE_URL=server["UNPOD_BASE_URL"],
        UNPOD_API_KEY=server["UNPOD_API_KEY"],
    )
    done = subprocess.run(
        [sys.executable, "-c", WALK, token],
        capture_output=True,
        text=True,
        check=True,
        timeout=240,
        env=env,
    )
    seen, peak = map(int, done.stdout.split())
    assert seen == SIZES[index]
    return peak


@pytest.mark.slow
def test_peak_memory_of_a_walk_does_not_grow_with_the_size_of_the_space(
    server: dict[str, str],
) -> None:
    small = walk_peak_kib(server, 0)
    large = walk_peak_kib(server, 1)  # 12.5 times as many tasks
    growth_mib = (large - small) / 1024
    # What a walk holds is bounded by its window (8 pages of 200 tasks here) and its
    # dedupe horizon, not by the space: a walk that kept every task would grow by hundreds
    # of MiB between these two sizes (60 bytes a task would already fail this).
    assert growth_mib < 15, f"peak grew by {growth_mib:.1f} MiB ({small} -> {large} KiB)"
