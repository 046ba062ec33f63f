"""``spacetasks sync``: each run appends only what changed, with synced_at and change."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest
from test_cli import cli_env, read_lines, run  # tests/ is on sys.path

from spacetasks_async.testing import UnpodServer


@pytest.mark.served(seed=41, spaces=[700, 300])
async def test_sync_runs_append_the_new_tasks_once_each(
    tmp_path: Path, server: UnpodServer
) -> None:
    env = cli_env(server)
    out, state = tmp_path / "changes.jsonl", tmp_path / "sync.json"
    args = ["sync", *server.space_tokens, "--state", state, "-o", out]
    first = await run(*args, env=env)
    assert first.code == 0, first.stderr
    lines = read_lines(out.read_bytes())
    assert len(lines) == 1000 and {line["change"] for line in lines} == {"new"}
    assert all("synced_at" in line and "space_token" in line for line in lines)
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600

    created = server.create_tasks(server.space_tokens[0], 25)
    second = await run(*args, env=env)
    assert second.code == 0, second.stderr
    after = read_lines(out.read_bytes())
    added = after[1000:]
    assert len(added) == 25 and {line["change"] for line in added} == {"new"}
    assert {line["task_id"] for line in added} == set(created)
    assert len({line["synced_at"] for line in after}) == 2  # one per run


@pytest.mark.served(seed=42, spaces=[400])
async def test_sync_into_parquet_writes_one_part_per_run(
    tmp_path: Path, server: UnpodServer
) -> None:
    env = cli_env(server)
    out, state = tmp_path / "lake.parquet", tmp_path / "sync.json"
    args = ["sync", *server.space_tokens, "--state", state, "-o", out]
    assert (await run(*args, env=env)).code == 0
    server.create_tasks(server.space_tokens[0], 7)
    assert (await run(*args, env=env)).code == 0
    frame = pd.read_parquet(out)
    assert len(list(out.glob("*.parquet"))) == 2
    assert len(frame) == 407 and frame["task_id"].is_unique
    assert sorted(frame["change"].unique()) == ["new"]
