"""On a terminal, the command leaves the cursor shown, however it leaves.

A live display or a spinner hides the cursor while it draws; a command that leaves without
stopping it (a forced exit by a second signal, an interrupt at the wrong moment) would
leave the user's shell without a cursor. The harvest runs in this process (its console a
string that believes it is a terminal, the signals sent to this process) and, once, as the
real command on a pseudo-terminal.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_cli import RUN_TIMEOUT, cli_env, pause_after  # tests/ is on sys.path

from spacetasks_async import Client, RetryPolicy
from spacetasks_async._formats import Compression, OutputFormat
from spacetasks_async._progress import LiveDisplay, RetryCount
from spacetasks_async.cli._common import CommandConsole, Interrupt, Ui, run_command
from spacetasks_async.cli._job import HarvestJob, outcome_code, run_harvest
from spacetasks_async.testing import UnpodServer

HIDE, SHOW = "\x1b[?25l", "\x1b[?25h"


def assert_cursor_shown(output: str) -> None:
    """The display hid the cursor, and the last word on it was: show it."""
    assert HIDE in output, "the display never hid the cursor: not a terminal?"
    assert output.rfind(SHOW) > output.rfind(HIDE), "the cursor was left hidden"


def terminal_ui() -> Ui:
    console = CommandConsole(
        file=io.StringIO(), width=80, force_terminal=True, _environ={"TERM": "xterm-256color"}
    )
    return Ui(console)


def printed(ui: Ui) -> str:
    file: Any = ui.console.file
    text: str = file.getvalue()
    return text


def harvest_until_live(
    ui: Ui,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    then: Callable[[], None],
) -> int:
    """Run a harvest under ``run_command`` on a server that stops answering after a few
    pages; once the live display is up, call ``then`` (from a task of the loop)."""

    async def command(interrupt: Interrupt) -> int:
        live = asyncio.Event()
        start = LiveDisplay.start

        def started(display: LiveDisplay) -> None:
            start(display)
            live.set()

        monkeypatch.setattr(LiveDisplay, "start", started)

        async def when_live() -> None:
            await live.wait()
            then()

        async with UnpodServer(seed=61, spaces=[500, 500]) as server:
            pause_after(server, 4)  # the key check and three pages: the totals are known
            job = HarvestJob(
                tokens=tuple(server.space_tokens),
                all_spaces=False,
                output=tmp_path / "tasks.jsonl",
                format=OutputFormat.JSONL,
                compression=Compression.NONE,
                overwrite=False,
                checkpoint=None,
                checkpoint_interval=1.0,
                page_size=50,
                concurrency=2,
                max_items=None,
                where="into tasks.jsonl",
            )
            client = Client(server.api_key, base_url=server.base_url, retry=RetryPolicy.never())
            trigger = asyncio.create_task(when_live())
            try:
                async with client:
                    outcome = await run_harvest(client, job, ui, interrupt, RetryCount())
            finally:
                trigger.cancel()
        return outcome_code(outcome, interrupt)

    return run_command(command, ui.console)


def test_a_burst_of_ctrl_c_leaves_at_once_with_the_cursor_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ui = terminal_ui()
    exits: list[tuple[int, str]] = []

    def forced_exit(code: int) -> None:  # what the terminal shows as the process dies
        exits.append((code, printed(ui)))

    monkeypatch.setattr(os, "_exit", forced_exit)

    def triple_ctrl_c() -> None:
        # Three SIGINTs before the loop runs again: the first asks for a graceful stop, the
        # next ones find it asked and leave at once, before the harvest's own cleanup.
        for _ in range(3):
            os.kill(os.getpid(), signal.SIGINT)

    code = harvest_until_live(ui, tmp_path, monkeypatch, triple_ctrl_c)
    assert exits, "the second Ctrl-C did not force the exit"
    forced_code, at_exit = exits[0]
    assert forced_code == 128 + signal.SIGINT
    assert_cursor_shown(at_exit)
    assert code == 128 + signal.SIGINT  # (the stand-in for os._exit returned)
    assert_cursor_shown(printed(ui))


def test_a_keyboard_interrupt_mid_harvest_leaves_the_cursor_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ui = terminal_ui()

    def interrupt_the_loop() -> None:
        # What Ctrl-C raises where no handler of ours is installed: out of the loop itself.
        def raise_keyboard_interrupt() -> None:
            raise KeyboardInterrupt

        asyncio.get_running_loop().call_soon(raise_keyboard_interrupt)

    code = harvest_until_live(ui, tmp_path, monkeypatch, interrupt_the_loop)
    assert code == 130
    assert_cursor_shown(printed(ui))


def test_leaving_with_a_live_display_still_shown_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # However the command ends (here: it forgets its display), run_command stops what is
    # still shown and gives the cursor back.
    ui = terminal_ui()

    async def forgetful(interrupt: Interrupt) -> int:
        ui.console.status("working").start()
        return 0

    assert run_command(forgetful, ui.console) == 0
    assert_cursor_shown(printed(ui))


# -- the real command on a pseudo-terminal -------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="no pseudo-terminals here")
@pytest.mark.served(seed=62, spaces=[500, 500])
async def test_signals_in_a_burst_leave_a_real_terminal_with_its_cursor_shown(
    tmp_path: Path, server: UnpodServer
) -> None:
    fcntl = pytest.importorskip("fcntl")
    termios = pytest.importorskip("termios")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    seen = bytearray()
    changed = asyncio.Event()
    closed = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_output() -> None:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer of the terminal is gone
            data = b""
        if not data:
            loop.remove_reader(master)
            closed.set()
        seen.extend(data)
        changed.set()

    async def wait_for(text: bytes) -> None:
        async with asyncio.timeout(RUN_TIMEOUT / 2):
            while text not in seen:
                changed.clear()
                await changed.wait()

    pause_after(server, 4)  # the key check and three pages: the totals are known
    proc = None
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "spacetasks_async", "harvest", *server.space_tokens,
            "-o", tmp_path / "tasks.jsonl", "--page-size", "50",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=slave, env=cli_env(server, TERM="xterm-256color"),
        )  # fmt: skip
        os.close(slave)
        slave = -1
        loop.add_reader(master, on_output)
        await wait_for(b"spaces done")  # the live display is up
        # Stopped, the process gets both signals before it runs again: a Ctrl-C and a
        # SIGTERM reach its event loop together, like a fast double Ctrl-C.
        proc.send_signal(signal.SIGSTOP)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGCONT)
        async with asyncio.timeout(RUN_TIMEOUT):
            code = await proc.wait()
            await closed.wait()
    finally:
        if proc is not None and proc.returncode is None:  # the test failed: no stray child
            proc.kill()
            await proc.wait()
        loop.remove_reader(master)
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert code in (128 + signal.SIGINT, 128 + signal.SIGTERM)
    output = seen.decode(errors="replace")
    assert "interrupted" not in output  # the forced exit, not the graceful stop
    assert_cursor_shown(output)
