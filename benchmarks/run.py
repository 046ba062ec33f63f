"""Run every benchmark against local servers and write ``RESULTS.md`` and the chart.

``python -m benchmarks.run`` (or ``nox -s bench``) takes a few minutes on two cores;
``python -m benchmarks.run --quick`` is a much smaller smoke run (well under a minute) that
writes into a temporary directory unless ``--output`` says otherwise.

Each server runs in a process of its own (``python -m benchmarks._serve``, the package's
standalone server), so that client and server do not share one event loop or one core; the
memory probe runs in a third process, so that only the client's memory is counted. Every
figure compared is measured in the same run on the same server; the repeated short runs
report their best time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import attrs
import httpx
import msgspec
import orjson

from spacetasks_async import RetryPolicy

from . import _cli, _decode
from ._clients import (
    harvest_spacetasks,
    sequential_aiohttp,
    sequential_httpx,
    stream_spacetasks,
    walk_spacetasks,
    windowed_aiohttp,
)

HERE = Path(__file__).resolve().parent
# Other work on the machine competes with client and server for the cores: shown in the report.
LOAD_AT_START = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
ROOT = HERE.parent
T = TypeVar("T")


# --- settings -------------------------------------------------------------------------------


@attrs.frozen
class Settings:
    """Sizes and repetitions of one run (full or quick)."""

    label: str
    tasks: int  # scenario 1 and 5: one space
    page_size: int
    latencies: tuple[float, ...]
    windows: tuple[int | None, ...]  # None: the default window
    spaces: int  # scenario 2
    tasks_per_space: int
    harvest_latency: float
    concurrency: int
    decode_pages: tuple[int, ...]  # page sizes for scenario 3
    decode_tasks: int
    decode_repeats: int
    memory_sizes: tuple[int, ...]
    memory_page_size: int
    fault_rate: float
    fault_latency: float
    repeats: int  # concurrent walks: best of
    cpu_repeats: int  # CPU per page against the bare loop: least of
    sequential_repeats: int  # sequential loops at latency 0: best of (1 otherwise)
    cli_spaces: int  # scenario 6: the command line against a bare loop writing JSON Lines
    cli_tasks_per_space: int
    cli_latencies: tuple[float, ...]
    cli_repeats: int


FULL = Settings(
    label="full",
    tasks=20_000,
    page_size=100,
    latencies=(0.0, 0.02, 0.05),
    windows=(None, 16),
    spaces=100,
    tasks_per_space=500,
    harvest_latency=0.05,
    concurrency=32,
    decode_pages=(50, 100, 2000),
    decode_tasks=20_000,
    decode_repeats=9,
    memory_sizes=(10_000, 100_000, 1_000_000),
    memory_page_size=100,
    fault_rate=0.1,
    fault_latency=0.02,
    repeats=3,
    cpu_repeats=5,
    sequential_repeats=2,
    cli_spaces=20,
    cli_tasks_per_space=5_000,
    cli_latencies=(0.0, 0.02),
    cli_repeats=3,
)

QUICK = Settings(
    label="quick",
    tasks=2_000,
    page_size=100,
    latencies=(0.0, 0.02),
    windows=(None, 16),
    spaces=10,
    tasks_per_space=200,
    harvest_latency=0.02,
    concurrency=32,
    decode_pages=(100,),
    decode_tasks=4_000,
    decode_repeats=3,
    memory_sizes=(10_000, 30_000),
    memory_page_size=100,
    fault_rate=0.1,
    fault_latency=0.02,
    repeats=1,
    cpu_repeats=2,
    sequential_repeats=1,
    cli_spaces=4,
    cli_tasks_per_space=1_000,
    cli_latencies=(0.0,),
    cli_repeats=1,
)

DEFAULT_WINDOW = 8  # Client.iter_tasks' default
BARE_WALK = "bare concurrent loop, window 16 (orjson, no checks, order or proof)"

# Small waits, so that the run under faults measures the retries and not the backoff policy.
FAULT_RETRY = RetryPolicy(
    max_attempts=8,
    initial_wait=0.02,
    max_wait=0.2,
    max_retry_after=5.0,
    # The 206 "Tasks Fetch Failed" fault is retried once by default (it can also mean a
    # broken task, which no retry fixes); a random 1% of answers can hit one page twice.
    backend_failure_retries=4,
)


# --- servers in their own processes ----------------------------------------------------------


@attrs.frozen
class Server:
    """A running local server: where it is, its key, its space tokens."""

    base_url: str
    api_key: str
    tokens: tuple[str, ...]
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (Linux; 0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:  # pragma: no cover - not Linux
            return 0.0
        # utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def server(*args: str) -> Iterator[Server]:
    """Start ``python -m benchmarks._serve ARGS`` and stop it (SIGTERM) on exit."""
    command = [sys.executable, "-m", "benchmarks._serve", "--port", "0", "--seed", "1", *args]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1
        )
        try:
            assert proc.stdout is not None
            found: dict[str, str] = {}
            while "SPACE_TOKENS" not in found:
                line = proc.stdout.readline()
                if not line:
                    log.seek(0)
                    raise RuntimeError(f"the server did not start: {log.read().decode()[-2000:]}")
                name, sep, value = line.strip().partition("=")
                if sep:
                    found[name] = value
            yield Server(
                found["UNPOD_BASE_URL"],
                found["UNPOD_API_KEY"],
                tuple(found["SPACE_TOKENS"].split(",")),
                proc.pid,
            )
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- timing ---------------------------------------------------------------------------------


@attrs.frozen
class Timing:
    """The best of a few runs: wall time, and the CPU time client and server spent in it."""

    seconds: float
    client_cpu: float = 0.0
    server_cpu: float = 0.0


def timed(
    make: Callable[[], Awaitable[T]], repeats: int, srv: Server | None = None
) -> tuple[Timing, T]:
    """The best of ``repeats`` runs of ``asyncio.run(make())``, and the last result."""
    best = Timing(math.inf)
    result: Any = None
    for _ in range(max(1, repeats)):
        server_before = srv.cpu_seconds() if srv else 0.0
        cpu_before = time.process_time()
        started = time.perf_counter()
        result = asyncio.run(make())  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        if seconds < best.seconds:
            best = Timing(
                seconds,
                time.process_time() - cpu_before,
                (srv.cpu_seconds() - server_before) if srv else 0.0,
            )
    return best, result


def ideal(latency: float, pages: int, window: int) -> float:
    """The first page alone, then the remaining pages in waves of ``window``, each one latency."""
    return latency * (1 + math.ceil((pages - 1) / window))


def _mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- scenario 1: one space against latency --------------------------------------------------


@attrs.frozen
class CpuRow:
    """Client CPU per page of ``iter_tasks`` and of the bare windowed loop, same server."""

    latency: float
    window: int
    pages: int
    client_cpu: float  # seconds per page, the least of the runs
    bare_cpu: float

    @property
    def ratio(self) -> float:
        """The client's CPU per page over the bare aiohttp+orjson loop's."""
        return self.client_cpu / self.bare_cpu


def cpu_per_page(srv: Server, s: Settings, latency: float, window: int, repeats: int) -> CpuRow:
    """Least CPU per page of ``iter_tasks`` (holding nothing) and of the bare loop.

    Interleaved runs, so that a noisy moment on the machine hits both alike; the least
    of each is the cost without the noise. Both stream the same pages at the same window.
    """
    url, key, token = srv.base_url, srv.api_key, srv.tokens[0]
    pages = math.ceil(s.tasks / s.page_size)
    ours: list[float] = []
    bare: list[float] = []
    for _ in range(max(1, repeats)):
        for out, walk in (
            (ours, stream_spacetasks),
            (bare, windowed_aiohttp),
        ):
            before = time.process_time()
            seen = asyncio.run(walk(url, key, token, page_size=s.page_size, window=window))
            out.append((time.process_time() - before) / pages)
            if seen != s.tasks:
                raise RuntimeError(f"{walk.__name__} gave {seen} tasks, expected {s.tasks}")
    return CpuRow(latency, window, pages, min(ours), min(bare))


@attrs.frozen
class Walk:
    """One client on the one-space walk at one latency."""

    latency: float
    client: str
    seconds: float
    tasks: int
    window: int | None = None
    client_cpu: float = 0.0
    server_cpu: float = 0.0

    @property
    def rate(self) -> float:
        """Tasks per second."""
        return self.tasks / self.seconds


def _window_name(window: int | None) -> str:
    return f"default window ({DEFAULT_WINDOW})" if window is None else f"window {window}"


def scenario_latency(s: Settings) -> tuple[list[Walk], list[CpuRow]]:
    """The one-space walk of every client at every latency, each latency on its own server.

    Also, at each latency, the client's CPU per page against the bare windowed loop's.
    """
    rows: list[Walk] = []
    cpu: list[CpuRow] = []
    for latency in s.latencies:
        with server(
            "--spaces", "1", "--tasks-per-space", str(s.tasks), "--latency", str(latency)
        ) as srv:
            url, key, token = srv.base_url, srv.api_key, srv.tokens[0]
            _log(f"[1] latency {latency * 1000:.0f} ms on {url}")
            # Warm-up: the server renders its hour table and templates, the client connects.
            asyncio.run(walk_spacetasks(url, key, token, page_size=s.page_size, window=16))
            for window in s.windows:
                walk = functools.partial(
                    walk_spacetasks, url, key, token, page_size=s.page_size, window=window
                )
                t, (ids, _) = timed(walk, s.repeats, srv)
                if len(ids) != s.tasks or len(set(ids)) != s.tasks:
                    raise RuntimeError(f"iter_tasks gave {len(ids)} tasks, expected {s.tasks}")
                name = f"spacetasks_async iter_tasks, {_window_name(window)}"
                rows.append(
                    Walk(latency, name, t.seconds, len(ids), window, t.client_cpu, t.server_cpu)
                )
                _log(f"    {name}: {t}")
            # The floor of any concurrent client on this machine and server: the bare loop
            # (no checks, no order, no proof; a request sent as soon as one completes).
            bare = functools.partial(
                windowed_aiohttp, url, key, token, page_size=s.page_size, window=16
            )
            t, count = timed(bare, s.repeats, srv)
            if count != s.tasks:
                raise RuntimeError(f"the bare loop gave {count} tasks, expected {s.tasks}")
            name = BARE_WALK
            rows.append(Walk(latency, name, t.seconds, count, 16, t.client_cpu, t.server_cpu))
            _log(f"    {name}: {t}")
            seq_repeats = s.sequential_repeats if latency == 0 else 1
            for name, loop in (
                ("sequential aiohttp loop (dicts)", sequential_aiohttp),
                ("sequential httpx.AsyncClient loop (dicts)", sequential_httpx),
            ):
                run = functools.partial(loop, url, key, [token], page_size=s.page_size)
                t, count = timed(run, seq_repeats, srv)
                if count != s.tasks:
                    raise RuntimeError(f"{name} gave {count} tasks, expected {s.tasks}")
                rows.append(Walk(latency, name, t.seconds, count, None, t.client_cpu, t.server_cpu))
                _log(f"    {name}: {t}")
            cpu.append(cpu_per_page(srv, s, latency, 16, s.cpu_repeats))
            _log(f"    CPU per page: {cpu[-1]}")
    return rows, cpu


# --- scenario 2: many spaces ----------------------------------------------------------------


@attrs.frozen
class HarvestResult:
    """``client.harvest`` against the sequential loop over the same spaces."""

    spaces: int
    tasks: int
    pages: int
    latency: float
    concurrency: int
    harvest_seconds: float
    sequential_seconds: float
    harvest_client_cpu: float
    harvest_server_cpu: float

    @property
    def ideal_seconds(self) -> float:
        """Every page in waves of the global window, each wave one latency."""
        return self.latency * math.ceil(self.pages / self.concurrency)


def scenario_harvest(s: Settings) -> HarvestResult:
    """100 spaces at once under a global window, and the same spaces one page at a time."""
    args = ["--spaces", str(s.spaces), "--tasks-per-space", str(s.tasks_per_space)]
    with server(*args, "--latency", str(s.harvest_latency)) as srv:
        url, key, tokens = srv.base_url, srv.api_key, srv.tokens
        _log(f"[2] {s.spaces} spaces x {s.tasks_per_space} tasks on {url}")
        total = s.spaces * s.tasks_per_space
        asyncio.run(walk_spacetasks(url, key, tokens[0], page_size=s.page_size, window=4))
        t, count = timed(
            lambda: harvest_spacetasks(
                url, key, tokens, page_size=s.page_size, concurrency=s.concurrency
            ),
            s.repeats,
            srv,
        )
        if count != total:
            raise RuntimeError(f"harvest gave {count} tasks, expected {total}")
        _log(f"    harvest: {t}")
        seq, seq_count = timed(
            lambda: sequential_aiohttp(url, key, tokens, page_size=s.page_size), 1
        )
        if seq_count != total:
            raise RuntimeError(f"the sequential loop gave {seq_count} tasks, expected {total}")
        _log(f"    sequential aiohttp: {seq}")
    pages = s.spaces * math.ceil(s.tasks_per_space / s.page_size)
    return HarvestResult(
        s.spaces,
        total,
        pages,
        s.harvest_latency,
        s.concurrency,
        t.seconds,
        seq.seconds,
        t.client_cpu,
        t.server_cpu,
    )


# --- scenario 3: decoding -------------------------------------------------------------------


def scenario_decode(s: Settings) -> list[_decode.DecodeRow]:
    """Per-task decode cost on pages of each size, from the server's bytes."""
    rows = []
    for page_size in s.decode_pages:
        _log(f"[3] decoding pages of {page_size}")
        rows.append(_decode.measure(s.decode_tasks, page_size, s.decode_repeats))
    return rows


