"""Where a harvest goes: JSON Lines, CSV or a Parquet dataset, plain or compressed, resumable.

A program (the command line among them) writes tasks through a :class:`Sink`::

    fmt, comp = infer_format(path, user_format)      # early: a bad name fails before any request
    sink = open_sink(path, fmt, comp, resume_state=saved_state, overwrite=force)
    try:
        for page in pages:                            # the raw task objects, as the API sent them
            sink.write(space_token, page_tasks, extra={"synced_at": now})
            if it is time to checkpoint:
                checkpoint["output_state"] = sink.commit()   # durable now; store it, then save
        checkpoint["output_state"] = sink.commit()
    finally:
        sink.close()

The interface
-------------
- :func:`infer_format` ``(path, format=None, compression=None) -> (OutputFormat, Compression)``
- :func:`open_sink` ``(path, format=None, compression=None, *, resume_state=None,
  overwrite=False, extra_columns=None, stdout=None, row_group_size=10_000) -> Sink``
- :meth:`Sink.write` ``(space_token, tasks, extra=None)``: convert and write a batch;
  :meth:`Sink.commit` ``-> dict``: make it durable, return the state to checkpoint;
  :meth:`Sink.close`: commit what is pending and release (its state is then
  :attr:`Sink.state`); :meth:`Sink.abort`: release without finishing, as a crash would.
  Also :attr:`Sink.rows_written`, :attr:`Sink.rows_committed`, :attr:`Sink.resumable`,
  :attr:`Sink.resumed`, :attr:`Sink.columns`, :attr:`Sink.closed`.
- :func:`columns` ``(extra_columns=None) -> tuple[str, ...]`` and :func:`parquet_schema`
  ``(extra_columns=None) -> pyarrow.Schema``: the documented layout below.

Choosing the format
-------------------
The name decides, unless a format is given (which then wins over the name):
``x.jsonl`` (or ``.ndjson``), ``x.jsonl.gz``, ``x.jsonl.zst``, ``x.csv``, ``x.csv.gz``,
``x.csv.zst``, and ``x.parquet``, which is a *directory* (a dataset of part files). ``.gz`` is
gzip and ``.zst`` (or ``.zstd``) zstd; a given compression wins over the name too. ``-`` is
standard output and takes JSON Lines only (compressed if a compression is given). An
unknown suffix without a format, another compression suffix (``.bz2``, ``.xz``, ...), or
Parquet with a compression are :class:`OutputFormatError`: Parquet compresses inside its files.

Rows
----
The input is, per call of :meth:`Sink.write`, one ``space_token`` and the task objects of that
space exactly as the API sent them (``dict``), plus optional values of *extra columns*
declared when the sink is opened (``extra_columns={"synced_at": datetime}``; types ``str``,
``int``, ``float``, ``bool`` and timezone-aware ``datetime``, a missing value is null).

- **JSON Lines**: one object per task: ``space_token`` first, then the extra columns, then
  every key the API sent, unchanged (a task key of the same name wins). Extra ``datetime``
  values are written in UTC as ``...Z``.
- **CSV** and **Parquet** hold the same columns with the same values, below. CSV writes one
  header line, RFC 4180 quoting (CRLF line ends), UTF-8; null is the empty cell, a timestamp
  is ISO 8601 UTC with ``Z``, a struct or list is JSON text, a boolean ``true``/``false``.

Columns (CSV and Parquet), in this order; ``json`` columns are JSON text (``string``)::

    space_token      string not null  the space the task was harvested from
    <extra columns>  as declared      in the order declared (str: string, int: int64,
                                      float: float64, bool: bool, datetime: timestamp)
    task_id          string
    _id              string
    run_id           string
    thread_id        string
    status           string           pending, completed, ... (any value, as sent)
    execution_type   string
    run_mode         string
    assignee         string
    created          timestamp[us, tz=UTC]   naive, Z and +hh:mm times are all UTC
    modified         timestamp[us, tz=UTC]
    user_info        struct<email: string, full_name: string, id: int64, user_token: string>
    task             struct<objective: string>
    input            json
    output_shape     string           native | provider | empty | object | string | other
    call_id          string           native call_id, provider id
    start_time       timestamp[us, tz=UTC]   native start_time, provider startedAt
    end_time         timestamp[us, tz=UTC]   native end_time, provider endedAt
    duration         float64          seconds: native duration, provider durationSeconds,
                                      else endedAt - startedAt
    recording_url    string           native recording_url, provider recordingUrl
                                      (or artifact.recordingUrl)
    call_status      string           native call_status, provider status (as sent)
    call_type        string           native call_type; provider type, with
                                      outboundPhoneCall/inboundPhoneCall as outbound/inbound
    call_end_reason  string           native call_end_reason, provider endedReason
    transcript       list<struct<role: string, content: string>>
                                      native transcript; provider artifact.messages
                                      (role as sent, content from message)
    post_call_data   json             native post_call_data
    output           json             the whole output, as sent
    space_id         string
    user             int64
    user_org_id      int64
    collection_ref   string
    attachments      json
    ref_id           string
    other_fields     json             see below

``output_shape`` says which ``output`` it was: ``native`` (an object with a snake_case call
key), ``provider`` (the voice provider's camelCase object), ``empty`` (``{}``), ``object``
(any other object, e.g. an email's), ``string``, ``other`` (an array, number or boolean);
null when ``output`` is null or absent. The call columns are null where the output has no
such value or it has another type; ``output`` keeps the whole of it.

Nothing is lost: ``other_fields`` is a JSON object of every top-level key that the typed
columns do not hold exactly, with the value as sent: unknown keys, and known keys whose value
has another type than its column (``created`` that is not a time, ``user_info`` with a key
not in the struct or an ``id`` that is not an integer, ...). Null when there is none. As
everywhere in columnar data, a key that is absent and one sent as ``null`` both read as null.

Parquet: one schema (:func:`parquet_schema`) for every part, zstd-compressed (snappy where
pyarrow lacks zstd), one row group per ``row_group_size`` rows. The dataset directory holds
``part-<8 digits>-<dataset id>.parquet`` files in write order; temporary files are hidden
(``.part-....tmp``), so readers skip them. Reading it is one line each::

    pandas.read_parquet("tasks.parquet")
    polars.read_parquet("tasks.parquet/*.parquet")
    duckdb.sql("select * from 'tasks.parquet/*.parquet'")
    pyarrow.dataset.dataset("tasks.parquet").to_table()

Checkpoint and resume
---------------------
:meth:`Sink.commit` makes everything written so far durable (fsync, and the directory entry)
and returns a small JSON-able *state* for the caller's checkpoint. Opening with
``resume_state=`` that state checks that the output is still the one the state describes and
cuts it back to exactly that point; anything written after it (a torn line, a half gzip
member, a part file renamed after the commit whose checkpoint was never saved) is removed.

- JSON Lines and CSV files: the state records the byte size and a SHA-256 of the last
  64 KiB before it. A resume refuses (:class:`OutputChangedError`) a file that is shorter,
  whose tail differs, that is not a regular file, or that is missing while the state records
  data; only then is the file truncated. Compressed files close a gzip member / zstd frame at
  every commit, so the file is valid at every commit point; a resume truncates to that member
  boundary and appends new members (concatenated members are one valid gzip / zstd stream,
  ``gzip.open`` and ``zstd -d`` read the whole).
- Parquet: each commit writes what was buffered since the last one as one new part file
  (a hidden temporary name, fsync, rename, fsync of the directory); the state lists the
  committed part names with their sizes. A resume refuses a dataset that lacks a recorded
  part or whose part has another size, or that holds a visible file this dataset did not
  write; then it deletes this dataset's parts and temporary files that the state does not
  list. Memory is bounded by ``row_group_size`` rows: full row groups go to the pending
  (temporary) part as they fill.

The state (a ``dict``; treat it as opaque, store it as JSON)::

    {"version": 1, "format": "jsonl", "compression": "gzip", "columns": {"synced_at": "timestamp"},
     "rows": 1200, "resumable": true,
     "size": 48213, "tail_size": 48213, "tail_sha256": "<hex>", "file_id": [dev, inode]}
    {"version": 1, "format": "parquet", "compression": "none", "columns": {}, "rows": 1200,
     "resumable": true, "dataset_id": "<8 hex>", "parts": {"part-00000000-<id>.parquet": 9120}}

A resume must use the same format, compression and extra columns as the state
(:class:`OutputFormatError` otherwise). Standard output is not resumable.

Files and safety
----------------
Outputs hold users' data and tokens: files are created with mode 0600 and a Parquet dataset
directory that the sink creates with mode 0700. A fresh sink never replaces an existing output
(:class:`OutputExistsError`) unless ``overwrite=True``; even then a Parquet directory is only
emptied of part files of this layout, and one holding anything else is refused.

pyarrow (Parquet) and zstandard (zstd) are optional and imported only when needed; without
them :func:`open_sink` raises :class:`MissingDependencyError` naming
``pip install 'spacetasks-async[parquet]'`` / ``'spacetasks-async[zstd]'``.

A sink is synchronous (its I/O blocks, :meth:`Sink.commit` fsyncs) and is used by one thread
at a time; an asyncio caller may run ``commit`` in a worker thread.
"""

