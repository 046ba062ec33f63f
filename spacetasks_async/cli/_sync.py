"""``spacetasks sync``: write only the tasks created or changed since the last run.

The state file (JSON, version 1, written atomically, 0600) holds the library's
:class:`~spacetasks_async.SyncState` and the output's commit state::

    {"version": 1, "output": "/abs/path/changes.jsonl", "format": "jsonl",
     "compression": "none", "output_state": {...}, "sync": {...}}

A run opens the output where the last run committed it (a run killed halfway left nothing
recorded: its partial lines are cut, and the run is made again from the same state), writes
each task with ``space_token``, ``synced_at`` and ``change`` (``new`` or ``changed``), commits
the output, then replaces the state. Consumers keep the latest ``synced_at`` per ``task_id``.
Parquet: one new part file per run in the same dataset.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import Any

import orjson

from .._client import Client
from .._convert import encode_task
from .._errors import SpaceTasksError
from .._files import replace_file
from .._formats import OutputFormat, Sink, infer_format, open_sink
from .._sync import SyncState
from ._commands import _client, report_fatal
from ._common import (
    EXIT_OK,
    EXIT_PARTIAL,
    FATAL_ERRORS,
    Interrupt,
    UsageError,
    make_ui,
    run_command,
)
from ._job import FIRST_CONTACT_TIMEOUT, check_reachable, read_tokens

__all__ = ["STATE_VERSION", "cmd_sync"]

STATE_VERSION = 1
_BATCH = 500  # tasks of one space written to the output at once


def _load_state(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UsageError(f"{path} is not a sync state file (not JSON)") from None
    if not isinstance(obj, dict) or obj.get("version") != STATE_VERSION:
        raise UsageError(f"{path} is not a version {STATE_VERSION} sync state file")
    return obj


def _save_state(path: Path, obj: dict[str, Any]) -> None:
    replace_file(path, orjson.dumps(obj, option=orjson.OPT_INDENT_2))


def cmd_sync(args: argparse.Namespace) -> int:
    """``spacetasks sync``: one run of an incremental sync into one output.

    Args:
        args: the parsed options of the ``sync`` subcommand.
    """
    ui = make_ui(args)

    async def command(interrupt: Interrupt) -> int:
        del interrupt  # a stopped run records nothing: the next one makes it again
        client: Client | None = None
        try:
            saved = _load_state(args.state)
            output = args.output.resolve()
            if saved and Path(saved.get("output", "")) != output:
                raise UsageError(
                    f"{args.state} belongs to output {saved.get('output')}, not {output}"
                )
            fmt, compression = infer_format(output, args.format)
            if fmt is OutputFormat.JSONL and str(args.output) == "-":
                raise UsageError("sync needs an output file (its state records where it stands)")
            state = SyncState.from_json(saved["sync"]) if saved else SyncState()
            tokens = list(args.tokens)
            if args.tokens_file is not None:
                tokens += read_tokens(args.tokens_file)
            client = _client(args, ui, need_org=args.all_spaces)
            async with client:
                async with ui.phase(f"connecting to {client.base_url}"):
                    await check_reachable(client.base_url, min(FIRST_CONTACT_TIMEOUT, args.timeout))
                if args.all_spaces:
                    async with ui.phase(f"listing the spaces of {client.org_handle}"):
                        tokens += [s.token async for s in client.iter_spaces() if s.token]
                tokens = list(dict.fromkeys(tokens)) or list(state.spaces)
                if not tokens:
                    raise UsageError(
                        "no spaces: give SPACE_TOKEN arguments, --tokens-file or --all-spaces"
                    )
                sink = open_sink(
                    output,
                    fmt,
                    compression,
                    resume_state=saved.get("output_state") if saved else None,
                    overwrite=args.overwrite and not saved,
                    extra_columns={"synced_at": datetime.datetime, "change": str},
                )
                try:
                    sync = client.sync(
                        tokens,
                        state,
                        page_size=args.page_size,
                        refresh_limit=args.refresh_limit,
                        concurrency=args.concurrency,
                    )
                    failed: SpaceTasksError | None = None
                    try:
                        async with sync:
                            await _write(sync, sink)
                    except SpaceTasksError as exc:  # failed spaces: the others are written
                        failed = exc
                    _save_state(
                        args.state,
                        {
                            "version": STATE_VERSION,
                            "output": str(output),
                            "format": fmt.value,
                            "compression": compression.value,
                            "output_state": sink.commit(),
                            "sync": sync.state.to_json(),
                        },
                    )
                finally:
                    sink.close()
        except FATAL_ERRORS as exc:
            return report_fatal(ui, exc, client)
        for token, summary in sync.summary.items():
            ui.info(
                f"{token}: {summary.new:,} new, {summary.changed:,} changed, "
                f"{summary.deleted:,} deleted, {summary.requests:,} requests"
                + (" (read in full)" if summary.full else "")
                + (f", {summary.unresolved:,} not found again" if summary.unresolved else "")
            )
        if failed is not None:
            ui.error(str(failed))
            return EXIT_PARTIAL
        return EXIT_OK

    return run_command(command, ui.console)


async def _write(sync: Any, sink: Sink) -> None:
    batch: list[dict[str, Any]] = []
    key: tuple[str, datetime.datetime, str] | None = None
    async for item in sync:
        here = (item.space_token, item.synced_at, item.change)
        if here != key or len(batch) >= _BATCH:
            if batch and key is not None:
                sink.write(key[0], batch, extra={"synced_at": key[1], "change": key[2]})
            batch, key = [], here
        batch.append(encode_task(item.task))
    if batch and key is not None:
        sink.write(key[0], batch, extra={"synced_at": key[1], "change": key[2]})
