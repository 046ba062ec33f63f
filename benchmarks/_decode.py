"""Decoding cost per task, from the bytes of real pages of the local server.

Decoders over the same page bodies (the envelope the tasks endpoint sends):

- ``orjson.loads`` alone: the floor, JSON into dicts;
- ``msgspec`` typed decoding into Structs of the task's shape: the fastest typed decoder in
  the ecosystem, for reference (it keeps no unknown keys, no original timestamp text, no
  explicit nulls, so it does less than the package does);
- full: ``orjson.loads`` + a converter of ``make_converter(lazy=False)``: every part of every
  task decoded with its page (what a client given that converter, or ``--decode``, does);
- lazy: what the walk does to every page with the package's converter:
  ``parse_page_envelope`` (msgspec reads the envelope and splits ``data`` into each task's
  JSON text) and ``decode_tasks`` (each task's ``task_id`` parsed, the rest kept as text);
- lazy, read: the same, then ``task.status`` read for every task (each task parsed and
  decoded in place; ``output`` still kept as sent);
- lazy, all read: the same, then ``task.output`` read too (everything decoded, as "full").

The loop runs with the cyclic GC on, as a program does: the package no longer pauses it, so
what it costs is part of decoding.

``python -m benchmarks._decode`` prints the table for pages of 100.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs
import msgspec
import orjson

from spacetasks_async import Task
from spacetasks_async._convert import decode_task, decode_tasks, make_converter
from spacetasks_async._errors import parse_page_envelope
from spacetasks_async.testing._data import SpaceData, generate_spaces

# --- msgspec Structs of the task shape ------------------------------------------------------


class MsTurn(msgspec.Struct):
    role: str | None = None
    content: str | None = None
    timestamp: datetime | int | float | None = None


class MsCallSummary(msgspec.Struct):
    status: str | None = None
    summary: str | None = None
    name: str | None = None
    contact: str | int | float | bool | None = None
    callback_datetime: str | None = None


class MsPostCallData(msgspec.Struct):
    summary: str | MsCallSummary | None = None
    outcome: str | None = None
    sentiment: str | None = None
    classification: Any = None
    success_evaluator: Any = None
    structured_data: Any = None
    call_evaluation: Any = None
    profile_summary: Any = None


class MsOutput(msgspec.Struct):
    """Both shapes of ``output`` in one Struct (msgspec takes one object type per union)."""

    call_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | float | None = None
    recording_url: str | None = None
    transcript: list[MsTurn] | None = None
    post_call_data: MsPostCallData | None = None
    call_type: str | None = None
    call_status: str | None = None
    customer: Any = None
    contact_number: Any = None
    call_end_reason: str | None = None
    assistant_number: Any = None
    call_summary: Any = None
    cost: Any = None
    metadata: Any = None
    status_update: Any = None
    error: Any = None
    notes: Any = None
    id: str | None = None
    startedAt: datetime | None = None
    endedAt: datetime | None = None
    recordingUrl: str | None = None
    endedReason: str | None = None


class MsUserInfo(msgspec.Struct):
    email: str | None = None
    full_name: str | None = None
    id: str | int | float | bool | None = None
    user_token: str | None = None


class MsDefinition(msgspec.Struct):
    objective: str | None = None


class MsTask(msgspec.Struct):
    task_id: str
    _id: str | None = None
    thread_id: str | None = None
    run_id: str | None = None
    user_info: MsUserInfo | None = None
    task: MsDefinition | None = None
    input: dict[str, Any] | None = None
    output: MsOutput | str | list[Any] | int | float | None = None
    assignee: str | None = None
    status: str | None = None
    execution_type: str | None = None
    run_mode: str | None = None
    created: datetime | None = None
    modified: datetime | None = None
    space_id: Any = None
    user: Any = None
    user_org_id: Any = None
    collection_ref: Any = None
    attachments: Any = None
    ref_id: Any = None


class MsEnvelope(msgspec.Struct):
    data: list[MsTask]
    count: int | None = None
    status_code: int | None = None
    message: str | None = None


# --- the measurement ------------------------------------------------------------------------


@attrs.frozen
class DecodeRow:
    """The cost of each decoder on pages of one size, per task (microseconds)."""

    page_size: int
    pages: int
    tasks: int
    orjson_us: float
    msgspec_us: float
    full_us: float
    lazy_us: float
    lazy_read_us: float
    lazy_read_all_us: float

    @property
    def full_ratio(self) -> float:
        """Full decode (everything with its page) over ``orjson.loads`` alone."""
        return self.full_us / self.orjson_us

    @property
    def lazy_ratio(self) -> float:
        """The walk's decode (``output`` kept as sent) over ``orjson.loads`` alone."""
        return self.lazy_us / self.orjson_us

    @property
    def lazy_read_ratio(self) -> float:
        """The walk's decode, then every task read (not its output), over ``orjson.loads``."""
        return self.lazy_read_us / self.orjson_us

    @property
    def lazy_read_all_ratio(self) -> float:
        """The walk's decode, then every task and output read, over ``orjson.loads``."""
        return self.lazy_read_all_us / self.orjson_us

    @property
    def msgspec_ratio(self) -> float:
        """msgspec typed decoding over ``orjson.loads`` alone."""
        return self.msgspec_us / self.orjson_us