# --- scenario 6: the command line ---------------------------------------------------------


def scenario_cli(s: Settings) -> list[_cli.CliRow]:
    """``spacetasks harvest`` to JSON Lines against the bare loop writing the same lines."""
    rows = []
    spec = ["--spaces", str(s.cli_spaces), "--tasks-per-space", str(s.cli_tasks_per_space)]
    for latency in s.cli_latencies:
        _log(f"[6] command line to JSON Lines, {latency * 1000:.0f} ms")
        with server(*spec, "--latency", str(latency)) as srv:
            rows.append(
                _cli.measure(
                    srv.base_url,
                    srv.api_key,
                    srv.tokens,
                    latency=latency,
                    expected=s.cli_spaces * s.cli_tasks_per_space,
                    concurrency=s.concurrency,
                    repeats=s.cli_repeats,
                )
            )
    return rows


# --- scenario 4: memory ---------------------------------------------------------------------


@attrs.frozen
class MemoryRow:
    """Peak resident memory of one streaming walk, in its own process."""

    tasks: int
    seconds: float
    rss_before_mib: float
    peak_mib: float


def scenario_memory(s: Settings) -> list[MemoryRow]:
    """Stream spaces of each size through ``iter_tasks``, one client process per size."""
    sizes = ",".join(str(n) for n in s.memory_sizes)
    rows = []
    with server("--space-sizes", sizes) as srv:
        for size, token in zip(s.memory_sizes, srv.tokens, strict=True):
            _log(f"[4] streaming {size:,} tasks")
            command = [
                sys.executable,
                "-m",
                "benchmarks._memory",
                srv.base_url,
                srv.api_key,
                token,
                str(s.memory_page_size),
            ]
            out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
            data = json.loads(out.stdout.strip().splitlines()[-1])
            if data["tasks"] != size:
                raise RuntimeError(f"the memory walk gave {data['tasks']} tasks, not {size}")
            rows.append(
                MemoryRow(
                    size, data["seconds"], data["rss_before_kib"] / 1024, data["peak_kib"] / 1024
                )
            )
            _log(f"    peak {rows[-1].peak_mib:.1f} MiB in {data['seconds']:.1f} s")
    return rows


