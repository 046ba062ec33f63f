"""The ``spacetasks harvest`` outputs and its guards, as a subprocess against a local server.

Formats (Parquet read back with pandas, gzip JSON Lines, standard output), kill-and-resume
through the sinks' verified resume, the run lock, checkpoints checked against the command,
existing outputs never replaced silently, file modes, and the fail-fast first contact.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import socket
import stat
import time
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from test_cli import (  # tests/ is on sys.path (pytest's default import mode)
    RUN_TIMEOUT,
    assert_exactly_the_server_tasks,
    checkpoint_of,
    cli_env,
    finish,
    killed_after_a_commit,
    pause_after,
    read_lines,
    run,
    start,
)

from spacetasks_async.testing import UnpodServer


def ids_by_space(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Task ids of each space, in the output's order."""
    out: dict[str, list[str]] = {}
    for token, task_id in zip(frame["space_token"], frame["task_id"], strict=True):
        out.setdefault(token, []).append(task_id)
    return out


def assert_every_task_once(frame: pd.DataFrame, server: UnpodServer) -> None:
    """Each space's rows are the server's tasks, each once, in the server's order."""
    assert ids_by_space(frame) == {
        token: server.expected_task_ids(token)
        for token in server.space_tokens
        if server.expected_task_ids(token)
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.served(seed=21, spaces=[0, 130, 260], latency=0.002)
async def test_parquet_output_reads_back_with_every_task_once(
    tmp_path: Path, server: UnpodServer
) -> None:
    out, ck = tmp_path / "tasks.parquet", tmp_path / "run.ckpt"
    args = ["harvest", *server.space_tokens, "-o", out, "--checkpoint", ck]
    result = await run(*args, "--page-size", "50", env=cli_env(server))
    assert result.code == 0, result.stderr
    frame = pd.read_parquet(out)
    assert_every_task_once(frame, server)
    assert str(frame["created"].dtype) == "datetime64[us, UTC]"
    assert out.is_dir() and mode(out) == 0o700
    assert all(mode(part) == 0o600 for part in out.iterdir())
    assert mode(ck) == 0o600
    assert "wrote 390 tasks from 3 spaces" in result.stderr


@pytest.mark.served(seed=22, spaces=[70])
async def test_csv_and_format_option(tmp_path: Path, server: UnpodServer) -> None:
    out = tmp_path / "tasks.data"  # no known suffix: --format decides
    result = await run(
        "harvest", *server.space_tokens, "-o", out, "--format", "csv", env=cli_env(server)
    )
    assert result.code == 0, result.stderr
    frame = pd.read_csv(out)
    assert_every_task_once(frame, server)
    unknown = await run(
        "harvest", *server.space_tokens, "-o", tmp_path / "x.data", env=cli_env(server)
    )
    assert unknown.code == 2 and "cannot tell the output format" in unknown.stderr
    assert mode(out) == 0o600


@pytest.mark.served(seed=23, spaces=[45, 20])
async def test_dash_is_standard_output_and_json_lines_only(
    tmp_path: Path, server: UnpodServer
) -> None:
    env = cli_env(server)
    result = await run("harvest", *server.space_tokens, "-o", "-", env=env)
    assert result.code == 0, result.stderr
    assert_exactly_the_server_tasks(read_lines(result.stdout), server, server.space_tokens)
    parquet = await run("harvest", *server.space_tokens, "-o", "-", "--format", "parquet", env=env)
    assert parquet.code == 2 and "standard output (-) takes JSON Lines only" in parquet.stderr
    assert not (tmp_path / "-").exists()


def read_output(path: Path) -> list[dict[str, Any]]:
    if path.name.endswith(".parquet"):
        frame = pd.read_parquet(path)
        return [
            {"space_token": s, "task_id": t}
            for s, t in zip(frame["space_token"], frame["task_id"], strict=True)
        ]
    with gzip.open(path, "rb") as handle:
        return read_lines(handle.read())


# The first space is one page: done before the kill.
@pytest.mark.served(seed=24, spaces=[40, 500, 300], latency=0.003)
@pytest.mark.parametrize("name", ["tasks.jsonl.gz", "tasks.parquet"])
async def test_killed_harvest_resumes_exactly_in_every_format(
    tmp_path: Path, name: str, server: UnpodServer
) -> None:
    out, ck = tmp_path / name, tmp_path / "run.ckpt"
    args = ["harvest", *server.space_tokens, "-o", out, "--checkpoint", ck]
    args += ["--checkpoint-interval", "0", "--page-size", "50", "--concurrency", "2"]
    env = cli_env(server)
    hook = pause_after(server, 7)
    first = server.space_tokens[0]
    await killed_after_a_commit(
        *args,
        env=env,
        server=server,
        checkpoint=ck,
        until=lambda: (checkpoint_of(ck) or {})["spaces"][first]["done"],
    )
    if out.is_file():
        # What a kill in the middle of a write leaves: half a gzip member.
        out.write_bytes(out.read_bytes() + gzip.compress(b'{"space_token":"X"}\n')[:15])
    else:
        (out / ".part-00000099-deadbeef.parquet.tmp").write_bytes(b"PAR1")
    server.remove_hook(hook)
    server.resume()
    server.reset_stats()
    result = await run(*args, env=env)
    assert result.code == 0, result.stderr
    assert "resuming from" in result.stderr
    assert server.stats.requests_by_space[first] == 0  # done: not fetched again
    rows = read_output(out)
    if out.is_file():
        assert_exactly_the_server_tasks(rows, server, server.space_tokens)
    else:
        assert_every_task_once(pd.DataFrame(rows), server)


@pytest.mark.served(seed=25, spaces=[200], latency=0.001)
async def test_a_second_run_on_the_same_files_fails_at_once(
    tmp_path: Path, server: UnpodServer
) -> None:
    out, ck = tmp_path / "tasks.jsonl", tmp_path / "run.ckpt"
    args = ["harvest", *server.space_tokens, "-o", out, "--checkpoint", ck]
    env = cli_env(server)
    server.pause()  # the first run waits at the server, holding its lock
    first = await start(*args, env=env)
    await server.wait_in_flight(1)
    started = time.monotonic()
    second = await run(*args, env=env)
    other_checkpoint = await run(*args[:-1], tmp_path / "other.ckpt", env=env)
    assert time.monotonic() - started < RUN_TIMEOUT / 3  # at once, not after the first
    server.resume()
    done = await finish(first)
    assert done.code == 0, done.stderr
    assert_exactly_the_server_tasks(read_lines(out.read_bytes()), server, server.space_tokens)
    for result in (second, other_checkpoint):
        assert result.code == 2, result.stderr
        assert "another spacetasks run" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    # Removed when the first run ended.
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".lock")]


