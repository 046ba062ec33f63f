"""The parser of the ``spacetasks`` command and its subcommands."""

from __future__ import annotations

import argparse
import math
import textwrap
from collections.abc import Callable
from pathlib import Path

from .._client import MAX_PAGE_SIZE
from .._formats import OutputFormat
from .._validate import MAX_IN_FLIGHT
from ._commands import cmd_harvest, cmd_serve, cmd_spaces
from ._common import (
    DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_CONCURRENCY,
    DEFAULT_PAGE_SIZE,
    EXIT_CODES,
    PARQUET_CHECKPOINT_INTERVAL,
    PROG,
)
from ._demo import cmd_demo
from ._sync import cmd_sync

# -- argument types --------------------------------------------------------------------


def _int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def _float_above(low: float, *, inclusive: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            word = "at least" if inclusive else "above"
            raise argparse.ArgumentTypeError(f"must be {word} {low}, got {text}")
        return value

    return parse


# -- the parser ------------------------------------------------------------------------


def _para(text: str) -> str:
    # The help keeps line breaks as written (for the epilogs), so paragraphs are wrapped here.
    return textwrap.fill(text, width=88)


def _epilog(examples: str) -> str:
    codes = "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())
    return f"{examples}\nexit codes:\n{codes}\n"


def _add_connection(parser: argparse.ArgumentParser, *, org_help: str) -> None:
    group = parser.add_argument_group("connection")
    keys = group.add_mutually_exclusive_group()
    keys.add_argument(
        "--api-key",
        metavar="KEY",
        help="Unpod API key; never printed, but visible to other users in `ps` while the "
        "command runs: prefer $UNPOD_API_KEY (the default) or --api-key-file",
    )
    keys.add_argument(
        "--api-key-file",
        type=Path,
        metavar="FILE",
        help="read the API key from FILE (its first line; '-': stdin)",
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help="API host (default: $UNPOD_BASE_URL, else https://unpod.ai)",
    )
    group.add_argument(
        "--allow-http",
        action="store_true",
        help="allow a plain http:// base URL to another machine (the key goes in clear)",
    )
    group.add_argument("--org-handle", metavar="HANDLE", help=org_help)
    group.add_argument(
        "--timeout",
        type=_float_above(0),
        default=60.0,
        metavar="SECONDS",
        help="limit for one request attempt (default: 60)",
    )
    group.add_argument(
        "--max-retries",
        type=_int_at_least(0),
        default=7,
        metavar="N",
        help="retries of a failed request (429, 5xx, network) before giving up (default: 7)",
    )
    group.add_argument(
        "--rate",
        type=_float_above(0),
        default=None,
        metavar="PER_SECOND",
        help="at most this many requests per second (default: no limit)",
    )


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log retries, drift and failed spaces as they happen (-vv: every request)",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress and no summary; errors and failed spaces only",
    )
    parser.add_argument(
        "--progress-every",
        type=_float_above(0),
        default=2.0,
        metavar="SECONDS",
        help="when stderr is not a terminal: a progress line this often (default: 2)",
    )


