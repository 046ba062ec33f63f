"""The command line's harvest to JSON Lines against a bare aiohttp loop writing the same lines.

Both run as processes of their own (interpreter start and imports count for both), one at a
time, against one local server in a third process:

- ``spacetasks harvest TOKENS -o out.jsonl -q``: the exact walk of every space under one
  limit of requests in flight, checkpoint-free but committing (flush and ``fsync``) as it
  goes, each task written as the API sent it plus ``space_token``;
- the bare loop (``python -m benchmarks._cli bare``): per space, the first page for the
  count, then the other pages with the same limit of requests in flight across all spaces,
  each body parsed with ``orjson.loads`` and every task written as one line
  ``orjson.dumps({"space_token": ..., **task})``. No retries, no checks, no order, no
  commit: what any harvester must at least spend.

``python -m benchmarks._cli`` prints the comparison (best of a few interleaved rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import attrs
import orjson

TASKS_PATH = "/api/v2/platform/spaces/{}/tasks/"
ROOT = Path(__file__).resolve().parent.parent


async def bare_jsonl(
    base_url: str, api_key: str, tokens: Sequence[str], page_size: int, limit: int, out: Path
) -> int:
    """The bare harvest loop; returns the number of lines written."""
    headers = {"Authorization": f"Token {api_key}", "Accept": "application/json"}
    gate = asyncio.Semaphore(limit)
    written = 0
    option = orjson.OPT_APPEND_NEWLINE
    with out.open("wb") as f:

        async def page(session: aiohttp.ClientSession, token: str, n: int) -> dict[str, object]:
            params = {"page": str(n), "page_size": str(page_size)}
            async with gate, session.get(base_url + TASKS_PATH.format(token), params=params) as r:
                r.raise_for_status()
                body: dict[str, object] = orjson.loads(await r.read())
            return body

        def write(token: str, body: dict[str, object]) -> None:
            nonlocal written
            data = body["data"]
            assert isinstance(data, list)
            lines = (orjson.dumps({"space_token": token, **t}, option=option) for t in data)
            f.write(b"".join(lines))
            written += len(data)

        async def space(session: aiohttp.ClientSession, token: str) -> None:
            first = await page(session, token, 1)
            write(token, first)
            count = first["count"]
            assert isinstance(count, int)
            rest = [page(session, token, n) for n in range(2, -(-count // page_size) + 1)]
            for done in asyncio.as_completed(rest):
                write(token, await done)

        connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0)
        async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
            await asyncio.gather(*(space(session, token) for token in tokens))
    return written


@attrs.frozen
class CliRow:
    """Best wall time of each side and the ratio of their rates."""

    latency: float
    tasks: int
    spaces: int
    cli_seconds: float
    bare_seconds: float

    @property
    def ratio(self) -> float:
        """CLI tasks/s over bare tasks/s (the same tasks: the inverse ratio of the times)."""
        return self.bare_seconds / self.cli_seconds


def _run(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def measure(
    base_url: str,
    api_key: str,
    tokens: Sequence[str],
    *,
    latency: float,
    expected: int,
    page_size: int = 100,
    concurrency: int = 32,
    repeats: int = 3,
) -> CliRow:
    """Interleaved rounds of the CLI and the bare loop; the best time of each."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNPOD_")}
    env |= {"UNPOD_API_KEY": api_key, "UNPOD_BASE_URL": base_url}
    cli_best = bare_best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = Path(tmp) / "cli.jsonl", Path(tmp) / "bare.jsonl"
        cli = [sys.executable, "-m", "spacetasks_async", "harvest", *tokens, "-o", str(ours)]
        cli += ["-q", "--overwrite", "--page-size", str(page_size)]
        cli += ["--concurrency", str(concurrency)]
        bare = [sys.executable, "-m", "benchmarks._cli", "bare", "-o", str(theirs)]
        bare += ["--page-size", str(page_size), "--concurrency", str(concurrency), *tokens]
        for _ in range(repeats):
            cli_best = min(cli_best, _run(cli, env))
            bare_best = min(bare_best, _run(bare, env))
            assert _lines(ours) == _lines(theirs) == expected, "not every task was written"
    return CliRow(latency, expected, len(tokens), cli_best, bare_best)


def main(argv: Sequence[str] | None = None) -> int:
    """``bare``: run the bare loop (env UNPOD_BASE_URL, UNPOD_API_KEY); else measure."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks._cli")
    sub = parser.add_subparsers(dest="command")
    bare = sub.add_parser("bare")
    bare.add_argument("tokens", nargs="+")
    bare.add_argument("-o", type=Path, required=True)
    bare.add_argument("--page-size", type=int, default=100)
    bare.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--spaces", type=int, default=20)
    parser.add_argument("--tasks-per-space", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "bare":
        base, key = os.environ["UNPOD_BASE_URL"], os.environ["UNPOD_API_KEY"]
        asyncio.run(bare_jsonl(base, key, args.tokens, args.page_size, args.concurrency, args.o))
        return 0
    from .run import server

    spec = ["--spaces", str(args.spaces), "--tasks-per-space", str(args.tasks_per_space)]
    with server(*spec, "--latency", str(args.latency)) as srv:
        row = measure(
            srv.base_url,
            srv.api_key,
            srv.tokens,
            latency=args.latency,
            expected=args.spaces * args.tasks_per_space,
            repeats=args.repeats,
        )
    print(
        f"{row.tasks:,} tasks, {row.spaces} spaces, {args.latency * 1000:.0f} ms: "
        f"CLI {row.cli_seconds:.2f} s ({row.tasks / row.cli_seconds:,.0f} tasks/s), "
        f"bare {row.bare_seconds:.2f} s ({row.tasks / row.bare_seconds:,.0f} tasks/s), "
        f"ratio {row.ratio:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