@pytest.mark.served(seed=26, spaces=[30])
async def test_an_existing_output_is_replaced_only_with_overwrite(
    tmp_path: Path, server: UnpodServer
) -> None:
    out = tmp_path / "tasks.jsonl"
    out.write_bytes(b"precious\n")
    env = cli_env(server)
    refused = await run("harvest", *server.space_tokens, "-o", out, env=env)
    assert refused.code == 2 and "--overwrite" in refused.stderr
    assert out.read_bytes() == b"precious\n"
    # A new checkpoint pointed at an existing output is a new harvest too.
    ck = tmp_path / "new.ckpt"
    refused = await run("harvest", *server.space_tokens, "-o", out, "--checkpoint", ck, env=env)
    assert refused.code == 2 and out.read_bytes() == b"precious\n"
    replaced = await run("harvest", *server.space_tokens, "-o", out, "--overwrite", env=env)
    assert replaced.code == 0, replaced.stderr
    assert_exactly_the_server_tasks(read_lines(out.read_bytes()), server, server.space_tokens)


@pytest.mark.served(seed=27, spaces=[400], latency=0.002)
async def test_a_replaced_output_is_refused_on_resume(tmp_path: Path, server: UnpodServer) -> None:
    out, ck = tmp_path / "tasks.jsonl", tmp_path / "run.ckpt"
    args = ["harvest", *server.space_tokens, "-o", out, "--checkpoint", ck]
    args += ["--checkpoint-interval", "0", "--page-size", "50", "--concurrency", "1"]
    env = cli_env(server)
    hook = pause_after(server, 4)
    await killed_after_a_commit(*args, env=env, server=server, checkpoint=ck)
    # Something else wrote the same name meanwhile (another tool, a demo...).
    replacement = b'{"task_id":"other"}\n' * 300
    out.write_bytes(replacement)
    server.remove_hook(hook)
    server.resume()
    result = await run(*args, env=env)
    assert result.code == 2, result.stderr
    assert "changed or replaced" in result.stderr and "--overwrite" in result.stderr
    assert out.read_bytes() == replacement  # not cut


@pytest.mark.served(seed=28, spaces=[300, 300, 10])
async def test_checkpoints_are_checked_against_the_command(
    tmp_path: Path, server: UnpodServer
) -> None:
    a, b, c = server.space_tokens
    out, ck = tmp_path / "tasks.jsonl", tmp_path / "run.ckpt"
    env = cli_env(server)
    hook = pause_after(server, 3)
    await killed_after_a_commit(
        "harvest", a, b, "-o", out, "--checkpoint", ck, "--page-size", "50",
        "--checkpoint-interval", "0", "--concurrency", "1", env=env, server=server,
        checkpoint=ck,
    )  # fmt: skip
    server.remove_hook(hook)
    server.resume()
    base = ["-o", out, "--checkpoint", ck, "--page-size", "50"]
    other = await run("harvest", a, c, *base, env=env)
    fewer = await run("harvest", a, *base, env=env)
    limit = await run("harvest", a, b, *base, "--max-items", "5", env=env)
    size = out.stat().st_size
    same = await run("harvest", a, b, *base, env=env)
    assert same.code == 0, same.stderr
    assert_exactly_the_server_tasks(read_lines(out.read_bytes()), server, [a, b])
    assert other.code == 2 and f"no record of space {c}" in other.stderr
    assert fewer.code == 2 and "unfinished space" in fewer.stderr
    assert limit.code == 2 and "no --max-items" in limit.stderr
    assert out.stat().st_size > size  # the refused runs left the output alone


