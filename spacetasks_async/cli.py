"""The ``spacetasks`` command line: harvest, spaces, serve, demo.

``python -m spacetasks_async demo`` shows the whole thing on a local server in a few seconds;
``spacetasks harvest --help`` documents the real job. Every error is one line on stderr and an
exit code (listed in the ``--help`` epilog); the API key is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import random
import shlex
import signal
import socket
import stat
import sys
import textwrap
import time
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import orjson
import yarl
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ._client import MAX_PAGE_SIZE, Client, _is_loopback
from ._convert import encode_space, encode_task
from ._errors import (
    AuthenticationError,
    ConfigurationError,
    InsecureTransportWarning,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    SpaceTasksError,
    TransportError,
)
from ._formats import (
    Compression,
    OutputChangedError,
    OutputError,
    OutputFormat,
    Sink,
    infer_format,
    open_sink,
)
from ._harvest import Harvest, SpaceFailure
from ._output import CheckpointError, CheckpointFile, LockedError, RunLock, SpaceProgress
from ._progress import (
    Display,
    LiveDisplay,
    NullDisplay,
    PlainDisplay,
    RetryCount,
    Tracker,
    fmt_seconds,
)
from ._retry import RetryPolicy
from ._validate import MAX_IN_FLIGHT

__all__ = ["EXIT_CODES", "build_parser", "main"]

PROG: Final = "spacetasks"

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_AUTH: Final = 3
EXIT_UNREACHABLE: Final = 4
EXIT_PARTIAL: Final = 5
EXIT_INTERRUPTED: Final = 130

#: Exit codes and their meaning, as shown in ``--help``.
EXIT_CODES: Final = {
    EXIT_OK: "every space was harvested",
    EXIT_ERROR: "an error other than below (server error after retries, I/O error, ...)",
    EXIT_USAGE: "bad argument, missing key or org handle, unusable checkpoint or output, "
    "or another run using the same output or checkpoint",
    EXIT_AUTH: "the server rejected the API key (HTTP 401/403)",
    EXIT_UNREACHABLE: "the server could not be reached (connection error, timeout)",
    EXIT_PARTIAL: "partial: some spaces failed (listed with reasons); the others were written",
    EXIT_INTERRUPTED: "interrupted by Ctrl-C (143: by SIGTERM); rerun to resume (--checkpoint)",
}

DEFAULT_PAGE_SIZE: Final = 100
DEFAULT_CONCURRENCY: Final = 16
DEFAULT_CHECKPOINT_INTERVAL: Final = 1.0
#: Each commit of a Parquet dataset writes one part file: fewer, larger parts read faster.
PARQUET_CHECKPOINT_INTERVAL: Final = 10.0

log = logging.getLogger("spacetasks_async")


# -- argument types --------------------------------------------------------------------


def _int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def _float_above(low: float, *, inclusive: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            word = "at least" if inclusive else "above"
            raise argparse.ArgumentTypeError(f"must be {word} {low}, got {text}")
        return value

    return parse


# -- the parser ------------------------------------------------------------------------


def _para(text: str) -> str:
    # The help keeps line breaks as written (for the epilogs), so paragraphs are wrapped here.
    return textwrap.fill(text, width=88)


def _epilog(examples: str) -> str:
    codes = "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())
    return f"{examples}\nexit codes:\n{codes}\n"


def _add_connection(parser: argparse.ArgumentParser, *, org_help: str) -> None:
    group = parser.add_argument_group("connection")
    keys = group.add_mutually_exclusive_group()
    keys.add_argument(
        "--api-key",
        metavar="KEY",
        help="Unpod API key; never printed, but visible to other users in `ps` while the "
        "command runs: prefer $UNPOD_API_KEY (the default) or --api-key-file",
    )
    keys.add_argument(
        "--api-key-file",
        type=Path,
        metavar="FILE",
        help="read the API key from FILE (its first line; '-': stdin)",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help="API host (default: $UNPOD_BASE_URL, else https://unpod.ai)",
    )
    group.add_argument(
        "--allow-http",
        action="store_true",
        help="allow a plain http:// base URL to another machine (the key goes in clear)",
    )
    group.add_argument("--org-handle", metavar="HANDLE", help=org_help)
    group.add_argument(
        "--timeout",
        type=_float_above(0),
        default=60.0,
        metavar="SECONDS",
        help="limit for one request attempt (default: 60)",
    )
    group.add_argument(
        "--max-retries",
        type=_int_at_least(0),
        default=7,
        metavar="N",
        help="retries of a failed request (429, 5xx, network) before giving up (default: 7)",
    )
    group.add_argument(
        "--rate",
        type=_float_above(0),
        default=None,
        metavar="PER_SECOND",
        help="at most this many requests per second (default: no limit)",
    )


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log retries, drift and failed spaces as they happen (-vv: every request)",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress and no summary; errors and failed spaces only",
    )
    parser.add_argument(
        "--progress-every",
        type=_float_above(0),
        default=2.0,
        metavar="SECONDS",
        help="when stderr is not a terminal: a progress line this often (default: 2)",
    )


def _add_harvest_tuning(parser: argparse.ArgumentParser, *, concurrency: int) -> None:
    group = parser.add_argument_group("harvest")
    group.add_argument(
        "--page-size",
        type=_int_at_least(1, MAX_PAGE_SIZE),
        default=DEFAULT_PAGE_SIZE,
        metavar="N",
        help=f"tasks per request (default: {DEFAULT_PAGE_SIZE}); a resume must use the same",
    )
    group.add_argument(
        "--concurrency",
        # Each request in flight may hold a socket: the library's ceiling keeps a run
        # within a 1024-file-descriptor process.
        type=_int_at_least(1, MAX_IN_FLIGHT),
        default=concurrency,
        metavar="N",
        help=f"requests in flight at once, shared by all spaces, 1 to {MAX_IN_FLIGHT} "
        f"(default: {concurrency})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``spacetasks`` command and its subcommands."""
    from . import __version__
    from .testing.__main__ import add_arguments as add_server_arguments

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Harvest every task of Unpod spaces, fast and losslessly, as JSON Lines.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_epilog(
            "start here:\n"
            "  python -m spacetasks_async demo        # the whole thing on a local server\n"
            "  spacetasks harvest --help\n"
        ),
    )
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    harvest = sub.add_parser(
        "harvest",
        help="write every task of some spaces as JSON Lines, CSV or Parquet",
        description=_para(
            "Write every task of the given spaces as JSON Lines (one task per line, with "
            "every key the API sent, unchanged, plus 'space_token'), CSV or a Parquet "
            "dataset (one documented schema: typed columns, nothing lost). Spaces are walked "
            "concurrently; within a space, tasks keep the server's order (newest first)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_epilog(
            "examples:\n"
            "  spacetasks harvest TOKEN_A TOKEN_B -o tasks.jsonl\n"
            "  spacetasks harvest --all-spaces --org-handle acme -o all.jsonl "
            "--checkpoint all.ckpt\n"
            "  spacetasks harvest --tokens-file tokens.txt | jq .task_id\n"
            "  spacetasks harvest TOKEN_A -o tasks.parquet --checkpoint tasks.ckpt\n"
            "\nresume: with --checkpoint FILE, progress is recorded as the harvest goes; after "
            "a crash,\na kill or Ctrl-C, the same command continues where it stopped "
            "(the output ends with\nevery task exactly once; spaces already done are not "
            "fetched again). The output must be the one the checkpoint was written with: a\n"
            "replaced or changed output is refused, never cut. A run locks its output and\n"
            "checkpoint: a second run on either fails at once (exit 2).\n"
        ),
    )
    harvest.add_argument(
        "tokens", nargs="*", metavar="SPACE_TOKEN", help="tokens of the spaces to harvest"
    )
    src = harvest.add_argument_group("which spaces")
    src.add_argument(
        "--tokens-file",
        type=Path,
        metavar="FILE",
        help="read space tokens from FILE, one a line ('#' comments; '-': stdin)",
    )
    src.add_argument(
        "--all-spaces",
        action="store_true",
        help="every space of the organization (needs --org-handle)",
    )
    out = harvest.add_argument_group("output")
    out.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="PATH",
        help="write to PATH: x.jsonl, x.csv (either optionally .gz or .zst) or x.parquet (a "
        "dataset directory); '-': standard output, JSON Lines (the default)",
    )
    out.add_argument(
        "--format",
        choices=[f.value for f in OutputFormat],
        default=None,
        help="the output format, whatever the name of --output says (default: from it)",
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output (without it, a new harvest refuses to)",
    )
    out.add_argument(
        "--checkpoint",
        type=Path,
        metavar="FILE",
        help="record progress in FILE and resume from it (needs --output)",
    )
    out.add_argument(
        "--checkpoint-interval",
        type=_float_above(0, inclusive=True),
        default=None,
        metavar="SECONDS",
        help="commit the output and rewrite the checkpoint at most this often, and when a "
        f"space ends; 0: after every page (default: {DEFAULT_CHECKPOINT_INTERVAL:g}; "
        f"Parquet: {PARQUET_CHECKPOINT_INTERVAL:g}, as each commit writes a part file)",
    )
    _add_harvest_tuning(harvest, concurrency=DEFAULT_CONCURRENCY)
    harvest.add_argument(
        "--max-items",
        type=_int_at_least(1),
        default=None,
        metavar="N",
        help="at most N tasks per space (the newest)",
    )
    _add_connection(
        harvest, org_help="organization handle, for --all-spaces (default: $UNPOD_ORG_HANDLE)"
    )
    _add_verbosity(harvest)
    harvest.set_defaults(handler=_cmd_harvest)

    spaces = sub.add_parser(
        "spaces",
        help="list the organization's spaces",
        description="List the spaces of the organization (a table, or JSON Lines with --json).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_epilog("example:\n  spacetasks spaces --org-handle acme --json | jq -r .token\n"),
    )
    spaces.add_argument(
        "--json", action="store_true", help="one JSON object per line, as the API sent it"
    )
    _add_connection(spaces, org_help="organization handle (default: $UNPOD_ORG_HANDLE)")
    spaces.set_defaults(handler=_cmd_spaces, verbose=0, quiet=False)

    serve = sub.add_parser(
        "serve",
        help="run a local Unpod-compatible server (for trying things out)",
        description=_para(
            "Serve seeded, realistic Unpod spaces on 127.0.0.1 until Ctrl-C. Prints the base "
            "URL, API key, organization handle and space tokens as shell assignments."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "example:\n"
            "  spacetasks serve --port 8765 --spaces 3 --tasks-per-space 500 --latency 0.02\n"
        ),
    )
    add_server_arguments(serve)
    serve.set_defaults(handler=_cmd_serve)

    demo = sub.add_parser(
        "demo",
        help="harvest a realistic local organization, start to finish, in seconds",
        description=_para(
            "Start a local Unpod-compatible server in this process (50 spaces, 100,000 "
            "tasks, network-like latency, a few failing requests), harvest all of it with "
            "the progress display, check the output against the server, and summarise."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_epilog("example:\n  python -m spacetasks_async demo --spaces 5 --tasks 2000\n"),
    )
    demo.add_argument("--spaces", type=_int_at_least(1), default=50, help="default: 50")
    demo.add_argument(
        "--tasks", type=_int_at_least(0), default=100_000, help="in total (default: 100,000)"
    )
    demo.add_argument(
        "--latency",
        type=_float_above(0, inclusive=True),
        default=0.02,
        metavar="SECONDS",
        help="per request, plus up to as much jitter (default: 0.02)",
    )
    demo.add_argument(
        "--fault-rate",
        type=_float_above(0, inclusive=True),
        default=0.02,
        metavar="SHARE",
        help="share of requests failing with 5xx, 429, cut bodies... (default: 0.02)",
    )
    demo.add_argument("--seed", type=int, default=1, help="of the generated data (default: 1)")
    demo.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("tasks.jsonl"),
        metavar="FILE",
        help="JSON Lines, plain (default: tasks.jsonl)",
    )
    demo.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    _add_harvest_tuning(demo, concurrency=DEFAULT_CONCURRENCY)
    _add_verbosity(demo)
    demo.set_defaults(handler=_cmd_demo)
    return parser


