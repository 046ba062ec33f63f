"""Run the local Unpod server standalone.

``python -m spacetasks_async.testing --port 0 --seed 1 --spaces 5 --tasks-per-space 1000``
prints shell-style ``UNPOD_BASE_URL=...``, ``UNPOD_API_KEY=...``, ``UNPOD_ORG_HANDLE=...``
and ``SPACE_TOKENS=...`` lines, then serves until SIGINT (Ctrl-C) or SIGTERM, exiting 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from ._config import DriftPlan, FaultKind, FaultPlan, ServerConfig
from ._server import UnpodServer


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of the standalone server."""
    parser = argparse.ArgumentParser(
        prog="python -m spacetasks_async.testing",
        description="Serve seeded Unpod spaces on 127.0.0.1 for tests and benchmarks.",
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the server's options to ``parser`` (shared with ``spacetasks serve``)."""
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--spaces", type=int, default=5, help="number of spaces")
    parser.add_argument("--tasks-per-space", type=int, default=100)
    parser.add_argument(
        "--space-sizes",
        type=_sizes,
        default=None,
        metavar="N,N,...",
        help="task count of each space (overrides --spaces/--tasks-per-space)",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--latency-jitter", type=float, default=0.0)
    parser.add_argument("--api-key", default=None, help="default: derived from the seed")
    parser.add_argument("--org-handle", default="acme")
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        help="share of tasks requests failing, spread over every fault kind but SLOW",
    )
    parser.add_argument(
        "--max-faults-per-page",
        type=int,
        default=None,
        help="after this many faults for one page, answer it (lets retries get through)",
    )
    parser.add_argument(
        "--drift-create",
        type=int,
        default=0,
        metavar="N",
        help="tasks created in each space before each tasks request (drift)",
    )
    parser.add_argument(
        "--drift-delete",
        type=int,
        default=0,
        metavar="N",
        help="tasks deleted at random positions before each tasks request (drift)",
    )


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """A :class:`ServerConfig` from parsed arguments."""
    fault_plan = None
    if args.fault_rate > 0:
        kinds = [k for k in FaultKind if k is not FaultKind.SLOW]
        fault_plan = FaultPlan.uniform(
            args.fault_rate, kinds, seed=args.seed, max_faults_per_page=args.max_faults_per_page
        )
    drift_plan = None
    if args.drift_create > 0 or args.drift_delete > 0:
        drift_plan = DriftPlan(
            create_per_request=args.drift_create,
            delete_per_request=args.drift_delete,
            seed=args.seed,
            start_after=1,
        )
    return ServerConfig(
        seed=args.seed,
        spaces=args.space_sizes if args.space_sizes is not None else args.spaces,
        tasks_per_space=args.tasks_per_space,
        api_key=args.api_key,
        org_handle=args.org_handle,
        port=args.port,
        latency=args.latency,
        latency_jitter=args.latency_jitter,
        fault_plan=fault_plan,
        drift_plan=drift_plan,
    )


async def serve(config: ServerConfig) -> None:
    """Serve ``config`` until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with UnpodServer(config) as server:
            # Shell syntax, so that `eval "$(... | head -4)"` works; printing the key is the
            # point of this runner (it is a throwaway key of a local test server).
            print(f"UNPOD_BASE_URL={server.base_url}")
            print(f"UNPOD_API_KEY={server.api_key}")
            print(f"UNPOD_ORG_HANDLE={server.org_handle}")
            print(f"SPACE_TOKENS={','.join(server.space_tokens)}")
            print("Serving; press Ctrl-C to stop.", flush=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run(config: ServerConfig) -> int:
    """Serve ``config`` until Ctrl-C or SIGTERM; returns the exit status (0)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))
    print("Stopped.", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run(config_from_args(args))


if __name__ == "__main__":
    sys.exit(main())