async def test_an_older_checkpoint_version_is_refused_clearly(tmp_path: Path) -> None:
    out, ck = tmp_path / "tasks.jsonl", tmp_path / "run.ckpt"
    out.write_bytes(b"")
    ck.write_bytes(orjson.dumps({"version": 2, "output": str(out), "output_offset": 0}))
    result = await run(
        "harvest", "X", "-o", out, "--checkpoint", ck, env=cli_env(UNPOD_API_KEY="k")
    )
    assert result.code == 2
    assert "version 2, written by an older spacetasks" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "100000"], "between 1 and 256"),
        (["--base-url", "http://198.51.100.7"], "--allow-http"),
        (["--api-key-file", "/nonexistent/key"], "cannot read --api-key-file"),
        (["-o", "x.jsonl", "--checkpoint", "x.jsonl"], "two different files"),
        (["-o", "x.jsonl.bz2"], "not supported"),
    ],
)
async def test_more_bad_arguments_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = await run("harvest", "X", *args, env=cli_env(UNPOD_API_KEY="k"))
    assert result.code == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


async def test_help_says_the_key_option_is_visible_in_ps() -> None:
    result = await run("harvest", "--help", env=cli_env())
    text = " ".join(result.stdout.decode().split())
    assert "visible to other users in `ps`" in text and "--api-key-file" in text


@pytest.mark.served(seed=29, spaces=[25])
async def test_api_key_file(tmp_path: Path, server: UnpodServer) -> None:
    key = tmp_path / "key"
    key.write_text(server.api_key + "\n")
    env = cli_env(server)
    del env["UNPOD_API_KEY"]
    result = await run("harvest", *server.space_tokens, "--api-key-file", key, env=env)
    assert result.code == 0, result.stderr
    assert len(read_lines(result.stdout)) == 25


async def test_unreachable_hosts_fail_fast_without_retries() -> None:
    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    refused = await run(
        "harvest",
        "SPACE",
        env=cli_env(UNPOD_API_KEY="k", UNPOD_BASE_URL=f"http://127.0.0.1:{port}"),
    )
    unknown = await run(
        "harvest", "SPACE", "--allow-http",
        env=cli_env(UNPOD_API_KEY="k", UNPOD_BASE_URL="http://no-such-host.invalid"),
    )  # fmt: skip
    # The default 7 retries would take tens of seconds: the first contact is not retried.
    assert time.monotonic() - started < 8
    assert refused.code == 4 and "connection refused" in refused.stderr.lower()
    assert unknown.code == 4 and "does not resolve" in unknown.stderr
    assert "warning: sending the API key in clear" in unknown.stderr


@pytest.mark.served(seed=30, spaces=[5, 5])
async def test_a_404_on_every_space_hints_at_a_path_in_the_base_url(server: UnpodServer) -> None:
    env = cli_env(server, UNPOD_BASE_URL=server.base_url + "/api/v2")
    result = await run("harvest", *server.space_tokens, env=env)
    assert result.code == 5, result.stderr
    assert "hint: every space answered HTTP 404" in result.stderr
    assert "'/api/v2'" in result.stderr


@pytest.mark.served(seed=31, spaces=[120, 80])
async def test_progress_waits_for_the_first_answers_instead_of_showing_100_percent(
    tmp_path: Path,
    server: UnpodServer,
) -> None:
    hook = pause_after(server, 1)  # the key check passes, the harvest's pages wait
    proc = await start(
        "harvest", *server.space_tokens, "-o", tmp_path / "t.jsonl",
        "--progress-every", "0.02", env=cli_env(server),
    )  # fmt: skip
    assert proc.stderr is not None
    seen: list[str] = []
    async with asyncio.timeout(RUN_TIMEOUT / 2):
        while "waiting for the first answers" not in (
            line := (await proc.stderr.readline()).decode()
        ):
            seen.append(line)
    server.remove_hook(hook)
    server.resume()
    result = await finish(proc)
    assert result.code == 0, result.stderr
    text = "".join(seen) + line + result.stderr
    assert "/~0 tasks" not in text and "0/0 tasks" not in text
    assert "wrote 200 tasks" in text


async def test_demo_never_replaces_a_file_silently(tmp_path: Path) -> None:
    out = tmp_path / "tasks.jsonl"
    out.write_bytes(b"precious\n")
    result = await run("demo", "--spaces", "1", "--tasks", "10", "-o", out, env=cli_env())
    assert result.code == 2 and "--overwrite" in result.stderr
    assert out.read_bytes() == b"precious\n"
