"""Output formats: format inference, the three layouts, the Parquet schema, exact resume.

Tasks come from the local server's data (``UnpodServer.expected_tasks``: both output shapes,
pending and email tasks) and from ``samples`` (every odd shape the API reference lists).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import random
import stat
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.dataset as ds  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
import samples  # tests/ is on sys.path (pytest's default import mode)
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spacetasks_async import InvalidArgumentError, SpaceTasksError, encode_task
from spacetasks_async._convert import parse_timestamp
from spacetasks_async._formats import (
    STDOUT,
    TASK_COLUMNS,
    Compression,
    MissingDependencyError,
    OutputChangedError,
    OutputError,
    OutputExistsError,
    OutputFormat,
    OutputFormatError,
    Sink,
    _task_values,
    columns,
    infer_format,
    open_sink,
    parquet_schema,
)
from spacetasks_async.testing import UnpodServer

if TYPE_CHECKING:
    from conftest import Serve  # tests/ is on sys.path

J, C, P = OutputFormat.JSONL, OutputFormat.CSV, OutputFormat.PARQUET
NONE, GZ, ZST = Compression.NONE, Compression.GZIP, Compression.ZSTD

# Every (format, compression) a sink writes, with the name that selects it.
KINDS: list[tuple[str, OutputFormat, Compression]] = [
    ("out.jsonl", J, NONE),
    ("out.jsonl.gz", J, GZ),
    ("out.jsonl.zst", J, ZST),
    ("out.csv", C, NONE),
    ("out.csv.gz", C, GZ),
    ("out.csv.zst", C, ZST),
    ("out.parquet", P, NONE),
]
KIND_IDS = [name for name, _, _ in KINDS]
STREAM_KINDS = [k for k in KINDS if k[1] is not P]

_SERVER = UnpodServer(seed=41, spaces=[160, 90])  # never started: only its data is used
SERVER_TASKS: dict[str, list[dict[str, Any]]] = {
    token: _SERVER.expected_tasks(token) for token in _SERVER.space_tokens
}


def server_batches() -> list[tuple[str, list[dict[str, Any]]]]:
    """The server's tasks as pages of 40, space by space (fresh copies)."""
    out = []
    for token, tasks in SERVER_TASKS.items():
        for i in range(0, len(tasks), 40):
            out.append((token, orjson.loads(orjson.dumps(tasks[i : i + 40]))))
    return out


