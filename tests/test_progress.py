"""What the command shows while and after it harvests, at the width of a normal terminal.

The tracker is fed by hand (a stand-in for the harvest: its ``stats``, ``completed`` and
``failures``), so the figures can be as large as a long real run makes them.
"""

from __future__ import annotations

import io
import re
from types import SimpleNamespace
from typing import Any

from rich.cells import cell_len
from rich.console import Console, RenderableType

import spacetasks_async as st
from spacetasks_async._harvest import SpaceFailure
from spacetasks_async._paginate import WalkStats
from spacetasks_async._progress import LiveDisplay, RetryCount, Tracker, space_label
from spacetasks_async.cli._common import Ui
from spacetasks_async.cli._job import Outcome, print_final_line, print_summary

WIDTH = 80
TOKENS = [f"SPACE{i:019d}" for i in range(50)]
OUTPUT = "/data/exports/unpod/2026-05-09/all-spaces-tasks.parquet"
HOUR = 3725.0  # elapsed: "1 h 02 min"


def big_tracker(*, names: dict[str, str] | None = None) -> Tracker:
    """A run of 50 spaces: 5 done by an earlier run, 35 done now, 2 failed, 8 active;
    1,234,567 tasks written, 12,345 retries, 1 h 02 min."""
    retries = RetryCount()
    retries.count = 12_345
    earlier = TOKENS[:5]
    tracker = Tracker(TOKENS, {t: 24_691 for t in earlier}, set(earlier), retries, names=names)
    stats = {
        t: WalkStats(
            requests=250,
            pages_fetched=247,
            count_at_start=24_691,
            count_at_end=24_691,
            retries=1_234,
            rereads=25,
            duplicates_dropped=1_111,
            drift_events=111,
        )
        for t in TOKENS[5:]
    }
    error = st.ServerError(
        "HTTP 503 Service Unavailable after 8 attempts: the server is overloaded, "
        "try again later (space 'SPACE0000000000000000045', page 212)",
        status=503,
    )
    failures = [SpaceFailure(t, error) for t in TOKENS[45:47]]
    tracker.harvest = SimpleNamespace(  # type: ignore[assignment]
        stats=stats, completed=TOKENS[5:40], failures=failures
    )
    for token in TOKENS[5:]:
        tracker.wrote(token, 24_000)
    tracker.new_tasks = 1_234_567
    tracker.started -= HOUR
    tracker.finished = tracker.started + HOUR
    return tracker