from __future__ import annotations

import abc
import csv
import enum
import hashlib
import importlib
import io
import os
import re
import secrets
import stat
import sys
import zlib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import ModuleType, TracebackType
from typing import IO, Any, Final, Protocol, TypeGuard, TypeVar

import orjson

from ._convert import _NATIVE_ONLY, _PROVIDER_ONLY, parse_timestamp
from ._errors import (
    InvalidArgumentError,
    MissingDependencyError,
    OutputChangedError,
    OutputError,
    OutputExistsError,
    OutputFormatError,
)

__all__ = [
    "STATE_VERSION",
    "STDOUT",
    "TASK_COLUMNS",
    "Compression",
    "MissingDependencyError",
    "OutputChangedError",
    "OutputError",
    "OutputExistsError",
    "OutputFormat",
    "OutputFormatError",
    "Sink",
    "columns",
    "infer_format",
    "open_sink",
    "parquet_schema",
]

STDOUT: Final = "-"
"""The path that means standard output."""

STATE_VERSION: Final = 1
"""The version of the state :meth:`Sink.commit` returns (a resume refuses any other)."""

# How much of a file's end the state hashes: enough that another file (or this one changed)
# is recognised, small enough to read back on every resume and keep in memory while writing.
_TAIL_BYTES: Final = 64 * 1024
_FILE_MODE: Final = 0o600
_DIR_MODE: Final = 0o700
# Windows would otherwise translate newlines in os.write; elsewhere these flags are 0.
_O_BINARY: Final = getattr(os, "O_BINARY", 0)
_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_I64_MIN: Final = -(2**63)
_I64_MAX: Final = 2**63 - 1


# --- format and compression --------------------------------------------------------------------


class OutputFormat(enum.StrEnum):
    """The layout of the output."""

    JSONL = "jsonl"
    """JSON Lines: one task object per line."""
    CSV = "csv"
    """CSV with a header: the columns of :func:`columns`."""
    PARQUET = "parquet"
    """A directory of Parquet part files with the schema of :func:`parquet_schema`."""


class Compression(enum.StrEnum):
    """The compression of a JSON Lines or CSV output (Parquet compresses inside its files)."""

    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


_FORMAT_SUFFIXES: Final[Mapping[str, OutputFormat]] = {
    ".jsonl": OutputFormat.JSONL,
    ".ndjson": OutputFormat.JSONL,
    ".csv": OutputFormat.CSV,
    ".parquet": OutputFormat.PARQUET,
}
_COMPRESSION_SUFFIXES: Final[Mapping[str, Compression]] = {
    ".gz": Compression.GZIP,
    ".zst": Compression.ZSTD,
    ".zstd": Compression.ZSTD,
}
# Suffixes of compressions that are not supported: named in the error instead of "unknown".
_OTHER_COMPRESSIONS: Final = frozenset(
    {".bz2", ".xz", ".lzma", ".lz4", ".br", ".zip", ".7z", ".z", ".sz", ".snappy", ".tgz"}
)


_E = TypeVar("_E", bound=enum.StrEnum)


def _enum_arg(kind: type[_E], value: _E | str | None, what: str) -> _E | None:
    if value is None or isinstance(value, kind):
        return value
    if isinstance(value, str):
        try:
            return kind(value.strip().lower())
        except ValueError:
            pass
    choices = ", ".join(member.value for member in kind)
    raise OutputFormatError(f"{what} must be one of {choices}, not {value!r}")


def infer_format(
    path: str | os.PathLike[str],
    format: OutputFormat | str | None = None,
    compression: Compression | str | None = None,
) -> tuple[OutputFormat, Compression]:
    """The format and compression of the output ``path``: from its suffix, unless given.

    :param path: the output: a file name (``x.jsonl``, ``x.jsonl.gz``, ``x.csv.zst``, ...), a
        Parquet dataset directory (``x.parquet``), or ``-`` for standard output.
    :param format: the format to use whatever the suffix says (an :class:`OutputFormat` or
        its value, case-insensitive); ``None`` infers it from the suffix.
    :param compression: the compression to use whatever the suffix says; ``None`` infers it
        from the suffix (none without a compression suffix).
    :returns: ``(format, compression)``.
    :raises OutputFormatError: when the format cannot be told from the name, a compression
        suffix is not supported, Parquet is asked with a compression, or standard output is
        asked with another format than JSON Lines.
    """
    fmt = _enum_arg(OutputFormat, format, "the output format")
    comp = _enum_arg(Compression, compression, "the compression")
    name = os.fspath(path)
    if not name:
        raise OutputFormatError("the output path is empty")
    if name == STDOUT:
        if fmt is not None and fmt is not OutputFormat.JSONL:
            raise OutputFormatError(
                f"standard output (-) takes JSON Lines only, not {fmt.value}: "
                "write to a file or directory instead"
            )
        return OutputFormat.JSONL, comp or Compression.NONE
    base = os.path.basename(name.rstrip("/" + os.sep)).lower()
    stem, suffix = os.path.splitext(base)
    suffix_comp = _COMPRESSION_SUFFIXES.get(suffix)
    if suffix_comp is not None:
        suffix = os.path.splitext(stem)[1]
    elif suffix in _OTHER_COMPRESSIONS and comp is None:
        raise OutputFormatError(
            f"{name}: {suffix} compression is not supported; use .gz (gzip) or .zst (zstd)"
        )
    if fmt is None:
        fmt = _FORMAT_SUFFIXES.get(suffix)
        if fmt is None:
            hint = " (.json would be one JSON document; the output is JSON Lines: .jsonl)"
            raise OutputFormatError(
                f"cannot tell the output format from the name {name!r}: end it in .jsonl, "
                ".csv (either optionally followed by .gz or .zst) or .parquet, or give the "
                f"format{hint if suffix == '.json' else ''}"
            )
    if comp is None:
        comp = suffix_comp or Compression.NONE
    if fmt is OutputFormat.PARQUET and comp is not Compression.NONE:
        raise OutputFormatError(
            f"{name}: a Parquet dataset is compressed inside its files (zstd), so it takes no "
            f"{comp.value} compression: drop the compression (and any .gz/.zst suffix)"
        )
    return fmt, comp


# --- optional dependencies ---------------------------------------------------------------------


def _import_optional(module: str, extra: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the {module.split('.')[0]} package, which is not installed: "
            f"pip install 'spacetasks-async[{extra}]'"
        ) from exc


def _pyarrow() -> tuple[ModuleType, ModuleType]:
    """pyarrow and pyarrow.parquet, imported on first use (they are optional and heavy)."""
    pa = _import_optional("pyarrow", "parquet", "writing Parquet")
    pq = _import_optional("pyarrow.parquet", "parquet", "writing Parquet")
    return pa, pq