def page_bodies(total: int, page_size: int, seed: int = 1) -> list[bytes]:
    """The bodies the server answers for every page of a seeded space of ``total`` tasks."""
    info = generate_spaces(seed, [total])[0]
    space = SpaceData(info, 7001)
    return [
        b'{"count":%d,"status_code":200,"message":"Tasks Fetched Successfully","data":[%s]}'
        % (total, space.page_bytes(start, page_size))
        for start in range(0, total, page_size)
    ]


def _time_pass(decode: Callable[[bytes], object], bodies: list[bytes]) -> float:
    # The walk holds a few decoded pages at a time; so does this loop (the last one).
    started = time.perf_counter()
    kept = None
    for body in bodies:
        kept = decode(body)
    elapsed = time.perf_counter() - started
    del kept
    return elapsed


def measure(total: int, page_size: int, repeats: int) -> DecodeRow:
    """Per-task cost of the decoders, median of ``repeats`` interleaved passes."""
    bodies = page_bodies(total, page_size)
    loads = orjson.loads
    ms_decode = msgspec.json.Decoder(MsEnvelope).decode
    eager = make_converter(lazy=False)

    def full(body: bytes) -> list[Task]:
        tasks: list[Task] = eager.structure(loads(body)["data"], list[Task])
        return tasks

    def lazy(body: bytes) -> list[Task]:
        return decode_tasks(parse_page_envelope(200, body, method="GET", path="")["data"])

    def lazy_read(body: bytes) -> list[Task]:
        tasks = lazy(body)
        for task in tasks:
            task.status  # noqa: B018 - the read is what decodes it
        return tasks

    def lazy_read_all(body: bytes) -> list[Task]:
        tasks = lazy(body)
        for task in tasks:
            task.output  # noqa: B018 - the read is what decodes it
        return tasks

    def typed(body: bytes) -> list[MsTask]:
        return ms_decode(body).data

    # Every decoder must accept every page (and agree on the number of tasks) first.
    tasks = sum(len(lazy_read_all(body)) for body in bodies)
    assert tasks == sum(len(full(body)) for body in bodies) == total
    assert tasks == sum(len(typed(body)) for body in bodies)
    decoders: dict[str, Callable[[bytes], object]] = {
        "orjson": loads,
        "msgspec": typed,
        "full": full,
        "lazy": lazy,
        "lazy_read": lazy_read,
        "lazy_read_all": lazy_read_all,
    }
    runs: dict[str, list[float]] = {name: [] for name in decoders}
    gc.collect()
    for _ in range(repeats):  # interleaved, so that a noisy moment hits all of them alike
        for name, decode in decoders.items():
            runs[name].append(_time_pass(decode, bodies))
    per_task = {name: statistics.median(times) / tasks * 1e6 for name, times in runs.items()}
    return DecodeRow(
        page_size=page_size,
        pages=len(bodies),
        tasks=tasks,
        orjson_us=per_task["orjson"],
        msgspec_us=per_task["msgspec"],
        full_us=per_task["full"],
        lazy_us=per_task["lazy"],
        lazy_read_us=per_task["lazy_read"],
        lazy_read_all_us=per_task["lazy_read_all"],
    )


def output_read_ns(reads: int = 200_000) -> tuple[float, float]:
    """Nanoseconds per read of ``task.output`` (decoded already) and of a plain attribute.

    The price of laziness for a reader: ``output`` is a descriptor in front of its slot.
    """
    task = decode_task(orjson.loads(page_bodies(100, 100)[0])["data"][0])
    task.output  # noqa: B018 - decoded once; what is timed is every later read

    def read(get: Callable[[], object]) -> float:
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(reads):
                get()
            best = min(best, time.perf_counter() - started)
        return best / reads * 1e9

    baseline = read(lambda: None)  # the loop and the call
    return read(lambda: task.output) - baseline, read(lambda: task.input) - baseline


def main() -> None:
    """Print the decode ratios for pages of 100 tasks of the local server's data."""
    row = measure(20_000, 100, 9)
    print(f"pages of {row.page_size} ({row.pages} pages, {row.tasks:,} tasks), per task:")
    for name, us, ratio in (
        ("orjson.loads (floor)", row.orjson_us, 1.0),
        ("msgspec typed (reference)", row.msgspec_us, row.msgspec_ratio),
        ("full decode (lazy=False)", row.full_us, row.full_ratio),
        ("walk's read of the page (lazy)", row.lazy_us, row.lazy_ratio),
        ("lazy, then every task read", row.lazy_read_us, row.lazy_read_ratio),
        ("lazy, then every task and output read", row.lazy_read_all_us, row.lazy_read_all_ratio),
    ):
        print(f"  {name:<38} {us:6.2f} us  {ratio:4.2f}x")
    output_ns, plain_ns = output_read_ns()
    print(f"  a read of task.output once decoded: {output_ns:.0f} ns (a plain one: {plain_ns:.0f})")


if __name__ == "__main__":
    main()
