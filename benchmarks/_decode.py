"""Decoding cost per task, from the bytes of real pages of the local server.

Three decoders over the same page bodies (the envelope the tasks endpoint sends):

- ``orjson.loads`` alone: the floor, JSON into dicts;
- ``msgspec`` typed decoding into Structs of the task's shape: the fastest typed decoder in
  the ecosystem, for reference (it keeps no unknown keys, no original timestamp text, no
  explicit nulls, so it does less than the package does);
- ``orjson.loads`` + ``decode_tasks``: what the walk does to every page.
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
from spacetasks_async._convert import decode_tasks
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
    """The cost of one decoder on pages of one size, per task."""

    page_size: int
    pages: int
    tasks: int
    orjson_us: float
    msgspec_us: float
    full_us: float

    @property
    def full_ratio(self) -> float:
        """Full decode over ``orjson.loads`` alone."""
        return self.full_us / self.orjson_us

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
    """Per-task cost of the three decoders, median of ``repeats`` interleaved passes."""
    bodies = page_bodies(total, page_size)
    loads = orjson.loads
    ms_decode = msgspec.json.Decoder(MsEnvelope).decode

    def full(body: bytes) -> list[Task]:
        return decode_tasks(loads(body)["data"])

    def typed(body: bytes) -> list[MsTask]:
        return ms_decode(body).data

    # Every decoder must accept every page (and agree on the number of tasks) first.
    tasks = sum(len(full(body)) for body in bodies)
    assert tasks == sum(len(typed(body)) for body in bodies) == total
    runs: dict[str, list[float]] = {"orjson": [], "msgspec": [], "full": []}
    gc.collect()
    for _ in range(repeats):  # interleaved, so that a noisy moment hits all three alike
        runs["orjson"].append(_time_pass(loads, bodies))
        runs["msgspec"].append(_time_pass(typed, bodies))
        runs["full"].append(_time_pass(full, bodies))
    per_task = {name: statistics.median(times) / tasks * 1e6 for name, times in runs.items()}
    return DecodeRow(
        page_size=page_size,
        pages=len(bodies),
        tasks=tasks,
        orjson_us=per_task["orjson"],
        msgspec_us=per_task["msgspec"],
        full_us=per_task["full"],
    )