# -- console, errors, logging ----------------------------------------------------------


@attrs.define
class Ui:
    """Where messages go (stderr), and how much of them."""

    console: Console
    quiet: bool = False
    verbose: int = 0
    progress_every: float = 2.0

    @property
    def interactive(self) -> bool:
        """Whether stderr is a real terminal (live display, colours)."""
        return self.console.is_terminal and not self.console.is_dumb_terminal

    def error(self, message: str) -> None:
        """One error line, whatever ``--quiet`` says."""
        self.console.print(Text.assemble((f"{PROG}: error: ", "bold red"), message), soft_wrap=True)

    def info(self, message: str | Text, *, wrap: bool = False) -> None:
        """A line of information, unless ``--quiet``; ``wrap``: word-wrap it (prose)."""
        if not self.quiet:
            # Unwrapped by default: a line with a path stays one line for copy and grep.
            self.console.print(message, soft_wrap=not wrap, highlight=False, markup=False)

    @contextlib.asynccontextmanager
    async def phase(self, text: str) -> AsyncIterator[None]:
        """Say what the command is doing while it waits (connecting, listing spaces).

        A spinner on a terminal; elsewhere a line every ``progress_every`` seconds once the
        wait lasts that long (a quick step prints nothing); nothing with ``--quiet``.

        Args:
            text: what is being done, e.g. ``"connecting to https://unpod.ai"``.
        """
        if self.quiet:
            yield
            return
        if self.interactive:
            with self.console.status(text):
                yield
            return

        async def every() -> None:
            started = time.monotonic()
            while True:
                await asyncio.sleep(self.progress_every)
                waited = fmt_seconds(time.monotonic() - started)
                self.console.print(
                    f"{PROG}: {text} ({waited})", markup=False, highlight=False, soft_wrap=True
                )

        ticker = asyncio.create_task(every())
        try:
            yield
        finally:
            ticker.cancel()

    def display(self, tracker: Tracker, title: str, *, output_on_terminal: bool) -> Display:
        """The progress display that fits the terminal and the options."""
        if self.quiet or output_on_terminal:
            # Output lines on the terminal would be torn by a live display.
            return NullDisplay()
        if self.interactive:
            return LiveDisplay(self.console, tracker, title)
        return PlainDisplay(self.console, tracker, self.progress_every)


