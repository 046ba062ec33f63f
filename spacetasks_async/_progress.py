"""Progress of a harvest as the command line shows it: live on a terminal, plain lines else.

The harvest loop updates a :class:`Tracker` (tasks written per space, retries, failures) and
one display redraws from it on a timer in the same event loop, so no thread reads state that
the loop is changing. Three displays share one interface: :class:`LiveDisplay` (rich, for a
terminal), :class:`PlainDisplay` (a line to stderr every few seconds, no control characters,
for logs and pipes) and :class:`NullDisplay` (``--quiet``).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from ._harvest import Harvest
    from ._retry import RetryEvent

__all__ = [
    "Display",
    "LiveDisplay",
    "NullDisplay",
    "PlainDisplay",
    "RetryCount",
    "Tracker",
    "failure_reason",
    "fit",
    "fmt_seconds",
]

#: Active spaces shown one per row on a terminal; more would scroll a normal window.
MAX_SPACE_ROWS = 8
#: Seconds of history behind the tasks-per-second figure: long enough to smooth the bursts
#: of whole pages, short enough to follow a slowdown.
RATE_WINDOW = 3.0


def _plural(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def fmt_seconds(seconds: float) -> str:
    """``12.3 s``, ``4 min 05 s``, ``1 h 02 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fit(parts: Iterable[str | Text], width: int, *, sep: str = " ", indent: str = "") -> Text:
    """``parts`` joined by ``sep``, a new line started between two parts instead of past
    ``width`` columns (continued after ``indent``).

    A part is never cut, so a figure such as ``1 h 02 min`` or a path stays whole on one
    line (a terminal or rich would break a long line anywhere, even inside a figure). Only
    a part wider than the whole line is left to wrap.

    Args:
        parts: the pieces, in order (a :class:`~rich.text.Text` keeps its styles).
        width: the columns available, e.g. ``console.width``.
        sep: what goes between two parts on the same line.
        indent: what starts every line after the first.
    """
    out = Text()
    column = 0
    for part in parts:
        piece = part if isinstance(part, Text) else Text(part)
        if column and column + len(sep) + piece.cell_len > width:
            out.append("\n" + indent)
            column = len(indent)
        elif column:
            out.append(sep)
            column += len(sep)
        out.append_text(piece)
        column += piece.cell_len
    return out


