"""Progress of a harvest as the command line shows it: live on a terminal, plain lines else.

The harvest loop updates a :class:`Tracker` (tasks written per space, retries, failures) and
one display redraws from it on a timer in the same event loop, so no thread reads state that
the loop is changing. Three displays share one interface: :class:`LiveDisplay` (rich, for a
terminal), :class:`PlainDisplay` (a line to stderr every few seconds, no control characters,
for logs and pipes) and :class:`NullDisplay` (``--quiet``).
"""

from __future__ import annotations

import collections
import re
import time
import unicodedata
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from rich.cells import cell_len, set_cell_size
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
    "clean_text",
    "failure_reason",
    "fit",
    "fmt_seconds",
    "space_label",
]

#: Active spaces shown one per row on a terminal; more would scroll a normal window.
MAX_SPACE_ROWS = 8
#: Columns a space's name may take (a longer one ends in "…"): a row keeps room for its
#: bar and figures on an 80-column terminal.
MAX_NAME_CELLS = 40
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


# Terminal escape sequences: CSI (``ESC [ ... final``), OSC (``ESC ] ... BEL`` or ``ESC \``)
# and the two-character ones. Removed whole, so no stray parameters are left behind.
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")


def clean_text(text: str) -> str:
    """``text`` from a server as one line of plain characters.

    Escape sequences are removed, line breaks and other white space become one space, and
    every other control or format character (bidi overrides included) is dropped: a name
    cannot clear the screen, move the cursor, retitle the window or reorder a line. Rich
    markup is left as text; print the result as a :class:`~rich.text.Text`, never as markup.

    Args:
        text: e.g. a space's name, as the server sent it.
    """
    text = _ESCAPES.sub("", text)
    kept = (
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    return " ".join("".join(kept).split())


def space_label(name: str | None, token: str, limit: int = MAX_NAME_CELLS) -> str:
    """How a space is shown: its name, cleaned (:func:`clean_text`) and at most ``limit``
    columns (cut with "…"), or its token when it has no name (or nothing visible of one).

    Args:
        name: the space's name from the server, or ``None`` (e.g. a token given on the
            command line).
        token: the space's token.
        limit: the most columns the label may take (wide characters count two).
    """
    label = clean_text(name or "")
    if not label:
        return token
    if cell_len(label) > limit:
        label = set_cell_size(label, limit - 1).rstrip() + "…"
    return label


def _labels(names: Mapping[str, str]) -> dict[str, str]:
    """The displays' label of each named space (:func:`space_label`)."""
    labels = {token: space_label(name, token) for token, name in names.items()}
    seen = collections.Counter(labels.values())
    for token, label in labels.items():
        if seen[label] > 1:
            # Two spaces of one name: the end of the token tells them apart.
            short = space_label(names[token], token, MAX_NAME_CELLS - 10)
            labels[token] = f"{short} (…{token[-6:]})"
    return labels


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
        names: Mapping[str, str] | None = None,
    ) -> None:
        """Start tracking a run.

        Args:
            tokens: every space of the run, skipped ones included, in order.
            prior: tasks of each space already in the output (earlier runs).
            skipped: spaces done before this run.
            retries: the client's ``on_retry`` counter.
            names: the spaces' names where known (the spaces list), as the server sent
                them; shown cleaned and cut short (:func:`space_label`), the token else.
        """
        self.tokens = tokens
        """Every space of the run, skipped ones included, in order."""
        self._names = {t: names[t] for t in tokens if names and names.get(t)}
        self._labels = _labels(self._names)
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

    def label(self, token: str) -> str:
        """How the displays name ``token``: its name, made safe and short, or the token."""
        return self._labels.get(token, token)

    def label_with_token(self, token: str) -> str:
        """``name (token)`` for a named space, the token alone else: where the user may want
        to type the token (the summary's failed spaces)."""
        label = space_label(self._names.get(token), token)
        return label if label == token else f"{label} ({token})"

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

        harvest = t.harvest
        cells: list[tuple[str, int, int, str, str]] = []
        for token in active[:MAX_SPACE_ROWS]:
            written = t.written.get(token, 0)
            count = t.count(token)
            space_total = max(count or 0, written)
            space_pct = f"{100 * written / space_total:3.0f}%" if space_total else "  …"
            stats_of = harvest.stats.get(token) if harvest is not None else None
            retries = stats_of.retries if stats_of is not None else 0
            cells.append(
                (
                    t.label(token),
                    space_total,
                    written,
                    f"{written:,}/{space_total:,} {space_pct}",
                    _plural(retries, "retry", "retries") if retries else "",
                )
            )
        # The figures keep their width; the name gets what is left of the line (cut "…").
        bar = width // 2
        figures_width = max((cell_len(c[3]) for c in cells), default=0)
        retries_width = max((cell_len(c[4]) for c in cells), default=0)
        name_width = max(8, columns - bar - figures_width - retries_width - 3 * 2)
        rows = Table.grid(padding=(0, 2))
        rows.add_column(no_wrap=True, style="dim", overflow="ellipsis", max_width=name_width)
        rows.add_column(no_wrap=True)
        rows.add_column(no_wrap=True, justify="right")
        rows.add_column(no_wrap=True, justify="right")
        for label, space_total, written, figures_of, retries_of in cells:
            rows.add_row(
                Text(label),  # never markup: names come from the server
                ProgressBar(total=max(space_total, 1), completed=written, width=bar),
                figures_of,
                Text(retries_of, style="yellow"),
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
                    (t.label(token), "dim"),
                    f": {reason}",
                    no_wrap=True,
                    overflow="ellipsis",
                )
            )
        return Group(*parts)