def _make_ui(args: argparse.Namespace) -> Ui:
    console = Console(stderr=True, highlight=False)
    ui = Ui(
        console,
        quiet=bool(getattr(args, "quiet", False)),
        verbose=args.verbose,
        progress_every=getattr(args, "progress_every", 2.0),
    )
    _setup_logging(ui)
    return ui


def _setup_logging(ui: Ui) -> None:
    logger = logging.getLogger("spacetasks_async")
    logger.propagate = False
    for old in list(logger.handlers):
        logger.removeHandler(old)
    if ui.verbose == 0:
        # Retries, drift and failed spaces are counted by the display and listed in the
        # summary; as log lines they would only scroll the live display away.
        logger.addHandler(logging.NullHandler())
        logger.setLevel(logging.CRITICAL + 1)
        return
    handler: logging.Handler
    if ui.interactive:
        from rich.logging import RichHandler

        handler = RichHandler(console=ui.console, show_path=False, markup=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    # The library logs retries at INFO, drift and failed spaces at WARNING and ERROR, and
    # every request at DEBUG.
    logger.setLevel(logging.INFO if ui.verbose == 1 else logging.DEBUG)


class UsageError(Exception):
    """A problem with the command line found after parsing (exit 2, one line)."""


def _exit_code(error: BaseException) -> int:
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        return EXIT_AUTH
    if isinstance(error, TransportError | UnreachableError):
        return EXIT_UNREACHABLE
    if isinstance(
        error,
        ConfigurationError
        | InvalidArgumentError
        | CheckpointError
        | UsageError
        | LockedError
        | OutputError,
    ):
        return EXIT_USAGE
    return EXIT_ERROR


def _describe(error: BaseException, base_url: str | None) -> str:
    """One line for a fatal error: what happened and what to do (never the key)."""
    where = base_url or "the server"
    if isinstance(error, AuthenticationError):
        return (
            f"the server at {where} rejected the API key ({error.message}); "
            "check --api-key or UNPOD_API_KEY"
        )
    if isinstance(error, PermissionDeniedError):
        return f"the API key is not allowed to do this at {where} ({error.message})"
    if isinstance(error, TransportError):
        return f"cannot reach {where}: {error.message}"
    if isinstance(error, NotFoundError) and error.space_token is None:
        return (
            f"{error.message}: check --org-handle or UNPOD_ORG_HANDLE, and that the base URL "
            f"{where} is the API host alone (no path)"
        )
    if isinstance(error, OSError):
        name = f" {error.filename}" if error.filename else ""
        return f"cannot write{name}: {error.strerror or error}"
    return str(error).replace("\n", " ")


# -- running under signals -------------------------------------------------------------


@attrs.define
class Interrupt:
    """Which signal (if any) asked the running command to stop."""

    signum: int | None = None


def _run(make: Callable[[Interrupt], Coroutine[Any, Any, int]]) -> int:
    """Run a command's coroutine; Ctrl-C and SIGTERM cancel it so it can clean up.

    The command gets the cancellation at its current ``await``, finishes its cleanup (the
    output flushed, the checkpoint written) and the exit code is 128 + the signal. A second
    Ctrl-C while it cleans up leaves at once: the checkpoint on disk is consistent anyway.
    """
    interrupt = Interrupt()

    async def runner() -> int:
        loop = asyncio.get_running_loop()
        work = asyncio.create_task(make(interrupt))

        def on_signal(signum: signal.Signals) -> None:
            if interrupt.signum is not None:
                os._exit(128 + signum)
            interrupt.signum = signum
            work.cancel()

        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover (not on Unix)
                pass
        try:
            return await work
        except asyncio.CancelledError:
            if interrupt.signum is None:
                raise
            return 128 + interrupt.signum
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    try:
        return asyncio.run(runner())
    except KeyboardInterrupt:  # a Ctrl-C before the loop took over the signal
        return EXIT_INTERRUPTED


# -- harvest ---------------------------------------------------------------------------


@attrs.frozen
class HarvestJob:
    """What one harvest does, independent of where the options came from.

    Attributes:
        tokens: spaces named on the command line (or in a tokens file).
        all_spaces: also every space of the organization.
        output: the output path; ``None``: standard output.
        format: the output format.
        compression: the output compression.
        overwrite: a new harvest may replace an existing output.
        checkpoint: the checkpoint file, or ``None``.
        checkpoint_interval: seconds between two commits of output and checkpoint.
        page_size: tasks per request.
        concurrency: requests in flight.
        max_items: at most this many tasks per space (``None``: all).
        where: for the display's title: "from <base url> into <output>".
    """

    tokens: tuple[str, ...]
    all_spaces: bool
    output: Path | None
    format: OutputFormat
    compression: Compression
    overwrite: bool
    checkpoint: Path | None
    checkpoint_interval: float
    page_size: int
    concurrency: int
    max_items: int | None
    where: str


@attrs.define
class Outcome:
    """How a harvest ended.

    Attributes:
        tracker: what was done, for the summary.
        output_name: the output, as shown.
        checkpoint: the checkpoint file, or ``None``.
        interrupted: stopped by Ctrl-C or SIGTERM.
        nothing_to_do: every space was done already (or there was none).
        hint: a line that may explain the failures (e.g. a base URL with a path).
    """

    tracker: Tracker
    output_name: str
    checkpoint: Path | None
    interrupted: bool = False
    nothing_to_do: bool = False
    hint: str | None = None

    @property
    def failed(self) -> list[tuple[str, str]]:
        """(token, reason) of the spaces that failed."""
        return self.tracker.failures()


def _read_tokens(path: Path) -> list[str]:
    if str(path) == "-":
        text = sys.stdin.read()
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read --tokens-file {path}: {exc.strerror}") from None
    tokens = []
    for line in text.splitlines():
        token = line.split("#", 1)[0].strip()
        if token:
            tokens.append(token)
    return tokens


async def _resolve_tokens(
    client: Client, job: HarvestJob, cp: CheckpointFile | None, ui: Ui
) -> list[str]:
    tokens = list(job.tokens)
    if job.all_spaces:
        if cp is not None:
            # A resumed --all-spaces run keeps the spaces it planned, even ones gone since
            # (they fail and are reported), and adds the new ones at the end.
            tokens += list(cp.spaces)
        async with ui.phase(f"listing the spaces of {client.org_handle} at {client.base_url}"):
            tokens += [space.token async for space in client.iter_spaces() if space.token]
    elif not tokens and cp is not None:
        tokens = list(cp.spaces)  # a resume may leave the spaces out: the checkpoint has them
    if not tokens and not job.all_spaces:
        raise UsageError(
            "no spaces: give SPACE_TOKEN arguments, --tokens-file FILE or --all-spaces"
        )
    return list(dict.fromkeys(tokens))


async def _tick(display: Display) -> None:
    while True:
        await asyncio.sleep(display.interval)
        display.refresh()


class UnreachableError(Exception):
    """The server cannot be reached at all (name unknown, connection refused): exit 4."""


#: Seconds the first contact waits for a connection: a live host answers within this even
#: far away, and an unreachable one is reported within a few seconds, not after retries.
FIRST_CONTACT_TIMEOUT: Final = 10.0


async def check_reachable(base_url: str, wait: float) -> None:
    """Open (and close) one TCP connection to the host of ``base_url``, or raise at once.

    The first contact of a run is not retried: a name that does not resolve or a refused
    connection will not get better within the retries' minutes, and the user should see
    the reason at once instead of a progress display of nothing.

    Args:
        base_url: the client's checked base URL.
        wait: seconds to wait for the connection.

    Raises:
        UnreachableError: naming the host and the reason.
    """
    url = yarl.URL(base_url)
    host, port = url.host or "", url.port
    try:
        async with asyncio.timeout(wait):
            _, writer = await asyncio.open_connection(host, port)
    except socket.gaierror as exc:
        raise UnreachableError(
            f"cannot reach {base_url}: the host name {host} does not resolve "
            f"({exc.strerror}); check --base-url or UNPOD_BASE_URL"
        ) from None
    except TimeoutError:
        raise UnreachableError(
            f"cannot reach {base_url}: no connection to {host}:{port} within {wait:g} s"
        ) from None
    except OSError as exc:
        # asyncio's message for a refused connection is "Connect call failed (addr)":
        # the errno says it in the system's words.
        reason = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
        raise UnreachableError(
            f"cannot reach {base_url}: {reason} ({host}:{port}); is the server running, "
            "and is --base-url right?"
        ) from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _check_key(client: Client, token: str) -> None:
    """One small request before the display starts: a bad key fails here, with exit 3."""
    try:
        await client.get_page(token, page=1, page_size=1)
    except (AuthenticationError, PermissionDeniedError):
        raise
    except SpaceTasksError:
        pass  # this space's own trouble: the harvest meets it again and reports it


def _refuse_existing(job: HarvestJob) -> None:
    """A new harvest never replaces an existing output unless ``--overwrite`` says so."""
    if job.output is None or job.overwrite:
        return
    path = job.output
    if job.format is OutputFormat.PARQUET and path.is_dir():
        if not any(not name.startswith((".", "_")) for name in os.listdir(path)):
            return  # an empty dataset directory: nothing to lose
    elif not os.path.lexists(path):
        return
    resume = (
        f"its checkpoint {job.checkpoint} is gone or new"
        if job.checkpoint is not None
        else "resume it with the --checkpoint of the run that wrote it"
    )
    raise UsageError(
        f"{path} exists and a new harvest would replace it: pass --overwrite to replace it, "
        f"choose another --output, or {resume}"
    )


def _no_404_hint(base_url: str, failures: Sequence[SpaceFailure], todo: Sequence[str]) -> str:
    if not todo or len(failures) < len(todo):
        return ""
    if not all(isinstance(f.error, NotFoundError) for f in failures):
        return ""
    path = yarl.URL(base_url).path.rstrip("/")
    where = f" carries the path {path!r}, which" if path else ""
    return (
        f"every space answered HTTP 404: the base URL {base_url}{where} may be wrong; it "
        "is the API host alone (e.g. https://unpod.ai), the client adds /api/v2/... itself"
    )


class _FirstAnswerDisplay:
    """A display that shows "waiting for the first answers" until totals mean something.

    Until the first ``count`` arrives every total is zero, which a progress display would
    show as 100% of nothing; this one holds the real display back until then.
    """

    def __init__(self, inner: Display, tracker: Tracker, ui: Ui, text: str) -> None:
        """Wrap ``inner``.

        Args:
            inner: the real display.
            tracker: what it shows.
            ui: where the waiting message goes.
            text: the waiting message.
        """
        self._inner = inner
        self._tracker = tracker
        self._ui = ui
        self._text = text
        self._started = False
        self._status: contextlib.AbstractContextManager[Any] | None = None
        self._since = time.monotonic()
        self.interval: float = inner.interval

    def _ready(self) -> bool:
        _, total, estimate = self._tracker.totals()
        return total > 0 or not estimate

    def start(self) -> None:
        """Wait for the first answers (a spinner on a terminal)."""
        if self._ready():
            self._go()
        elif self._ui.interactive and not isinstance(self._inner, NullDisplay):
            self._status = self._ui.console.status(self._text)
            self._status.__enter__()

    def _go(self) -> None:
        self._stop_status()
        self._started = True
        self._inner.start()

    def _stop_status(self) -> None:
        status, self._status = self._status, None
        if status is not None:
            status.__exit__(None, None, None)

    def refresh(self) -> None:
        """Redraw the real display, or keep waiting (a plain line now and then)."""
        if self._started:
            self._inner.refresh()
        elif self._ready():
            self._go()
        elif isinstance(self._inner, PlainDisplay):
            waited = fmt_seconds(time.monotonic() - self._since)
            self._ui.console.print(
                f"{PROG}: {self._text} ({waited})", markup=False, highlight=False, soft_wrap=True
            )

    def stop(self) -> None:
        """Stop whichever is showing."""
        self._stop_status()
        if self._started:
            self._inner.stop()


def _lockable(path: Path) -> bool:
    # Standard output, a device or a pipe (-o /dev/null) is no file another run could share.
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return True
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


async def run_harvest(
    client: Client, job: HarvestJob, ui: Ui, interrupt: Interrupt, retries: RetryCount
) -> Outcome:
    """Harvest ``job`` with ``client``: write the output, keep the checkpoint, show progress.

    The output and the checkpoint are locked for the whole run. Raises the error of a fatal
    failure (bad key, unreachable server, unusable checkpoint or output, another run on the
    same files) after leaving the output and the checkpoint consistent. A Ctrl-C
    (``interrupt``) ends it early, with ``Outcome.interrupted`` set.

    Args:
        client: the client (not yet used).
        job: what to harvest, and where to.
        ui: where messages and progress go.
        interrupt: set by the signal handler when Ctrl-C or SIGTERM asked to stop.
        retries: the ``on_retry`` of ``client`` (counted for the display).
    """
    with RunLock() as lock:
        if job.output is not None and _lockable(job.output):
            lock.acquire(job.output, "output")
        if job.checkpoint is not None:
            lock.acquire(job.checkpoint, "checkpoint")
        return await _run_locked(client, job, ui, interrupt, retries)


async def _run_locked(
    client: Client, job: HarvestJob, ui: Ui, interrupt: Interrupt, retries: RetryCount
) -> Outcome:
    cp = None
    if job.checkpoint is not None:
        if job.output is None:
            raise UsageError("--checkpoint needs --output FILE (standard output cannot resume)")
        cp = CheckpointFile.open(
            job.checkpoint,
            job.output,
            format=job.format.value,
            compression=job.compression.value,
            page_size=job.page_size,
            max_items=job.max_items,
        )
        cp.check_tokens(job.tokens, all_spaces=job.all_spaces)
    resumed = cp is not None and cp.resumed
    if not resumed:
        _refuse_existing(job)  # before any request: a refusal costs nothing
    async with ui.phase(f"connecting to {client.base_url}"):
        await check_reachable(
            client.base_url, min(FIRST_CONTACT_TIMEOUT, client.timeout.total or 60)
        )
    tokens = await _resolve_tokens(client, job, cp, ui)
    progress: dict[str, SpaceProgress] = cp.spaces if cp is not None else {}
    for token in tokens:
        progress.setdefault(token, SpaceProgress())
    skipped = {t for t in tokens if progress[t].done}
    todo = [t for t in tokens if t not in skipped]
    prior = {t: progress[t].tasks for t in tokens}
    tracker = Tracker(tokens, prior, skipped, retries)
    output_name = str(job.output) if job.output is not None else "standard output"
    outcome = Outcome(tracker, output_name, job.checkpoint)
    if resumed:
        ui.info(
            f"resuming from {job.checkpoint}: {len(skipped)} of {len(tokens)} spaces done, "
            f"{sum(prior.values()):,} tasks already in {output_name}"
        )
    if not todo:
        outcome.nothing_to_do = True
        tracker.finish()
        return outcome
    if not job.all_spaces:
        # --all-spaces asked the server already (the listing); otherwise this is the first
        # request with the key: a bad key ends the run here, before any display or output.
        async with ui.phase(f"checking the API key at {client.base_url}"):
            await _check_key(client, todo[0])
    # Built before the output is touched: a bad token fails here, leaving the file alone.
    harvest = client.harvest(
        todo,
        page_size=job.page_size,
        concurrency=job.concurrency,
        max_items_per_space=job.max_items,
        collect_failures=True,  # the summary names them and the exit code is 5
        checkpoints={t: point for t in todo if (point := progress[t].walk) is not None},
    )
    tracker.harvest = harvest
    try:
        sink = open_sink(
            "-" if job.output is None else job.output,
            job.format,
            job.compression,
            resume_state=cp.output_state if cp is not None and resumed else None,
            overwrite=job.overwrite,
        )
    except OutputChangedError as exc:
        await harvest.aclose()
        assert cp is not None  # only a resume checks the output
        raise CheckpointError(
            f"{exc}; to start over, delete {cp.path} and pass --overwrite"
        ) from None
    except BaseException:
        await harvest.aclose()
        raise
    try:
        if cp is not None:
            # From now on a resume knows the plan and the output, even if no page arrives.
            cp.output_state = sink.commit()
            cp.save()
    except BaseException:
        sink.abort()
        await harvest.aclose()
        raise

    title = f"harvesting {len(todo)} space{'s' if len(todo) != 1 else ''} {job.where}"
    display = _FirstAnswerDisplay(
        ui.display(tracker, title, output_on_terminal=job.output is None and sys.stdout.isatty()),
        tracker,
        ui,
        f"waiting for the first answers from {client.base_url}",
    )
    display.start()
    ticker = asyncio.create_task(_tick(display))

    async def wind_down(*, failing: bool) -> None:
        ticker.cancel()
        display.stop()
        tracker.finish()
        try:
            if cp is not None:
                try:
                    _record(cp, sink, progress, harvest)
                except (OSError, OutputError):
                    if not failing:
                        raise
                    # The error on its way out says what broke; the last checkpoint stands.
        finally:
            try:
                sink.close()
            finally:
                await harvest.aclose()

    try:
        await _consume(harvest, sink, cp, progress, tracker, job)
    except asyncio.CancelledError:
        if interrupt.signum is None:
            await wind_down(failing=True)
            raise
        # Our own Ctrl-C: everything written so far is whole; wind_down records it.
        outcome.interrupted = True
    except BaseException:
        await wind_down(failing=True)
        raise
    await wind_down(failing=False)
    if not outcome.interrupted:
        outcome.hint = _no_404_hint(client.base_url, harvest.failures, todo) or None
    return outcome


def _record(
    cp: CheckpointFile, sink: Sink, progress: dict[str, SpaceProgress], harvest: Harvest
) -> None:
    """Commit the output, then save the checkpoint that describes exactly that output."""
    for token, state in progress.items():
        if not state.done and (point := harvest.checkpoint(token)) is not None:
            state.walk = point  # the walk's own checkpoint: every page handed out is written
    cp.output_state = sink.commit()
    cp.save()


async def _consume(
    harvest: Harvest,
    sink: Sink,
    cp: CheckpointFile | None,
    progress: dict[str, SpaceProgress],
    tracker: Tracker,
    job: HarvestJob,
) -> None:
    """Write pages as they come; commit and checkpoint between pages (see ``_output``)."""
    last_save = time.monotonic()
    n_completed = 0
    n_failed = 0
    limit = job.max_items  # on a resumed space, it counts the tasks of earlier runs too
    # Each Parquet commit writes a part file: a space ending is not worth one of its own.
    commit_on_done = job.format is not OutputFormat.PARQUET
    pages = harvest.pages()
    while True:
        try:
            item = await anext(pages)
            more = True
        except StopAsyncIteration:
            more = False
        if more:
            token, page = item.space_token, item.page
            state = progress[token]
            tasks = page.tasks
            if limit is not None:
                tasks = tasks[: max(0, limit - state.tasks)]
            if not state.done:
                if tasks:
                    # Exactly what the API sent: the sink adds space_token and converts.
                    sink.write(token, [encode_task(task) for task in tasks])
                state.tasks += len(tasks)
                tracker.wrote(token, len(tasks))
                if limit is not None and state.tasks >= limit:
                    state.finished()
        completed = harvest.completed
        new_done = len(completed) > n_completed
        for token in completed[n_completed:]:
            progress[token].finished()
        n_completed = len(completed)
        for failure in harvest.failures[n_failed:]:
            if isinstance(failure.error, AuthenticationError | PermissionDeniedError):
                raise failure.error  # the key is bad for every space: stop now
        n_failed = len(harvest.failures)
        if (
            cp is not None
            and more
            and (
                (new_done and commit_on_done)
                or time.monotonic() - last_save >= job.checkpoint_interval
            )
        ):
            _record(cp, sink, progress, harvest)
            last_save = time.monotonic()
        if not more:
            break
    failures = harvest.failures
    if (
        failures
        and tracker.pages == 0
        and all(isinstance(f.error, TransportError) for f in failures)
    ):
        raise failures[0].error  # not one answer: the server is unreachable


# -- the summary -----------------------------------------------------------------------


def _print_summary(ui: Ui, outcome: Outcome) -> None:
    """The figures of the run, then the failed spaces (these even with ``--quiet``)."""
    t = outcome.tracker
    failed = outcome.failed
    if not ui.quiet and not outcome.nothing_to_do:
        harvest = t.harvest
        stats = list(harvest.stats.values()) if harvest is not None else []
        pages = sum(s.pages_fetched for s in stats)
        rereads = sum(s.rereads for s in stats)
        dropped = sum(s.duplicates_dropped for s in stats)
        drift = sum(s.drift_events for s in stats)
        done = len(t.done_tokens())
        rows: list[tuple[str, str]] = []
        spaces = f"{done} of {len(t.tokens)} done"
        if failed:
            spaces += f", {len(failed)} failed"
        if t.skipped:
            spaces += f" ({len(t.skipped)} done by an earlier run)"
        rows.append(("spaces", spaces))
        total = sum(t.written.values())
        tasks = f"{t.new_tasks:,} written"
        if total != t.new_tasks:
            tasks += f" ({total:,} in {outcome.output_name} with earlier runs)"
        rows.append(("tasks", tasks))
        rows.append(("pages", f"{pages:,} fetched" + (f", {rereads:,} re-read" if rereads else "")))
        rows.append(("duplicates dropped", f"{dropped:,}"))
        rows.append(("drift events", f"{drift:,}"))
        rows.append(("retries", f"{t.retries:,}"))
        rows.append(("elapsed", f"{fmt_seconds(t.elapsed)} ({t.average_rate:,.0f} tasks/s)"))
        ui.console.print()
        for key, value in rows:
            ui.console.print(
                Text.assemble((f"{key:<20}", "bold"), value), highlight=False, soft_wrap=True
            )
    if failed:
        ui.console.print(Text(f"failed spaces ({len(failed)}):", style="bold red"), highlight=False)
        for token, reason in failed:
            ui.console.print(f"  {token}: {reason}", markup=False, highlight=False, soft_wrap=True)
    if outcome.hint:
        ui.console.print(f"hint: {outcome.hint}", markup=False, highlight=False, soft_wrap=True)


def _final_line(ui: Ui, outcome: Outcome, *, resumable: bool = True) -> None:
    t = outcome.tracker
    done = len(t.done_tokens())
    where = outcome.output_name
    if outcome.interrupted:
        if outcome.checkpoint is not None:
            ui.info(
                f"interrupted after {t.new_tasks:,} tasks; {where} and the checkpoint "
                f"{outcome.checkpoint} are consistent: run the same command to resume"
            )
        else:
            hint = " (use --checkpoint FILE to be able to resume)" if resumable else ""
            ui.info(f"interrupted: {where} holds {t.new_tasks:,} tasks, not all{hint}")
        return
    if outcome.nothing_to_do and not t.tokens:
        ui.info("nothing to do: the organization has no spaces")
        return
    if outcome.nothing_to_do:
        ui.info(
            f"nothing to do: every space is already in {where} according to "
            f"{outcome.checkpoint} (delete it to harvest again)"
        )
        return
    of = f"{done} of {len(t.tokens)}" if done != len(t.tokens) else f"{done}"
    line = Text.assemble(
        "wrote ",
        (f"{t.new_tasks:,} tasks", "bold green" if not outcome.failed else "bold yellow"),
        f" from {of} spaces to {where} in {fmt_seconds(t.elapsed)} ({t.average_rate:,.0f} tasks/s)",
    )
    if outcome.failed:
        line.append(f"; {len(outcome.failed)} failed (exit {EXIT_PARTIAL})", style="bold red")
    ui.info(line)


def _outcome_code(outcome: Outcome, interrupt: Interrupt) -> int:
    if outcome.interrupted:
        return 128 + (interrupt.signum or signal.SIGINT)
    return EXIT_PARTIAL if outcome.failed else EXIT_OK


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
            **extra,
        )