class RetryCount:
    """The client's ``on_retry``: counts every retry (spaces list included)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, event: RetryEvent) -> None:
        """One more retry."""
        self.count += 1


class Tracker:
    """What the harvest did so far, as the displays and the summary need it."""

    def __init__(
        self,
        tokens: list[str],
        prior: dict[str, int],
        skipped: set[str],
        retries: RetryCount | None = None,
    ) -> None:
        self.tokens = tokens
        """Every space of the run, skipped ones included, in order."""
        self.skipped = skipped
        """Spaces already done before this run (resumed from a checkpoint)."""
        self.written: dict[str, int] = dict(prior)
        """Tasks of each space in the output (earlier runs included)."""
        self.new_tasks = 0
        """Tasks written by this run."""
        self.pages = 0
        self._retries = retries if retries is not None else RetryCount()
        self.harvest: Harvest | None = None
        self.started = time.monotonic()
        self.finished: float | None = None
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    # -- updates from the harvest loop -------------------------------------------------

    def wrote(self, token: str, n: int) -> None:
        """``n`` tasks of ``token`` were written."""
        self.written[token] = self.written.get(token, 0) + n
        self.new_tasks += n
        self.pages += 1

    @property
    def retries(self) -> int:
        """Requests retried so far."""
        return self._retries.count

    def finish(self) -> None:
        """The harvest ended (for the elapsed time)."""
        if self.finished is None:
            self.finished = time.monotonic()

    # -- derived figures -----------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        """Seconds since the start (frozen once finished)."""
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started

    def sample_rate(self) -> float:
        """Tasks per second over the last few seconds (call once per redraw)."""
        now = time.monotonic()
        self._samples.append((now, self.new_tasks))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW:
            self._samples.popleft()
        t0, n0 = self._samples[0]
        if now - t0 < 0.2:
            return self.new_tasks / max(now - self.started, 1e-9)
        return (self.new_tasks - n0) / (now - t0)

    @property
    def average_rate(self) -> float:
        """Tasks written by this run per second of it."""
        return self.new_tasks / max(self.elapsed, 1e-9)

    def count(self, token: str) -> int | None:
        """The server's latest ``count`` for ``token`` (None: not asked yet)."""
        harvest = self.harvest
        stats = harvest.stats.get(token) if harvest is not None else None
        if stats is not None:
            # The latest answer's count: drift during the walk moves it.
            return stats.count_at_end if stats.count_at_end is not None else stats.count_at_start
        if token in self.skipped:
            return self.written.get(token, 0)
        return None

    def done_tokens(self) -> set[str]:
        """Spaces finished: in earlier runs or in this one."""
        done = set(self.skipped)
        if self.harvest is not None:
            done.update(self.harvest.completed)
        return done

    def active_tokens(self) -> list[str]:
        """Spaces being walked now, in the order they started."""
        harvest = self.harvest
        if harvest is None:
            return []
        finished = set(harvest.completed) | {f.space_token for f in harvest.failures}
        return [t for t in harvest.stats if t not in finished]

    def totals(self) -> tuple[int, int, bool]:
        """(tasks written, tasks expected, whether the expectation is an estimate).

        Spaces not started yet have no ``count``; they are estimated at the mean size of
        the spaces that have one, and the total is marked as an estimate meanwhile.
        """
        done = sum(self.written.values())
        known: list[int] = []
        unknown = 0
        for token in self.tokens:
            count = self.count(token)
            if count is None:
                unknown += 1
            else:
                # Never below what was written: count can lag behind drift.
                known.append(max(count, self.written.get(token, 0)))
        total = sum(known)
        if unknown:
            mean = total / len(known) if known else 0
            total += round(mean * unknown)
        return done, max(total, done), unknown > 0

    def failures(self) -> list[tuple[str, str]]:
        """(space token, reason) of every failed space."""
        if self.harvest is None:
            return []
        return [(f.space_token, failure_reason(f.error)) for f in self.harvest.failures]


def failure_reason(error: BaseException) -> str:
    """A short, one-line reason for a failed space (no request path: the token says it)."""
    message = getattr(error, "message", None) or str(error)
    return f"{message} ({type(error).__name__})".replace("\n", " ")


class Display(Protocol):
    """What the harvest loop needs from a progress display."""

    def start(self) -> None:
        """Show the display (before the first page)."""

    def refresh(self) -> None:
        """Redraw from the tracker (called on a timer)."""

    def stop(self) -> None:
        """Remove the live parts; after this the console is free for the summary."""

    @property
    def interval(self) -> float:
        """Seconds between two refreshes."""


class NullDisplay:
    """``--quiet``, or output on the terminal: show nothing while harvesting."""

    interval = 3600.0

    def start(self) -> None:
        """Nothing to show."""

    def refresh(self) -> None:
        """Nothing to show."""

    def stop(self) -> None:
        """Nothing to show."""


class PlainDisplay:
    """One plain line to stderr every few seconds: for logs, CI and pipes."""

    def __init__(self, console: Console, tracker: Tracker, interval: float = 2.0) -> None:
        self.console = console
        self.tracker = tracker
        self.interval = interval

    def start(self) -> None:
        """Nothing until the first interval: short runs print only their summary."""

    def refresh(self) -> None:
        """Print one progress line."""
        t = self.tracker
        done, total, estimate = t.totals()
        pct = 100 * done / total if total else 100.0
        approx = "~" if estimate else ""
        spaces_done = len(t.done_tokens())
        line = (
            f"spacetasks: {done:,}/{approx}{total:,} tasks ({pct:.0f}%), "
            f"{spaces_done}/{len(t.tokens)} spaces done, {t.sample_rate():,.0f} tasks/s, "
            f"{_plural(t.retries, 'retry', 'retries')}, {len(t.failures())} failed, "
            f"{fmt_seconds(t.elapsed)}"
        )
        # A plain write: the console has no terminal, but markup in a token must not be
        # interpreted either.
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        """Nothing to remove."""


