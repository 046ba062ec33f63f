"""The ``spacetasks`` command line: harvest, spaces, serve, demo.

``python -m spacetasks_async demo`` shows the whole thing on a local server in a few seconds;
``spacetasks harvest --help`` documents the real job. Every error is one line on stderr and an
exit code (listed in the ``--help`` epilog); the API key is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import random
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ._client import MAX_PAGE_SIZE, Client
from ._convert import encode_space
from ._errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    SpaceTasksError,
    TransportError,
)
from ._harvest import Harvest
from ._output import CheckpointError, CheckpointFile, OutputFile, SpaceProgress, encode_lines
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
    EXIT_USAGE: "bad argument, missing key or org handle, unusable checkpoint",
    EXIT_AUTH: "the server rejected the API key (HTTP 401/403)",
    EXIT_UNREACHABLE: "the server could not be reached (connection error, timeout)",
    EXIT_PARTIAL: "partial: some spaces failed (listed with reasons); the others were written",
    EXIT_INTERRUPTED: "interrupted by Ctrl-C (143: by SIGTERM); rerun to resume (--checkpoint)",
}

DEFAULT_PAGE_SIZE: Final = 100
DEFAULT_CONCURRENCY: Final = 16
DEFAULT_CHECKPOINT_INTERVAL: Final = 1.0

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
    group.add_argument(
        "--api-key",
        metavar="KEY",
        help="Unpod API key (default: $UNPOD_API_KEY); never printed",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help="API host (default: $UNPOD_BASE_URL, else https://unpod.ai)",
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
        type=_int_at_least(1),
        default=concurrency,
        metavar="N",
        help=f"requests in flight at once, shared by all spaces (default: {concurrency})",
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
        help="write every task of some spaces as JSON Lines",
        description=_para(
            "Write every task of the given spaces as JSON Lines: one task per line, with "
            "every key the API sent, unchanged, plus 'space_token'. Spaces are walked "
            "concurrently; within a space, tasks keep the server's order (newest first)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_epilog(
            "examples:\n"
            "  spacetasks harvest TOKEN_A TOKEN_B -o tasks.jsonl\n"
            "  spacetasks harvest --all-spaces --org-handle acme -o all.jsonl "
            "--checkpoint all.ckpt\n"
            "  spacetasks harvest --tokens-file tokens.txt | jq .task_id\n"
            "\nresume: with --checkpoint FILE, progress is recorded as the harvest goes; after "
            "a crash,\na kill or Ctrl-C, the same command continues where it stopped "
            "(the output ends with\nevery task exactly once; spaces already done are not "
            "fetched again).\n"
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
        metavar="FILE",
        help="write JSON Lines to FILE (default: standard output)",
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
        default=DEFAULT_CHECKPOINT_INTERVAL,
        metavar="SECONDS",
        help="rewrite the checkpoint at most this often, and when a space ends; 0: after "
        f"every page (default: {DEFAULT_CHECKPOINT_INTERVAL:g})",
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
        help="default: tasks.jsonl",
    )
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
    if isinstance(error, TransportError):
        return EXIT_UNREACHABLE
    if isinstance(error, ConfigurationError | InvalidArgumentError | CheckpointError | UsageError):
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
        return f"{error.message}: check --org-handle or UNPOD_ORG_HANDLE"
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
    """What one harvest does, independent of where the options came from."""

    tokens: tuple[str, ...]
    """Spaces named on the command line (or in a tokens file)."""
    all_spaces: bool
    """Also every space of the organization."""
    output: Path | None
    """None: standard output."""
    checkpoint: Path | None
    checkpoint_interval: float
    page_size: int
    concurrency: int
    max_items: int | None
    where: str
    """For the display's title: "from <base url> into <output>"."""


@attrs.define
class Outcome:
    """How a harvest ended."""

    tracker: Tracker
    output_name: str
    checkpoint: Path | None
    interrupted: bool = False
    nothing_to_do: bool = False

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


async def _resolve_tokens(client: Client, job: HarvestJob, cp: CheckpointFile | None) -> list[str]:
    tokens = list(job.tokens)
    if job.all_spaces:
        if cp is not None:
            # A resumed --all-spaces run keeps the spaces it planned, even ones gone since
            # (they fail and are reported), and adds the new ones at the end.
            tokens += list(cp.spaces)
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


