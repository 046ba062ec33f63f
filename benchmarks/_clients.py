"""The clients being timed: spacetasks_async and the sequential loops users write today."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp
import httpx
import orjson

from spacetasks_async import Client, RetryPolicy

TASKS_PATH = "/api/v2/platform/spaces/{}/tasks/"


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Token {api_key}", "Accept": "application/json"}


async def walk_spacetasks(
    base_url: str,
    api_key: str,
    token: str,
    *,
    page_size: int,
    window: int | None = None,
    retry: RetryPolicy | None = None,
) -> tuple[list[str], int]:
    """``iter_tasks`` over one space (default window when ``window`` is None).

    Returns the task ids in the order handed out and the number of retries the walk made.
    """
    ids: list[str] = []
    async with Client(api_key, base_url=base_url, retry=retry) as client:
        walk = (
            client.iter_tasks(token, page_size=page_size)
            if window is None
            else client.iter_tasks(token, page_size=page_size, window=window)
        )
        async with walk as tasks:
            async for task in tasks:
                ids.append(task.task_id)
    return ids, walk.stats.retries


async def stream_spacetasks(
    base_url: str, api_key: str, token: str, *, page_size: int, window: int
) -> int:
    """``iter_tasks`` over one space holding nothing (a count): the client's side of the floor."""
    count = 0
    async with (
        Client(api_key, base_url=base_url) as client,
        client.iter_tasks(token, page_size=page_size, window=window) as tasks,
    ):
        async for _task in tasks:
            count += 1
    return count


async def harvest_spacetasks(
    base_url: str, api_key: str, tokens: Sequence[str], *, page_size: int, concurrency: int
) -> int:
    """``client.harvest`` over many spaces under one global limit; the number of tasks."""
    count = 0
    async with (
        Client(api_key, base_url=base_url, max_in_flight=concurrency) as client,
        client.harvest(tokens, page_size=page_size, concurrency=concurrency) as harvest,
    ):
        async for _item in harvest:
            count += 1
    if harvest.failures:
        raise RuntimeError(f"harvest failed on {len(harvest.failures)} space(s)")
    return count


async def sequential_aiohttp(
    base_url: str, api_key: str, tokens: Sequence[str], *, page_size: int
) -> int:
    """The loop users write today: one page after the other, JSON into dicts."""
    tasks: list[dict[str, object]] = []
    async with aiohttp.ClientSession(headers=_headers(api_key)) as session:
        for token in tokens:
            page = 1
            while True:
                params = {"page": str(page), "page_size": str(page_size)}
                async with session.get(base_url + TASKS_PATH.format(token), params=params) as r:
                    r.raise_for_status()
                    body = await r.json()
                data = body["data"]
                tasks.extend(data)
                if len(data) < page_size or page * page_size >= body["count"]:
                    break
                page += 1
    return len(tasks)


async def sequential_httpx(
    base_url: str, api_key: str, tokens: Sequence[str], *, page_size: int
) -> int:
    """The same loop on ``httpx.AsyncClient``, the HTTP stack of the platform's own SDK."""
    tasks: list[dict[str, object]] = []
    async with httpx.AsyncClient(base_url=base_url, headers=_headers(api_key), timeout=60) as c:
        for token in tokens:
            page = 1
            while True:
                params = {"page": str(page), "page_size": str(page_size)}
                r = await c.get(TASKS_PATH.format(token), params=params)
                r.raise_for_status()
                body = r.json()
                data = body["data"]
                tasks.extend(data)
                if len(data) < page_size or page * page_size >= body["count"]:
                    break
                page += 1
    return len(tasks)


async def windowed_aiohttp(
    base_url: str, api_key: str, token: str, *, page_size: int, window: int
) -> int:
    """The floor of a concurrent walk: bare aiohttp and ``orjson.loads``, holding nothing.

    The first page gives the count; the rest are fetched with at most ``window`` requests in
    flight, each body parsed into dicts and dropped. No retries, checks or decoding: what
    any client must at least spend per page. Returns the number of tasks seen.
    """
    url = base_url + TASKS_PATH.format(token)
    seen = 0
    async with aiohttp.ClientSession(
        headers=_headers(api_key),
        connector=aiohttp.TCPConnector(limit=max(window, 8), limit_per_host=0),
    ) as session:
        first = {"page": "1", "page_size": str(page_size)}
        async with session.get(url, params=first) as r:
            r.raise_for_status()
            body = orjson.loads(await r.read())
        count: int = body["count"]
        seen = len(body["data"])
        del body
        pages = -(-count // page_size)
        queue = iter(range(2, pages + 1))

        async def worker() -> int:
            # One of ``window`` workers: the window stays full until the pages run out.
            got = 0
            for page in queue:
                params = {"page": str(page), "page_size": str(page_size)}
                async with session.get(url, params=params) as r:
                    r.raise_for_status()
                    got += len(orjson.loads(await r.read())["data"])
            return got

        seen += sum(await asyncio.gather(*(worker() for _ in range(window))))
    return seen
