"""The command line writes what the API sent; ``--decode`` checks every field first.

Served by the independent model server (tests/model_server.py), whose tasks are whatever
the test puts there, including values of the wrong type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from model_server import KEY, ModelSpace, serve, task
from test_cli import cli_env, read_lines, run


def _space() -> tuple[ModelSpace, dict[str, Any]]:
    tasks = [task(n, f"2026-01-{n:02d}T00:00:00") for n in range(30, 0, -1)]
    # Unknown keys, explicit nulls, non-ASCII and a float kept as sent, and one task whose
    # `created` is a number: the models refuse it, the JSON Lines path writes it as sent.
    tasks[3] |= {"brand_new_key": {"nested": [1, 2.50, None]}, "assignee": None}
    tasks[4] |= {"input": {"name": "José 🙏"}}
    bad = tasks[17] | {"created": 1767225600}
    tasks[17] = bad
    return ModelSpace(tasks), bad


async def _harvest(tmp_path: Path, *extra: str) -> tuple[int, str, list[dict[str, Any]], list]:
    space, _ = _space()
    runner, base = await serve(space)
    try:
        out = tmp_path / "out.jsonl"
        env = cli_env(UNPOD_API_KEY=KEY, UNPOD_BASE_URL=base)
        result = await run("harvest", "SPACE", "-o", out, "--page-size", "7", *extra, env=env)
    finally:
        await runner.cleanup()
    lines = read_lines(out.read_bytes()) if out.exists() else []
    return result.code, result.stderr, lines, space.tasks


async def test_jsonl_is_what_the_api_sent_with_the_space_token_even_a_malformed_task(
    tmp_path: Path,
) -> None:
    code, stderr, lines, sent = await _harvest(tmp_path)
    assert code == 0, stderr
    assert lines == [{"space_token": "SPACE", **t} for t in sent]
    # Byte for byte what orjson makes of what was sent (2.50 stays a float, nulls stay).
    assert (tmp_path / "out.jsonl").read_bytes() == b"".join(
        orjson.dumps({"space_token": "SPACE", **t}, option=orjson.OPT_APPEND_NEWLINE) for t in sent
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_typed_outputs_keep_a_malformed_value_as_json_text(tmp_path: Path, fmt: str) -> None:
    # CSV and Parquet put a value that does not fit its column in other_fields: nothing lost.
    space, bad = _space()
    runner, base = await serve(space)
    try:
        out = tmp_path / f"out.{fmt}"
        env = cli_env(UNPOD_API_KEY=KEY, UNPOD_BASE_URL=base)
        result = await run("harvest", "SPACE", "-o", out, "--page-size", "7", env=env)
    finally:
        await runner.cleanup()
    assert result.code == 0, result.stderr
    if fmt == "csv":
        import csv

        with out.open(newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        import pyarrow.dataset as ds  # type: ignore[import-untyped]

        rows = ds.dataset(out, format="parquet").to_table().to_pylist()
    assert len(rows) == 30
    (row,) = [r for r in rows if r["task_id"] == bad["task_id"]]
    assert row["created"] in (None, "")
    assert orjson.loads(row["other_fields"])["created"] == bad["created"]


async def test_decode_refuses_the_malformed_task_and_the_space_fails(tmp_path: Path) -> None:
    code, stderr, lines, sent = await _harvest(tmp_path, "--decode")
    assert code == 5, stderr  # partial: the space failed
    assert "$.created" in stderr and sent[17]["task_id"] in stderr
    # What came before the bad page was written, exactly as sent.
    assert lines == [{"space_token": "SPACE", **t} for t in sent[: len(lines)]]
    assert len(lines) < 17
