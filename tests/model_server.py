"""A small, independent model of the tasks endpoint, for end-to-end tests of the walk.

It shares nothing with the client or with ``spacetasks_async.testing``: the space is a
plain list of task dicts in insertion order (newest first), ``created`` is whatever the
test puts there (the real server orders by insertion, not by ``created``), every request
may change the space before it is answered (``on_request``), and a seeded random delay
per request lets requests in flight together be answered in any order.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from aiohttp import web

from spacetasks_async import Client, RetryPolicy

KEY = "model-key"


def task(n: int, created: str) -> dict[str, Any]:
    """A minimal task the client decodes: id from the insertion number ``n``."""
    return {
        "task_id": f"T{n:08d}",
        "status": "completed",
        "created": created,
        "modified": created,
        "output": None,
    }


class ModelSpace:
    """The tasks of one space, newest first, and the answers the endpoint gives.

    Args:
        tasks: the tasks, newest first.
        jitter: up to this many seconds of seeded random delay before each answer.
        seed: seed of the delays and of ``on_request``'s random stream.
    """

    def __init__(self, tasks: list[dict[str, Any]], *, jitter: float = 0.0, seed: int = 0) -> None:
        self.tasks = tasks
        self.next = 1 + max((int(t["task_id"][1:]) for t in tasks), default=0)
        self.jitter = jitter
        self.rng = random.Random(seed)
        self.requests: list[tuple[int, int]] = []
        self.on_request: Callable[[ModelSpace], None] | None = None
        self.duplicate_in_page: int | None = None  # serve this page with an id twice
        self.ignore_page = False  # a proxy that drops the page parameter
        self.claimed_count: int | None = None  # a count that has nothing to do with the data
        self.extra_items = 0  # serve this many tasks more than asked for

    def create(self, k: int) -> None:
        for _ in range(k):
            self.tasks.insert(0, task(self.next, "2026-01-01T00:00:00"))
            self.next += 1

    def delete(self, position: int) -> str:
        return str(self.tasks.pop(position)["task_id"])

    def ids(self) -> list[str]:
        return [t["task_id"] for t in self.tasks]

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Token {KEY}":
            return web.json_response({"message": "Invalid token.", "status_code": 401}, status=401)
        page = int(request.query["page"])
        size = int(request.query["page_size"])
        self.requests.append((page, size))
        if self.ignore_page:
            page = 1
        if self.jitter:
            await asyncio.sleep(self.rng.random() * self.jitter)
        if self.on_request is not None:
            self.on_request(self)
        data = self.tasks[(page - 1) * size : page * size + self.extra_items]
        if self.duplicate_in_page == page and len(data) > 1:
            data = [data[0], data[0], *data[2:]]
        body = {
            "count": len(self.tasks) if self.claimed_count is None else self.claimed_count,
            "status_code": 200,
            "message": "Tasks Fetched Successfully",
            "data": data,
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")


async def serve(space: ModelSpace) -> tuple[web.AppRunner, str]:
    """Serve ``space`` on 127.0.0.1 (any token); returns the runner and the base URL."""
    app = web.Application()
    app.router.add_get("/api/v2/platform/spaces/{token}/tasks/", space.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def client_for(space: ModelSpace) -> AsyncIterator[Client]:
    """Serve ``space`` and yield a client of it (no retries: every answer counts)."""
    runner, base = await serve(space)
    try:
        async with Client(KEY, base_url=base, retry=RetryPolicy.never()) as client:
            yield client
    finally:
        await runner.cleanup()
