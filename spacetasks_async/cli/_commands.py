"""The ``harvest``, ``spaces`` and ``serve`` commands: options to a run."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

import orjson
import yarl
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._client import Client, _is_loopback
from .._convert import encode_space, make_converter
from .._errors import InsecureTransportWarning, SpaceTasksError
from .._formats import OutputError, OutputFormat, infer_format
from .._progress import RetryCount
from .._retry import RetryPolicy
from ._common import (
    DEFAULT_CHECKPOINT_INTERVAL,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    FATAL_ERRORS,
    PARQUET_CHECKPOINT_INTERVAL,
    PROG,
    Interrupt,
    Ui,
    UnreachableError,
    UsageError,
    describe_error,
    exit_code_of,
    make_ui,
    run_command,
)
from ._job import (
    FIRST_CONTACT_TIMEOUT,
    HarvestJob,
    check_reachable,
    outcome_code,
    print_final_line,
    print_summary,
    read_tokens,
    run_harvest,
)

# -- commands --------------------------------------------------------------------------


def _api_key(args: argparse.Namespace) -> str:
    """The key from --api-key, --api-key-file or $UNPOD_API_KEY (in that order)."""
    if args.api_key:
        return str(args.api_key)
    path: Path | None = args.api_key_file
    if path is not None:
        try:
            text = sys.stdin.readline() if str(path) == "-" else path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise UsageError(f"cannot read --api-key-file {path}: {reason}") from None
        lines = text.splitlines()
        key = lines[0].strip() if lines else ""
        if not key:
            raise UsageError(f"--api-key-file {path} is empty: its first line is the key")
        return key
    key = os.environ.get("UNPOD_API_KEY")
    if not key:
        raise UsageError("no API key: set UNPOD_API_KEY, or pass --api-key-file or --api-key")
    return key


def _check_transport(args: argparse.Namespace, ui: Ui) -> None:
    """Refuse to send the key in clear to another machine unless --allow-http says so."""
    base = args.base_url or os.environ.get("UNPOD_BASE_URL") or ""
    try:
        url = yarl.URL(base)
    except (TypeError, ValueError):
        return  # the client names what is wrong with it
    if url.scheme.lower() != "http" or _is_loopback(url.host or ""):
        return
    if not args.allow_http:
        raise UsageError(
            f"the base URL {base} is plain http to another machine: the API key would go "
            "over the network in clear; use https, or pass --allow-http if that is intended"
        )
    ui.info(f"{PROG}: warning: sending the API key in clear to {url.host} (--allow-http)")


def _client(args: argparse.Namespace, ui: Ui, *, need_org: bool, **extra: Any) -> Client:
    api_key = _api_key(args)
    org = args.org_handle or os.environ.get("UNPOD_ORG_HANDLE")
    if need_org and not org:
        raise UsageError(
            "listing spaces needs the organization handle: pass --org-handle or set "
            "UNPOD_ORG_HANDLE"
        )
    _check_transport(args, ui)
    with warnings.catch_warnings():
        # Said above, once, in the command's words (or refused without --allow-http).
        warnings.simplefilter("ignore", InsecureTransportWarning)
        return Client(
            api_key,
            base_url=args.base_url,
            org_handle=org,
            timeout=args.timeout,
            retry=RetryPolicy(max_attempts=args.max_retries + 1),
            rate=args.rate,
            # Eager: every field of every task checked with its page (--decode). Else the
            # package's lazy converter, whose tasks the sinks write back as sent.
            converter=make_converter(lazy=False) if getattr(args, "decode", False) else None,
            **extra,
        )


def report_fatal(ui: Ui, error: BaseException, client: Client | None) -> int:
    """Print one line for a fatal error and return its exit code.

    Args:
        ui: where the line goes.
        error: the error.
        client: the client, for the base URL in the message (``None`` if not built).
    """
    ui.error(describe_error(error, client.base_url if client is not None else None))
    return exit_code_of(error)


def cmd_harvest(args: argparse.Namespace) -> int:
    """``spacetasks harvest``: check the options, run the job, print the summary.

    Args:
        args: the parsed options of the ``harvest`` subcommand.
    """
    ui = make_ui(args)
    try:
        tokens = list(args.tokens)
        if args.tokens_file is not None:
            tokens += read_tokens(args.tokens_file)
        if (
            not tokens
            and not args.all_spaces
            and not (args.checkpoint and args.checkpoint.exists())
        ):
            # Said before any request (a resume may take its spaces from the checkpoint).
            raise UsageError(
                "no spaces: give SPACE_TOKEN arguments, --tokens-file FILE or --all-spaces"
            )
        output: Path | None = args.output
        if output is not None and str(output) == "-":
            output = None  # standard output, said explicitly
        # Before any request: a name that says no format fails at once.
        fmt, comp = infer_format(output if output is not None else "-", args.format)
        if args.checkpoint is not None:
            if output is None:
                raise UsageError("--checkpoint needs --output FILE (standard output cannot resume)")
            if args.checkpoint.resolve() == output.resolve():
                raise UsageError("--checkpoint and --output must be two different files")
        interval = args.checkpoint_interval
        if interval is None:
            interval = (
                PARQUET_CHECKPOINT_INTERVAL
                if fmt is OutputFormat.PARQUET
                else DEFAULT_CHECKPOINT_INTERVAL
            )
    except (UsageError, OutputError) as exc:
        ui.error(str(exc))
        return EXIT_USAGE

    async def command(interrupt: Interrupt) -> int:
        client: Client | None = None
        try:
            client = _client(
                args,
                ui,
                need_org=args.all_spaces,
                max_in_flight=args.concurrency,
                on_retry=retries,
            )
            job = HarvestJob(
                tokens=tuple(tokens),
                all_spaces=args.all_spaces,
                output=output,
                format=fmt,
                compression=comp,
                overwrite=args.overwrite,
                checkpoint=args.checkpoint,
                checkpoint_interval=interval,
                page_size=args.page_size,
                concurrency=args.concurrency,
                max_items=args.max_items,
                where=f"from {client.base_url} into "
                f"{output if output is not None else 'standard output'}",
            )
            async with client:
                outcome = await run_harvest(client, job, ui, interrupt, retries)
        except BrokenPipeError:
            raise  # the reader of standard output left: see main()
        except FATAL_ERRORS as exc:
            return report_fatal(ui, exc, client)
        print_summary(ui, outcome)
        print_final_line(ui, outcome)
        return outcome_code(outcome, interrupt)

    retries = RetryCount()
    return run_command(command, ui.console)


def cmd_spaces(args: argparse.Namespace) -> int:
    """``spacetasks spaces``: list the organization's spaces (a table or JSON Lines).

    Args:
        args: the parsed options of the ``spaces`` subcommand.
    """
    ui = make_ui(args)

    async def command(interrupt: Interrupt) -> int:
        client: Client | None = None
        try:
            client = _client(args, ui, need_org=True)
            async with client:
                async with ui.phase(f"connecting to {client.base_url}"):
                    await check_reachable(client.base_url, min(FIRST_CONTACT_TIMEOUT, args.timeout))
                async with ui.phase(f"listing the spaces of {client.org_handle}"):
                    spaces = [space async for space in client.iter_spaces()]
        except (SpaceTasksError, UsageError, UnreachableError) as exc:
            return report_fatal(ui, exc, client)
        if args.json:
            out = sys.stdout.buffer
            for space in spaces:
                out.write(orjson.dumps(encode_space(space), option=orjson.OPT_APPEND_NEWLINE))
            out.flush()
            return EXIT_OK
        table = Table(title=f"{len(spaces)} spaces of {client.org_handle}", title_justify="left")
        table.add_column("name")
        table.add_column("token", no_wrap=True)
        table.add_column("id", no_wrap=True)
        table.add_column("created", no_wrap=True)
        for space in spaces:
            created = space.created_at.strftime("%Y-%m-%d %H:%M") if space.created_at else ""
            table.add_row(
                Text(space.name or ""),
                space.token or "",
                str(space.id) if space.id is not None else "",
                created,
            )
        Console(highlight=False).print(table)
        return EXIT_OK

    return run_command(command, ui.console)


def cmd_serve(args: argparse.Namespace) -> int:
    """``spacetasks serve``: shell assignments on stdout, then serve until Ctrl-C.

    Args:
        args: the parsed options of the ``serve`` subcommand.
    """
    from ..testing import UnpodServer
    from ..testing.__main__ import config_from_args

    err = Console(stderr=True, highlight=False)
    try:
        config = config_from_args(args)
    except ValueError as exc:  # e.g. a fault rate out of range
        err.print(f"{PROG}: error: {exc}", markup=False)
        return EXIT_USAGE

    async def serve(interrupt: Interrupt) -> int:
        try:
            async with UnpodServer(config) as server:
                # Only shell assignments on stdout, so `eval "$(spacetasks serve ...)"` and
                # `source <(...)` work; the rest goes to stderr. Printing the key is the
                # point here: it is a throwaway key of a local test server.
                for name, value in (
                    ("UNPOD_BASE_URL", server.base_url),
                    ("UNPOD_API_KEY", server.api_key),
                    ("UNPOD_ORG_HANDLE", server.org_handle),
                    ("SPACE_TOKENS", ",".join(server.space_tokens)),
                ):
                    print(f"{name}={shlex.quote(value)}")
                sys.stdout.flush()
                err.print(
                    f"Serving {len(server.space_tokens)} spaces at {server.base_url}; "
                    "press Ctrl-C to stop.",
                    markup=False,
                )
                await asyncio.Event().wait()  # until Ctrl-C or SIGTERM cancels it
        except OSError as exc:  # e.g. the port is taken
            err.print(f"{PROG}: error: cannot serve: {exc.strerror or exc}", markup=False)
            return EXIT_ERROR
        return EXIT_OK  # pragma: no cover (the wait above only ends by a signal)

    if run_command(serve) == EXIT_ERROR:
        return EXIT_ERROR
    err.print("Stopped.", markup=False)
    return EXIT_OK
