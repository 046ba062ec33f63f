"""CPU per request of the client against the bare aiohttp+orjson loop, and where it goes.

``python -m benchmarks._overhead`` starts the local server (its own process, no latency),
streams one space with ``iter_tasks`` and with the bare windowed loop
(:func:`benchmarks._clients.windowed_aiohttp`), alternating, and prints the client
process's CPU per page of each (the best of a few runs). Pages of one task isolate what
runs per request besides parsing and decoding; pages of 100 are the real ratio.
``--profile`` prints the top of a cProfile of the client's walk instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import math
import pstats
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ._clients import stream_spacetasks, windowed_aiohttp


def cpu_per_page(run: Callable[[], Coroutine[Any, Any, int]], pages: int, repeats: int) -> float:
    """The least CPU seconds per page of ``repeats`` runs of ``asyncio.run(run())``."""
    best = math.inf
    for _ in range(repeats):
        before = time.process_time()
        asyncio.run(run())
        best = min(best, (time.process_time() - before) / pages)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    """Measure (or profile) and print; returns the exit status."""
    from .run import server  # the runner's server helper (a process of its own)

    parser = argparse.ArgumentParser(prog="python -m benchmarks._overhead")
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--page-size", type=int, default=1)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    tasks = args.pages * args.page_size
    with server("--spaces", "1", "--tasks-per-space", str(tasks), "--latency", "0") as srv:
        url, key, token = srv.base_url, srv.api_key, srv.tokens[0]

        def client() -> Coroutine[Any, Any, int]:
            return stream_spacetasks(url, key, token, page_size=args.page_size, window=args.window)

        def bare() -> Coroutine[Any, Any, int]:
            return windowed_aiohttp(url, key, token, page_size=args.page_size, window=args.window)

        assert asyncio.run(client()) == asyncio.run(bare()) == tasks  # and warms the server
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(asyncio.run, client())
            pstats.Stats(profile).sort_stats("tottime").print_stats(35)
            return 0
        ours: list[float] = []
        floor: list[float] = []
        for _ in range(args.repeats):  # interleaved: a noisy moment hits both alike
            ours.append(cpu_per_page(client, args.pages, 1))
            floor.append(cpu_per_page(bare, args.pages, 1))
    c, b = min(ours) * 1e6, min(floor) * 1e6
    print(
        f"pages of {args.page_size}, window {args.window}: client {c:.0f} us CPU per page, "
        f"bare aiohttp+orjson {b:.0f} us, ratio {c / b:.2f}, overhead {c - b:.0f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