async def run_harvest(
    client: Client, job: HarvestJob, ui: Ui, interrupt: Interrupt, retries: RetryCount
) -> Outcome:
    """Harvest ``job`` with ``client``: write the output, keep the checkpoint, show progress.

    Raises the error of a fatal failure (bad key, unreachable server, unusable checkpoint)
    after leaving the output and the checkpoint consistent. A Ctrl-C (``interrupt``) ends it
    early, with ``Outcome.interrupted`` set. ``retries`` is the ``on_retry`` of ``client``.
    """
    cp = None
    if job.checkpoint is not None:
        if job.output is None:
            raise UsageError("--checkpoint needs --output FILE (standard output cannot resume)")
        cp = CheckpointFile.open(job.checkpoint, job.output, job.page_size)
    tokens = await _resolve_tokens(client, job, cp)
    progress: dict[str, SpaceProgress] = cp.spaces if cp is not None else {}
    for token in tokens:
        progress.setdefault(token, SpaceProgress())
    skipped = {t for t in tokens if progress[t].done}
    todo = [t for t in tokens if t not in skipped]
    prior = {t: progress[t].tasks for t in tokens}
    tracker = Tracker(tokens, prior, skipped, retries)
    output_name = str(job.output) if job.output is not None else "standard output"
    outcome = Outcome(tracker, output_name, job.checkpoint)
    # Built before the output is touched: a bad token fails here, leaving the file alone.
    harvest = client.harvest(
        todo,
        page_size=job.page_size,
        concurrency=job.concurrency,
        max_items_per_space=job.max_items,
        collect_failures=True,  # the summary names them and the exit code is 5
        checkpoints={
            t: point
            for t in todo
            if (point := progress[t].resume_point(t, job.page_size)) is not None
        },
    )
    tracker.harvest = harvest
    if cp is not None and cp.resumed:
        ui.info(
            f"resuming from {job.checkpoint}: {len(skipped)} of {len(tokens)} spaces done, "
            f"{sum(prior.values()):,} tasks already in {output_name}"
        )
    if not todo:
        outcome.nothing_to_do = True
        tracker.finish()
        return outcome

    if job.output is None:
        out = OutputFile.stdout(sys.stdout.buffer)
    elif cp is not None and cp.resumed:
        out = OutputFile.resume(job.output, cp.output_offset)
    else:
        try:
            out = OutputFile.create(job.output)
        except OSError as exc:
            raise UsageError(f"cannot write {job.output}: {exc.strerror}") from None
    if cp is not None:
        cp.output_offset = out.offset
        try:
            cp.save()  # from now on a resume knows the plan, even if no page ever arrives
        except BaseException:
            out.close()
            raise

    title = f"harvesting {len(todo)} space{'s' if len(todo) != 1 else ''} {job.where}"
    display = ui.display(
        tracker, title, output_on_terminal=job.output is None and sys.stdout.isatty()
    )
    display.start()
    ticker = asyncio.create_task(_tick(display))
    try:
        await _consume(harvest, out, cp, progress, tracker, job)
    except asyncio.CancelledError:
        if interrupt.signum is None:
            raise
        # Our own Ctrl-C: everything written so far is whole; the cleanup below records it.
        outcome.interrupted = True
    finally:
        ticker.cancel()
        display.stop()
        tracker.finish()
        await harvest.aclose()
        try:
            if cp is not None:
                out.sync()
                cp.output_offset = out.offset
                cp.save()
        finally:
            out.close()
    return outcome


async def _consume(
    harvest: Harvest,
    out: OutputFile,
    cp: CheckpointFile | None,
    progress: dict[str, SpaceProgress],
    tracker: Tracker,
    job: HarvestJob,
) -> None:
    """Write pages as they come; checkpoint between pages (see ``_output``)."""
    last_save = time.monotonic()
    n_completed = 0
    n_failed = 0
    limit = job.max_items  # on a resumed space, it counts the tasks of earlier runs too
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
                    out.write(encode_lines(token, tasks))
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
        if cp is not None and (
            not more or new_done or time.monotonic() - last_save >= job.checkpoint_interval
        ):
            for token, state in progress.items():
                if not state.done and (point := harvest.checkpoint(token)) is not None:
                    state.walk = point  # the walk's own checkpoint: every page written
            out.sync()
            cp.output_offset = out.offset
            cp.save()
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


def _client(args: argparse.Namespace, *, need_org: bool, **extra: Any) -> Client:
    api_key = args.api_key or os.environ.get("UNPOD_API_KEY")
    if not api_key:
        raise UsageError("no API key: pass --api-key or set UNPOD_API_KEY")
    org = args.org_handle or os.environ.get("UNPOD_ORG_HANDLE")
    if need_org and not org:
        raise UsageError(
            "listing spaces needs the organization handle: pass --org-handle or set "
            "UNPOD_ORG_HANDLE"
        )
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
        if args.checkpoint is not None and args.output is None:
            raise UsageError("--checkpoint needs --output FILE (standard output cannot resume)")
    except UsageError as exc:
        ui.error(str(exc))
        return EXIT_USAGE

    async def command(interrupt: Interrupt) -> int:
        client: Client | None = None
        try:
            client = _client(
                args, need_org=args.all_spaces, max_in_flight=args.concurrency, on_retry=retries
            )
            job = HarvestJob(
                tokens=tuple(tokens),
                all_spaces=args.all_spaces,
                output=args.output,
                checkpoint=args.checkpoint,
                checkpoint_interval=args.checkpoint_interval,
                page_size=args.page_size,
                concurrency=args.concurrency,
                max_items=args.max_items,
                where=f"from {client.base_url} into "
                f"{args.output if args.output is not None else 'standard output'}",
            )
            async with client:
                outcome = await run_harvest(client, job, ui, interrupt, retries)
        except BrokenPipeError:
            raise  # the reader of standard output left: see main()
        except (SpaceTasksError, CheckpointError, UsageError, OSError) as exc:
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
            client = _client(args, need_org=True)
            async with client:
                spaces = [space async for space in client.iter_spaces()]
        except (SpaceTasksError, UsageError) as exc:
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
    from .testing.__main__ import config_from_args, run

    try:
        config = config_from_args(args)
    except ValueError as exc:  # e.g. a fault rate out of range
        Console(stderr=True).print(f"{PROG}: error: {exc}", markup=False, highlight=False)
        return EXIT_USAGE
    return run(config)


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
            except (SpaceTasksError, CheckpointError, UsageError, OSError) as exc:
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