# --- scenario 5: faults ---------------------------------------------------------------------


@attrs.frozen
class FaultResult:
    """The one-space walk with a share of requests failing, against the same walk without."""

    latency: float
    rate: float
    window: int
    clean_seconds: float
    fault_seconds: float
    fault_runs: tuple[float, ...]
    retries: int
    tasks: int
    expected: int
    unique: int


def scenario_faults(s: Settings) -> FaultResult:
    """The walk at ``fault_latency`` with and without ``fault_rate`` of requests failing."""
    window = 16
    base = ["--spaces", "1", "--tasks-per-space", str(s.tasks), "--latency", str(s.fault_latency)]
    with server(*base) as srv:
        _log(f"[5] fault-free walk on {srv.base_url}")
        asyncio.run(
            walk_spacetasks(srv.base_url, srv.api_key, srv.tokens[0], page_size=s.page_size)
        )
        clean_timing, _ = timed(
            lambda: walk_spacetasks(
                srv.base_url,
                srv.api_key,
                srv.tokens[0],
                page_size=s.page_size,
                window=window,
                retry=FAULT_RETRY,
            ),
            s.repeats,
        )
    # Retry-After 0: the 429 faults ask for no wait (the client still halves its ceiling).
    faulty = [*base, "--fault-rate", str(s.fault_rate), "--retry-after", "0"]
    runs: list[float] = []
    retries = 0
    ids: list[str] = []
    with server(*faulty) as srv:
        _log(f"[5] walk with {s.fault_rate:.0%} faults on {srv.base_url}")
        for _ in range(max(1, s.repeats)):
            # Each run meets other faults: the server draws them per attempt of each page.
            started = time.perf_counter()
            ids, retries = asyncio.run(
                walk_spacetasks(
                    srv.base_url,
                    srv.api_key,
                    srv.tokens[0],
                    page_size=s.page_size,
                    window=window,
                    retry=FAULT_RETRY,
                )
            )
            runs.append(time.perf_counter() - started)
            if len(ids) != s.tasks or len(set(ids)) != s.tasks:
                raise RuntimeError(f"walk under faults gave {len(ids)} tasks, not {s.tasks}")
            _log(f"    {runs[-1]:.3f} s, {retries} retries")
    return FaultResult(
        s.fault_latency,
        s.fault_rate,
        window,
        clean_timing.seconds,
        min(runs),
        tuple(runs),
        retries,
        len(ids),
        s.tasks,
        len(set(ids)),
    )