class LiveDisplay:
    """The terminal display: overall bar and figures, then one row per active space."""

    interval = 0.125

    def __init__(self, console: Console, tracker: Tracker, title: str) -> None:
        self.console = console
        self.tracker = tracker
        self.title = title
        self._rate = 0.0
        self._last_rate_at = 0.0
        self._live = Live(
            console=console,
            auto_refresh=False,  # redrawn from the event loop, never from a thread
            transient=True,  # the summary replaces it
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def start(self) -> None:
        """Start drawing."""
        self._live.start()
        self.refresh()

    def stop(self) -> None:
        """Erase the live part."""
        self._live.stop()

    def refresh(self) -> None:
        """Redraw."""
        self._live.update(self.render(), refresh=True)

    def render(self) -> RenderableType:
        """What the next refresh draws: each line within the console's width.

        The title, the overall bar and its figures, the run's figures (broken between two
        figures when the width runs out, never inside one), one row per active space, and
        the last failures, one line each (the summary lists them whole).
        """
        t = self.tracker
        now = time.monotonic()
        if now - self._last_rate_at >= 0.5:  # a figure that changes 8 times a second is noise
            self._rate, self._last_rate_at = t.sample_rate(), now
        done, total, estimate = t.totals()
        columns = self.console.width
        width = max(20, min(60, columns - 60))

        head = Text.assemble((self.title, "bold"))
        overall = Table.grid(padding=(0, 1))
        overall.add_column(no_wrap=True)
        overall.add_column(no_wrap=True)
        pct = 100 * done / total if total else 100.0
        figures = Text.assemble(
            (f"{pct:3.0f}%", "bold"),
            f"  {done:,} / {'~' if estimate else ''}{total:,} tasks",
        )
        overall.add_row(ProgressBar(total=max(total, 1), completed=done, width=width), figures)

        failed = t.failures()
        n_done = len(t.done_tokens())
        active = t.active_tokens()
        pieces: list[str | Text] = [
            Text(f"{self._rate:,.0f} tasks/s", "cyan"),
            f"{n_done:,}/{len(t.tokens):,} spaces done",
            f"{len(active):,} active",
            Text(_plural(t.retries, "retry", "retries"), "yellow" if t.retries else ""),
            Text(f"{len(failed):,} failed", "bold red" if failed else ""),
            fmt_seconds(t.elapsed),
        ]
        if self._rate > 0 and total > done:
            pieces.append(f"ETA {fmt_seconds((total - done) / self._rate)}")
        stats = fit(pieces, columns, sep=" · ")

        rows = Table.grid(padding=(0, 2))
        rows.add_column(no_wrap=True, style="dim", overflow="ellipsis")
        rows.add_column(no_wrap=True)
        rows.add_column(no_wrap=True, justify="right")
        rows.add_column(no_wrap=True, justify="right")
        harvest = t.harvest
        for token in active[:MAX_SPACE_ROWS]:
            written = t.written.get(token, 0)
            count = t.count(token)
            space_total = max(count or 0, written)
            space_pct = f"{100 * written / space_total:3.0f}%" if space_total else "  …"
            stats_of = harvest.stats.get(token) if harvest is not None else None
            retries = stats_of.retries if stats_of is not None else 0
            rows.add_row(
                token,
                ProgressBar(total=max(space_total, 1), completed=written, width=width // 2),
                f"{written:,}/{space_total:,} {space_pct}",
                Text(_plural(retries, "retry", "retries"), style="yellow") if retries else "",
            )
        parts: list[RenderableType] = [head, overall, stats]
        if active:
            parts.append(Text(""))
            parts.append(rows)
            if len(active) > MAX_SPACE_ROWS:
                parts.append(Text(f"… and {len(active) - MAX_SPACE_ROWS} more active", "dim"))
        for token, reason in failed[-3:]:
            parts.append(
                Text.assemble(
                    ("failed ", "bold red"),
                    (token, "dim"),
                    f": {reason}",
                    no_wrap=True,
                    overflow="ellipsis",
                )
            )
        return Group(*parts)
