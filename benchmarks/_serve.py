"""The standalone local server, plus the one knob the benchmarks need that it lacks.

``python -m benchmarks._serve`` takes every option of ``python -m spacetasks_async.testing``
and ``--retry-after SECONDS`` (the ``Retry-After`` the 429 faults announce; the standalone
server always announces its default of one second), and prints the same lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

import attrs

from spacetasks_async.testing.__main__ import build_parser, config_from_args, serve


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit status."""
    parser: argparse.ArgumentParser = build_parser()
    parser.prog = "python -m benchmarks._serve"
    parser.add_argument("--retry-after", type=int, default=1, help="seconds announced by 429s")
    args = parser.parse_args(argv)
    config = attrs.evolve(config_from_args(args), retry_after=args.retry_after)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