# --- the report -----------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 0
    return {
        "CPU": cpu,
        "Cores": f"{os.cpu_count()} ({usable} usable by this process)",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "aiohttp": aiohttp.__version__,
        "httpx": httpx.__version__,
        "orjson": orjson.__version__,
        "msgspec": msgspec.__version__,
        "Load average at the start (1, 5, 15 min)": LOAD_AT_START,
    }


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def report(
    s: Settings,
    walks: list[Walk],
    cpu: list[CpuRow],
    harvest: HarvestResult,
    decode: list[_decode.DecodeRow],
    memory: list[MemoryRow],
    faults: FaultResult,
    cli: list[_cli.CliRow],
    elapsed: float,
    chart: str,
) -> str:
    """RESULTS.md."""
    pages = math.ceil(s.tasks / s.page_size)
    out = [
        "# Benchmark results",
        "",
        f"Generated by `python -m benchmarks.run` ({s.label} run, {elapsed:.0f} s) on "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. Do not edit by hand.",
        "",
        "Rerun with `nox -s bench` (installs `.[bench]`) or `python -m benchmarks.run` in an",
        "environment that has it; `python -m benchmarks.run --quick` is a smoke run of the",
        "runner (smaller sizes, writes to a temporary directory).",
        "",
        "Every server is the package's local Unpod server (`spacetasks_async.testing`), run in",
        "a process of its own; the clients run in the runner's process, one at a time. Latency",
        "is the server's sleep before each answer. Short runs report the best of "
        f"{s.repeats}; the sequential loops at 20 ms and more run once (their time is the sum",
        "of the latencies). Every figure compared is from this same run. CPU columns: the",
        "seconds of CPU the client process and the server process used during the best run;",
        "when they approach the wall time times the cores, the walk is CPU-bound, not",
        "latency-bound.",
        "",
        "## Machine",
        "",
        *_table(["", ""], [[k, v] for k, v in machine().items()]),
        "",
        *targets(s, walks, cpu, decode, memory, cli),
    ]
    # -- scenario 1
    out += [
        f"## 1. One space: {s.tasks:,} tasks, page size {s.page_size} ({pages} pages)",
        "",
        "The ideal bound fetches the first page (it gives the count), then the remaining "
        f"{pages - 1} pages in waves of the window, each wave taking one latency: "
        f"latency x (1 + ceil({pages - 1}/window)), i.e. "
        f"{1 + math.ceil((pages - 1) / 16)} latencies for a window of 16 and "
        f"{1 + math.ceil((pages - 1) / DEFAULT_WINDOW)} for the default {DEFAULT_WINDOW}. "
        "At 0 ms there is no latency to hide and no bound. A concurrent walk ends with one "
        "more small request (a read of the front, 16 tasks) that proves no task was missed; "
        "the bound leaves it out, so it counts against the client.",
        "",
    ]
    rows = []
    for latency in s.latencies:
        at = [w for w in walks if w.latency == latency]
        seq_aio = next(w for w in at if "aiohttp" in w.client)
        seq_httpx = next(w for w in at if "httpx" in w.client)
        for w in at:
            row = [
                f"{latency * 1000:.0f} ms",
                w.client,
                _ms(w.seconds),
                f"{w.rate:,.0f}",
                f"{w.client_cpu:.2f} + {w.server_cpu:.2f} s",
            ]
            if w.window is not None or "iter_tasks" in w.client:
                window = w.window or DEFAULT_WINDOW
                bound = ideal(latency, pages, window)
                row += [
                    f"{seq_aio.seconds / w.seconds:.1f}x",
                    f"{seq_httpx.seconds / w.seconds:.1f}x",
                    _ms(bound) if latency else "-",
                    f"{bound / w.seconds:.2f}" if latency else "-",
                ]
            else:
                row += ["-", "-", "-", "-"]
            rows.append(row)
    out += _table(
        [
            "latency",
            "client",
            "wall time",
            "tasks/s",
            "CPU client + server",
            "vs aiohttp loop",
            "vs httpx loop",
            "ideal bound",
            "share of ideal",
        ],
        rows,
    )
    top = max(s.latencies)
    best = next((w for w in walks if w.latency == top and w.window == 16), None)
    if best is not None:
        at = [w for w in walks if w.latency == top]
        slowest_ratio = min(
            w.seconds / best.seconds
            for w in at
            if w.window is None and "iter_tasks" not in w.client
        )
        share = ideal(top, pages, 16) / best.seconds
        out += [
            "",
            f"Targets at {top * 1000:.0f} ms with a window of 16:",
            "",
            f"- at least 10x faster than both sequential loops: {slowest_ratio:.1f}x, "
            f"**{_mark(slowest_ratio >= 10)}**",
            f"- at least 0.85 of the ideal bound: {share:.2f}, **{_mark(share >= 0.85)}**",
        ]
    out += [
        "",
        "Client CPU per page: `iter_tasks` streaming the space at a window of 16, keeping "
        "nothing but a count, against a bare aiohttp loop that fetches the same pages at the "
        "same window and parses each with `orjson.loads` into dicts (no retries, checks or "
        "decoding). Least of "
        f"{s.cpu_repeats} interleaved runs each, CPU of the client process only.",
        "",
        *_table(
            ["latency", "window", "iter_tasks CPU/page", "bare aiohttp+orjson CPU/page", "ratio"],
            [
                [
                    f"{r.latency * 1000:.0f} ms",
                    str(r.window),
                    f"{r.client_cpu * 1e6:,.0f} us",
                    f"{r.bare_cpu * 1e6:,.0f} us",
                    f"{r.ratio:.2f}x",
                ]
                for r in cpu
            ],
        ),
    ]
    out += ["", f"![harvest time against latency]({chart})", ""]
    # -- scenario 2
    h = harvest
    out += [
        f"## 2. Many spaces: {h.spaces} spaces x {h.tasks // h.spaces:,} tasks "
        f"({h.tasks:,} tasks, {h.pages} pages)",
        "",
        f"`client.harvest(tokens, concurrency={h.concurrency}, page_size={s.page_size})` (a "
        f"global window of {h.concurrency} requests in flight across all spaces), against "
        "the sequential aiohttp loop over the same spaces; server latency "
        f"{h.latency * 1000:.0f} ms. Ideal bound: every page in waves of {h.concurrency}, "
        f"latency x ceil({h.pages}/{h.concurrency}).",
        "",
        *_table(
            [
                "client",
                "wall time",
                "tasks/s",
                "CPU client + server",
                "vs aiohttp loop",
                "ideal bound",
                "share of ideal",
            ],
            [
                [
                    f"spacetasks_async harvest, concurrency {h.concurrency}",
                    _ms(h.harvest_seconds),
                    f"{h.tasks / h.harvest_seconds:,.0f}",
                    f"{h.harvest_client_cpu:.2f} + {h.harvest_server_cpu:.2f} s",
                    f"{h.sequential_seconds / h.harvest_seconds:.1f}x",
                    _ms(h.ideal_seconds),
                    f"{h.ideal_seconds / h.harvest_seconds:.2f}",
                ],
                [
                    "sequential aiohttp loop (dicts)",
                    _ms(h.sequential_seconds),
                    f"{h.tasks / h.sequential_seconds:,.0f}",
                    "-",
                    "1.0x",
                    "-",
                    "-",
                ],
            ],
        ),
        "",
    ]
    # -- scenario 3
    out += [
        "## 3. Decoding cost per task",
        "",
        "From the bytes of real page bodies of the local server's data (a seeded space of "
        f"{s.decode_tasks:,} tasks, all pages, median of {s.decode_repeats} interleaved "
        "passes). `msgspec` decodes into Structs of the task's shape, for reference only: it",
        "keeps no unknown keys, no timestamp text and no explicit nulls. The full decode is",
        "every part of every task decoded with its page (`make_converter(lazy=False)`, or",
        "`--decode`). The lazy decode is what the walk does to every page with the package's",
        "converter: msgspec reads the envelope and splits `data` into each task's JSON text,",
        "and each task's `task_id` is parsed (the rest when the task is first read); \"task",
        'read" then reads `status` of every task (each parsed and decoded, `output` kept as',
        'sent) and "all read" reads `output` too (everything decoded, as the full decode).',
        "",
    ]
    drows = []
    for r in decode:
        drows.append(
            [
                f"{r.page_size:,} ({r.pages} pages)",
                f"{r.orjson_us:.2f} us",
                f"{r.msgspec_us:.2f} us ({r.msgspec_ratio:.2f}x)",
                f"{r.full_us:.2f} us ({r.full_ratio:.2f}x)",
                f"{r.lazy_us:.2f} us ({r.lazy_ratio:.2f}x)",
                f"{r.lazy_read_us:.2f} us ({r.lazy_read_ratio:.2f}x)",
                f"{r.lazy_read_all_us:.2f} us ({r.lazy_read_all_ratio:.2f}x)",
                (
                    f"full **{_mark(r.full_ratio <= 2.0)}**, lazy **{_mark(r.lazy_ratio <= 1.3)}**"
                    if r.page_size == 100
                    else "-"
                ),
            ]
        )
    out += _table(
        [
            "tasks per page",
            "orjson.loads (floor)",
            "msgspec typed",
            "full decode",
            "lazy decode (the walk's)",
            "lazy, task read",
            "lazy, all read",
            "targets, pages of 100: full <= 2.0x, lazy <= 1.3x",
        ],
        drows,
    )
    out += [""]
    # -- scenario 4
    out += [
        "## 4. Memory while streaming",
        "",
        "Peak resident memory (`VmHWM`; `ru_maxrss` where there is no /proc: on Linux it "
        "carries the parent's peak over the exec) of a client process that streams a whole space "
        f"through `iter_tasks` (page size {s.memory_page_size}, default window) and keeps "
        "only a count; the server runs in another process.",
        "",
    ]
    mrows = [
        [
            f"{m.tasks:,}",
            f"{m.rss_before_mib:.1f} MiB",
            f"{m.peak_mib:.1f} MiB",
            f"{m.seconds:.1f} s",
            f"{m.tasks / m.seconds:,.0f}",
        ]
        for m in memory
    ]
    out += _table(["tasks", "RSS before the walk", "peak RSS", "time", "tasks/s"], mrows)
    growth = memory[-1].peak_mib - memory[0].peak_mib
    out += [
        "",
        f"Growth from {memory[0].tasks:,} to {memory[-1].tasks:,} tasks: {growth:+.1f} MiB "
        f"(target under 30 MB): **{_mark(growth * 1.048576 < 30)}**",
        "",
    ]
    # -- scenario 5
    f = faults
    slowdown = f.fault_seconds / f.clean_seconds
    out += [
        "## 5. Under faults",
        "",
        f"The {s.tasks:,}-task walk (window {f.window}) at {f.latency * 1000:.0f} ms with "
        f"{f.rate:.0%} of the tasks requests failing, spread evenly over every fault kind of "
        "the server but SLOW (500 JSON and HTML, 502, 503, 504, 429 with and without "
        "Retry-After, connection dropped mid-body, truncated JSON, 206 Tasks Fetch Failed). "
        "The server's 429s announce `Retry-After: 0`; the client's policy is "
        f"`RetryPolicy(max_attempts={FAULT_RETRY.max_attempts}, "
        f"initial_wait={FAULT_RETRY.initial_wait}, max_wait={FAULT_RETRY.max_wait}, "
        f"max_retry_after={FAULT_RETRY.max_retry_after}, "
        f"backend_failure_retries={FAULT_RETRY.backend_failure_retries})`. A 429 also halves "
        "the client's ceiling on requests in flight, which then grows back.",
        "",
        *_table(
            ["run", "wall time", "retries", "tasks", "exact"],
            [
                ["fault-free", _ms(f.clean_seconds), "0", f"{f.expected:,}", "yes"],
                [
                    f"{f.rate:.0%} faults (best of {len(f.fault_runs)}: "
                    + ", ".join(_ms(x) for x in f.fault_runs)
                    + ")",
                    _ms(f.fault_seconds),
                    f"{f.retries} (last run)",
                    f"{f.tasks:,}",
                    "yes" if f.tasks == f.unique == f.expected else "**NO**",
                ],
            ],
        ),
        "",
        f"Slowdown under faults: {slowdown:.2f}x; task count exact (every task once): "
        f"**{_mark(f.tasks == f.unique == f.expected)}**",
        "",
    ]
    # -- scenario 6
    out += [
        "## 6. The command line to JSON Lines",
        "",
        f"`spacetasks harvest` of {s.cli_spaces} spaces x {s.cli_tasks_per_space:,} tasks "
        f"(`--concurrency {s.concurrency} --page-size 100 -q`) against a bare aiohttp loop "
        "writing the same lines (`benchmarks/_cli.py`: the same limit of requests in flight, "
        "`orjson.loads` of each body and `orjson.dumps` of each task with its `space_token`; "
        "no retries, checks, order or commits). Each runs as a process of its own (start-up "
        f"included), interleaved, best of {s.cli_repeats}; both files hold every task. The "
        "command line writes each task's JSON text as the server sent it (only `task_id` is "
        "parsed), commits (flush and fsync) as it goes, and walks every space exactly.",
        "",
        *_table(
            ["latency", "command line", "bare loop", "tasks/s, CLI / bare", "target >= 0.8"],
            [
                [
                    f"{r.latency * 1000:.0f} ms",
                    f"{r.cli_seconds:.2f} s ({r.tasks / r.cli_seconds:,.0f} tasks/s)",
                    f"{r.bare_seconds:.2f} s ({r.tasks / r.bare_seconds:,.0f} tasks/s)",
                    f"{r.ratio:.2f}",
                    f"**{_mark(r.ratio >= 0.8)}**",
                ]
                for r in cli
            ],
        ),
        "",
    ]
    return "\n".join(out)


