"""The ``spacetasks`` command, run as a subprocess against a local server in the test's loop.

The commands run as ``python -m spacetasks_async`` (the installed package) in a child
process, with pipes (not a terminal) for their output; the server runs in this test's event
loop, so the test can watch and steer it (pause it, read its truth) while the child runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest

from spacetasks_async.testing import FaultKind, TaskRequest, UnpodServer

# A run that hangs is a failure, not a stuck test suite.
RUN_TIMEOUT = 30.0


@attrs.frozen
class Result:
    code: int
    stdout: bytes
    stderr: str


def cli_env(server: UnpodServer | None = None, **extra: str) -> dict[str, str]:
    """The child's environment: no UNPOD_* or colour settings inherited from the caller."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("UNPOD_") and k not in {"FORCE_COLOR", "NO_COLOR", "COLUMNS"}
    }
    if server is not None:
        env |= {
            "UNPOD_BASE_URL": server.base_url,
            "UNPOD_API_KEY": server.api_key,
            "UNPOD_ORG_HANDLE": server.org_handle,
        }
    return env | extra


async def start(*args: str | Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "spacetasks_async",
        *map(str, args),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def finish(proc: asyncio.subprocess.Process) -> Result:
    async with asyncio.timeout(RUN_TIMEOUT):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return Result(proc.returncode, out, err.decode())


async def run(*args: str | Path, env: dict[str, str]) -> Result:
    return await finish(await start(*args, env=env))


def read_lines(data: bytes) -> list[dict[str, Any]]:
    assert data == b"" or data.endswith(b"\n"), "the output ends with a half line"
    return [orjson.loads(line) for line in data.splitlines()]


def assert_exactly_the_server_tasks(
    lines: list[dict[str, Any]], server: UnpodServer, tokens: list[str]
) -> None:
    """Each space's lines, minus ``space_token``, are the server's tasks, in its order."""
    by_space: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_space.setdefault(line.pop("space_token"), []).append(line)
    for token in tokens:
        assert by_space.pop(token, []) == server.expected_tasks(token), token
    assert not by_space, f"tasks of unexpected spaces: {list(by_space)}"


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll a file written by the child, within a bound: another process cannot set an
    event of ours, and the file is the very thing under test."""
    async with asyncio.timeout(RUN_TIMEOUT / 2):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def checkpoint_of(path: Path) -> dict[str, Any] | None:
    try:
        obj: dict[str, Any] = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    return obj


def committed(path: Path) -> int:
    """Tasks in the output as of the checkpoint at ``path`` (0 while there is none)."""
    cp = checkpoint_of(path)
    if cp is None or cp.get("output_state") is None:
        return 0
    rows: int = cp["output_state"]["rows"]
    return rows


def pause_after(server: UnpodServer, n: int) -> Callable[[TaskRequest], Awaitable[None]]:
    """A hook that lets ``n`` tasks requests through, then holds every later one."""
    seen = 0

    async def hook(request: TaskRequest) -> None:
        nonlocal seen
        seen += 1
        if seen == n:
            server.pause()  # requests after this one wait at the gate

    server.add_hook(hook)
    return hook


async def killed_after_a_commit(
    *args: str | Path,
    env: dict[str, str],
    server: UnpodServer,
    checkpoint: Path,
    until: Callable[[], bool] | None = None,
) -> None:
    """Run the command until its checkpoint has a commit (and ``until`` holds, if given)
    and a request of it waits on the paused server, then SIGKILL it: no cleanup at all."""
    proc = await start(*args, env=env)
    await wait_until(lambda: committed(checkpoint) > 0 and (until is None or until()))
    await server.wait_in_flight(1)
    proc.kill()
    await finish(proc)


@pytest.mark.served(seed=11, spaces=[0, 137, 420], latency=0.02)
async def test_full_harvest_writes_every_task_unchanged(
    tmp_path: Path, server: UnpodServer
) -> None:
    out = tmp_path / "tasks.jsonl"
    result = await run(
        "harvest",
        *server.space_tokens,
        "-o",
        out,
        "--page-size",
        "50",
        "--progress-every",
        "0.01",
        env=cli_env(server),
    )
    assert result.code == 0, result.stderr
    assert_exactly_the_server_tasks(read_lines(out.read_bytes()), server, server.space_tokens)
    # Not a terminal: plain progress lines and summary, without any control character.
    assert "\x1b" not in result.stderr
    assert "spaces done" in result.stderr  # at least one plain progress line
    assert "wrote 557 tasks from 3 spaces" in result.stderr
    assert server.api_key not in result.stderr


@pytest.mark.served(seed=12, spaces=[30, 75])
async def test_harvest_to_standard_output_and_all_spaces(
    tmp_path: Path, server: UnpodServer
) -> None:
    result = await run("harvest", "--all-spaces", "--max-items", "60", env=cli_env(server))
    assert result.code == 0, result.stderr
    by_space: dict[str, list[dict[str, Any]]] = {}
    for line in read_lines(result.stdout):
        by_space.setdefault(line.pop("space_token"), []).append(line)
    for token in server.space_tokens:  # --max-items: the newest 60 of each space
        assert by_space[token] == server.expected_tasks(token)[:60]


# The first space is one page: done before the kill.
@pytest.mark.served(seed=13, spaces=[40, 500, 300, 350], latency=0.003)
async def test_killed_harvest_resumes_with_every_task_exactly_once(
    tmp_path: Path, server: UnpodServer
) -> None:
    out, ck = tmp_path / "tasks.jsonl", tmp_path / "run.ckpt"
    args = [
        "harvest",
        *server.space_tokens,
        "-o",
        out,
        "--checkpoint",
        ck,
        "--checkpoint-interval",
        "0",
        "--page-size",
        "50",
        "--concurrency",
        "2",
    ]
    env = cli_env(server)
    hook = pause_after(server, 6)
    proc = await start(*args, env=env)

    def progressed() -> bool:
        cp = checkpoint_of(ck)
        first = server.space_tokens[0]
        return cp is not None and committed(ck) > 0 and cp["spaces"][first]["done"]

    await wait_until(progressed)
    proc.kill()  # SIGKILL: no cleanup at all
    await finish(proc)
    cp = checkpoint_of(ck)
    assert cp is not None
    done_before = [t for t, s in cp["spaces"].items() if s["done"]]
    assert server.space_tokens[0] in done_before
    assert len(done_before) < len(server.space_tokens)
    # What a kill in the middle of a write leaves: half a line past the checkpoint.
    half = b'{"space_token":"' + server.space_tokens[1].encode() + b'","task_id":"T'
    out.write_bytes(out.read_bytes() + half)

    server.remove_hook(hook)
    server.resume()
    server.reset_stats()
    result = await run(*args, env=env)
    assert result.code == 0, result.stderr
    assert "resuming from" in result.stderr
    assert_exactly_the_server_tasks(read_lines(out.read_bytes()), server, server.space_tokens)
    for token in done_before:  # spaces done are not fetched again
        assert server.stats.requests_by_space[token] == 0


@pytest.mark.served(seed=15, spaces=[900], latency=0.002)
async def test_resume_after_the_space_changed_between_runs_loses_and_repeats_nothing(
    tmp_path: Path,
    server: UnpodServer,
) -> None:
    token = server.space_tokens[0]
    out, ck = tmp_path / "tasks.jsonl", tmp_path / "run.ckpt"
    args = ["harvest", token, "-o", out, "--checkpoint", ck, "--page-size", "50"]
    args += ["--checkpoint-interval", "0", "--concurrency", "1"]
    env = cli_env(server)
    hook = pause_after(server, 6)
    await killed_after_a_commit(*args, env=env, server=server, checkpoint=ck)
    written = {line["task_id"] for line in read_lines(out.read_bytes())}
    before = server.expected_task_ids(token)
    # Between the runs: new tasks push written ones later, deletions of written tasks
    # pull unwritten ones back onto pages already read.
    server.create_tasks(token, 20)
    gone = server.delete_tasks(token, [t for t in before if t in written][:15])
    assert gone == 15
    server.remove_hook(hook)
    server.resume()
    result = await run(*args, env=env)
    assert result.code == 0, result.stderr
    ids = [line["task_id"] for line in read_lines(out.read_bytes())]
    survivors = {t for t in before if t in set(server.expected_task_ids(token))}
    assert len(ids) == len(set(ids)), "a task was written twice"
    missing = survivors - set(ids)
    assert not missing, f"{len(missing)} tasks that existed throughout were never written"


@pytest.mark.served(seed=14, spaces=[600, 450], latency=0.002)
async def test_ctrl_c_exits_130_promptly_and_the_same_command_resumes(
    tmp_path: Path, server: UnpodServer
) -> None:
    out, ck = tmp_path / "tasks.jsonl", tmp_path / "run.ckpt"
    args = ["harvest", *server.space_tokens, "-o", out, "--checkpoint", ck]
    args += ["--page-size", "50", "--checkpoint-interval", "0"]
    env = cli_env(server)
    hook = pause_after(server, 5)
    proc = await start(*args, env=env)
    await wait_until(lambda: committed(ck) > 0)
    await server.wait_in_flight(1)  # the child waits on the paused server
    proc.send_signal(signal.SIGINT)
    result = await finish(proc)  # promptly: the held requests are abandoned
    assert result.code == 130, result.stderr
    assert "run the same command to resume" in result.stderr
    assert "Traceback" not in result.stderr
    cp = checkpoint_of(ck)
    assert cp is not None and cp["output_state"]["size"] == out.stat().st_size

    server.remove_hook(hook)
    server.resume()
    result = await run(*args, env=env)
    assert result.code == 0, result.stderr
    assert_exactly_the_server_tasks(read_lines(out.read_bytes()), server, server.space_tokens)
    # Run again: nothing left to do, nothing fetched.
    server.reset_stats()
    again = await run(*args, env=env)
    assert again.code == 0 and "nothing to do" in again.stderr
    assert server.stats.requests == 0


@pytest.mark.served(seed=15, spaces=[120])
async def test_resume_with_another_page_size_is_refused(
    tmp_path: Path, server: UnpodServer
) -> None:
    out, ck = tmp_path / "tasks.jsonl", tmp_path / "run.ckpt"
    args = ["harvest", *server.space_tokens, "-o", out, "--checkpoint", ck]
    first = await run(*args, "--page-size", "50", env=cli_env(server))
    assert first.code == 0, first.stderr
    size = out.stat().st_size
    result = await run(*args, "--page-size", "40", env=cli_env(server))
    assert result.code == 2
    assert "--page-size 50" in result.stderr
    assert out.stat().st_size == size  # the output was left alone


@pytest.mark.served(seed=16, spaces=[80, 130])
async def test_some_spaces_failing_is_a_partial_harvest(
    tmp_path: Path, server: UnpodServer
) -> None:
    out = tmp_path / "tasks.jsonl"
    bad, denied = "NOSUCHSPACE0000000000000", server.no_access_tokens[0]
    tokens = [server.space_tokens[0], bad, denied, server.space_tokens[1]]
    result = await run("harvest", *tokens, "-o", out, env=cli_env(server))
    assert result.code == 5, result.stderr
    assert_exactly_the_server_tasks(read_lines(out.read_bytes()), server, server.space_tokens)
    assert "failed spaces (2)" in result.stderr
    assert f"{bad}: " in result.stderr and "Invalid Space Token" in result.stderr
    assert f"{denied}: " in result.stderr and "Access" in result.stderr


@pytest.mark.served(seed=17, spaces=[10, 10, 10])
async def test_bad_key_is_one_line_exit_3_without_the_key(
    tmp_path: Path, server: UnpodServer
) -> None:
    secret = "upk_wrong_8d1f0c1e5a7b"
    env = cli_env(server, UNPOD_API_KEY=secret)
    result = await run("harvest", *server.space_tokens, "-o", tmp_path / "t.jsonl", env=env)
    listing = await run("spaces", env=env)
    for res in (result, listing):
        assert res.code == 3
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "API key" in res.stderr
        assert secret not in res.stderr and secret.encode() not in res.stdout


async def test_unreachable_server_is_exit_4() -> None:
    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = cli_env(UNPOD_API_KEY="k", UNPOD_BASE_URL=f"http://127.0.0.1:{port}")
    result = await run("harvest", "SOMESPACE", "--max-retries", "0", env=env)
    assert result.code == 4
    assert result.stderr.startswith("spacetasks: error: cannot reach http://127.0.0.1:")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["harvest", "--page-size", "0", "X"], "--page-size"),
        (["harvest"], "no spaces"),
        (["harvest", "X", "--checkpoint", "c.json"], "--checkpoint needs --output"),
        (["harvest", "X", "--all-spaces"], "org-handle"),
        (["harvest", "X"], "no API key"),
    ],
)
async def test_bad_arguments_exit_2(args: list[str], message: str) -> None:
    env = cli_env() if message == "no API key" else cli_env(UNPOD_API_KEY="k")
    result = await run(*args, env=env)
    assert result.code == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


async def test_help_documents_exit_codes() -> None:
    result = await run("harvest", "--help", env=cli_env())
    assert result.code == 0
    assert b"exit codes:" in result.stdout and b"partial" in result.stdout


@pytest.mark.served(seed=18, spaces=[5, 6, 7])
async def test_spaces_json_lists_the_organization(server: UnpodServer) -> None:
    result = await run("spaces", "--json", env=cli_env(server))
    assert result.code == 0, result.stderr
    assert read_lines(result.stdout) == [info.as_json() for info in server.spaces]


async def test_serve_prints_only_shell_assignments_and_stops_on_ctrl_c() -> None:
    proc = await start(
        "serve", "--port", "0", "--spaces", "2", "--tasks-per-space", "3", env=cli_env()
    )
    assert proc.stdout is not None
    settings: dict[str, str] = {}
    async with asyncio.timeout(RUN_TIMEOUT):
        while len(settings) < 4:
            key, _, value = (await proc.stdout.readline()).decode().strip().partition("=")
            settings[key] = value
    assert settings["UNPOD_BASE_URL"].startswith("http://127.0.0.1:")
    assert len(settings["SPACE_TOKENS"].split(",")) == 2
    env = cli_env(**{k: v for k, v in settings.items() if k.startswith("UNPOD_")})
    harvested = await run("harvest", *settings["SPACE_TOKENS"].split(","), env=env)
    assert harvested.code == 0 and len(read_lines(harvested.stdout)) == 6
    proc.send_signal(signal.SIGINT)
    result = await finish(proc)
    assert result.code == 0
    # Nothing but the assignments on stdout: `eval "$(spacetasks serve)"` works.
    assert result.stdout == b""
    assert "Serving" in result.stderr and "Stopped." in result.stderr


async def test_demo_harvests_and_verifies_a_small_organization(tmp_path: Path) -> None:
    out = tmp_path / "demo.jsonl"
    args = ["demo", "--spaces", "5", "--tasks", "2000", "--latency", "0.005", "-o", out]
    result = await run(*args, env=cli_env())
    assert result.code == 0, result.stderr
    assert len(out.read_bytes().splitlines()) == 2000
    assert "verified:" in result.stderr
    assert "wrote 2,000 tasks from 5 spaces" in result.stderr
    assert "\x1b" not in result.stderr


# A space name a server may send: markup, escape sequences, a newline, the API key, 500
# characters.
ECHOED_KEY = "upk_test_a-key-a-server-may-echo-0123456789"
HOSTILE_NAME = f"[bold]pwned[/bold]\x1b[2J\nkey {ECHOED_KEY} " + "A" * 500


@pytest.mark.served(
    seed=19,
    spaces=[30, 40, 50],
    api_key=ECHOED_KEY,
    space_names=["Sales Outreach Q1", HOSTILE_NAME],
)
async def test_all_spaces_names_failed_spaces_by_their_names_shown_safely(
    tmp_path: Path, server: UnpodServer
) -> None:
    named, evil = server.space_tokens[:2]
    for token in (named, evil):
        server.fail_next(FaultKind.HTTP_500_HTML, count=100, token=token)
    args = ["harvest", "--all-spaces", "--max-retries", "0", "-o", tmp_path / "t.jsonl"]
    result = await run(*args, env=cli_env(server))
    assert result.code == 5, result.stderr
    assert f"  Sales Outreach Q1 ({named}): HTTP 500" in result.stderr
    # Cleaned, the key scrubbed, cut at 40 columns; printed as text, not markup.
    assert f"  [bold]pwned[/bold] key *** {'A' * 12}… ({evil}): HTTP 500" in result.stderr
    assert ECHOED_KEY not in result.stderr and "\x1b" not in result.stderr
    assert "A" * 41 not in result.stderr
