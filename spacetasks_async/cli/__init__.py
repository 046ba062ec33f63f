"""The ``spacetasks`` command line: harvest, spaces, serve, demo.

``python -m spacetasks_async demo`` shows the whole thing on a local server in a few seconds;
``spacetasks harvest --help`` documents the real job. Every error is one line on stderr and an
exit code (listed in the ``--help`` epilog); the API key is never printed.

Layout: :mod:`._parser` (options), :mod:`._commands` (``harvest``, ``spaces``, ``serve``:
options to a run), :mod:`._job` (the resumable harvest: lock, checkpoint, first contact,
sink, pages, summary), :mod:`._display` (progress before the first answers), :mod:`._demo`,
and :mod:`._common` (exit codes, console, errors, signals) beneath them all.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from collections.abc import Callable, Sequence

try:
    import rich  # noqa: F401  (the command's one dependency beyond the library's)
except ImportError:  # pragma: no cover - exercised by a test in a subprocess
    _MISSING = "the spacetasks command needs its extra: pip install 'spacetasks-async[cli]'"
else:
    _MISSING = ""

if not _MISSING:
    from ._common import EXIT_CODES, EXIT_INTERRUPTED, EXIT_USAGE
    from ._parser import build_parser

__all__ = ["EXIT_CODES", "build_parser", "main"]

# -- entry point -----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``spacetasks`` command; returns the exit code.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).
    """
    if _MISSING:
        print(f"spacetasks: error: {_MISSING}", file=sys.stderr)
        return 1
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # This process is the command's own: a long harvest allocates many small, short-lived
    # objects (decoded tasks), and the default collector thresholds spend about a seventh
    # of the CPU on them (the demo: 9.5 s of CPU, 8.1 s with these). The library never
    # touches the collector; the command may.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        return command(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of standard output went away (e.g. `| head`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