def _fatal(ui: Ui, error: BaseException, client: Client | None) -> int:
    ui.error(_describe(error, client.base_url if client is not None else None))
    return _exit_code(error)


def _cmd_harvest(args: argparse.Namespace) -> int:
    ui = _make_ui(args)
    try:
        tokens = list(args.tokens)
        if args.tokens_file is not None:
            tokens += _read_tokens(args.tokens_file)
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
        except (
            SpaceTasksError,
            CheckpointError,
            UsageError,
            LockedError,
            UnreachableError,
            OSError,
        ) as exc:
            return _fatal(ui, exc, client)
        _print_summary(ui, outcome)
        _final_line(ui, outcome)
        return _outcome_code(outcome, interrupt)

    retries = RetryCount()
    return _run(command)


def _cmd_spaces(args: argparse.Namespace) -> int:
    ui = _make_ui(args)

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
            return _fatal(ui, exc, client)
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

    return _run(command)


def _cmd_serve(args: argparse.Namespace) -> int:
    from .testing import UnpodServer
    from .testing.__main__ import config_from_args

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

    if _run(serve) == EXIT_ERROR:
        return EXIT_ERROR
    err.print("Stopped.", markup=False)
    return EXIT_OK


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


def _verify(path: Path, truth: dict[str, int]) -> tuple[bool, str]:
    """Check the output against the server: each task exactly once, per space."""
    seen: set[tuple[str, str]] = set()
    per_space: dict[str, int] = {}
    lines = 0
    with open(path, "rb") as handle:
        for line in handle:
            lines += 1
            obj = orjson.loads(line)
            key = (obj["space_token"], obj["task_id"])
            seen.add(key)
            per_space[key[0]] = per_space.get(key[0], 0) + 1
    expected = sum(truth.values())
    if (
        lines != expected
        or len(seen) != lines
        or per_space != {k: v for k, v in truth.items() if v}
    ):
        return False, (
            f"{path} holds {lines:,} lines ({len(seen):,} distinct tasks), but the server "
            f"has {expected:,} tasks"
        )
    return True, (
        f"verified: {path} holds {lines:,} lines = the {expected:,} tasks on the server, "
        "each exactly once"
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from .testing import FaultPlan, ServerConfig, UnpodServer

    ui = _make_ui(args)
    try:
        fmt, comp = infer_format(args.output)
    except OutputError as exc:
        ui.error(str(exc))
        return EXIT_USAGE
    if (fmt, comp) != (OutputFormat.JSONL, Compression.NONE):
        # The demo checks its output line by line against the server.
        ui.error(f"the demo writes plain JSON Lines: name the output *.jsonl, not {args.output}")
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
            except (
                SpaceTasksError,
                CheckpointError,
                UsageError,
                LockedError,
                UnreachableError,
                OSError,
            ) as exc:
                return _fatal(ui, exc, client)
            truth = {t: server.space_data(t).live_count for t in server.space_tokens}
        _print_summary(ui, outcome)
        code = _outcome_code(outcome, interrupt)
        if code == EXIT_OK:
            ok, message = _verify(args.output, truth)
            if ok:
                ui.info(Text(message, style="green"))
            else:
                ui.error(message)
                code = EXIT_ERROR
        _final_line(ui, outcome, resumable=False)
        if code == EXIT_OK:
            ui.info(
                Text(
                    "next: python -m spacetasks_async harvest --help  (or: spacetasks serve, "
                    "to try harvest against a local server)",
                    style="dim",
                )
            )
        return code

    return _run(command)


# -- entry point -----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``spacetasks`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return command(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of standard output went away (e.g. `| head`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
