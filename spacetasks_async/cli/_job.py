"""The harvest job: lock, checkpoint, first contact, sink, pages, summary.

See :mod:`spacetasks_async._output` for how the output and the checkpoint stay consistent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import attrs
import yarl
from rich.text import Text

from .._client import Client
from .._convert import tasks_as_sent
from .._errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    SpaceTasksError,
    TransportError,
)
from .._formats import Compression, OutputChangedError, OutputError, OutputFormat, Sink, open_sink
from .._harvest import Harvest, SpaceFailure
from .._output import CheckpointError, CheckpointFile, RunLock, SpaceProgress
from .._progress import Display, RetryCount, Tracker, clean_text, fit, fmt_seconds
from ._common import EXIT_OK, EXIT_PARTIAL, Interrupt, Ui, UnreachableError, UsageError
from ._display import FirstAnswerDisplay

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


def read_tokens(path: Path) -> list[str]:
    """Space tokens from a file, one a line (``#`` comments, blank lines skipped).

    Args:
        path: the file, or ``-`` for standard input.

    Raises:
        UsageError: when the file cannot be read.
    """
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
) -> tuple[list[str], dict[str, str]]:
    """The run's spaces, in order, and the names of those the spaces list named."""
    tokens = list(job.tokens)
    names: dict[str, str] = {}
    if job.all_spaces:
        if cp is not None:
            # A resumed --all-spaces run keeps the spaces it planned, even ones gone since
            # (they fail and are reported), and adds the new ones at the end.
            tokens += list(cp.spaces)
        async with ui.phase(f"listing the spaces of {client.org_handle} at {client.base_url}"):
            async for space in client.iter_spaces():
                if space.token:
                    tokens.append(space.token)
                    if space.name:
                        # Shown by the progress and the summary: server text, so cleaned
                        # and scrubbed of the key like any other (the client's own scrubber).
                        names[space.token] = client._scrub(clean_text(space.name))
    elif not tokens and cp is not None:
        tokens = list(cp.spaces)  # a resume may leave the spaces out: the checkpoint has them
    if not tokens and not job.all_spaces:
        raise UsageError(
            "no spaces: give SPACE_TOKEN arguments, --tokens-file FILE or --all-spaces"
        )
    return list(dict.fromkeys(tokens)), names


async def _tick(display: Display) -> None:
    while True:
        await asyncio.sleep(display.interval)
        display.refresh()


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
    tokens, names = await _resolve_tokens(client, job, cp, ui)
    progress: dict[str, SpaceProgress] = cp.spaces if cp is not None else {}
    for token in tokens:
        progress.setdefault(token, SpaceProgress())
    skipped = {t for t in tokens if progress[t].done}
    todo = [t for t in tokens if t not in skipped]
    prior = {t: progress[t].tasks for t in tokens}
    tracker = Tracker(tokens, prior, skipped, retries, names)
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
    display = FirstAnswerDisplay(
        ui.display(tracker, title, output_on_terminal=job.output is None and sys.stdout.isatty()),
        tracker,
        ui,
        f"waiting for the first answers from {client.base_url}",
    )
    ticker: asyncio.Task[None] | None = None

    async def wind_down(*, failing: bool) -> None:
        if ticker is not None:
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
        # Started inside: whatever fails from here on stops the display (it hides the
        # cursor) and closes the output and the harvest.
        display.start()
        ticker = asyncio.create_task(_tick(display))
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
                    # Exactly what the API sent: the sink adds space_token and converts. A
                    # task never read is its JSON text as sent (written as is to JSON
                    # Lines, never parsed); a decoded one (--decode) is encoded back.
                    sink.write(token, tasks_as_sent(tasks))
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


def _commas(*items: str) -> list[str]:
    """The items that are not empty, as parts of one line (see ``fit``), comma-separated."""
    kept = [item for item in items if item]
    return [f"{item}," for item in kept[:-1]] + kept[-1:]


def print_summary(ui: Ui, outcome: Outcome) -> None:
    """The figures of the run, then the failed spaces (these even with ``--quiet``).

    Args:
        ui: where they go.
        outcome: how the harvest ended.
    """
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
        # Each value in parts that fit() keeps whole: on a narrow terminal a row goes on
        # under its value, never cut inside a figure.
        rows: list[tuple[str, list[str]]] = []
        n_failed = f"{len(failed):,} failed" if failed else ""
        spaces = _commas(f"{done:,} of {len(t.tokens):,} done", n_failed)
        if t.skipped:
            spaces.append(f"({len(t.skipped):,} done by an earlier run)")
        rows.append(("spaces", spaces))
        total = sum(t.written.values())
        tasks = [f"{t.new_tasks:,} written"]
        if total != t.new_tasks:
            tasks.append(f"({total:,} with earlier runs)")
        rows.append(("tasks", tasks))
        reread = f"{rereads:,} re-read" if rereads else ""
        rows.append(("pages", _commas(f"{pages:,} fetched", reread)))
        rows.append(("duplicates dropped", [f"{dropped:,}"]))
        rows.append(("drift events", [f"{drift:,}"]))
        rows.append(("retries", [f"{t.retries:,}"]))
        rows.append(("elapsed", [fmt_seconds(t.elapsed), f"({t.average_rate:,.0f} tasks/s)"]))
        ui.console.print()
        indent = " " * 20
        for key, value in rows:
            head = Text(f"{key:<19}", style="bold")  # and the separator: values at column 20
            ui.console.print(fit([head, *value], ui.console.width, indent=indent), highlight=False)
    if failed:
        ui.console.print(Text(f"failed spaces ({len(failed)}):", style="bold red"), highlight=False)
        for token, reason in failed:
            # Word by word: a long reason goes on under itself instead of past the width.
            who = t.label_with_token(token)
            line = fit([f"  {who}:", *reason.split()], ui.console.width, indent="    ")
            ui.console.print(line, highlight=False)
    if outcome.hint:
        hint = fit(["hint:", *outcome.hint.split()], ui.console.width, indent="  ")
        ui.console.print(hint, highlight=False)


def print_final_line(ui: Ui, outcome: Outcome, *, resumable: bool = True) -> None:
    """The last line: what was written where, or how to resume.

    Args:
        ui: where it goes.
        outcome: how the harvest ended.
        resumable: whether to suggest ``--checkpoint`` after an interruption.
    """
    t = outcome.tracker
    done = len(t.done_tokens())
    where = outcome.output_name
    if outcome.interrupted:
        if outcome.checkpoint is not None:
            ui.info(
                f"interrupted after {t.new_tasks:,} tasks; {where} and the checkpoint "
                f"{outcome.checkpoint} are consistent: run the same command to resume",
                wrap=True,
            )
        else:
            hint = " (use --checkpoint FILE to be able to resume)" if resumable else ""
            ui.info(f"interrupted: {where} holds {t.new_tasks:,} tasks, not all{hint}", wrap=True)
        return
    if outcome.nothing_to_do and not t.tokens:
        ui.info("nothing to do: the organization has no spaces")
        return
    if outcome.nothing_to_do:
        ui.info(
            f"nothing to do: every space is already in {where} according to "
            f"{outcome.checkpoint} (delete it to harvest again)",
            wrap=True,
        )
        return
    of = f"{done:,} of {len(t.tokens):,}" if done != len(t.tokens) else f"{done:,}"
    figures = f"in {fmt_seconds(t.elapsed)} ({t.average_rate:,.0f} tasks/s)"
    parts: list[str | Text] = [
        Text.assemble(
            "wrote ",
            (f"{t.new_tasks:,} tasks", "bold green" if not outcome.failed else "bold yellow"),
            f" from {of} spaces",
        ),
        f"to {where}",
        figures + (";" if outcome.failed else ""),
    ]
    if outcome.failed:
        parts.append(Text(f"{len(outcome.failed)} failed (exit {EXIT_PARTIAL})", style="bold red"))
    # Broken between its parts where the terminal would cut it: the path and each figure
    # stay whole.
    ui.info(fit(parts, ui.console.width, indent="  "))


def outcome_code(outcome: Outcome, interrupt: Interrupt) -> int:
    """The exit code of a harvest that ran to its end (or was interrupted).

    Args:
        outcome: how it ended.
        interrupt: which signal stopped it, if any.
    """
    if outcome.interrupted:
        return 128 + (interrupt.signum or signal.SIGINT)
    return EXIT_PARTIAL if outcome.failed else EXIT_OK