def targets(
    s: Settings,
    walks: list[Walk],
    cpu: list[CpuRow],
    decode: list[_decode.DecodeRow],
    memory: list[MemoryRow],
    cli: list[_cli.CliRow],
) -> list[str]:
    """The targets of issue 10, each a ratio measured in this run."""
    pages = math.ceil(s.tasks / s.page_size)
    top = max(s.latencies)
    rows: list[list[str]] = []
    at_top = next((r for r in cpu if r.latency == top), None)
    if at_top is not None:
        rows.append(
            [
                f"client CPU per page / bare aiohttp+orjson loop, window 16, "
                f"{at_top.pages} pages of {s.page_size}, {top * 1000:.0f} ms",
                f"{at_top.ratio:.2f}",
                "<= 2.0",
                f"**{_mark(at_top.ratio <= 2.0)}**",
            ]
        )
    d100 = next((r for r in decode if r.page_size == 100), None)
    if d100 is not None:
        rows += [
            [
                "full decode / `orjson.loads`, pages of 100",
                f"{d100.full_ratio:.2f}",
                "<= 2.0",
                f"**{_mark(d100.full_ratio <= 2.0)}**",
            ],
            [
                "lazy decode (the walk's) / `orjson.loads`, pages of 100",
                f"{d100.lazy_ratio:.2f}",
                "<= 1.3",
                f"**{_mark(d100.lazy_ratio <= 1.3)}**",
            ],
        ]
    best = next((w for w in walks if w.latency == top and w.window == 16), None)
    if best is not None:
        share = ideal(top, pages, 16) / best.seconds
        rows.append(
            [
                f"ideal bound / wall time, {top * 1000:.0f} ms, window 16, {pages} pages",
                f"{share:.2f}",
                ">= 0.85",
                f"**{_mark(share >= 0.85)}**",
            ]
        )
        floor = next((w for w in walks if w.latency == top and w.client == BARE_WALK), None)
        if floor is not None:
            rows.append(
                [
                    "(for reference: the same for the bare concurrent loop, same server)",
                    f"{ideal(top, pages, 16) / floor.seconds:.2f}",
                    "-",
                    "-",
                ]
            )
    for r in cli:
        rows.append(
            [
                f"command line to JSON Lines, tasks/s / bare aiohttp loop writing the same "
                f"lines, {r.spaces} spaces x {r.tasks // r.spaces:,}, {r.latency * 1000:.0f} ms",
                f"{r.ratio:.2f}",
                ">= 0.8",
                f"**{_mark(r.ratio >= 0.8)}**",
            ]
        )
    growth = memory[-1].peak_mib - memory[0].peak_mib
    rows.append(
        [
            f"peak memory, {memory[0].tasks:,} to {memory[-1].tasks:,} tasks streamed",
            f"{growth:+.1f} MiB (peak {memory[-1].peak_mib:.1f} MiB)",
            "unchanged: flat, under 30 MB (+0.6 MiB, peak 50.8 MiB, when filed)",
            f"**{_mark(growth * 1.048576 < 30)}**",
        ]
    )
    return [
        "## Targets (issue 10)",
        "",
        "Every ratio from this one run; the sections below give the figures behind them.",
        "",
        *_table(["measure", "measured", "target", ""], rows),
        "",
    ]


