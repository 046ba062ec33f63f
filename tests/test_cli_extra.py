"""The library runs without the command line's extra (rich); the command says what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

BLOCK_RICH = "import sys; sys.modules['rich'] = None; "


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_RICH + code], capture_output=True, text=True, timeout=60
    )


def test_the_library_imports_and_walks_without_rich() -> None:
    result = run(
        "import asyncio, spacetasks_async as st\n"
        "from spacetasks_async.testing import UnpodServer\n"
        "async def main():\n"
        "    async with UnpodServer(spaces=[30]) as s:\n"
        "        async with st.Client(s.api_key, base_url=s.base_url) as c:\n"
        "            return len([t async for t in c.iter_tasks(s.space_tokens[0])])\n"
        "print(asyncio.run(main()))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "30"


def test_the_command_without_its_extra_says_what_to_install() -> None:
    result = run("from spacetasks_async.cli import main; sys.exit(main(['demo']))")
    assert result.returncode == 1
    assert "pip install 'spacetasks-async[cli]'" in result.stderr


def test_the_demo_writes_and_verifies_a_parquet_dataset(tmp_path: Path) -> None:
    # The README's path from install to DuckDB goes through this.
    out = tmp_path / "tasks.parquet"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacetasks_async",
            "demo",
            "--spaces",
            "3",
            "--tasks",
            "400",
            "--latency",
            "0.001",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "400 rows = the 400 tasks on the server, each exactly once" in result.stderr
    assert pq.read_table(out).num_rows == 400
