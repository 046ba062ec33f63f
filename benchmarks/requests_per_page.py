"""Requests per page of the exact walk, in the cases issue 9 names.

``python -m benchmarks.requests_per_page`` walks a space of 5,000 tasks (pages of 100,
window 8, 1-5 ms of jittered latency so that pages in flight together are answered in any
order) on the local server, and prints requests per page for: no change; one deletion of
two tasks behind the walk; tasks created on every request; a resume of an unchanged space
(requests of the resumed walk per page left); drift on a third of requests. Writes
``benchmarks/REQUESTS.md``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

from spacetasks_async import Client, RetryPolicy
from spacetasks_async.testing import TaskRequest, UnpodServer

TASKS, SIZE, WINDOW = 5000, 100, 8

Hook = Callable[[UnpodServer, str], Callable[[TaskRequest], Awaitable[None]] | None]


async def walk(hook: Hook, seed: int) -> tuple[int, int]:
    """(requests, pages read in order) of one walk with ``hook`` changing the space."""
    async with UnpodServer(
        seed=seed, spaces=[TASKS], latency=0.001, latency_jitter=0.004
    ) as server:
        token = server.space_tokens[0]
        fn = hook(server, token)
        if fn is not None:
            server.add_hook(fn)
        async with Client(server.api_key, base_url=server.base_url, retry=RetryPolicy.never()) as c:
            w = c.iter_tasks(token, page_size=SIZE, window=WINDOW)
            async for _ in w:
                pass
        return w.stats.requests, w.stats.requests - w.stats.rereads


def no_change(server: UnpodServer, token: str) -> None:
    return None


def one_deletion(server: UnpodServer, token: str) -> Callable[[TaskRequest], Awaitable[None]]:
    seen = {"n": 0}

    async def hook(request: TaskRequest) -> None:
        seen["n"] += 1
        if seen["n"] == 20:
            server.delete_at(token, [300, 301])

    return hook


def creations(server: UnpodServer, token: str) -> Callable[[TaskRequest], Awaitable[None]]:
    async def hook(request: TaskRequest) -> None:
        server.create_tasks(token, 3)

    return hook


def a_third(server: UnpodServer, token: str) -> Callable[[TaskRequest], Awaitable[None]]:
    rng = random.Random(1)

    async def hook(request: TaskRequest) -> None:
        if rng.random() < 1 / 3:
            server.create_tasks(token, rng.randint(1, 3))
            live = server.space_data(token).live_count
            server.delete_at(token, sorted({rng.randrange(live) for _ in range(rng.randint(1, 3))}))

    return hook


async def resume(seed: int) -> tuple[int, int]:
    """(requests of the resumed walk, pages left) after stopping at task 2,437."""
    async with UnpodServer(
        seed=seed, spaces=[TASKS], latency=0.001, latency_jitter=0.004
    ) as server:
        token = server.space_tokens[0]
        async with Client(server.api_key, base_url=server.base_url, retry=RetryPolicy.never()) as c:
            taken = 0
            async with c.iter_tasks(token, page_size=SIZE, window=WINDOW) as first:
                async for _ in first:
                    taken += 1
                    if taken == 2437:
                        break
                point = first.checkpoint
            again = c.iter_tasks(token, page_size=SIZE, window=WINDOW, checkpoint=point)
            left = sum([1 async for _ in again])
        return again.stats.requests, -(-left // SIZE)


async def main_async(rounds: int) -> str:
    rows = []
    for name, hook in [
        ("no change", no_change),
        ("one deletion of 2 tasks behind the walk", one_deletion),
        ("3 tasks created on every request", creations),
        ("1-3 created and 1-3 deleted on a third of requests", a_third),
    ]:
        figures = [await walk(hook, seed) for seed in range(1, rounds + 1)]
        per_page = [r / pages for r, pages in figures]  # (creations add pages)
        rows.append((name, min(per_page), max(per_page)))
    resumes = [await resume(seed) for seed in range(1, rounds + 1)]
    ratios = [r / p for r, p in resumes]
    rows.append(("resume of an unchanged space (per page left)", min(ratios), max(ratios)))
    lines = [
        "# Requests per page of the exact walk",
        "",
        f"`python -m benchmarks.requests_per_page`: a space of {TASKS:,} tasks, pages of {SIZE},"
        f" window {WINDOW}, 1-5 ms jittered latency (pages in flight together answered in any"
        f" order), {rounds} runs each (min and max).",
        "",
        "| case | requests per page |",
        "|---|---|",
    ]
    for name, lo, hi in rows:
        lines.append(f"| {name} | {lo:.3f} - {hi:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Measure and write ``benchmarks/REQUESTS.md``."""
    text = asyncio.run(main_async(5))
    Path(__file__).with_name("REQUESTS.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
