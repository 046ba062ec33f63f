"""The library runs without the command line's extra (rich); the command says what to install."""

from __future__ import annotations

import subprocess
import sys

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