def lines_of(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")


def assert_fits(lines: list[str]) -> None:
    too_wide = [line for line in lines if cell_len(line) > WIDTH]
    assert not too_wide, "\n".join(too_wide)


def assert_whole(lines: list[str], *figures: str) -> None:
    """Each figure is on one line: nothing was wrapped in the middle of it."""
    for figure in figures:
        assert any(figure in line for line in lines), f"{figure!r} is cut:\n" + "\n".join(lines)


def plain_console() -> Console:
    return Console(file=io.StringIO(), width=WIDTH, color_system=None, highlight=False)


def printed(console: Console) -> str:
    file: Any = console.file
    text: str = file.getvalue()
    return text


def render(renderable: RenderableType) -> list[str]:
    console = plain_console()
    console.print(renderable)
    return lines_of(printed(console))


def test_the_summary_and_the_final_line_fit_80_columns() -> None:
    console = plain_console()
    ui = Ui(console)
    hint = (
        "every space answered HTTP 404: the base URL https://unpod.ai/api/v2 carries the "
        "path '/api/v2', which may be wrong; it is the API host alone"
    )
    outcome = Outcome(big_tracker(), OUTPUT, None, hint=hint)
    print_summary(ui, outcome)
    print_final_line(ui, outcome)
    lines = lines_of(printed(console))
    assert_fits(lines)
    assert_whole(
        lines,
        "1,234,567 written",
        "11,115 fetched, 1,125 re-read",
        "12,345",
        "1 h 02 min (331 tasks/s)",
        "wrote 1,234,567 tasks from 40 of 50 spaces",
        OUTPUT,
        "2 failed (exit 5)",
        "HTTP 503 Service Unavailable",
        "https://unpod.ai/api/v2",
    )
    assert "failed spaces (2):" in lines


def test_the_live_display_fits_80_columns() -> None:
    tracker = big_tracker()
    tracker.finished = None  # still running
    display = LiveDisplay(plain_console(), tracker, f"harvesting 45 spaces into {OUTPUT}")
    lines = render(display.render())
    assert_fits(lines)
    assert_whole(lines, "1,203,455 / 1,234,550 tasks", "331 tasks/s", "12,345 retries")
    assert_whole(lines, "40/50 spaces done", "8 active", "2 failed", "1 h 02 min")
    assert any(re.search(r"ETA \d+ min \d\d s", line) for line in lines), lines
    rows = [line for line in lines if "24,000/24,691" in line]
    assert len(rows) == 8  # one line per active space, none wrapped
    assert all("1,234 retries" in row for row in rows)
    # The last failures, one line each (cut short: the summary has them whole).
    assert [line.startswith("failed ") for line in lines[-2:]] == [True, True]


# -- space names instead of tokens -----------------------------------------------------

NAMES = {t: f"Kampagne {i:02d} Süd" for i, t in enumerate(TOKENS)}
HOSTILE = "[bold]pwned[/bold] :smile:\nline two\x1b[2J\x1b]0;title\x07\r\u202e" + "A" * 500


def terminal_console() -> Console:
    """A console that believes it is a colour terminal, writing into a string."""
    return Console(
        file=io.StringIO(),
        width=WIDTH,
        force_terminal=True,
        color_system="standard",
        _environ={"TERM": "xterm-256color"},
    )


def test_space_label_is_the_name_made_safe_and_short() -> None:
    assert space_label("Sales Outreach Q1", "TOKEN") == "Sales Outreach Q1"
    assert space_label(None, "TOKEN") == "TOKEN"
    assert space_label(" \x00\x1b[31m\u200f ", "TOKEN") == "TOKEN"  # nothing visible left
    assert space_label("a\nb\tc\r\nd", "T") == "a b c d"
    assert space_label("x\x1b[2Jy\x1b]0;t\x07z\u202e!", "T") == "xyz!"
    label = space_label(HOSTILE, "T")
    assert label == "[bold]pwned[/bold] :smile: line two AAA…"
    assert cell_len(label) == 40
    wide = space_label("营销活动" * 20, "T")  # two columns a character
    assert cell_len(wide) <= 40 and wide.endswith("…")


def test_progress_rows_and_failures_show_names_instead_of_tokens() -> None:
    tracker = big_tracker(names=NAMES)
    tracker.finished = None
    lines = render(LiveDisplay(plain_console(), tracker, "harvesting").render())
    assert_fits(lines)
    text = "\n".join(lines)
    for i in [*range(40, 45), *range(47, 50)]:  # the active spaces
        assert f"Kampagne {i:02d} Süd" in text
    assert "failed Kampagne 45 Süd: HTTP 503" in text
    assert not any(token in text for token in TOKENS)

    console = plain_console()
    print_summary(Ui(console), Outcome(tracker, OUTPUT, None))
    summary = printed(console)
    # The summary's list says which space by name, and by token for a command line.
    assert f"  Kampagne 45 Süd ({TOKENS[45]}): HTTP 503" in summary
    assert_fits(lines_of(summary))


def test_a_space_without_a_name_is_shown_by_its_token() -> None:
    tracker = big_tracker(names={TOKENS[40]: "Known"})
    lines = render(LiveDisplay(plain_console(), tracker, "harvesting").render())
    text = "\n".join(lines)
    assert "Known" in text and TOKENS[41] in text and f"failed {TOKENS[45]}:" in text


def test_hostile_space_names_are_shown_as_plain_short_text() -> None:
    tracker = big_tracker(names={TOKENS[40]: HOSTILE, TOKENS[45]: "x" + HOSTILE})
    tracker.finished = None
    console = terminal_console()
    console.print(LiveDisplay(console, tracker, "harvesting").render())
    print_summary(Ui(console), Outcome(tracker, OUTPUT, None))
    out = printed(console)
    assert "[bold]pwned[/bold] :smile: line" in out  # not read as markup or emoji
    assert f"x[bold]pwned[/bold] :smile: line two AA… ({TOKENS[45]}): HTTP 503" in out
    assert "\x1b[2J" not in out and "\x1b]0;" not in out and "\u202e" not in out
    assert "\r" not in out and "A" * 41 not in out
    plain = Console(file=io.StringIO(), width=WIDTH, color_system=None)
    plain.print(LiveDisplay(plain, tracker, "harvesting").render())
    lines = lines_of(printed(plain))
    assert_fits(lines)
    [row] = [line for line in lines if "pwned" in line and "24,000/24,691" in line]
    assert row.startswith("[bold]pwned[/bold] :smile: line")  # the newline started no row


def test_spaces_of_one_name_are_told_apart() -> None:
    names = {TOKENS[40]: "Onboarding calls", TOKENS[41]: "Onboarding calls"}
    text = "\n".join(render(LiveDisplay(plain_console(), big_tracker(names=names), "").render()))
    assert "Onboarding calls (…000040)" in text and "Onboarding calls (…000041)" in text