def task_pool(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` varied tasks with unique ids: server tasks, every sample, random tasks."""
    base: list[dict[str, Any]] = [t for tasks in SERVER_TASKS.values() for t in tasks[:30]]
    base += list(samples.named_samples().values())
    base += samples.random_tasks(seed, 40)
    rng = random.Random(seed)
    pool = []
    for i in range(n):
        task = orjson.loads(orjson.dumps(rng.choice(base)))
        task["task_id"] = f"T{seed}-{i:05d}"
        pool.append(task)
    return pool


# --- reading outputs back ----------------------------------------------------------------------


def raw_bytes(path: Path, comp: Compression) -> bytes:
    data = path.read_bytes()
    if comp is GZ:
        return gzip.decompress(data)
    if comp is ZST:
        reader = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(data), read_across_frames=True
        )
        return reader.read()
    return data


def read_jsonl(path: Path, comp: Compression) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in raw_bytes(path, comp).splitlines()]


def read_csv(path: Path, comp: Compression) -> tuple[list[str], list[dict[str, str]]]:
    text = raw_bytes(path, comp).decode()
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


def part_names(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".parquet") and n[0] not in "._")


def read_parquet(directory: Path) -> list[dict[str, Any]]:
    """Rows of every part, parts in name order (the documented write order)."""
    rows: list[dict[str, Any]] = []
    for name in part_names(directory):
        rows += pq.read_table(directory / name).to_pylist()
    return rows


def read_ids(path: Path, fmt: OutputFormat, comp: Compression) -> list[tuple[str, str]]:
    """(space_token, task_id) of every row of the output, in order."""
    if fmt is J:
        return [(r["space_token"], r["task_id"]) for r in read_jsonl(path, comp)]
    if fmt is C:
        return [(r["space_token"], r["task_id"]) for r in read_csv(path, comp)[1]]
    return [(r["space_token"], r["task_id"]) for r in read_parquet(path)]


# --- infer_format ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fmt", "comp", "expected"),
    [
        ("x.jsonl", None, None, (J, NONE)),
        ("x.ndjson", None, None, (J, NONE)),
        ("x.jsonl.gz", None, None, (J, GZ)),
        ("x.jsonl.zst", None, None, (J, ZST)),
        ("x.jsonl.zstd", None, None, (J, ZST)),
        ("x.csv", None, None, (C, NONE)),
        ("x.csv.gz", None, None, (C, GZ)),
        ("x.csv.zst", None, None, (C, ZST)),
        ("x.parquet", None, None, (P, NONE)),
        ("dir/x.parquet/", None, None, (P, NONE)),
        ("X.JSONL.GZ", None, None, (J, GZ)),
        (Path("a/b.csv"), None, None, (C, NONE)),
        ("-", None, None, (J, NONE)),
        ("-", "jsonl", "gzip", (J, GZ)),
        ("x.csv", "jsonl", None, (J, NONE)),  # an explicit format wins over the name
        ("x.csv.gz", "JSONL", None, (J, GZ)),  # ... the compression still comes from it
        ("x.jsonl.gz", None, "none", (J, NONE)),  # an explicit compression wins too
        ("x.out", J, ZST, (J, ZST)),
        ("x.bz2", "csv", "gzip", (C, GZ)),
        ("/dev/null", "jsonl", None, (J, NONE)),
    ],
)
def test_infer_format(
    path: Any, fmt: Any, comp: Any, expected: tuple[OutputFormat, Compression]
) -> None:
    assert infer_format(path, fmt, comp) == expected


@pytest.mark.parametrize(
    ("path", "fmt", "comp", "match"),
    [
        ("x.txt", None, None, r"cannot tell the output format .*\.jsonl"),
        ("x", None, None, "cannot tell the output format"),
        ("x.gz", None, None, "cannot tell the output format"),
        ("x.json", None, None, r"JSON Lines: \.jsonl"),
        ("x.jsonl.bz2", None, None, r"\.bz2 compression is not supported.*\.gz.*\.zst"),
        ("x.csv.xz", None, None, r"\.xz compression is not supported"),
        ("x.parquet.gz", None, None, "Parquet dataset is compressed inside"),
        ("x.parquet", None, "zstd", "Parquet dataset is compressed inside"),
        ("x.jsonl", "parquet", "gzip", "Parquet dataset is compressed inside"),
        ("-", "csv", None, "standard output .* JSON Lines only"),
        ("-", "parquet", None, "standard output .* JSON Lines only"),
        ("x.jsonl", "xml", None, "format must be one of jsonl, csv, parquet, not 'xml'"),
        ("x.jsonl", None, "lz4", "compression must be one of none, gzip, zstd"),
        ("x.jsonl", 3, None, "format must be one of"),
        ("", None, None, "empty"),
    ],
)
def test_infer_format_refuses_bad_names_and_combinations(
    path: str, fmt: Any, comp: Any, match: str
) -> None:
    with pytest.raises(OutputFormatError, match=match) as info:
        infer_format(path, fmt, comp)
    # One except clause catches every argument error of the package.
    assert isinstance(info.value, InvalidArgumentError)
    assert isinstance(info.value, OutputError)


# --- round trips -------------------------------------------------------------------------------


def write_batches(
    sink: Sink, batches: list[tuple[str, list[dict[str, Any]]]], every: int = 2
) -> None:
    for i, (token, tasks) in enumerate(batches):
        sink.write(token, tasks)
        if i % every == every - 1:
            sink.commit()


@pytest.mark.parametrize(("name", "fmt", "comp"), KINDS, ids=KIND_IDS)
def test_round_trip_of_the_servers_tasks(
    tmp_path: Path, name: str, fmt: OutputFormat, comp: Compression
) -> None:
    batches = server_batches()
    path = tmp_path / name
    assert infer_format(path) == (fmt, comp)
    with open_sink(path) as sink:
        assert (sink.format, sink.compression) == (fmt, comp)
        write_batches(sink, batches)
    expected = [(token, t) for token, tasks in batches for t in tasks]
    assert sink.rows_committed == sink.rows_written == len(expected)
    assert read_ids(path, fmt, comp) == [(token, t["task_id"]) for token, t in expected]
    if fmt is J:
        lines = read_jsonl(path, comp)
        # What the API sent, unchanged, with space_token first.
        assert lines == [{"space_token": token, **t} for token, t in expected]
        assert all(next(iter(line)) == "space_token" for line in lines)
    elif fmt is C:
        header, rows = read_csv(path, comp)
        assert tuple(header) == columns()
        assert [orjson.loads(r["output"]) if r["output"] else None for r in rows] == [
            t.get("output") for _, t in expected
        ]
    else:
        table = ds.dataset(path).to_table()
        assert table.schema.remove_metadata() == parquet_schema().remove_metadata()
        assert table.num_rows == len(expected)


@pytest.mark.parametrize(("name", "fmt", "comp"), KINDS, ids=KIND_IDS)
def test_round_trip_of_every_sample_shape(
    tmp_path: Path, name: str, fmt: OutputFormat, comp: Compression
) -> None:
    tasks = list(samples.named_samples().values()) + samples.random_tasks(5, 60)
    path = tmp_path / name
    with open_sink(path) as sink:
        sink.write("SPACE_A", tasks[:30])
        sink.commit()
        sink.write("SPACE_B", tasks[30:])
    if fmt is J:
        assert read_jsonl(path, comp) == [
            {"space_token": "SPACE_A" if i < 30 else "SPACE_B", **t} for i, t in enumerate(tasks)
        ]
    elif fmt is P:
        rows = read_parquet(path)
        assert [r["task_id"] for r in rows] == [t["task_id"] for t in tasks]
        for row, task in zip(rows, tasks, strict=True):
            assert_lossless(row, task)
    else:
        _, rows = read_csv(path, comp)
        assert [r["task_id"] for r in rows] == [t["task_id"] for t in tasks]


def csv_text(value: Any) -> str:
    """The documented CSV encoding of a Parquet value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return text + (f".{value.microsecond:06d}" if value.microsecond else "") + "Z"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def test_csv_holds_the_parquet_columns_and_values(tmp_path: Path) -> None:
    tasks = task_pool(250, seed=3)
    extra = {"synced_at": datetime}
    stamp = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2)))
    for name in ("t.csv", "t.parquet"):
        with open_sink(tmp_path / name, extra_columns=extra) as sink:
            sink.write("S1", tasks, extra={"synced_at": stamp})
    header, csv_rows = read_csv(tmp_path / "t.csv", NONE)
    pq_rows = read_parquet(tmp_path / "t.parquet")
    assert tuple(header) == columns(extra) == ("space_token", "synced_at", *TASK_COLUMNS)
    assert len(csv_rows) == len(pq_rows) == 250
    for c_row, p_row in zip(csv_rows, pq_rows, strict=True):
        assert c_row == {key: csv_text(value) for key, value in p_row.items()}
    assert csv_rows[0]["synced_at"] == "2026-03-01T10:00:00.250000Z"


def test_csv_of_no_tasks_is_its_header(tmp_path: Path) -> None:
    with open_sink(tmp_path / "e.csv.gz"):
        pass
    header, rows = read_csv(tmp_path / "e.csv.gz", GZ)
    assert (tuple(header), rows) == (columns(), [])


def test_csv_quotes_newlines_commas_and_quotes(tmp_path: Path) -> None:
    task = {"task_id": 'T,"1"\n', "status": "a\r\nb", "input": {"k": 'x,y\n"z"'}}
    with open_sink(tmp_path / "q.csv") as sink:
        sink.write("S", [task])
    (row,) = read_csv(tmp_path / "q.csv", NONE)[1]
    assert row["task_id"] == 'T,"1"\n'
    assert row["status"] == "a\r\nb"
    assert orjson.loads(row["input"]) == task["input"]


async def test_tasks_harvested_through_the_client_round_trip(tmp_path: Path, serve: Serve) -> None:
    # What the command line will do: encode_task of each harvested task, page by page.
    async with serve(seed=43, spaces=[120]) as (server, client):
        token = server.space_tokens[0]
        with open_sink(tmp_path / "h.parquet") as sink:
            async for task in client.iter_tasks(token, page_size=25):
                sink.write(token, [encode_task(task)])
        expected = server.expected_tasks(token)
    rows = read_parquet(tmp_path / "h.parquet")
    assert [r["task_id"] for r in rows] == [t["task_id"] for t in expected]
    for row, sent in zip(rows, expected, strict=True):
        assert_lossless(row, sent)


# --- the Parquet schema and values -------------------------------------------------------------

TS = pa.timestamp("us", tz="UTC")
DOCUMENTED_SCHEMA = pa.schema(
    [
        pa.field("space_token", pa.string(), nullable=False),
        ("task_id", pa.string()),
        ("_id", pa.string()),
        ("run_id", pa.string()),
        ("thread_id", pa.string()),
        ("status", pa.string()),
        ("execution_type", pa.string()),
        ("run_mode", pa.string()),
        ("assignee", pa.string()),
        ("created", TS),
        ("modified", TS),
        (
            "user_info",
            pa.struct(
                [
                    ("email", pa.string()),
                    ("full_name", pa.string()),
                    ("id", pa.int64()),
                    ("user_token", pa.string()),
                ]
            ),
        ),
        ("task", pa.struct([("objective", pa.string())])),
        ("input", pa.string()),
        ("output_shape", pa.string()),
        ("call_id", pa.string()),
        ("start_time", TS),
        ("end_time", TS),
        ("duration", pa.float64()),
        ("recording_url", pa.string()),
        ("call_status", pa.string()),
        ("call_type", pa.string()),
        ("call_end_reason", pa.string()),
        ("transcript", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("post_call_data", pa.string()),
        ("output", pa.string()),
        ("space_id", pa.string()),
        ("user", pa.int64()),
        ("user_org_id", pa.int64()),
        ("collection_ref", pa.string()),
        ("attachments", pa.string()),
        ("ref_id", pa.string()),
        ("other_fields", pa.string()),
    ]
)


def test_parquet_schema_is_the_documented_one(tmp_path: Path) -> None:
    assert parquet_schema().equals(DOCUMENTED_SCHEMA)
    with open_sink(tmp_path / "s.parquet") as sink:
        write_batches(sink, server_batches(), every=3)
    names = part_names(tmp_path / "s.parquet")
    assert len(names) > 1
    for name in names:
        schema = pq.read_schema(tmp_path / "s.parquet" / name)
        assert schema.equals(DOCUMENTED_SCHEMA)  # every part: one schema
        assert schema.metadata == {b"spacetasks_async.schema": b"1"}
    assert ds.dataset(tmp_path / "s.parquet").schema.equals(DOCUMENTED_SCHEMA)


def test_parquet_schema_with_extra_columns() -> None:
    extra = {"synced_at": datetime, "run": str, "n": int, "w": float, "ok": bool}
    schema = parquet_schema(extra)
    assert schema.names[:6] == ["space_token", "synced_at", "run", "n", "w", "ok"]
    assert [schema.field(i).type for i in range(1, 6)] == [
        TS,
        pa.string(),
        pa.int64(),
        pa.float64(),
        pa.bool_(),
    ]
    assert schema.names[6:] == DOCUMENTED_SCHEMA.names[1:]
    # The type names are accepted too (what a state records).
    assert parquet_schema({"synced_at": "timestamp"}).field(1).type == TS


def one_row(tmp_path: Path, task: dict[str, Any]) -> dict[str, Any]:
    path = tmp_path / f"one-{task['task_id']}-{len(os.listdir(tmp_path))}.parquet"
    with open_sink(path) as sink:
        sink.write("S", [task])
    (row,) = read_parquet(path)
    return row


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def test_native_output_columns(tmp_path: Path) -> None:
    task = samples.server_task()  # naive UTC times, as the server writes them
    row = one_row(tmp_path, task)
    assert row["created"] == utc(2026, 2, 7, 5, 57, 45)
    assert row["modified"] == utc(2026, 2, 7, 6, 2, 30, 123456)
    assert row["status"] == "in_progress"
    assert row["user_info"] == {
        "email": "user@example.com",
        "full_name": "John Doe",
        "id": 42,
        "user_token": samples.SECRET_USER_TOKEN,
    }
    assert row["task"] == {"objective": "Call the lead and discuss the project requirements."}
    assert orjson.loads(row["input"]) == task["input"]
    assert row["output_shape"] == "native"
    assert row["call_id"] == "CALL_7dAb3kR9mXvQ2pLw"
    assert row["start_time"] == utc(2026, 2, 7, 5, 57, 45)
    assert row["end_time"] == utc(2026, 2, 7, 6, 2, 30)
    assert row["duration"] == 285.0
    assert row["recording_url"].endswith("CALL_7dAb3kR9mXvQ2pLw.mp3")
    assert (row["call_status"], row["call_type"]) == ("completed", "outbound")
    assert row["transcript"] == [
        {"role": "agent", "content": "Hello, am I speaking with John Doe?"},
        {"role": "user", "content": "Yes, this is John."},
    ]
    assert orjson.loads(row["post_call_data"]) == task["output"]["post_call_data"]
    assert orjson.loads(row["output"]) == task["output"]
    assert (row["space_id"], row["user"], row["user_org_id"]) == ("sp_001", 42, 7)
    assert row["collection_ref"] == "col_2026_02"
    assert orjson.loads(row["attachments"]) == task["attachments"]
    assert row["ref_id"] is None
    assert row["other_fields"] is None  # every key has its column


def test_provider_output_columns(tmp_path: Path) -> None:
    task = samples.provider_task()
    row = one_row(tmp_path, task)
    assert row["output_shape"] == "provider"
    assert row["call_id"] == "019c2f4e-7a1b-7c3d-9e8f-0a1b2c3d4e5f"
    assert row["start_time"] == utc(2026, 2, 7, 5, 57, 45, 123000)
    assert row["end_time"] == utc(2026, 2, 7, 6, 2, 30, 456000)
    assert row["duration"] == pytest.approx(285.333)  # endedAt - startedAt
    assert row["recording_url"] == "https://storage.example.com/rec/019c2f4e.wav"
    assert (row["call_status"], row["call_type"]) == ("ended", "outbound")
    assert row["call_end_reason"] == "customer-ended-call"
    assert row["transcript"] == [{"role": "bot", "content": "Hello?"}]
    assert row["post_call_data"] is None
    assert orjson.loads(row["output"]) == task["output"]


def test_provider_output_variants(tmp_path: Path) -> None:
    output = samples.provider_output()
    output["durationSeconds"] = 12.5
    output["type"] = "webCall"
    del output["recordingUrl"]
    output["artifact"]["recordingUrl"] = "https://example.com/a.wav"
    row = one_row(tmp_path, samples.with_output(output))
    assert row["duration"] == 12.5
    assert row["call_type"] == "webCall"
    assert row["recording_url"] == "https://example.com/a.wav"


def test_offset_times_are_utc(tmp_path: Path) -> None:
    row = one_row(tmp_path, samples.offset_time_task())
    assert row["created"] == utc(2026, 2, 7, 5, 57, 45)
    assert row["modified"] == utc(2026, 2, 7, 6, 2, 30, 500000)


@pytest.mark.parametrize(
    ("output", "shape"),
    [
        (None, None),
        (..., None),
        ({}, "empty"),
        ("Email sent", "string"),
        ([{"channel": "email"}], "other"),
        (0, "other"),
        (False, "other"),
        ({"message_id": "<m@x>", "subject": "Re: hi"}, "object"),
        ({"queued_at": "2026-02-07T05:57:45"}, "object"),
    ],
)
def test_other_outputs_keep_the_whole_output(tmp_path: Path, output: Any, shape: str) -> None:
    row = one_row(tmp_path, samples.with_output(output))
    assert row["output_shape"] == shape
    call_columns = TASK_COLUMNS[TASK_COLUMNS.index("call_id") : TASK_COLUMNS.index("output")]
    assert all(row[c] is None for c in call_columns)
    assert row["output"] == (None if output in (None, ...) else orjson.dumps(output).decode())


def test_values_that_do_not_fit_their_column_go_to_other_fields(tmp_path: Path) -> None:
    task = samples.extra_keys_task()
    task["created"] = "not a time"
    task["user"] = "u_42"
    task["status"] = 3
    task["user_info"]["id"] = "u_1"
    task["output"]["duration"] = "long"  # inside output: null column, output keeps it
    row = one_row(tmp_path, task)
    other = orjson.loads(row["other_fields"])
    # In the API's key order; "task" has an unknown key (priority).
    assert list(other) == ["user_info", "task", "status", "created", "user", "new_top"]
    assert other["created"] == "not a time"
    assert other["user_info"] == task["user_info"]  # avatar and the string id, verbatim
    assert other["new_top"] == task["new_top"]
    assert (row["created"], row["user"], row["status"], row["duration"]) == (None,) * 4
    assert row["user_info"]["id"] is None
    assert row["user_info"]["email"] == "user@example.com"
    assert orjson.loads(row["output"])["duration"] == "long"
    assert_lossless(row, task)


_PLAIN = (
    *("task_id", "_id", "run_id", "thread_id", "status", "execution_type", "run_mode"),
    *("assignee", "space_id", "user", "user_org_id", "collection_ref", "ref_id"),
)


def normalised(task: dict[str, Any]) -> dict[str, Any]:
    """What columnar data keeps of a task: null = absent, times as UTC datetimes."""
    out: dict[str, Any] = {}
    for key, value in task.items():
        if value is None:
            continue
        if key in ("created", "modified") and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = parse_timestamp(value)
        if key in ("user_info", "task") and isinstance(value, dict):
            value = {k: v for k, v in value.items() if v is not None}
        out[key] = value
    return out


def rebuilt(row: dict[str, Any]) -> dict[str, Any]:
    """The task again from its row: the typed columns, then other_fields over them."""
    other = orjson.loads(row["other_fields"]) if row["other_fields"] is not None else {}
    task: dict[str, Any] = {}
    for key in (*_PLAIN, "created", "modified", "user_info", "task"):
        if row[key] is not None:
            # A scalar that does not fit is null in its column; a struct keeps what fits.
            if key not in ("user_info", "task"):
                assert key not in other, f"{key} both in its column and in other_fields"
            task[key] = row[key]
    for key in ("input", "output", "attachments"):
        if row[key] is not None:
            task[key] = orjson.loads(row[key])
    task.update(other)
    return normalised(task)


def assert_lossless(row: dict[str, Any], task: dict[str, Any]) -> None:
    assert rebuilt(row) == normalised(task)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32))
def test_nothing_of_a_random_task_is_lost(seed: int) -> None:
    task = samples.random_task(random.Random(seed))
    values = _task_values(task)
    row = dict(zip(TASK_COLUMNS, values, strict=True))
    # The row as Parquet stores it: through Arrow and back.
    table = pa.Table.from_pylist([{"space_token": "S", **row}], schema=DOCUMENTED_SCHEMA)
    (stored,) = table.to_pylist()
    assert_lossless(stored, task)


# --- standard output ---------------------------------------------------------------------------


def test_stdout_is_json_lines() -> None:
    stream = io.BytesIO()
    tasks = task_pool(5)
    with open_sink(STDOUT, stdout=stream) as sink:
        sink.write("S", tasks)
        assert stream.getvalue().count(b"\n") == 5  # each write reaches the reader at once
        state = sink.commit()
    assert not sink.resumable
    assert state["resumable"] is False
    assert [orjson.loads(line) for line in stream.getvalue().splitlines()] == [
        {"space_token": "S", **t} for t in tasks
    ]
    assert not stream.closed
    with pytest.raises(OutputFormatError, match="cannot be resumed"):
        open_sink(STDOUT, resume_state=state)


def test_stdout_defaults_to_sys_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with open_sink("-") as sink:
        sink.write("S", [{"task_id": "T1"}])
    assert capsysbinary.readouterr().out == b'{"space_token":"S","task_id":"T1"}\n'


def test_stdout_compressed_when_asked() -> None:
    stream = io.BytesIO()
    with open_sink("-", compression="gzip", stdout=stream) as sink:
        sink.write("S", [{"task_id": "T1"}])
        sink.commit()
        sink.write("S", [{"task_id": "T2"}])
    assert gzip.decompress(stream.getvalue()).count(b"\n") == 2


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_stdout_refuses_other_formats(fmt: str) -> None:
    with pytest.raises(OutputFormatError, match="JSON Lines only"):
        open_sink("-", fmt)


def test_a_resume_state_of_stdout_is_refused_for_a_file(tmp_path: Path) -> None:
    with open_sink("-", stdout=io.BytesIO()) as sink:
        state = sink.commit()
    with pytest.raises(OutputFormatError, match="standard output"):
        open_sink(tmp_path / "x.jsonl", resume_state=state)


# --- crash and resume --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fmt", "comp"), KINDS, ids=KIND_IDS)
@pytest.mark.parametrize("garbage", [b"", b'{"torn line', b"\x1f\x8b\x08\x00junk" * 50])
def test_crash_after_a_commit_resumes_exactly(
    tmp_path: Path, name: str, fmt: OutputFormat, comp: Compression, garbage: bytes
) -> None:
    pool = task_pool(90, seed=7)
    path = tmp_path / name
    sink = open_sink(path)
    sink.write("A", pool[:30])
    state = sink.commit()
    sink.write("A", pool[30:50])  # never committed: a crash loses it
    sink.abort()  # the process dies here
    if garbage:
        if fmt is P:
            tmp = path / f".part-00000001-{state['dataset_id']}.parquet.tmp"
            tmp.write_bytes(garbage)
        else:
            with open(path, "ab") as f:
                f.write(garbage)
    resumed = open_sink(path, resume_state=state)
    assert resumed.resumed and resumed.rows_written == resumed.rows_committed == 30
    resumed.write("B", pool[50:90])
    resumed.close()
    expected = [("A", t["task_id"]) for t in pool[:30]] + [("B", t["task_id"]) for t in pool[50:]]
    assert read_ids(path, fmt, comp) == expected
    assert resumed.state is not None and resumed.state["rows"] == 70
    if comp is GZ:
        with gzip.open(path) as f:  # the members of both runs read as one stream
            assert f.read().count(b"\n") == 70 + (fmt is C)
    if fmt is P:
        assert not [n for n in os.listdir(path) if n.startswith(".")]  # temp files cleaned


@pytest.mark.parametrize(("name", "fmt", "comp"), KINDS, ids=KIND_IDS)
def test_a_commit_whose_checkpoint_was_lost_is_cut_back(
    tmp_path: Path, name: str, fmt: OutputFormat, comp: Compression
) -> None:
    # Crash between sink.commit() and saving the checkpoint: the older state is the truth.
    pool = task_pool(60, seed=8)
    path = tmp_path / name
    with open_sink(path) as sink:
        sink.write("A", pool[:20])
        state = sink.commit()
        sink.write("A", pool[20:40])
        sink.commit()  # durable, but the checkpoint holding this state was never written
    with open_sink(path, resume_state=state) as resumed:
        resumed.write("B", pool[40:])
    assert read_ids(path, fmt, comp) == [("A", t["task_id"]) for t in pool[:20]] + [
        ("B", t["task_id"]) for t in pool[40:]
    ]


@pytest.mark.parametrize(("name", "fmt", "comp"), KINDS, ids=KIND_IDS)
def test_resume_of_a_state_with_nothing_committed(
    tmp_path: Path, name: str, fmt: OutputFormat, comp: Compression
) -> None:
    path = tmp_path / name
    sink = open_sink(path)
    state = sink.commit()
    sink.write("A", task_pool(5))
    sink.abort()
    with open_sink(path, resume_state=state) as resumed:
        resumed.write("B", task_pool(3, seed=1))
    assert [s for s, _ in read_ids(path, fmt, comp)] == ["B"] * 3
    if fmt is C:
        assert tuple(read_csv(path, comp)[0]) == columns()  # the header is written again


@pytest.mark.parametrize(("name", "fmt", "comp"), STREAM_KINDS, ids=KIND_IDS[:-1])
def test_resume_refuses_a_replaced_file(
    tmp_path: Path, name: str, fmt: OutputFormat, comp: Compression
) -> None:
    path = tmp_path / name
    with open_sink(path) as sink:
        sink.write("A", task_pool(20))
        state = sink.commit()
    original = path.read_bytes()
    # Another file of the same size: same length, other bytes.
    other = bytes(b ^ 0x55 for b in original) + b"more"
    path.write_bytes(other)
    with pytest.raises(OutputChangedError, match="changed or replaced"):
        open_sink(path, resume_state=state)
    assert path.read_bytes() == other  # never truncated
    path.write_bytes(original[:-1])
    with pytest.raises(OutputChangedError, match="shorter"):
        open_sink(path, resume_state=state)
    path.unlink()
    with pytest.raises(OutputChangedError, match="does not exist"):
        open_sink(path, resume_state=state)
    path.mkdir()
    with pytest.raises(OutputChangedError, match="directory"):
        open_sink(path, resume_state=state)


def test_resume_refuses_a_change_before_the_commit_point(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    with open_sink(path) as sink:
        sink.write("A", task_pool(200))  # well over the 64 KiB that are hashed
        state = sink.commit()
    data = bytearray(path.read_bytes())
    data[-10] ^= 1  # a change inside the hashed tail
    path.write_bytes(bytes(data) + b"after")
    with pytest.raises(OutputChangedError):
        open_sink(path, resume_state=state)


def test_an_empty_state_does_not_empty_another_file(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    sink = open_sink(path)
    state = sink.commit()  # nothing committed: size 0, no tail to compare
    sink.close()
    # Identity is the inode: kept aside (not deleted), so the new file cannot reuse it.
    path.rename(tmp_path / "moved.jsonl")
    path.write_bytes(b"someone else's data\n")
    with pytest.raises(OutputChangedError, match="not the file"):
        open_sink(path, resume_state=state)
    assert path.read_bytes() == b"someone else's data\n"


def test_resume_refuses_a_changed_dataset(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    with open_sink(path) as sink:
        for i in range(3):
            sink.write("A", task_pool(10, seed=i))
            sink.commit()
        state = sink.commit()
    names = part_names(path)
    assert list(state["parts"]) == names and len(names) == 3

    (path / "notes.csv").write_text("x\n")  # readers would take it as data
    with pytest.raises(OutputChangedError, match=r"notes\.csv"):
        open_sink(path, resume_state=state)
    (path / "notes.csv").unlink()

    foreign = path / "part-00000009-00000000.parquet"  # another dataset's part
    foreign.write_bytes(b"x")
    with pytest.raises(OutputChangedError, match="did not write"):
        open_sink(path, resume_state=state)
    foreign.unlink()

    first = path / names[0]
    kept = first.read_bytes()
    first.write_bytes(kept + b"x")
    with pytest.raises(OutputChangedError, match="size"):
        open_sink(path, resume_state=state)
    first.write_bytes(kept)

    first.unlink()
    with pytest.raises(OutputChangedError, match="lacks"):
        open_sink(path, resume_state=state)
    assert part_names(path) == names[1:]  # nothing was deleted
    first.write_bytes(kept)

    (path / ".DS_Store").write_bytes(b"")  # hidden files are no one's data: left alone
    with open_sink(path, resume_state=state) as resumed:
        resumed.write("B", task_pool(4, seed=9))
    assert len(read_parquet(path)) == 34
    assert (path / ".DS_Store").exists()


def test_resume_refuses_a_missing_dataset(tmp_path: Path) -> None:
    with open_sink(tmp_path / "d.parquet") as sink:
        sink.write("A", task_pool(3))
        state = sink.commit()
    with pytest.raises(OutputChangedError, match="not there"):
        open_sink(tmp_path / "other.parquet", resume_state=state)


def test_resume_state_must_match_the_output(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl.gz"
    with open_sink(path, extra_columns={"synced_at": datetime}) as sink:
        state = sink.commit()
    with pytest.raises(OutputFormatError, match="started with compression gzip, not none"):
        open_sink(path, compression="none", resume_state=state)
    with pytest.raises(OutputFormatError, match="started as jsonl, not csv"):
        open_sink(path, "csv", resume_state=state)
    with pytest.raises(OutputFormatError, match="extra columns"):
        open_sink(path, resume_state=state)
    with open_sink(path, resume_state=state, extra_columns={"synced_at": "timestamp"}):
        pass


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"version": 2}, "version 1"),
        ({"size": -1}, "size"),
        ({"size": "12"}, "size"),
        ({"tail_size": 10**9}, "tail"),
        ({"tail_sha256": "zz"}, "tail_sha256"),
        ({"rows": True}, "rows"),
        ({"file_id": "x"}, "file_id"),
    ],
)
def test_malformed_stream_states_are_refused(
    tmp_path: Path, change: dict[str, Any], match: str
) -> None:
    path = tmp_path / "x.jsonl"
    with open_sink(path) as sink:
        sink.write("A", task_pool(2))
        state = sink.commit()
    with pytest.raises(OutputFormatError, match=match):
        open_sink(path, resume_state={**state, **change})
    with pytest.raises(OutputFormatError, match="not an object"):
        open_sink(path, resume_state=["x"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "parts",
    [
        {"../escape.parquet": 10},
        {"part-00000000-ffffffff.parquet": 10},  # another dataset's name
        {"part-00000000-{id}.parquet": -1},
        ["part-00000000-{id}.parquet"],
    ],
)
def test_malformed_parquet_states_are_refused(tmp_path: Path, parts: Any) -> None:
    path = tmp_path / "d.parquet"
    with open_sink(path) as sink:
        state = sink.commit()
    dataset_id = state["dataset_id"]
    if isinstance(parts, dict):
        parts = {k.format(id=dataset_id): v for k, v in parts.items()}
    else:
        parts = [p.format(id=dataset_id) for p in parts]
    with pytest.raises(OutputFormatError, match="parts"):
        open_sink(path, resume_state={**state, "parts": parts})
    with pytest.raises(OutputFormatError, match="dataset_id"):
        open_sink(path, resume_state={**state, "dataset_id": "../.."})


# --- a random history of writes, commits and crashes -------------------------------------------

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 6)),
        st.tuples(st.just("commit"), st.just(0)),
        st.tuples(st.just("commit_lost"), st.just(0)),
        st.tuples(st.just("crash"), st.integers(0, 2)),
    ),
    max_size=14,
)
_POOL = task_pool(120, seed=11)


@pytest.mark.parametrize(("name", "fmt", "comp"), KINDS, ids=KIND_IDS)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=_OPS)
def test_random_histories_keep_every_committed_row_once(
    name: str, fmt: OutputFormat, comp: Compression, ops: list[tuple[str, int]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        tasks: Iterator[dict[str, Any]] = iter(_POOL)
        sink = open_sink(path, row_group_size=4)
        state: dict[str, Any] | None = None
        recorded: list[tuple[str, str]] = []  # the rows as of the saved checkpoint
        current: list[tuple[str, str]] = []  # the rows as written by this process
        for step, (op, n) in enumerate(ops):
            if op == "write":
                batch = [next(tasks) for _ in range(n)]
                token = f"S{step % 3}"
                sink.write(token, batch)
                current += [(token, t["task_id"]) for t in batch]
            elif op == "commit":
                state = sink.commit()
                recorded = list(current)
            elif op == "commit_lost":
                sink.commit()
            else:
                sink.abort()
                if n == 1 and path.is_file():
                    with open(path, "ab") as f:
                        f.write(b'\x00{"torn')
                if n == 2 and path.is_dir() and state is not None:
                    stray = path / f"part-99999999-{state['dataset_id']}.parquet"
                    stray.write_bytes(b"PAR1 a part renamed after the last checkpoint")
                if state is None:  # no checkpoint yet: start over
                    sink = open_sink(path, overwrite=True, row_group_size=4)
                else:
                    sink = open_sink(path, resume_state=state, row_group_size=4)
                current = list(recorded)
                assert sink.rows_written == len(current)
        sink.close()
        assert read_ids(path, fmt, comp) == current
        assert sink.rows_committed == len(current)


# --- fresh outputs: existing data, modes -------------------------------------------------------


@pytest.mark.parametrize(("name", "fmt", "comp"), STREAM_KINDS, ids=KIND_IDS[:-1])
def test_a_fresh_file_does_not_replace_an_existing_one(
    tmp_path: Path, name: str, fmt: OutputFormat, comp: Compression
) -> None:
    path = tmp_path / name
    path.write_bytes(b"precious")
    path.chmod(0o644)
    with pytest.raises(OutputExistsError, match="exists"):
        open_sink(path)
    assert path.read_bytes() == b"precious"
    with open_sink(path, overwrite=True) as sink:
        sink.write("A", task_pool(3))
    assert len(read_ids(path, fmt, comp)) == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds tokens now


def test_a_stream_output_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(OutputExistsError, match="directory"):
        open_sink(tmp_path, "jsonl", overwrite=True)


def test_a_fresh_dataset_does_not_replace_existing_data(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    with open_sink(path) as sink:
        sink.write("A", task_pool(5))
    with pytest.raises(OutputExistsError, match="not empty"):
        open_sink(path)
    with open_sink(path, overwrite=True) as sink:  # our parts are replaced
        sink.write("B", task_pool(2))
    assert [s for s, _ in read_ids(path, P, NONE)] == ["B", "B"]
    (path / "readme.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="refusing to delete"):
        open_sink(path, overwrite=True)
    assert len(read_parquet(path)) == 2
    (tmp_path / "file.parquet").write_text("x")
    with pytest.raises(OutputExistsError, match="not a directory"):
        open_sink(tmp_path / "file.parquet", overwrite=True)


def test_an_existing_empty_directory_is_used(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    path.mkdir()
    (path / ".hidden").write_text("")
    with open_sink(path) as sink:
        sink.write("A", task_pool(2))
    assert len(read_parquet(path)) == 2


@pytest.mark.parametrize(("name", "fmt", "comp"), KINDS, ids=KIND_IDS)
def test_outputs_are_private(
    tmp_path: Path, name: str, fmt: OutputFormat, comp: Compression
) -> None:
    old = os.umask(0)  # even a permissive umask gives private files
    try:
        path = tmp_path / name
        with open_sink(path) as sink:
            sink.write("A", task_pool(3))
            sink.commit()
            sink.write("A", task_pool(3, seed=1))
    finally:
        os.umask(old)
    if fmt is P:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        files = [path / n for n in os.listdir(path)]
        assert len(files) == 2
    else:
        files = [path]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)


# --- Parquet: row groups, empty datasets, readers ----------------------------------------------


def test_memory_is_bounded_by_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    sink = open_sink(path, row_group_size=10)
    sink.write("A", task_pool(35))
    temps = [n for n in os.listdir(path) if n.endswith(".tmp")]
    assert len(temps) == 1 and not part_names(path)  # 30 rows went out, hidden until commit
    state = sink.commit()
    sink.close()
    (name,) = part_names(path)
    assert list(state["parts"]) == [name]
    meta = pq.ParquetFile(path / name).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [10, 10, 10, 5]


def test_an_empty_dataset_is_readable(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    with open_sink(path):
        pass
    table = ds.dataset(path).to_table()
    assert table.num_rows == 0
    assert table.schema.equals(DOCUMENTED_SCHEMA)


def test_parts_read_in_write_order(tmp_path: Path) -> None:
    path = tmp_path / "o.parquet"
    pool = task_pool(60, seed=4)
    with open_sink(path) as sink:
        for i in range(12):
            sink.write(f"S{i}", pool[i * 5 : i * 5 + 5])
            sink.commit()
    ids = [t["task_id"] for t in pool]
    assert ds.dataset(path).to_table().column("task_id").to_pylist() == ids
    pd = pytest.importorskip("pandas")
    assert pd.read_parquet(path)["task_id"].tolist() == ids


def test_pandas_reads_the_dataset_in_one_line(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    path = tmp_path / "t.parquet"
    with open_sink(path) as sink:
        write_batches(sink, server_batches())
    df = pd.read_parquet(path)
    assert len(df) == sum(len(t) for t in SERVER_TASKS.values())
    assert list(df.columns) == list(columns())
    for col in ("created", "modified", "start_time", "end_time"):
        assert str(df[col].dtype) == "datetime64[us, UTC]"
    assert set(df["output_shape"].dropna()) >= {"native", "provider", "empty"}
    assert str(df["duration"].dtype) == "float64"


def test_duckdb_and_polars_read_the_dataset(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    path = tmp_path / "t.parquet"
    with open_sink(path) as sink:
        write_batches(sink, server_batches())
    total = sum(len(t) for t in SERVER_TASKS.values())
    ((count, kind),) = duckdb.sql(
        f"select count(*), any_value(typeof(created)) from '{path}/*.parquet'"
    ).fetchall()
    assert (count, kind) == (total, "TIMESTAMP WITH TIME ZONE")
    assert pl.read_parquet(f"{path}/*.parquet").height == total


# --- extra columns -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fmt", "comp"), KINDS, ids=KIND_IDS)
def test_extra_columns(tmp_path: Path, name: str, fmt: OutputFormat, comp: Compression) -> None:
    path = tmp_path / name
    when = datetime(2026, 2, 7, 11, 27, 45, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    with open_sink(path, extra_columns={"synced_at": datetime, "batch": int}) as sink:
        sink.write("A", [{"task_id": "T1"}], extra={"synced_at": when, "batch": 1})
        sink.write("A", [{"task_id": "T2", "synced_at": "the API's own"}])
    if fmt is J:
        first, second = read_jsonl(path, comp)
        assert list(first) == ["space_token", "synced_at", "batch", "task_id"]
        assert first["synced_at"] == "2026-02-07T05:57:45Z"
        assert second["synced_at"] == "the API's own"  # a task key wins in JSON Lines
    elif fmt is C:
        first, second = read_csv(path, comp)[1]
        assert (first["synced_at"], first["batch"]) == ("2026-02-07T05:57:45Z", "1")
        assert (second["synced_at"], second["batch"]) == ("", "")
        assert orjson.loads(second["other_fields"]) == {"synced_at": "the API's own"}
    else:
        first, second = read_parquet(path)
        assert first["synced_at"] == utc(2026, 2, 7, 5, 57, 45)
        assert first["batch"] == 1
        assert second["synced_at"] is None


@pytest.mark.parametrize(
    ("declared", "match"),
    [
        ({"task_id": str}, "hide a column"),
        ({"space_token": str}, "hide a column"),
        ({"x": list}, "use str, int, float, bool or datetime"),
        ({"x": "decimal"}, "use str"),
        ({"": str}, "non-empty"),
    ],
)
def test_bad_extra_column_declarations(
    tmp_path: Path, declared: dict[str, Any], match: str
) -> None:
    with pytest.raises(OutputFormatError, match=match):
        open_sink(tmp_path / "x.jsonl", extra_columns=declared)
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"other": 1}, "not declared"),
        ({"synced_at": datetime(2026, 1, 1)}, "timezone-aware"),  # naive: refused
        ({"synced_at": "2026-01-01T00:00:00Z"}, "timezone-aware datetime, not str"),
        ({"n": True}, "an int"),
        ({"n": 2**63}, "an int"),
        ({"f": "1.5"}, "a float"),
        ({"b": 1}, "a bool"),
        ({"s": 1}, "a str"),
    ],
)
def test_bad_extra_values(tmp_path: Path, extra: dict[str, Any], match: str) -> None:
    declared = {"synced_at": datetime, "n": int, "f": float, "b": bool, "s": str}
    with open_sink(tmp_path / "x.jsonl", extra_columns=declared) as sink:
        with pytest.raises(InvalidArgumentError, match=match):
            sink.write("A", [{"task_id": "T1"}], extra=extra)
        assert sink.rows_written == 0
        sink.write("A", [{"task_id": "T1"}], extra={"f": 2, "b": False, "n": -1})
    (line,) = read_jsonl(tmp_path / "x.jsonl", NONE)
    assert line == {
        "space_token": "A",
        "synced_at": None,
        "n": -1,
        "f": 2.0,
        "b": False,
        "s": None,
        "task_id": "T1",
    }


# --- bad input, broken and closed sinks --------------------------------------------------------


@pytest.mark.parametrize(("name", "fmt", "comp"), KINDS, ids=KIND_IDS)
def test_a_batch_that_cannot_be_written_leaves_the_output_unchanged(
    tmp_path: Path, name: str, fmt: OutputFormat, comp: Compression
) -> None:
    path = tmp_path / name
    with open_sink(path) as sink:
        sink.write("A", [{"task_id": "T1"}])
        bad: list[dict[str, Any]] = [{"task_id": "T2"}, {"task_id": "T3", "input": {"n": {1, 2}}}]
        with pytest.raises(InvalidArgumentError, match="T3"):
            sink.write("A", bad)
        with pytest.raises(InvalidArgumentError, match=r"tasks\[1\] must be a task object"):
            sink.write("A", [{"task_id": "T4"}, "T5"])  # type: ignore[list-item]
        with pytest.raises(InvalidArgumentError, match="space_token"):
            sink.write("", [{"task_id": "T6"}])
        assert sink.rows_written == 1
        sink.write("A", iter([{"task_id": "T7"}]))  # any iterable of tasks
    assert [i for _, i in read_ids(path, fmt, comp)] == ["T1", "T7"]


def test_a_closed_sink_refuses_more(tmp_path: Path) -> None:
    sink = open_sink(tmp_path / "x.jsonl")
    sink.close()
    sink.close()  # twice is fine
    sink.abort()
    assert sink.closed
    with pytest.raises(OutputError, match="closed"):
        sink.write("A", [{"task_id": "T1"}])
    with pytest.raises(OutputError, match="closed"):
        sink.commit()
    assert "closed" in repr(sink) and "x.jsonl" in repr(sink)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_write_error_breaks_the_sink() -> None:
    sink = open_sink("/dev/full", "jsonl", overwrite=True)
    with pytest.raises(OSError, match="No space"):
        sink.write("A", [{"task_id": "T1"}])
    with pytest.raises(OutputError, match="failed earlier"):
        sink.write("A", [{"task_id": "T2"}])
    with pytest.raises(OutputError, match="resume from the last checkpoint"):
        sink.commit()
    sink.close()  # only releases it
    assert sink.closed


def test_a_non_regular_output_works_but_is_not_resumable(tmp_path: Path) -> None:
    with open_sink(os.devnull, "jsonl", overwrite=True) as sink:
        sink.write("A", [{"task_id": "T1"}])
        state = sink.commit()
    with pytest.raises(OutputChangedError, match="not a regular file"):
        open_sink(os.devnull, "jsonl", resume_state=state)


def test_bad_row_group_size(tmp_path: Path) -> None:
    with pytest.raises(OutputFormatError, match="row_group_size"):
        open_sink(tmp_path / "x.parquet", row_group_size=0)


def test_errors_are_package_errors() -> None:
    for cls in (OutputFormatError, OutputExistsError, OutputChangedError, MissingDependencyError):
        assert issubclass(cls, OutputError)
        assert issubclass(cls, SpaceTasksError)
    assert issubclass(MissingDependencyError, ImportError)


# --- optional dependencies ---------------------------------------------------------------------


def test_parquet_without_pyarrow_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError) as info:
        open_sink(tmp_path / "x.parquet")
    assert "pip install 'spacetasks-async[parquet]'" in str(info.value)
    assert "pyarrow" in str(info.value)
    assert not (tmp_path / "x.parquet").exists()  # nothing touched
    with pytest.raises(ImportError, match="spacetasks-async\\[parquet\\]"):
        parquet_schema()
    # The other formats do not need it.
    with open_sink(tmp_path / "x.csv") as sink:
        sink.write("A", [samples.provider_task()])


def test_zstd_without_zstandard_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'spacetasks-async\[zstd\]'"):
        open_sink(tmp_path / "x.jsonl.zst")
    assert not (tmp_path / "x.jsonl.zst").exists()
    with open_sink(tmp_path / "x.jsonl.gz") as sink:  # gzip is in the standard library
        sink.write("A", [{"task_id": "T1"}])


def test_jsonl_lines_are_the_head_then_the_task_as_a_merged_dict_would_write_them() -> None:
    # The oracle: orjson of {**head, **task}, what a reader gets from json.loads too. Lines
    # are spliced from the task's own text; a task sharing a key with the head, an empty
    # task and non-ASCII or nested values must come out the same.
    tasks: list[dict[str, Any]] = [
        {"task_id": "T1", "input": {"name": "José", "n": [1, 2.5, None]}},
        {"task_id": "T2", "space_token": "FROM-THE-SERVER"},
        {},
        {"task_id": "T3", "created": "2026-02-07T05:57:45"},
    ]
    stream = io.BytesIO()
    with open_sink(STDOUT, stdout=stream) as sink:
        sink.write("S", tasks)
    expected = b"".join(
        orjson.dumps({"space_token": "S", **t}, option=orjson.OPT_APPEND_NEWLINE) for t in tasks
    )
    assert stream.getvalue() == expected


def test_jsonl_writes_a_task_given_as_json_text_as_it_is() -> None:
    # Text that can follow the head is written byte for byte (spacing and escapes kept);
    # text holding a key of the head, spanning lines, or an empty object is parsed and
    # written as its object would be.
    texts = [
        b'{ "task_id" : "T1", "name": "Jos\\u00e9" }',
        b'{"task_id":"T2","space_token":"FROM-THE-SERVER"}',
        b'{"task_id":"T3",\n"status":"pending"}',
        b"{}",
        b'{"task_id":"T4"}',
    ]
    stream = io.BytesIO()
    with open_sink(STDOUT, stdout=stream) as sink:
        sink.write("S", texts)
    lines = stream.getvalue().split(b"\n")
    assert lines[0] == b'{"space_token":"S", "task_id" : "T1", "name": "Jos\\u00e9" }'
    assert lines[-1] == b""
    assert [orjson.loads(line) for line in lines[:-1]] == [
        {"space_token": "S", **orjson.loads(t)} for t in texts
    ]
    assert lines[2] == b'{"space_token":"S","task_id":"T3","status":"pending"}'


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_typed_formats_take_json_text_like_the_object(tmp_path: Path, suffix: str) -> None:
    tasks = task_pool(6)
    texts = [orjson.dumps(t) for t in tasks]
    rows = []
    for name, batch in (("objects", tasks), ("texts", texts)):
        out = tmp_path / f"{name}.{suffix}"
        with open_sink(out) as sink:
            sink.write("S", batch)
            sink.commit()
        if suffix == "csv":
            rows.append(out.read_bytes())
        else:
            rows.append(ds.dataset(out, format="parquet").to_table().to_pylist())
    assert rows[0] == rows[1]


@pytest.mark.parametrize(
    ("text", "message"),
    [(b"[1]", "not an object"), (b'{"a":', "not valid JSON"), (b"{}{", "not valid JSON")],
)
def test_json_text_that_is_not_an_object_is_refused_by_typed_formats(
    tmp_path: Path, text: bytes, message: str
) -> None:
    with open_sink(tmp_path / "out.csv") as sink:
        with pytest.raises(InvalidArgumentError, match=message):
            sink.write("S", [text])