def draw_chart(s: Settings, walks: list[Walk], path: Path) -> None:
    """Harvest time of the one-space walk against latency, every client and the bounds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pages = math.ceil(s.tasks / s.page_size)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    xs = [latency * 1000 for latency in s.latencies]
    for client in dict.fromkeys(w.client for w in walks):
        ys = [
            next(w.seconds for w in walks if w.client == client and w.latency == x)
            for x in s.latencies
        ]
        ax.plot(xs, ys, marker="o", label=client)
    for window, style in ((16, ":"), (DEFAULT_WINDOW, "--")):
        waits = [latency for latency in s.latencies if latency > 0]  # no bound at 0 ms
        ys = [ideal(latency, pages, window) for latency in waits]
        ax.plot(
            [latency * 1000 for latency in waits],
            ys,
            linestyle=style,
            color="grey",
            label=f"ideal bound, window {window}",
        )
    ax.set_yscale("log")
    ax.set_xlabel("server latency per request (ms)")
    ax.set_ylabel("wall time (s, log scale)")
    ax.set_title(f"Walking one space of {s.tasks:,} tasks ({pages} pages of {s.page_size})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Run everything; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a much smaller smoke run")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where RESULTS.md and the chart go (default: benchmarks/, or a temporary "
        "directory with --quick)",
    )
    args = parser.parse_args(argv)
    s = QUICK if args.quick else FULL
    output: Path = args.output or (
        Path(tempfile.mkdtemp(prefix="spacetasks-bench-")) if args.quick else HERE
    )
    output.mkdir(parents=True, exist_ok=True)
    # Retries under faults are expected here; the library logs each one as a warning.
    logging.getLogger("spacetasks_async").setLevel(logging.ERROR)
    started = time.perf_counter()
    walks, cpu = scenario_latency(s)
    harvest = scenario_harvest(s)
    decode = scenario_decode(s)
    memory = scenario_memory(s)
    faults = scenario_faults(s)
    cli = scenario_cli(s)
    elapsed = time.perf_counter() - started
    chart = "harvest_vs_latency.png"
    draw_chart(s, walks, output / chart)
    text = report(s, walks, cpu, harvest, decode, memory, faults, cli, elapsed, chart)
    (output / "RESULTS.md").write_text(text + "\n")
    print(text)
    _log(f"wrote {output / 'RESULTS.md'} and {output / chart} in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