def _add_harvest_tuning(parser: argparse.ArgumentParser, *, concurrency: int) -> None:
    group = parser.add_argument_group("harvest")
    group.add_argument(
        "--page-size",
        type=_int_at_least(1, MAX_PAGE_SIZE),
        default=DEFAULT_PAGE_SIZE,
        metavar="N",
        help=f"tasks per request (default: {DEFAULT_PAGE_SIZE}); a resume must use the same",
    )
    group.add_argument(
        "--concurrency",
        # Each request in flight may hold a socket: the library's ceiling keeps a run
        # within a 1024-file-descriptor process.
        type=_int_at_least(1, MAX_IN_FLIGHT),
        default=concurrency,
        metavar="N",
        help=f"requests in flight at once, shared by all spaces, 1 to {MAX_IN_FLIGHT} "
        f"(default: {concurrency})",
    )
    group.add_argument(
        "--decode",
        action="store_true",
        help="decode every task into the typed models before writing it, so that a task "
        "with a value of the wrong type fails its space; by default only each task's "
        "task_id is checked and the task is written as the API sent it (faster)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``spacetasks`` command and its subcommands."""
    from .. import __version__
    from ..testing.__main__ import add_arguments as add_server_arguments

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Harvest every task of Unpod spaces, fast and losslessly, as JSON Lines, CSV "
        "or Parquet.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_epilog(
            "start here:\n"
            "  python -m spacetasks_async demo        # the whole thing on a local server\n"
            "  spacetasks harvest --help\n"
        ),
    )
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    harvest = sub.add_parser(
        "harvest",
        help="write every task of some spaces as JSON Lines, CSV or Parquet",
        description=_para(
            "Write every task of the given spaces as JSON Lines (one task per line, with "
            "every key the API sent, unchanged, plus 'space_token'), CSV or a Parquet "
            "dataset (one documented schema: typed columns, nothing lost). Spaces are walked "
            "concurrently; within a space, tasks keep the server's order (newest first)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_epilog(
            "examples:\n"
            "  spacetasks harvest TOKEN_A TOKEN_B -o tasks.jsonl\n"
            "  spacetasks harvest --all-spaces --org-handle acme -o all.jsonl "
            "--checkpoint all.ckpt\n"
            "  spacetasks harvest --tokens-file tokens.txt | jq .task_id\n"
            "  spacetasks harvest TOKEN_A -o tasks.parquet --checkpoint tasks.ckpt\n"
            "\nresume: with --checkpoint FILE, progress is recorded as the harvest goes; after "
            "a crash,\na kill or Ctrl-C, the same command continues where it stopped "
            "(the output ends with\nevery task exactly once; spaces already done are not "
            "fetched again). The output must be the one the checkpoint was written with: a\n"
            "replaced or changed output is refused, never cut. A run locks its output and\n"
            "checkpoint: a second run on either fails at once (exit 2).\n"
        ),
    )
    harvest.add_argument(
        "tokens", nargs="*", metavar="SPACE_TOKEN", help="tokens of the spaces to harvest"
    )
    src = harvest.add_argument_group("which spaces")
    src.add_argument(
        "--tokens-file",
        type=Path,
        metavar="FILE",
        help="read space tokens from FILE, one a line ('#' comments; '-': stdin)",
    )
    src.add_argument(
        "--all-spaces",
        action="store_true",
        help="every space of the organization (needs --org-handle)",
    )
    out = harvest.add_argument_group("output")
    out.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="PATH",
        help="write to PATH: x.jsonl, x.csv (either optionally .gz or .zst) or x.parquet (a "
        "dataset directory); '-': standard output, JSON Lines (the default)",
    )
    out.add_argument(
        "--format",
        choices=[f.value for f in OutputFormat],
        default=None,
        help="the output format, whatever the name of --output says (default: from it)",
    )
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output (without it, a new harvest refuses to)",
    )
    out.add_argument(
        "--checkpoint",
        type=Path,
        metavar="FILE",
        help="record progress in FILE and resume from it (needs --output)",
    )
    out.add_argument(
        "--checkpoint-interval",
        type=_float_above(0, inclusive=True),
        default=None,
        metavar="SECONDS",
        help="commit the output and rewrite the checkpoint at most this often (and, but for "
        "Parquet, when a space ends); 0: after every page "
        f"(default: {DEFAULT_CHECKPOINT_INTERVAL:g}; "
        f"Parquet: {PARQUET_CHECKPOINT_INTERVAL:g}, as each commit writes a part file)",
    )
    _add_harvest_tuning(harvest, concurrency=DEFAULT_CONCURRENCY)
    harvest.add_argument(
        "--max-items",
        type=_int_at_least(1),
        default=None,
        metavar="N",
        help="at most N tasks per space (the newest)",
    )
    _add_connection(
        harvest, org_help="organization handle, for --all-spaces (default: $UNPOD_ORG_HANDLE)"
    )
    _add_verbosity(harvest)
    harvest.set_defaults(handler=cmd_harvest)

    spaces = sub.add_parser(
        "spaces",
        help="list the organization's spaces",
        description="List the spaces of the organization (a table, or JSON Lines with --json).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_epilog("example:\n  spacetasks spaces --org-handle acme --json | jq -r .token\n"),
    )
    spaces.add_argument(
        "--json", action="store_true", help="one JSON object per line, as the API sent it"
    )
    _add_connection(spaces, org_help="organization handle (default: $UNPOD_ORG_HANDLE)")
    spaces.set_defaults(handler=cmd_spaces, verbose=0, quiet=False)

    sync = sub.add_parser(
        "sync",
        help="write only the tasks created or changed since the last run",
        description=_para(
            "One run of an incremental sync: read each space from its newest task down to "
            "the newest tasks the last run saw (every task created since comes out once), "
            "re-read the tasks whose status was not final, and write the new and the changed "
            "ones to OUTPUT with 'synced_at' and 'change' ('new' or 'changed'); consumers "
            "keep the latest per task_id. The first run writes every task. --state FILE "
            "records where each space stands and where OUTPUT was committed: the next run "
            "appends (Parquet: one new part file per run)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_epilog(
            "examples:\n"
            "  spacetasks sync TOKEN_A TOKEN_B --state sync.json -o changes.jsonl\n"
            "  spacetasks sync --all-spaces --org-handle acme --state sync.json -o lake.parquet\n"
        ),
    )
    sync.add_argument("tokens", nargs="*", metavar="SPACE_TOKEN", help="the spaces to sync")
    sync.add_argument("--tokens-file", type=Path, metavar="FILE", help="read tokens from FILE")
    sync.add_argument("--all-spaces", action="store_true", help="every space of the organization")
    sync.add_argument("--state", type=Path, required=True, metavar="FILE", help="the sync state")
    sync.add_argument(
        "-o", "--output", type=Path, required=True, metavar="PATH", help="x.jsonl, x.csv, x.parquet"
    )
    sync.add_argument("--format", choices=[f.value for f in OutputFormat], default=None)
    sync.add_argument(
        "--overwrite", action="store_true", help="on a first run, replace an existing output"
    )
    sync.add_argument(
        "--refresh-limit",
        type=_int_at_least(0),
        default=1000,
        metavar="N",
        help="per space, at most N tasks not final are remembered and re-read (default: 1000)",
    )
    _add_harvest_tuning(sync, concurrency=DEFAULT_CONCURRENCY)
    _add_connection(sync, org_help="organization handle, for --all-spaces")
    _add_verbosity(sync)
    sync.set_defaults(handler=cmd_sync)

    serve = sub.add_parser(
        "serve",
        help="run a local Unpod-compatible server (for trying things out)",
        description=_para(
            "Serve seeded, realistic Unpod spaces on 127.0.0.1 until Ctrl-C. Prints the base "
            "URL, API key, organization handle and space tokens as shell assignments."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "example:\n"
            "  spacetasks serve --port 8765 --spaces 3 --tasks-per-space 500 --latency 0.02\n"
        ),
    )
    add_server_arguments(serve)
    serve.set_defaults(handler=cmd_serve)

    demo = sub.add_parser(
        "demo",
        help="harvest a realistic local organization, start to finish, in seconds",
        description=_para(
            "Start a local Unpod-compatible server in this process (50 spaces, 100,000 "
            "tasks, network-like latency, a few failing requests), harvest all of it with "
            "the progress display, check the output against the server, and summarise."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_epilog("example:\n  python -m spacetasks_async demo --spaces 5 --tasks 2000\n"),
    )
    demo.add_argument("--spaces", type=_int_at_least(1), default=50, help="default: 50")
    demo.add_argument(
        "--tasks", type=_int_at_least(0), default=100_000, help="in total (default: 100,000)"
    )
    demo.add_argument(
        "--latency",
        type=_float_above(0, inclusive=True),
        default=0.02,
        metavar="SECONDS",
        help="per request, plus up to as much jitter (default: 0.02)",
    )
    demo.add_argument(
        "--fault-rate",
        type=_float_above(0, inclusive=True),
        default=0.02,
        metavar="SHARE",
        help="share of requests failing with 5xx, 429, cut bodies... (default: 0.02)",
    )
    demo.add_argument("--seed", type=int, default=1, help="of the generated data (default: 1)")
    demo.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("tasks.jsonl"),
        metavar="FILE",
        help="JSON Lines, plain (default: tasks.jsonl)",
    )
    demo.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    _add_harvest_tuning(demo, concurrency=DEFAULT_CONCURRENCY)
    _add_verbosity(demo)
    demo.set_defaults(handler=cmd_demo)
    return parser