def _zstandard() -> ModuleType:
    return _import_optional("zstandard", "zstd", "writing zstd-compressed output")


# --- columns -----------------------------------------------------------------------------------

# Column kinds. Each has one Arrow type and one CSV encoding.
_STRING: Final = "string"
_INT64: Final = "int64"
_FLOAT64: Final = "float64"
_BOOL: Final = "bool"
_TIMESTAMP: Final = "timestamp"
_JSON: Final = "json"
_USER_INFO: Final = "user_info"
_TASK: Final = "task"
_TRANSCRIPT: Final = "transcript"

_TASK_COLUMN_KINDS: Final[tuple[tuple[str, str], ...]] = (
    ("task_id", _STRING),
    ("_id", _STRING),
    ("run_id", _STRING),
    ("thread_id", _STRING),
    ("status", _STRING),
    ("execution_type", _STRING),
    ("run_mode", _STRING),
    ("assignee", _STRING),
    ("created", _TIMESTAMP),
    ("modified", _TIMESTAMP),
    ("user_info", _USER_INFO),
    ("task", _TASK),
    ("input", _JSON),
    ("output_shape", _STRING),
    ("call_id", _STRING),
    ("start_time", _TIMESTAMP),
    ("end_time", _TIMESTAMP),
    ("duration", _FLOAT64),
    ("recording_url", _STRING),
    ("call_status", _STRING),
    ("call_type", _STRING),
    ("call_end_reason", _STRING),
    ("transcript", _TRANSCRIPT),
    ("post_call_data", _JSON),
    ("output", _JSON),
    ("space_id", _STRING),
    ("user", _INT64),
    ("user_org_id", _INT64),
    ("collection_ref", _STRING),
    ("attachments", _JSON),
    ("ref_id", _STRING),
    ("other_fields", _JSON),
)

TASK_COLUMNS: Final[tuple[str, ...]] = tuple(name for name, _ in _TASK_COLUMN_KINDS)
"""The columns of a task in CSV and Parquet, after ``space_token`` and the extra columns."""

# The top-level keys the columns hold (when their value fits); every other key goes to
# other_fields. "output" is held whole by the output column, whatever its type.
_KNOWN_TOP: Final = frozenset(
    {
        "task_id",
        "_id",
        "run_id",
        "thread_id",
        "status",
        "execution_type",
        "run_mode",
        "assignee",
        "created",
        "modified",
        "user_info",
        "task",
        "input",
        "output",
        "space_id",
        "user",
        "user_org_id",
        "collection_ref",
        "attachments",
        "ref_id",
    }
)

_EXTRA_KINDS: Final[Mapping[Any, str]] = {
    str: _STRING,
    int: _INT64,
    float: _FLOAT64,
    bool: _BOOL,
    datetime: _TIMESTAMP,
    _STRING: _STRING,
    _INT64: _INT64,
    _FLOAT64: _FLOAT64,
    _BOOL: _BOOL,
    _TIMESTAMP: _TIMESTAMP,
}


def _extra_kinds(extra_columns: Mapping[str, Any] | None) -> dict[str, str]:
    """Validate declared extra columns: name -> kind, in declaration order."""
    if not extra_columns:
        return {}
    if not isinstance(extra_columns, Mapping):
        raise OutputFormatError("extra_columns must be a mapping of column name to type")
    kinds: dict[str, str] = {}
    for name, typ in extra_columns.items():
        if not isinstance(name, str) or not name:
            raise OutputFormatError(f"an extra column name must be a non-empty string: {name!r}")
        if name == "space_token" or name in TASK_COLUMNS:
            raise OutputFormatError(f"the extra column {name!r} would hide a column of the task")
        kind = _EXTRA_KINDS.get(typ) if isinstance(typ, type | str) else None
        if kind is None:
            raise OutputFormatError(
                f"the extra column {name!r} has type {typ!r}; use str, int, float, bool or datetime"
            )
        kinds[name] = kind
    return kinds


