"""What every command shares: exit codes, defaults, the console, errors and signals."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Final

import attrs
from rich.console import Console
from rich.live import Live
from rich.text import Text

from .._errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    SpaceTasksError,
    TransportError,
)
from .._formats import OutputError
from .._output import CheckpointError, LockedError
from .._progress import Display, LiveDisplay, NullDisplay, PlainDisplay, Tracker, fmt_seconds
from .._validate import DEFAULT_MAX_IN_FLIGHT

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
#: The library's own default (Client(max_in_flight=...)): one default, stated once.
DEFAULT_CONCURRENCY: Final = DEFAULT_MAX_IN_FLIGHT
DEFAULT_CHECKPOINT_INTERVAL: Final = 1.0
#: Each commit of a Parquet dataset writes one part file: fewer, larger parts read faster.
PARQUET_CHECKPOINT_INTERVAL: Final = 10.0


# -- console, errors, logging ----------------------------------------------------------


class CommandConsole(Console):
    """The command's console: it knows the live displays it shows (progress, spinners), so
    that any way out of the command can stop them (see :func:`restore_terminal`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """As :class:`rich.console.Console`."""
        super().__init__(*args, **kwargs)
        self.lives: list[Live] = []
        """Live displays started and not stopped yet, oldest first."""

    def set_live(self, live: Live) -> bool:
        """Rich's hook when a live display starts: remembered until it stops."""
        started = super().set_live(live)
        self.lives.append(live)
        return started

    def clear_live(self) -> None:
        """Rich's hook when a live display stops."""
        super().clear_live()
        if self.lives:
            self.lives.pop()


def restore_terminal(console: Console) -> None:
    """Stop the live displays still shown on ``console`` and show the cursor again.

    A live display or a spinner hides the cursor until it stops; a command that leaves any
    other way (a second Ctrl-C, an interrupt where no handler was installed, a forgotten
    display) would leave the user's shell without one. Stopping erases a transient display
    as it would on its own way out. Off a terminal nothing is written.

    Args:
        console: where the displays draw (a :class:`CommandConsole` knows them; any other
            console only gets its cursor shown).
    """
    lives = list(console.lives) if isinstance(console, CommandConsole) else []
    with contextlib.suppress(OSError):  # a terminal gone already: nothing to give back
        for live in reversed(lives):
            live.stop()
        console.show_cursor(True)


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


def make_ui(args: argparse.Namespace) -> Ui:
    """The :class:`Ui` for the options (``--quiet``, ``-v``), with logging set up.

    Args:
        args: the parsed options of any subcommand.
    """
    console = CommandConsole(stderr=True, highlight=False)
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


def exit_code_of(error: BaseException) -> int:
    """The exit code of a fatal error (see :data:`EXIT_CODES`).

    Args:
        error: the error that ended the command.
    """
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


def describe_error(error: BaseException, base_url: str | None) -> str:
    """One line for a fatal error: what happened and what to do (never the key).

    Args:
        error: the error that ended the command.
        base_url: the server's base URL, for the message (``None``: not known yet).
    """
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


def run_command(
    make: Callable[[Interrupt], Coroutine[Any, Any, int]], console: Console | None = None
) -> int:
    """Run a command's coroutine; Ctrl-C and SIGTERM cancel it so it can clean up.

    The command gets the cancellation at its current ``await``, finishes its cleanup (the
    output flushed, the checkpoint written) and the exit code is 128 + the signal. A second
    Ctrl-C while it cleans up leaves at once: the checkpoint on disk is consistent anyway.
    Whichever way it leaves, the terminal gets its cursor back (:func:`restore_terminal`).

    Args:
        make: builds the command's coroutine from the :class:`Interrupt` it may consult.
        console: where the command shows live displays, if anywhere.
    """
    interrupt = Interrupt()

    async def runner() -> int:
        loop = asyncio.get_running_loop()
        work = asyncio.create_task(make(interrupt))

        def on_signal(signum: signal.Signals) -> None:
            if interrupt.signum is None:
                interrupt.signum = signum
                work.cancel()
                return
            # Asked twice: leave now, even before the cancellation reached the command
            # (both signals can arrive in one turn of the loop). The command's cleanup will
            # not run, so stop its live display here: it hid the cursor.
            try:
                if console is not None:
                    restore_terminal(console)
            finally:
                os._exit(128 + signum)

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
    finally:
        if console is not None:
            restore_terminal(console)


class UnreachableError(Exception):
    """The server cannot be reached at all (name unknown, connection refused): exit 4."""


#: What a command reports as one line and an exit code (a checkpoint, lock or output
#: problem is a SpaceTasksError too; OSError: a file that cannot be written).
FATAL_ERRORS: tuple[type[BaseException], ...] = (
    SpaceTasksError,
    UsageError,
    UnreachableError,
    OSError,
)
