"""The progress display's first moments: nothing to show until the first answers."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from .._progress import Display, NullDisplay, PlainDisplay, Tracker, fmt_seconds
from ._common import PROG, Ui


class FirstAnswerDisplay:
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