def columns(extra_columns: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The CSV header and Parquet column names, in order (see the module docstring).

    :param extra_columns: the extra columns the sink is opened with (name to type), which
        come right after ``space_token``.
    """
    return ("space_token", *_extra_kinds(extra_columns), *TASK_COLUMNS)


def _arrow_type(pa: ModuleType, kind: str) -> Any:
    string = pa.string()
    if kind in (_STRING, _JSON):
        return string
    if kind == _INT64:
        return pa.int64()
    if kind == _FLOAT64:
        return pa.float64()
    if kind == _BOOL:
        return pa.bool_()
    if kind == _TIMESTAMP:
        return pa.timestamp("us", tz="UTC")
    if kind == _USER_INFO:
        return pa.struct(
            [("email", string), ("full_name", string), ("id", pa.int64()), ("user_token", string)]
        )
    if kind == _TASK:
        return pa.struct([("objective", string)])
    assert kind == _TRANSCRIPT
    return pa.list_(pa.struct([("role", string), ("content", string)]))


def _schema_from_kinds(pa: ModuleType, extra: Mapping[str, str]) -> Any:
    fields = [pa.field("space_token", pa.string(), nullable=False)]
    fields += [pa.field(name, _arrow_type(pa, kind)) for name, kind in extra.items()]
    fields += [pa.field(name, _arrow_type(pa, kind)) for name, kind in _TASK_COLUMN_KINDS]
    return pa.schema(fields, metadata={b"spacetasks_async.schema": b"1"})


def parquet_schema(extra_columns: Mapping[str, Any] | None = None) -> Any:
    """The one ``pyarrow.Schema`` of every part of a Parquet output.

    :param extra_columns: the extra columns the sink is opened with (name to type).
    :raises MissingDependencyError: when pyarrow is not installed.
    """
    pa, _ = _pyarrow()
    return _schema_from_kinds(pa, _extra_kinds(extra_columns))


# --- turning a task into column values ---------------------------------------------------------

_MISFIT: Final[Any] = object()
"""A value that does not have its column's type."""


def _fit_str(value: Any) -> Any:
    return value if isinstance(value, str) else _MISFIT


def _fit_int(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and _I64_MIN <= value <= _I64_MAX:
        return value
    return _MISFIT


def _fit_time(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_timestamp(value)
        except ValueError:
            pass
    return _MISFIT


def _fit_number(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return _MISFIT


def _or_none(fit: Callable[[Any], Any], value: Any) -> Any:
    """``fit(value)``, with null for a value that does not fit (its JSON is kept elsewhere)."""
    if value is None:
        return None
    fitted = fit(value)
    return None if fitted is _MISFIT else fitted


def _json(value: Any, key: str) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError as exc:
        raise InvalidArgumentError(f"{key} cannot be written as JSON: {exc}") from None


_USER_INFO_FIELDS: Final = (
    ("email", _fit_str),
    ("full_name", _fit_str),
    ("id", _fit_int),
    ("user_token", _fit_str),
)
_TASK_FIELDS: Final = (("objective", _fit_str),)


def _fit_struct(
    value: Any, fields: tuple[tuple[str, Callable[[Any], Any]], ...]
) -> tuple[bool, dict[str, Any] | None]:
    """``(exact, struct)``: the struct of ``value``; ``exact`` when it holds all of it."""
    if not isinstance(value, Mapping):
        return False, None
    out: dict[str, Any] = {}
    exact = True
    for key, fit in fields:
        item = value.get(key)
        if item is None:
            out[key] = None
            continue
        fitted = fit(item)
        if fitted is _MISFIT:
            exact = False
            fitted = None
        out[key] = fitted
    if exact:
        exact = all(key in out for key in value)  # no key the struct lacks
    return exact, out


def _turns(value: Any, content_key: str) -> list[dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    turns: list[dict[str, Any]] = []
    for turn in value:
        if not isinstance(turn, Mapping):
            return None  # not a transcript the column can describe; output keeps it
        turns.append(
            {
                "role": _or_none(_fit_str, turn.get("role")),
                "content": _or_none(_fit_str, turn.get(content_key)),
            }
        )
    return turns


_PROVIDER_CALL_TYPES: Final[Mapping[str, str]] = {
    "outboundPhoneCall": "outbound",
    "inboundPhoneCall": "inbound",
}
_N_CALL_VALUES: Final = 12  # output_shape .. output


def _call_values(output: Any) -> list[Any]:
    """output_shape, the call columns, post_call_data and output, in column order."""
    if output is None:
        return [None] * _N_CALL_VALUES
    text = _json(output, "output")
    none9 = [None] * 10
    if not isinstance(output, Mapping):
        return ["string" if isinstance(output, str) else "other", *none9, text]
    if not output:
        return ["empty", *none9, text]
    keys = output.keys()
    get = output.get
    if not keys.isdisjoint(_NATIVE_ONLY):
        pcd = get("post_call_data")
        return [
            "native",
            _or_none(_fit_str, get("call_id")),
            _or_none(_fit_time, get("start_time")),
            _or_none(_fit_time, get("end_time")),
            _or_none(_fit_number, get("duration")),
            _or_none(_fit_str, get("recording_url")),
            _or_none(_fit_str, get("call_status")),
            _or_none(_fit_str, get("call_type")),
            _or_none(_fit_str, get("call_end_reason")),
            _turns(get("transcript"), "content"),
            None if pcd is None else _json(pcd, "post_call_data"),
            text,
        ]
    if keys.isdisjoint(_PROVIDER_ONLY):
        return ["object", *none9, text]
    start = _or_none(_fit_time, get("startedAt"))
    end = _or_none(_fit_time, get("endedAt"))
    duration = _or_none(_fit_number, get("durationSeconds"))
    if duration is None and start is not None and end is not None and end >= start:
        duration = (end - start).total_seconds()
    artifact = get("artifact")
    artifact = artifact if isinstance(artifact, Mapping) else {}
    recording = _or_none(_fit_str, get("recordingUrl"))
    if recording is None:
        recording = _or_none(_fit_str, artifact.get("recordingUrl"))
    call_type = _or_none(_fit_str, get("type"))
    return [
        "provider",
        _or_none(_fit_str, get("id")),
        start,
        end,
        duration,
        recording,
        _or_none(_fit_str, get("status")),
        _PROVIDER_CALL_TYPES.get(call_type, call_type) if call_type is not None else None,
        _or_none(_fit_str, get("endedReason")),
        _turns(artifact.get("messages"), "message"),
        None,
        text,
    ]


_HEAD_COLUMNS: Final = (
    ("task_id", _fit_str),
    ("_id", _fit_str),
    ("run_id", _fit_str),
    ("thread_id", _fit_str),
    ("status", _fit_str),
    ("execution_type", _fit_str),
    ("run_mode", _fit_str),
    ("assignee", _fit_str),
    ("created", _fit_time),
    ("modified", _fit_time),
)
_TAIL_COLUMNS: Final = (
    ("space_id", _fit_str),
    ("user", _fit_int),
    ("user_org_id", _fit_int),
    ("collection_ref", _fit_str),
    ("attachments", None),  # JSON text
    ("ref_id", _fit_str),
)


TaskData = Mapping[str, Any] | bytes
"""A task as a sink takes it: its object, or the JSON text of it (see :meth:`Sink.write`)."""


def _scalars(
    get: Callable[[str], Any],
    plan: tuple[tuple[str, Callable[[Any], Any] | None], ...],
    row: list[Any],
    misfits: list[str],
) -> None:
    append = row.append
    for key, fit in plan:
        value = get(key)
        if value is None:
            append(None)
        elif fit is None:
            append(_json(value, key))
        elif fit is _fit_str and value.__class__ is str:
            append(value)  # the usual case, without a call
        else:
            fitted = fit(value)
            if fitted is _MISFIT:
                misfits.append(key)
                fitted = None
            append(fitted)


def _spliceable(text: bytes, head_keys: list[bytes]) -> bool:
    """Whether the JSON text of an object can follow the head as it is, on one line.

    It must be a non-empty object on one line without a key of the head (the head's value
    would not win then); a key's quoted text anywhere in it (even in a value) is enough to
    take the careful path, which parses it.
    """
    return (
        text[:1] == b"{"
        and text[-1:] == b"}"
        and b"\n" not in text
        and b"\r" not in text
        and bool(text[1:-1].strip())
        and not any(key in text for key in head_keys)
    )


def _parse_object(text: bytes, index: int | None) -> dict[str, Any]:
    """The object of a task's JSON text (``InvalidArgumentError`` if it is not one)."""
    where = "a task" if index is None else f"tasks[{index}]"
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidArgumentError(f"{where} is not valid JSON text") from None
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"{where} is JSON text of {type(value).__name__}, not an object")
    return value


def _task_values(task: TaskData) -> list[Any]:
    """The values of :data:`TASK_COLUMNS` for one task (see the module docstring)."""
    if isinstance(task, bytes):
        task = _parse_object(task, None)
    try:
        return _task_values_of(task)
    except InvalidArgumentError as exc:
        task_id = task.get("task_id")
        where = f"task {task_id!r}" if isinstance(task_id, str) else "a task"
        raise InvalidArgumentError(f"{where}: {exc.message}") from None


def _task_values_of(task: Mapping[str, Any]) -> list[Any]:
    get = task.get
    misfits: list[str] = []
    row: list[Any] = []
    _scalars(get, _HEAD_COLUMNS, row, misfits)
    for key, fields in (("user_info", _USER_INFO_FIELDS), ("task", _TASK_FIELDS)):
        value = get(key)
        if value is None:
            row.append(None)
            continue
        exact, struct = _fit_struct(value, fields)
        if not exact:
            misfits.append(key)
        row.append(struct)
    value = get("input")
    row.append(None if value is None else _json(value, "input"))
    row += _call_values(get("output"))
    _scalars(get, _TAIL_COLUMNS, row, misfits)
    # In the API's key order, so other_fields reads like the task.
    known = _KNOWN_TOP
    other = {k: v for k, v in task.items() if k not in known or k in misfits}
    row.append(_json(other, "other_fields") if other else None)
    return row


# --- CSV cells ---------------------------------------------------------------------------------


def _time_text(value: datetime) -> str:
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def _float_text(value: float) -> str:
    # 285.0 reads better as 285; repr is the shortest text that reads back the same float.
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _csv_encoder(kind: str) -> Callable[[Any], str]:
    def text(value: Any) -> str:
        return "" if value is None else str(value)

    def number(value: Any) -> str:
        return "" if value is None else _float_text(value)

    def boolean(value: Any) -> str:
        return "" if value is None else ("true" if value else "false")

    def stamp(value: Any) -> str:
        return "" if value is None else _time_text(value)

    def nested(value: Any) -> str:
        return "" if value is None else orjson.dumps(value).decode()

    if kind in (_STRING, _JSON, _INT64):
        return text
    if kind == _FLOAT64:
        return number
    if kind == _BOOL:
        return boolean
    if kind == _TIMESTAMP:
        return stamp
    return nested


# --- compression -------------------------------------------------------------------------------


class _Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes:
        """End the current gzip member / zstd frame (if one is open); its last bytes."""
        ...


class _Plain:
    def compress(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


class _GzipMembers:
    """gzip, one member per commit: a member opens at the first data after a commit."""

    def __init__(self, level: int = 6) -> None:
        self._level = level
        self._obj: Any = None

    def compress(self, data: bytes) -> bytes:
        if self._obj is None:
            # wbits 31: a gzip header and trailer (no name, mtime 0: the same data gives the
            # same bytes, which keeps a tail hash meaningful across identical runs).
            self._obj = zlib.compressobj(self._level, zlib.DEFLATED, 31)
        return bytes(self._obj.compress(data))

    def finish(self) -> bytes:
        if self._obj is None:
            return b""
        obj, self._obj = self._obj, None
        return bytes(obj.flush(zlib.Z_FINISH))


class _ZstdFrames:
    """zstd, one frame per commit (frames concatenate into one valid stream)."""

    def __init__(self, zstandard: ModuleType, level: int = 3) -> None:
        self._zstd = zstandard
        self._compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
        self._obj: Any = None

    def compress(self, data: bytes) -> bytes:
        if self._obj is None:
            self._obj = self._compressor.compressobj()
        return bytes(self._obj.compress(data))

    def finish(self) -> bytes:
        if self._obj is None:
            return b""
        obj, self._obj = self._obj, None
        return bytes(obj.flush(self._zstd.COMPRESSOBJ_FLUSH_FINISH))


# --- low-level output --------------------------------------------------------------------------


def _fsync_dir(path: str) -> None:
    """Make a directory's entries (a created or renamed file) durable, where supported."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # e.g. Windows: directories cannot be opened; NTFS journals entries anyway
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Out(Protocol):
    def write(self, data: bytes) -> None: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


class _FileOut:
    """A file descriptor we own; ``durable`` when it is a regular file (fsync works)."""

    def __init__(self, fd: int, *, durable: bool) -> None:
        self.fd = fd
        self.durable = durable

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]

    def sync(self) -> None:
        if self.durable:
            os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class _StreamOut:
    """Standard output (or another stream we do not own): flushed, never closed."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data)
        self._stream.flush()

    def sync(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()


# --- sinks -------------------------------------------------------------------------------------


class Sink(abc.ABC):
    """Where tasks are written; made by :func:`open_sink` (see the module docstring).

    Use it as a context manager or call :meth:`close`. After an I/O error the sink is broken:
    :meth:`write` and :meth:`commit` raise :class:`OutputError`, :meth:`close` only releases
    it, and a resume from the last committed state repairs the output.
    """

    def __init__(
        self,
        *,
        path: str,
        format: OutputFormat,
        compression: Compression,
        extra: dict[str, str],
        rows: int,
        resumed: bool,
        state: dict[str, Any] | None,
    ) -> None:
        """Built by :func:`open_sink`, which checks every argument; not meant to be called.

        :param path: the output as given (``-`` for standard output).
        :param format: the format written.
        :param compression: the compression of a JSON Lines or CSV output.
        :param extra: the extra columns, name to kind (``"timestamp"``, ...), in order.
        :param rows: tasks already in the output (from the resume state; 0 when fresh).
        :param resumed: whether the output continues from a resume state.
        :param state: the resume state, or ``None`` for a fresh output.
        """
        self.path: str = path
        """The output as given (``-`` for standard output)."""
        self.format: OutputFormat = format
        """The format written."""
        self.compression: Compression = compression
        """The compression of a JSON Lines or CSV output."""
        self.resumed: bool = resumed
        """True when this sink continues an output from a resume state."""
        self._extra = extra
        self._extra_encoders = [_fit_extra_fn(name, kind) for name, kind in extra.items()]
        self._rows_written = rows
        self._rows_committed = rows
        self._state = state
        self._closed = False
        self._broken: BaseException | None = None

    # -- public ----------------------------------------------------------------------------

    @property
    def rows_written(self) -> int:
        """Tasks in the output, those not yet committed included (and earlier runs')."""
        return self._rows_written

    @property
    def rows_committed(self) -> int:
        """Tasks in the output as of the last commit (what a resume would keep)."""
        return self._rows_committed

    @property
    def resumable(self) -> bool:
        """Whether a state of this sink can be resumed (not for standard output)."""
        return True

    @property
    def columns(self) -> tuple[str, ...]:
        """The CSV and Parquet column names of this output, in order (its extra columns too)."""
        return ("space_token", *self._extra, *TASK_COLUMNS)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` or :meth:`abort` was called."""
        return self._closed

    @property
    def state(self) -> dict[str, Any] | None:
        """A copy of the state of the last commit (or the resume state; ``None`` before any)."""
        return None if self._state is None else _copy_state(self._state)

    def write(
        self,
        space_token: str,
        tasks: Iterable[TaskData],
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Add tasks of one space to the output (durable only after :meth:`commit`).

        The whole batch is converted before anything is written, so a task that cannot be
        written leaves the output as it was.

        :param space_token: the space the tasks come from (the ``space_token`` column).
        :param tasks: the task objects as the API sent them: mappings of JSON values, or
            the JSON text of an object (``bytes``, as :func:`~._convert.task_json` gives it:
            checked for syntax when its page was read). JSON Lines writes such a text as it
            is (on one line, after ``space_token``); the other formats parse it.
        :param extra: values of the extra columns declared when the sink was opened, for
            every task of this batch; a column left out is null.
        :raises InvalidArgumentError: for a bad token, a task that is not a mapping or not
            JSON, or an undeclared or wrongly typed extra value.
        :raises OutputError: when the sink is closed or broken.
        :raises OSError: when writing fails (the sink is then broken).
        """
        self._check_usable("write to")
        if not isinstance(space_token, str) or not space_token:
            raise InvalidArgumentError(f"space_token must be a non-empty string: {space_token!r}")
        extra_values = self._extra_values(extra)
        batch: list[TaskData] = list(tasks)
        for index, task in enumerate(batch):
            if not isinstance(task, bytes | Mapping):
                raise InvalidArgumentError(
                    f"tasks[{index}] must be a task object (a mapping) or its JSON text, "
                    f"not {type(task).__name__}"
                )
        if not batch:
            return
        self._write_batch(space_token, extra_values, batch)
        self._rows_written += len(batch)

    def commit(self) -> dict[str, Any]:
        """Make everything written so far durable, and return the state to resume from.

        :returns: a small JSON-able dict (see the module docstring) to store in the caller's
            checkpoint; pass it as ``resume_state`` to :func:`open_sink` to continue exactly
            from here.
        :raises OutputError: when the sink is closed or broken.
        :raises OSError: when writing or syncing fails (the sink is then broken).
        """
        self._check_usable("commit")
        self._guarded(self._commit)
        self._rows_committed = self._rows_written
        return _copy_state(self._state or {})

    def close(self) -> None:
        """Commit what is pending (the output is complete and valid), then release the sink.

        The state of that commit is :attr:`state`. Closing twice does nothing; a broken sink
        is only released.
        """
        if self._closed:
            return
        try:
            if self._broken is None:
                self._guarded(self._finish)
                self._rows_committed = self._rows_written
        finally:
            self._closed = True
            self._release()

    def abort(self) -> None:
        """Release the sink without finishing what was written since the last commit.

        The output is left as a crash at this point would leave it (a gzip member open, a
        Parquet part under its temporary name); a resume from the last committed state cuts
        that back. Aborting a closed sink does nothing.
        """
        if self._closed:
            return
        self._closed = True
        self._release()

    def __enter__(self) -> Sink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        comp = "" if self.compression is Compression.NONE else f" {self.compression.value}"
        return (
            f"<{self.format.value}{comp} sink {self.path!r} rows={self._rows_written} "
            f"committed={self._rows_committed}{' closed' if self._closed else ''}>"
        )

    # -- for the formats -------------------------------------------------------------------

    @abc.abstractmethod
    def _write_batch(
        self, space_token: str, extra_values: list[Any], tasks: list[TaskData]
    ) -> None:
        """Convert the batch, then write it (through :meth:`_guarded` for the I/O)."""

    @abc.abstractmethod
    def _commit(self) -> None:
        """Make the output durable and set ``self._state``."""

    def _finish(self) -> None:
        """What :meth:`close` does before releasing: a commit, by default."""
        self._commit()

    @abc.abstractmethod
    def _release(self) -> None:
        """Close what the sink holds open, finishing nothing."""

    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except BaseException as exc:
            self._broken = exc
            raise

    def _check_usable(self, what: str) -> None:
        if self._closed:
            raise OutputError(f"cannot {what} {self.path}: the output is closed")
        if self._broken is not None:
            raise OutputError(
                f"cannot {what} {self.path}: writing it failed earlier ({self._broken!r}); "
                "resume from the last checkpoint"
            )

    def _extra_values(self, extra: Mapping[str, Any] | None) -> list[Any]:
        if not extra:
            return [None] * len(self._extra)
        if not isinstance(extra, Mapping):
            raise InvalidArgumentError("extra must be a mapping of extra column name to value")
        unknown = [name for name in extra if name not in self._extra]
        if unknown:
            declared = ", ".join(self._extra) or "none"
            raise InvalidArgumentError(
                f"extra columns {unknown!r} were not declared when the output was opened "
                f"(declared: {declared})"
            )
        return [
            fit(extra.get(name))
            for name, fit in zip(self._extra, self._extra_encoders, strict=True)
        ]

    def _base_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "format": self.format.value,
            "compression": self.compression.value,
            "columns": dict(self._extra),
            "rows": self._rows_written,
            "resumable": self.resumable,
        }


def _copy_state(state: Mapping[str, Any]) -> dict[str, Any]:
    # The state is small and JSON-shaped: a JSON round trip is a deep copy the caller owns.
    copied: dict[str, Any] = orjson.loads(orjson.dumps(state))
    return copied


def _fit_extra_fn(name: str, kind: str) -> Callable[[Any], Any]:
    def fit(value: Any) -> Any:
        if value is None:
            return None
        if kind == _TIMESTAMP:
            if isinstance(value, datetime) and value.utcoffset() is not None:
                return value.astimezone(UTC)
            expected = "a timezone-aware datetime"
        elif kind == _STRING:
            if isinstance(value, str):
                return value
            expected = "a str"
        elif kind == _BOOL:
            if isinstance(value, bool):
                return value
            expected = "a bool"
        elif kind == _INT64:
            if _fit_int(value) is not _MISFIT:
                return value
            expected = "an int (64-bit)"
        else:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            expected = "a float"
        raise InvalidArgumentError(
            f"the extra column {name!r} takes {expected}, not {type(value).__name__}"
        )

    return fit


class _StreamSink(Sink):
    """JSON Lines or CSV, plain or compressed, to a file or standard output."""

    def __init__(
        self,
        *,
        out: _Out,
        compressor: _Compressor,
        size: int,
        tail: bytes,
        file_id: list[int] | None,
        sync_dir: str | None,
        stdout: bool,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self._out = out
        self._compressor = compressor
        self._size = size
        self._tail = bytearray(tail[-_TAIL_BYTES:])
        self._file_id = file_id
        self._sync_dir = sync_dir  # a created file's directory entry: synced at first commit
        self._stdout = stdout
        self._csv_encoders: list[Callable[[Any], str]] = []
        if self.format is OutputFormat.CSV:
            kinds = [_STRING, *self._extra.values(), *(kind for _, kind in _TASK_COLUMN_KINDS)]
            self._csv_encoders = [_csv_encoder(kind) for kind in kinds]
            if size == 0:
                # The header goes in at once: an output without tasks is still a valid CSV.
                self._guarded(lambda: self._emit(self._csv_lines([list(self.columns)])))

    @property
    def resumable(self) -> bool:
        """Whether a state of this sink can be resumed (not for standard output)."""
        return not self._stdout

    def _csv_lines(self, rows: list[list[Any]]) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerows(rows)
        return buffer.getvalue().encode()

    def _encode(self, space_token: str, extra_values: list[Any], tasks: list[TaskData]) -> bytes:
        if self.format is OutputFormat.JSONL:
            head = {"space_token": space_token, **dict(zip(self._extra, extra_values, strict=True))}
            head_option = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS
            option = orjson.OPT_APPEND_NEWLINE | head_option
            # '{"space_token":"...",' then the task's own text without its '{': one orjson
            # pass per task and no merged dict. A task that has a key of the head (or no
            # key) is merged instead, so that the head's value wins as it always did.
            prefix = orjson.dumps(head, option=head_option)[:-1] + b","
            head_keys = [orjson.dumps(key) for key in head]
            first_key = head_keys[0]  # b'"space_token"'
            dumps = orjson.dumps
            lines = []
            for task in tasks:
                if isinstance(task, bytes):
                    # The usual text is tested inline (a call per task would cost more than
                    # the tests): compact, one line, without a key of the head.
                    if (
                        task[:2] == b'{"'
                        and task[-1:] == b"}"
                        and b"\n" not in task
                        and b"\r" not in task
                        and first_key not in task
                        and len(head_keys) == 1
                    ) or _spliceable(task, head_keys):
                        lines.append(prefix + task[1:] + b"\n")
                        continue
                    task = _parse_object(task, None)
                try:
                    if task and head.keys().isdisjoint(task):
                        lines.append(prefix + dumps(task, option=option)[1:])
                    else:
                        lines.append(dumps({**head, **task}, option=option))
                except orjson.JSONEncodeError as exc:
                    task_id = task.get("task_id")
                    raise InvalidArgumentError(
                        f"task {task_id!r} cannot be written as JSON: {exc}"
                    ) from None
            return b"".join(lines)
        encoders = self._csv_encoders
        rows = []
        for task in tasks:
            values = [space_token, *extra_values, *_task_values(task)]
            rows.append([encode(value) for encode, value in zip(encoders, values, strict=True)])
        return self._csv_lines(rows)

    def _emit(self, data: bytes) -> None:
        out = self._compressor.compress(data)
        self._write_raw(out)

    def _write_raw(self, data: bytes) -> None:
        if not data:
            return
        self._out.write(data)
        self._size += len(data)
        self._tail += data
        if len(self._tail) > _TAIL_BYTES:
            del self._tail[: len(self._tail) - _TAIL_BYTES]

    def _write_batch(
        self, space_token: str, extra_values: list[Any], tasks: list[TaskData]
    ) -> None:
        data = self._encode(space_token, extra_values, tasks)
        self._guarded(lambda: self._emit(data))

    def _commit(self) -> None:
        self._write_raw(self._compressor.finish())
        self._out.sync()
        if self._sync_dir is not None:
            _fsync_dir(self._sync_dir)
            self._sync_dir = None
        tail = bytes(self._tail)
        self._state = {
            **self._base_state(),
            "size": self._size,
            "tail_size": len(tail),
            "tail_sha256": hashlib.sha256(tail).hexdigest(),
            "file_id": self._file_id,
        }

    def _release(self) -> None:
        self._out.close()


_PART_RE: Final = re.compile(r"part-(\d{8})-([0-9a-f]{8})\.parquet")
_TEMP_RE: Final = re.compile(r"\.part-(\d{8})-([0-9a-f]{8})\.parquet\.tmp")


class _ParquetSink(Sink):
    """A directory of Parquet parts: one part per commit, row groups as they fill."""

    def __init__(
        self,
        *,
        pa: ModuleType,
        pq: ModuleType,
        directory: str,
        dataset_id: str,
        parts: dict[str, int],
        row_group_size: int,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self._pa = pa
        self._pq = pq
        self._dir = directory
        self._id = dataset_id
        self._parts = parts
        self._next = 1 + max((int(_part_seq(name)) for name in parts), default=-1)
        self._row_group_size = row_group_size
        self._schema = _schema_from_kinds(pa, self._extra)
        self._codec = "zstd" if pa.Codec.is_available("zstd") else "snappy"
        self._buffer: list[list[Any]] = [[] for _ in self._schema.names]
        self._buffered = 0
        self._writer: Any = None
        self._file: IO[bytes] | None = None
        self._temp: str | None = None

    def _part_name(self) -> str:
        return f"part-{self._next:08d}-{self._id}.parquet"

    def _write_batch(
        self, space_token: str, extra_values: list[Any], tasks: list[TaskData]
    ) -> None:
        rows = [[space_token, *extra_values, *_task_values(task)] for task in tasks]
        for row in rows:
            for column, value in zip(self._buffer, row, strict=True):
                column.append(value)
            self._buffered += 1
            if self._buffered >= self._row_group_size:
                self._guarded(self._flush_group)

    def _flush_group(self) -> None:
        """Write the buffered rows as one row group of the pending (temporary) part."""
        pa = self._pa
        if self._writer is None:
            name = self._part_name()
            self._temp = os.path.join(self._dir, f".{name}.tmp")
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC | _O_BINARY
            fd = os.open(self._temp, flags, _FILE_MODE)
            if hasattr(os, "fchmod"):
                os.fchmod(fd, _FILE_MODE)
            self._file = os.fdopen(fd, "wb")
            self._writer = self._pq.ParquetWriter(self._file, self._schema, compression=self._codec)
        arrays = [
            pa.array(column, type=field.type)
            for column, field in zip(self._buffer, self._schema, strict=True)
        ]
        table = pa.Table.from_arrays(arrays, schema=self._schema)
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        self._buffer = [[] for _ in self._schema.names]
        self._buffered = 0

    def _commit(self, *, empty_part: bool = False) -> None:
        if self._buffered or empty_part:
            self._flush_group()
        if self._writer is not None:
            assert self._file is not None and self._temp is not None
            self._writer.close()
            self._writer = None
            self._file.flush()
            os.fsync(self._file.fileno())
            size = os.fstat(self._file.fileno()).st_size
            self._file.close()
            self._file = None
            name = self._part_name()
            os.replace(self._temp, os.path.join(self._dir, name))
            self._temp = None
            _fsync_dir(self._dir)
            self._parts[name] = size
            self._next += 1
        self._state = {**self._base_state(), "dataset_id": self._id, "parts": dict(self._parts)}

    def _finish(self) -> None:
        # A dataset without any part cannot be read (no schema): write an empty one.
        self._commit(empty_part=not self._parts)

    def _release(self) -> None:
        writer, self._writer = self._writer, None
        file, self._file = self._file, None
        try:
            if writer is not None:
                writer.close()
        finally:
            if file is not None:
                file.close()


def _part_seq(name: str) -> str:
    match = _PART_RE.fullmatch(name)
    assert match is not None
    return match.group(1)


# --- opening -----------------------------------------------------------------------------------


def open_sink(
    path: str | os.PathLike[str],
    format: OutputFormat | str | None = None,
    compression: Compression | str | None = None,
    *,
    resume_state: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    extra_columns: Mapping[str, Any] | None = None,
    stdout: IO[bytes] | None = None,
    row_group_size: int = 10_000,
) -> Sink:
    """Open the output ``path`` for writing tasks, fresh or resumed from a committed state.

    :param path: a file (JSON Lines, CSV), a Parquet dataset directory, or ``-`` for
        standard output; the format and compression are inferred by :func:`infer_format`.
    :param format: the format, overriding the suffix (see :func:`infer_format`).
    :param compression: the compression, overriding the suffix (see :func:`infer_format`).
    :param resume_state: a state returned by :meth:`Sink.commit` of an earlier run: the
        output is checked to be the one it describes and cut back to it, then continued.
        ``None`` starts a fresh output.
    :param overwrite: a fresh output replaces an existing file, or empties an existing
        dataset directory of its part files, instead of raising :class:`OutputExistsError`.
    :param extra_columns: columns added to every task, name to type (``str``, ``int``,
        ``float``, ``bool``, ``datetime``, or the names ``"string"``, ``"int64"``,
        ``"float64"``, ``"bool"``, ``"timestamp"``), in order; their values are passed to
        :meth:`Sink.write`. A resume must declare the same.
    :param stdout: the binary stream ``-`` writes to (default ``sys.stdout.buffer``); it is
        flushed, never closed.
    :param row_group_size: Parquet only: rows per row group, the most rows held in memory.
    :returns: the open :class:`Sink`.
    :raises OutputFormatError: for a bad name, format, compression, extra columns or
        ``row_group_size``, or a resume state of another format, compression, columns or
        version, or any resume of standard output.
    :raises OutputExistsError: when a fresh output would replace existing data.
    :raises OutputChangedError: when the output is not the one ``resume_state`` describes.
    :raises MissingDependencyError: when pyarrow (Parquet) or zstandard (zstd) is missing.
    :raises OSError: when the output cannot be created or opened.
    """
    fmt, comp = infer_format(path, format, compression)
    extra = _extra_kinds(extra_columns)
    if (
        not isinstance(row_group_size, int)
        or isinstance(row_group_size, bool)
        or row_group_size < 1
    ):
        raise OutputFormatError(f"row_group_size must be an integer >= 1, not {row_group_size!r}")
    name = os.fspath(path)
    state = None
    if resume_state is not None:
        if name == STDOUT:
            raise OutputFormatError("standard output cannot be resumed: write to a file")
        state = _checked_state(resume_state, fmt, comp, extra)
    # Dependencies first: a missing one fails before anything on disk is touched.
    zstandard = _zstandard() if comp is Compression.ZSTD else None
    common: dict[str, Any] = {
        "path": name,
        "format": fmt,
        "compression": comp,
        "extra": extra,
        "resumed": state is not None,
        "state": state,
        "rows": state["rows"] if state is not None else 0,
    }
    if fmt is OutputFormat.PARQUET:
        pa, pq = _pyarrow()
        parts: dict[str, int] = {}
        if state is None:
            dataset_id = _fresh_dataset(name, overwrite=overwrite)
        else:
            dataset_id, parts = _resume_dataset(name, state)
        return _ParquetSink(
            pa=pa,
            pq=pq,
            directory=name,
            dataset_id=dataset_id,
            parts=parts,
            row_group_size=row_group_size,
            **common,
        )
    compressor: _Compressor
    if comp is Compression.GZIP:
        compressor = _GzipMembers()
    elif comp is Compression.ZSTD:
        assert zstandard is not None
        compressor = _ZstdFrames(zstandard)
    else:
        compressor = _Plain()
    if name == STDOUT:
        stream = stdout if stdout is not None else sys.stdout.buffer
        return _StreamSink(
            out=_StreamOut(stream),
            compressor=compressor,
            size=0,
            tail=b"",
            file_id=None,
            sync_dir=None,
            stdout=True,
            **common,
        )
    sync_dir: str | None
    if state is None:
        fd, durable = _create_file(name, overwrite=overwrite)
        size, tail, sync_dir = 0, b"", os.path.dirname(os.path.abspath(name))
    else:
        fd, durable, size, tail, sync_dir = _resume_file(name, state)
    try:
        st = os.fstat(fd)
        return _StreamSink(
            out=_FileOut(fd, durable=durable),
            compressor=compressor,
            size=size,
            tail=tail,
            file_id=[st.st_dev, st.st_ino] if durable else None,
            sync_dir=sync_dir,
            stdout=False,
            **common,
        )
    except BaseException:
        os.close(fd)
        raise


def _create_file(name: str, *, overwrite: bool) -> tuple[int, bool]:
    """A fresh output file (mode 0600); ``durable`` is False for a pipe or device."""
    flags = os.O_WRONLY | os.O_CREAT | _O_CLOEXEC | _O_BINARY
    flags |= os.O_TRUNC if overwrite else os.O_EXCL
    try:
        fd = os.open(name, flags, _FILE_MODE)
    except FileExistsError:
        raise OutputExistsError(
            f"{name} exists: choose another name, resume it from its checkpoint, or allow "
            "overwriting it"
        ) from None
    except IsADirectoryError:
        raise OutputExistsError(f"{name} is a directory, not a file") from None
    try:
        durable = stat.S_ISREG(os.fstat(fd).st_mode)
        # Only our own regular file: the mode of /dev/null or a FIFO is not ours to change.
        if durable and hasattr(os, "fchmod"):
            os.fchmod(fd, _FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd, durable


def _resume_file(name: str, state: Mapping[str, Any]) -> tuple[int, bool, int, bytes, str | None]:
    """Reopen the output, check it is the state's, cut it back: fd, durable, size, tail."""
    size: int = state["size"]
    try:
        fd = os.open(name, os.O_RDWR | _O_CLOEXEC | _O_BINARY)
    except FileNotFoundError:
        if size == 0:
            fd, durable = _create_file(name, overwrite=False)
            return fd, durable, 0, b"", os.path.dirname(os.path.abspath(name))
        raise OutputChangedError(
            f"the checkpoint says {name} holds {size:,} bytes, but it does not exist"
        ) from None
    except IsADirectoryError:
        raise OutputChangedError(f"{name} is a directory, not the output file") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OutputChangedError(f"{name} is not a regular file: it cannot be resumed")
        if st.st_size < size:
            raise OutputChangedError(
                f"{name} is shorter ({st.st_size:,} bytes) than the checkpoint says "
                f"({size:,}): it was changed or replaced since; nothing was changed"
            )
        if size == 0 and st.st_size > 0 and state.get("file_id") != [st.st_dev, st.st_ino]:
            # Nothing was committed, so no tail identifies the file: only the very file
            # this run created may be emptied.
            raise OutputChangedError(
                f"{name} is not the file the checkpoint was started with; nothing was changed"
            )
        tail_size: int = state["tail_size"]
        tail = _read_at(fd, tail_size, size - tail_size)
        if len(tail) != tail_size or hashlib.sha256(tail).hexdigest() != state["tail_sha256"]:
            raise OutputChangedError(
                f"{name} does not hold what the checkpoint recorded (its content up to byte "
                f"{size:,} differs): it was changed or replaced since; nothing was changed"
            )
        os.ftruncate(fd, size)
        os.lseek(fd, size, os.SEEK_SET)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd, True, size, tail, None


def _read_at(fd: int, count: int, offset: int) -> bytes:
    """Up to ``count`` bytes at ``offset`` (lseek and read: os.pread is not on Windows)."""
    os.lseek(fd, offset, os.SEEK_SET)
    chunks = []
    while count > 0:
        chunk = os.read(fd, count)
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _scan(directory: str) -> list[str]:
    with os.scandir(directory) as entries:
        return sorted(entry.name for entry in entries)


def _is_hidden(name: str) -> bool:
    # The prefixes every Parquet reader (pyarrow, pandas, polars, DuckDB globs) skips.
    return name.startswith((".", "_"))


def _make_dataset_dir(directory: str) -> bool:
    """Create the dataset directory (mode 0700); False when it exists already."""
    try:
        os.mkdir(directory, _DIR_MODE)
    except FileExistsError:
        return False
    # mkdir applies the umask; the directory holds users' tokens, so exactly 0700.
    os.chmod(directory, _DIR_MODE)
    _fsync_dir(os.path.dirname(os.path.abspath(directory)))
    return True


def _fresh_dataset(directory: str, *, overwrite: bool) -> str:
    """Create (or, with ``overwrite``, empty) a dataset directory; a new dataset id."""
    dataset_id = secrets.token_hex(4)
    if _make_dataset_dir(directory):
        return dataset_id
    if not os.path.isdir(directory):
        raise OutputExistsError(f"{directory} exists and is not a directory")
    visible = [name for name in _scan(directory) if not _is_hidden(name)]
    if not visible:
        return dataset_id
    if not overwrite:
        raise OutputExistsError(
            f"{directory} is not empty: choose another name, resume it from its checkpoint, "
            "or allow overwriting it"
        )
    foreign = [name for name in visible if not _PART_RE.fullmatch(name)]
    if foreign:
        raise OutputExistsError(
            f"{directory} holds files that are not parts of a task dataset ({foreign[0]!r}"
            f"{' and more' if len(foreign) > 1 else ''}): refusing to delete them"
        )
    for name in _scan(directory):
        if _PART_RE.fullmatch(name) or _TEMP_RE.fullmatch(name):
            os.unlink(os.path.join(directory, name))
    _fsync_dir(directory)
    return dataset_id


def _resume_dataset(directory: str, state: Mapping[str, Any]) -> tuple[str, dict[str, int]]:
    """Check the dataset against the state, then delete this dataset's later files."""
    dataset_id: str = state["dataset_id"]
    parts: dict[str, int] = dict(state["parts"])
    if not os.path.isdir(directory):
        if os.path.exists(directory) or parts:
            raise OutputChangedError(
                f"the checkpoint says {directory} is a dataset directory with {len(parts)} "
                "part files, but it is not there; nothing was changed"
            )
        _make_dataset_dir(directory)  # nothing was committed: start the directory again
        return dataset_id, parts
    names = _scan(directory)
    present = set(names)
    missing = [name for name in parts if name not in present]
    if missing:
        raise OutputChangedError(
            f"{directory} lacks {missing[0]!r} (and {len(missing) - 1} more) that the checkpoint "
            "recorded: it was changed or replaced since; nothing was changed"
        )
    later: list[str] = []
    for name in names:
        path = os.path.join(directory, name)
        if name in parts:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_size != parts[name]:
                raise OutputChangedError(
                    f"{path} is not the part the checkpoint recorded (size "
                    f"{st.st_size:,}, recorded {parts[name]:,}); nothing was changed"
                )
            continue
        match = _PART_RE.fullmatch(name) or _TEMP_RE.fullmatch(name)
        if match is not None and match.group(2) == dataset_id:
            later.append(path)  # ours, written after the commit: cut back
        elif not _is_hidden(name):
            raise OutputChangedError(
                f"{directory} holds {name!r}, which this dataset did not write (readers would "
                "take it as part of the data): it was changed since; nothing was changed"
            )
    for path in later:
        os.unlink(path)
    if later:
        _fsync_dir(directory)
    return dataset_id, parts


def _checked_state(
    state: Mapping[str, Any], fmt: OutputFormat, comp: Compression, extra: Mapping[str, str]
) -> dict[str, Any]:
    """The resume state, checked to be a whole state of this version for this output."""

    def bad(why: str) -> OutputFormatError:
        return OutputFormatError(f"the resume state is not usable: {why}")

    if not isinstance(state, Mapping):
        raise bad("it is not an object")
    if state.get("version") != STATE_VERSION:
        raise bad(f"it is not a version {STATE_VERSION} output state")
    if state.get("resumable") is not True:
        raise bad("it was written to standard output, which cannot be resumed")
    if state.get("format") != fmt.value:
        raise OutputFormatError(
            f"the output was started as {state.get('format')}, not {fmt.value}: resume it with "
            "the same format"
        )
    if state.get("compression") != comp.value:
        raise OutputFormatError(
            f"the output was started with compression {state.get('compression')}, not "
            f"{comp.value}: resume it with the same compression"
        )
    if state.get("columns") != dict(extra):
        raise OutputFormatError(
            f"the output was started with extra columns {state.get('columns')!r}, not "
            f"{dict(extra)!r}: resume it with the same columns"
        )
    rows = state.get("rows")
    if not _is_count(rows):
        raise bad("'rows' is not a count")
    if fmt is OutputFormat.PARQUET:
        dataset_id = state.get("dataset_id")
        parts = state.get("parts")
        if not isinstance(dataset_id, str) or not re.fullmatch(r"[0-9a-f]{8}", dataset_id):
            raise bad("'dataset_id' is missing or malformed")
        if not isinstance(parts, Mapping) or not all(
            isinstance(name, str)
            and (match := _PART_RE.fullmatch(name)) is not None
            and match.group(2) == dataset_id
            and _is_count(size)
            for name, size in parts.items()
        ):
            # Also what keeps a state from naming a file outside the dataset (../x).
            raise bad("'parts' must map this dataset's part file names to sizes")
    else:
        size, tail_size, digest = (
            state.get("size"),
            state.get("tail_size"),
            state.get("tail_sha256"),
        )
        if not (_is_count(size) and _is_count(tail_size) and tail_size <= size):
            raise bad("'size' and 'tail_size' must be counts, the tail within the size")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise bad("'tail_sha256' is missing or malformed")
        file_id = state.get("file_id")
        if file_id is not None and not (
            isinstance(file_id, list) and len(file_id) == 2 and all(map(_is_count, file_id))
        ):
            raise bad("'file_id' is malformed")
    return _copy_state(state)


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
