"""A sync of an organization against a full harvest of it: requests and time.

``python -m benchmarks.sync_vs_harvest`` serves 100 spaces of 10,000 tasks on the local
server (in its own thread and event loop), harvests them all once (the first sync run),
creates 1% new tasks in every space, then runs the sync again: once remembering no task
that was not final (``refresh_limit=0``), once with the default limit (re-reading the pages
that still hold tasks not final; the local server's tasks are not final all through the
list, more than a real space's). Writes ``benchmarks/SYNC.md``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from benchmarks.stress_walk import ServerThread
from spacetasks_async import Client, RetryPolicy, SyncState

SPACES, TASKS, NEW = 100, 10_000, 100


async def one_run(
    base: str, key: str, tokens: list[str], state: SyncState, limit: int
) -> tuple[int, int, float, SyncState]:
    started = time.perf_counter()
    async with Client(key, base_url=base, retry=RetryPolicy.never(), max_in_flight=32) as client:
        sync = client.sync(tokens, state, page_size=100, window=16, refresh_limit=limit)
        async with sync:
            items = sum([1 async for _ in sync])
    requests = sum(s.requests for s in sync.summary.values())
    return items, requests, time.perf_counter() - started, sync.state


async def harvest(base: str, key: str, tokens: list[str]) -> tuple[int, int, float]:
    started = time.perf_counter()
    client = Client(key, base_url=base, retry=RetryPolicy.never(), max_in_flight=32)
    async with client, client.harvest(tokens, page_size=100, window=16) as h:
        items = sum([1 async for _ in h])
    requests = sum(s.requests for s in h.stats.values())
    return items, requests, time.perf_counter() - started


def main() -> None:
    """Measure and write ``benchmarks/SYNC.md``."""
    holder = ServerThread(seed=3, spaces=[TASKS] * SPACES, no_access_spaces=0)
    with holder as server:
        tokens = server.space_tokens
        key, base = server.api_key, server.base_url
        rows = [("full harvest (client.harvest)", *asyncio.run(harvest(base, key, tokens)))]
        for limit in (0, 1000):
            items, requests, seconds, state = asyncio.run(
                one_run(base, key, tokens, SyncState(), limit)
            )
            rows.append((f"first sync run, refresh_limit={limit}", items, requests, seconds))
            for token in tokens:
                holder.call(server.create_tasks, token, NEW)
            items, requests, seconds, _ = asyncio.run(one_run(base, key, tokens, state, limit))
            rows.append((f"next sync run, 1% new, refresh_limit={limit}", items, requests, seconds))
    lines = [
        "# Sync against a full harvest",
        "",
        f"`python -m benchmarks.sync_vs_harvest`: {SPACES} spaces of {TASKS:,} tasks on the local"
        " server, pages of 100, window 16, 32 requests in flight across the spaces.",
        "",
        "| run | tasks handed out | requests | seconds |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {items:,} | {requests:,} | {seconds:.1f} |"
        for name, items, requests, seconds in rows
    ]
    text = "\n".join(lines) + "\n"
    Path(__file__).with_name("SYNC.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
