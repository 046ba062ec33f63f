"""The ``demo`` command: a local organization harvested and verified in seconds."""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import importlib
import io
import math
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import orjson
from rich.text import Text

from .._client import Client
from .._convert import make_converter
from .._formats import Compression, OutputError, OutputFormat, infer_format
from .._progress import RetryCount
from .._retry import RetryPolicy
from ._commands import report_fatal
from ._common import (
    DEFAULT_CHECKPOINT_INTERVAL,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    FATAL_ERRORS,
    Interrupt,
    make_ui,
    run_command,
)
from ._job import HarvestJob, outcome_code, print_final_line, print_summary, run_harvest


def demo_sizes(spaces: int, tasks: int, seed: int) -> tuple[int, ...]:
    """Sizes of ``spaces`` spaces adding up to ``tasks``: a few big ones, many small ones,
    as in a real organization (log-normal weights, seeded)."""
    rng = random.Random(seed)
    weights = [rng.lognormvariate(0, 0.9) for _ in range(spaces)]
    scale = tasks / sum(weights)
    sizes = [math.floor(w * scale) for w in weights]
    # Hand the rounding remainder to the largest fractional parts, so the sum is exact.
    order = sorted(range(spaces), key=lambda i: (weights[i] * scale) % 1, reverse=True)
    for i in order[: tasks - sum(sizes)]:
        sizes[i] += 1
    return tuple(sizes)


def _keys(path: Path, fmt: OutputFormat, comp: Compression) -> Iterator[tuple[str, str]]:
    """(space_token, task_id) of every row of the output, in any format it was written in."""
    if fmt is OutputFormat.PARQUET:
        # present: the harvest wrote Parquet with it (untyped: imported by name)
        ds: Any = importlib.import_module("pyarrow.dataset")
        table = ds.dataset(path, format="parquet").to_table(columns=["space_token", "task_id"])
        yield from zip(table["space_token"].to_pylist(), table["task_id"].to_pylist(), strict=True)
        return
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(open(path, "rb"))
        handle: IO[bytes] = raw
        if comp is Compression.GZIP:
            handle = cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=raw)))
        elif comp is Compression.ZSTD:
            import zstandard

            handle = stack.enter_context(zstandard.ZstdDecompressor().stream_reader(raw))
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        if fmt is OutputFormat.CSV:
            for row in csv.DictReader(text):
                yield row["space_token"], row["task_id"]
        else:
            for line in text:
                obj = orjson.loads(line)
                yield obj["space_token"], obj["task_id"]


def _verify(
    path: Path, fmt: OutputFormat, comp: Compression, truth: dict[str, int]
) -> tuple[bool, str]:
    """Check the output against the server: each task exactly once, per space."""
    seen: set[tuple[str, str]] = set()
    per_space: dict[str, int] = {}
    rows = 0
    for key in _keys(path, fmt, comp):
        rows += 1
        seen.add(key)
        per_space[key[0]] = per_space.get(key[0], 0) + 1
    expected = sum(truth.values())
    if rows != expected or len(seen) != rows or per_space != {k: v for k, v in truth.items() if v}:
        return False, (
            f"{path} holds {rows:,} rows ({len(seen):,} distinct tasks), but the server "
            f"has {expected:,} tasks"
        )
    return True, (
        f"verified: {path} holds {rows:,} rows = the {expected:,} tasks on the server, "
        "each exactly once"
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """``spacetasks demo``: serve a local organization, harvest it, verify the output.

    Args:
        args: the parsed options of the ``demo`` subcommand.
    """
    from ..testing import FaultPlan, ServerConfig, UnpodServer

    ui = make_ui(args)
    try:
        fmt, comp = infer_format(args.output)
    except OutputError as exc:
        ui.error(str(exc))
        return EXIT_USAGE
    if os.path.lexists(args.output) and not args.overwrite:
        # Said before the demo starts: it never replaces a file silently either.
        ui.error(f"{args.output} exists: pass --overwrite to replace it, or -o another file")
        return EXIT_USAGE
    sizes = demo_sizes(args.spaces, args.tasks, args.seed)
    fault_plan = (
        # At most two faults per page: every page gets through within the retries.
        FaultPlan.uniform(args.fault_rate, seed=args.seed, max_faults_per_page=2)
        if args.fault_rate > 0
        else None
    )
    config = ServerConfig(
        seed=args.seed,
        spaces=sizes,
        latency=args.latency,
        latency_jitter=args.latency,
        fault_plan=fault_plan,
    )

    async def command(interrupt: Interrupt) -> int:
        retries = RetryCount()
        async with UnpodServer(config) as server:
            ms = f"{args.latency * 1000:.0f}-{args.latency * 2000:.0f} ms"
            ui.info(
                Text.assemble(
                    ("spacetasks demo", "bold"),
                    f": a local Unpod-compatible server at {server.base_url} holds "
                    f"{len(sizes)} spaces, {sum(sizes):,} tasks ({ms} per request, "
                    f"{args.fault_rate:.0%} of requests fail). Harvesting all of them into "
                    f"{args.output}, concurrently, with retries; then checking the file "
                    "against the server.",
                ),
                wrap=True,
            )
            client = Client(
                server.api_key,
                base_url=server.base_url,
                org_handle=server.org_handle,
                # Short waits: the demo's faults are brief, and it should not stall on them.
                retry=RetryPolicy(initial_wait=0.05, max_wait=1.0),
                max_in_flight=args.concurrency,
                on_retry=retries,
                converter=make_converter(lazy=False) if args.decode else None,
            )
            job = HarvestJob(
                tokens=(),
                all_spaces=True,
                output=args.output,
                format=fmt,
                compression=comp,
                overwrite=args.overwrite,
                checkpoint=None,
                checkpoint_interval=DEFAULT_CHECKPOINT_INTERVAL,
                page_size=args.page_size,
                concurrency=args.concurrency,
                max_items=None,
                where=f"from {server.base_url} into {args.output}",
            )
            try:
                async with client:
                    outcome = await run_harvest(client, job, ui, interrupt, retries)
            except FATAL_ERRORS as exc:
                return report_fatal(ui, exc, client)
            truth = {t: server.space_data(t).live_count for t in server.space_tokens}
        print_summary(ui, outcome)
        code = outcome_code(outcome, interrupt)
        if code == EXIT_OK:
            ok, message = _verify(args.output, fmt, comp, truth)
            if ok:
                ui.info(Text(message, style="green"))
            else:
                ui.error(message)
                code = EXIT_ERROR
        print_final_line(ui, outcome, resumable=False)
        if code == EXIT_OK:
            ui.info(
                Text(
                    "next: python -m spacetasks_async harvest --help  (or: spacetasks serve, "
                    "to try harvest against a local server)",
                    style="dim",
                )
            )
        return code

    return run_command(command, ui.console)
