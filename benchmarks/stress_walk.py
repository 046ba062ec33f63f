"""Stress run of the exact walk: many walks against the local server under heavy drift.

``nox -s stress`` (or ``python -m benchmarks.stress_walk --walks 500``). Each walk reads a
space of the local server (run in its own thread and event loop, so that its answers and
the client's decoding do not share one loop) while, on about a third of the requests, 1-3
tasks are created and 1-3 deleted anywhere in the list; page sizes 10-100, windows 1-16,
latency 1-6 ms with jitter, so that pages in flight together are answered in any order.
Every task that existed from the start of a walk to its end must be handed out exactly
once; the run prints the figures and exits 1 on the first loss or repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import threading
import time
from typing import Any

from spacetasks_async import Client, RetryPolicy, WalkIncompleteError
from spacetasks_async.testing import TaskRequest, UnpodServer


class ServerThread:
    """The local server on its own event loop, in a thread."""

    def __init__(self, **config: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = UnpodServer(**config)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> UnpodServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result()
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the server's loop (its state is not thread-safe)."""

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result()


async def one_walk(index: int, holder: ServerThread, seed: int) -> dict[str, Any]:
    server = holder.server
    rng = random.Random(seed * 100_003 + index)
    token = server.space_tokens[index % len(server.space_tokens)]
    page_size = rng.choice([10, 17, 25, 40, 50, 73, 100])
    window = rng.choice([1, 2, 3, 4, 6, 8, 12, 16])
    before = set(holder.call(server.expected_task_ids, token))

    async def drift(request: TaskRequest) -> None:
        # (runs on the server's loop, inside the request)
        if request.space_token != token or rng.random() >= 1 / 3:
            return
        server.create_tasks(token, rng.randint(1, 3))
        live = server.space_data(token).live_count
        positions = sorted({rng.randrange(live) for _ in range(rng.randint(1, 3))})
        server.delete_at(token, positions)

    holder.call(server.add_hook, drift)
    try:
        async with Client(
            server.api_key, base_url=server.base_url, retry=RetryPolicy.never()
        ) as client:
            walk = client.iter_tasks(token, page_size=page_size, window=window)
            ids = [t.task_id async for t in walk]
    finally:
        holder.call(server.remove_hook, drift)
    after = set(holder.call(server.expected_task_ids, token))
    lost = (before & after) - set(ids)
    repeated = len(ids) - len(set(ids))
    return {
        "lost": len(lost),
        "repeated": repeated,
        "requests": walk.stats.requests,
        "pages": -(-len(before) // page_size),
        "verifications": walk.stats.verifications,
        "page_size": page_size,
        "window": window,
    }


async def main_async(holder: ServerThread, walks: int, parallel: int, seed: int) -> int:
    results: list[dict[str, Any]] = []
    incomplete = 0
    started = time.monotonic()
    gate = asyncio.Semaphore(parallel)

    async def run(i: int) -> None:
        nonlocal incomplete
        async with gate:
            try:
                results.append(await one_walk(i, holder, seed))
            except WalkIncompleteError:
                incomplete += 1

    await asyncio.gather(*(run(i) for i in range(walks)))
    elapsed = time.monotonic() - started
    lost = sum(r["lost"] for r in results)
    repeated = sum(r["repeated"] for r in results)
    pages = sum(r["pages"] for r in results)
    extra = sum(r["requests"] - r["pages"] for r in results) / max(1, pages)
    print(
        f"{len(results)} walks complete, {incomplete} stopped with WalkIncompleteError, "
        f"in {elapsed:.0f} s: {lost} tasks lost, {repeated} handed out twice; "
        f"{extra:.2f} extra requests per page with drift on a third of requests"
    )
    return 0 if lost == repeated == 0 else 1


def main() -> None:
    """Run the stress walks; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--walks", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    config = {"seed": args.seed, "spaces": [1200] * 16, "latency": 0.001, "latency_jitter": 0.005}
    holder = ServerThread(**config)
    with holder:
        code = asyncio.run(main_async(holder, args.walks, args.parallel, args.seed))
    sys.exit(code)


if __name__ == "__main__":
    main()
