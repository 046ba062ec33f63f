"""Models and their converter: exact round trip, UTC times, enums, secrets, decode errors."""

from __future__ import annotations

import copy
import pickle
import random
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import samples  # tests/ is on sys.path (pytest's default import mode)

from spacetasks_async._convert import (
    converter,
    decode_space,
    decode_task,
    decode_tasks,
    encode_space,
    encode_task,
    make_converter,
    parse_timestamp,
)
from spacetasks_async._errors import DecodeError
from spacetasks_async._models import (
    CallOutput,
    CallSummary,
    ExecutionType,
    OutputShape,
    PostCallData,
    RunMode,
    Space,
    Task,
    TaskPage,
    TaskStatus,
    Timestamp,
    TranscriptTurn,
    UserInfo,
)


def _round_trip(obj: dict[str, Any]) -> dict[str, Any]:
    return encode_task(decode_task(obj))


def _assert_exact(got: Any, want: Any) -> None:
    # == alone would take 1 == 1.0 == True; the round trip must keep JSON types too.
    assert got == want
    assert orjson.dumps(got, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        want, option=orjson.OPT_SORT_KEYS
    )


# --- exact round trip -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "obj"), list(samples.named_samples().items()))
def test_every_sample_task_round_trips_exactly(name: str, obj: dict[str, Any]) -> None:
    _assert_exact(_round_trip(obj), obj)


def test_documented_page_decodes_and_round_trips() -> None:
    data = samples.doc_page()["data"]
    tasks = decode_tasks(data)
    assert [t.task_id for t in tasks] == ["T8ff2ccdffe9a11f0878d43cd8a99e069"]
    task = tasks[0]
    assert task.id == "697debb84c27faa892bfa0cc"
    assert task.definition is not None
    assert task.definition.objective == "Call the lead and discuss the project requirements."
    assert task.input == data[0]["input"]
    assert task.output is not None
    assert task.output.shape is OutputShape.NATIVE
    assert task.output.duration == 285
    assert task.output.transcript == (
        TranscriptTurn(role="agent", content="Hello, am I speaking with John Doe?"),
        TranscriptTurn(role="user", content="Yes, this is John."),
    )
    _assert_exact([encode_task(t) for t in tasks], data)


def test_documented_spaces_round_trip_and_decode_fields() -> None:
    item = samples.doc_spaces_page()["data"][0]
    space = decode_space(item)
    assert space.token == "8KZAMRAHSXXXXXXMAYNASMJC"
    assert space.created_at == datetime(2026, 1, 10, 8, tzinfo=UTC)
    _assert_exact(encode_space(space), item)
    odd = {"id": 17, "name": None, "archived": False, "created_at": "2026-01-10T08:00:00"}
    _assert_exact(encode_space(decode_space(odd)), odd)


def test_generated_tasks_of_every_shape_round_trip_exactly() -> None:
    objs = samples.random_tasks(seed=20260207, count=600)
    shapes = set()
    for obj, task in zip(objs, decode_tasks(objs), strict=True):
        _assert_exact(encode_task(task), obj)
        shapes.add(task.output.shape if task.output else type(task.extra.get("output")))
    assert {OutputShape.NATIVE, OutputShape.PROVIDER, OutputShape.EMPTY} <= shapes


def test_redecoding_an_encoded_task_gives_an_equal_task() -> None:
    for obj in samples.random_tasks(seed=7, count=100):
        task = decode_task(obj)
        assert decode_task(encode_task(task)) == task


def test_explicit_null_stays_null_and_absent_key_stays_absent() -> None:
    task = decode_task(samples.explicit_nulls_task())
    assert task.status is None and "status" in task.explicit_nulls
    assert task.run_mode is None and "run_mode" not in task.explicit_nulls
    assert task.id is None and "_id" in task.explicit_nulls  # JSON keys, not attribute names
    encoded = encode_task(task)
    assert encoded["status"] is None
    assert "run_mode" not in encoded
    assert encoded["output"]["transcript"] == [{"role": "user", "content": None, "timestamp": None}]


def test_unknown_keys_are_kept_at_every_level() -> None:
    task = decode_task(samples.extra_keys_task())
    assert task.extra["new_top"] == {"nested": [1, 2.0, None, "x"]}
    assert task.user_info is not None and task.user_info.extra == {
        "avatar": "https://cdn.example.com/a.png"
    }
    assert task.definition is not None and task.definition.extra == {"priority": 3}
    assert task.output is not None and task.output.extra == {"disposition": "warm"}
    assert task.output.transcript is not None
    assert task.output.transcript[0].extra == {"confidence": 0.93}
    assert task.output.post_call_data is not None
    assert task.output.post_call_data.extra == {"keywords": ["budget", "timeline"]}


def test_ints_stay_ints_and_floats_stay_floats() -> None:
    obj = samples.doc_task()
    obj["output"]["duration"] = 285.0
    obj["user"] = 1
    encoded = _round_trip(obj)
    assert type(encoded["output"]["duration"]) is float
    assert type(encoded["user"]) is int


# --- output shapes ------------------------------------------------------------------------------


def test_provider_output_maps_camel_case_keys_and_keeps_the_rest() -> None:
    task = decode_task(samples.provider_task())
    out = task.output
    assert out is not None
    assert out.shape is OutputShape.PROVIDER
    assert out.call_id == "019c2f4e-7a1b-7c3d-9e8f-0a1b2c3d4e5f"
    assert out.start_time == datetime(2026, 2, 7, 5, 57, 45, 123000, tzinfo=UTC)
    assert out.end_time == datetime(2026, 2, 7, 6, 2, 30, 456000, tzinfo=UTC)
    assert out.recording_url == "https://storage.example.com/rec/019c2f4e.wav"
    assert out.call_end_reason == "customer-ended-call"
    assert out.customer == {"number": "+15551234567"}
    assert out.cost == 0.1234
    assert set(out.extra) == {
        "assistantId",
        "type",
        "costBreakdown",
        "costs",
        "analysis",
        "artifact",
        "monitor",
        "status",
    }
    encoded = encode_task(task)["output"]
    assert "call_id" not in encoded and encoded["startedAt"] == "2026-02-07T05:57:45.123Z"


def test_output_with_native_and_provider_keys_is_native() -> None:
    obj = samples.doc_task()
    obj["output"]["startedAt"] = "2026-02-07T05:57:45Z"
    task = decode_task(obj)
    assert task.output is not None and task.output.shape is OutputShape.NATIVE
    assert task.output.extra == {"startedAt": "2026-02-07T05:57:45Z"}
    _assert_exact(encode_task(task), obj)


def test_empty_output_is_the_empty_shape() -> None:
    task = decode_task(samples.with_output({}))
    assert task.output == CallOutput(shape=OutputShape.EMPTY)
    assert encode_task(task)["output"] == {}


def test_null_output_is_none_and_written_back_as_null() -> None:
    task = decode_task(samples.with_output(None))
    assert task.output is None
    assert "output" in task.explicit_nulls
    assert encode_task(task)["output"] is None


@pytest.mark.parametrize("value", ["Email sent", ["a", 1], 0, 2.5, False])
def test_output_that_is_not_an_object_is_kept_verbatim_in_extra(value: Any) -> None:
    task = decode_task(samples.with_output(value))
    assert task.output is None
    assert task.extra["output"] == value
    assert type(encode_task(task)["output"]) is type(value)


def test_summary_decodes_as_string_or_as_call_summary() -> None:
    as_text = decode_task(samples.doc_task())
    assert as_text.output is not None and as_text.output.post_call_data is not None
    assert as_text.output.post_call_data.summary == "Discussed the project requirements."
    as_object = decode_task(samples.summary_object_task())
    assert as_object.output is not None
    post = as_object.output.post_call_data
    assert isinstance(post, PostCallData)
    assert post.summary == CallSummary(
        status="callback",
        summary="Asked to be called back.",
        name="John Doe",
        contact="1234567890",
        callback_datetime="tomorrow after five",
    )
    assert post.classification == {"label": "warm", "score": 0.71}
    assert post.structured_data == '{"budget": 5000}'


def test_provider_output_built_in_code_keeps_native_only_attributes() -> None:
    out = CallOutput(shape=OutputShape.PROVIDER, call_id="c1", duration=3)
    assert encode_task(Task(task_id="T1", output=out))["output"] == {"id": "c1", "duration": 3}


# --- times --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-07T05:57:45Z", datetime(2026, 2, 7, 5, 57, 45, tzinfo=UTC)),
        ("2026-02-07T05:57:45", datetime(2026, 2, 7, 5, 57, 45, tzinfo=UTC)),
        ("2026-02-07T05:57:45.123456", datetime(2026, 2, 7, 5, 57, 45, 123456, tzinfo=UTC)),
        ("2026-02-07T11:27:45+05:30", datetime(2026, 2, 7, 5, 57, 45, tzinfo=UTC)),
        ("2026-02-06T21:57:45.5-08:00", datetime(2026, 2, 7, 5, 57, 45, 500000, tzinfo=UTC)),
        ("2026-02-07T05:57:45+00:00", datetime(2026, 2, 7, 5, 57, 45, tzinfo=UTC)),
        ("2026-02-07", datetime(2026, 2, 7, tzinfo=UTC)),
    ],
)
def test_times_become_utc_aware_and_remember_their_text(text: str, expected: datetime) -> None:
    stamp = parse_timestamp(text)
    assert isinstance(stamp, Timestamp)
    assert stamp == expected
    assert stamp.tzinfo is UTC
    assert stamp.utcoffset() == timedelta(0)
    assert stamp.wire == text


def test_time_parsing_agrees_with_the_standard_library_on_many_spellings() -> None:
    rng = random.Random(5)
    for _ in range(500):
        day = f"20{rng.randint(0, 99):02d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        clock = rng.choice(["", "T05", "T05:57", "T05:57:45", " 23:59:59", "T00:00:00"])
        frac = rng.choice(["", ".5", ".123", ".123456"]) if clock.count(":") == 2 else ""
        zone = rng.choice(["", "Z", "+00:00", "+05:30", "-08:00", "+14:00"]) if clock else ""
        text = day + clock + frac + zone
        reference = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if reference.tzinfo is None:
            reference = reference.replace(tzinfo=UTC)
        stamp = parse_timestamp(text)
        assert stamp == reference, text
        assert stamp.tzinfo is UTC and stamp.wire == text


@pytest.mark.parametrize("text", ["", "Z", "tomorrow", "2026-02-30T00:00:00", "2026-02-07T25:00"])
def test_text_that_is_not_a_time_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not one"):
        parse_timestamp(text)


def test_task_times_are_utc_and_offsets_are_converted() -> None:
    task = decode_task(samples.offset_time_task())
    assert task.created is not None and task.created.tzinfo is UTC
    assert task.created == datetime(2026, 2, 7, 5, 57, 45, tzinfo=UTC)
    assert (task.created.hour, task.created.minute) == (5, 57)
    assert task.modified == datetime(2026, 2, 7, 6, 2, 30, 500000, tzinfo=UTC)
    server = decode_task(samples.server_task())
    assert server.created == datetime(2026, 2, 7, 5, 57, 45, tzinfo=UTC)
    assert server.created is not None and server.created.tzinfo is UTC


def test_transcript_timestamp_is_a_time_for_text_and_kept_for_a_number() -> None:
    task = decode_task(samples.offset_time_task())
    assert task.output is not None and task.output.transcript is not None
    stamps = [turn.timestamp for turn in task.output.transcript]
    assert stamps[0] == datetime(2026, 2, 7, 5, 57, 46, tzinfo=UTC)
    assert stamps[1] == 1770443867 and type(stamps[1]) is int
    assert stamps[2] == 12.75
    assert stamps[3] == datetime(2026, 2, 7, 5, 57, 49, 250000, tzinfo=UTC)


def test_time_without_wire_text_encodes_as_utc_with_z() -> None:
    naive = datetime(2026, 2, 7, 5, 57, 45)  # naive means UTC, as on the wire
    shifted = parse_timestamp("2026-02-07T05:57:45") + timedelta(seconds=1)
    ist = datetime.fromisoformat("2026-02-07T11:27:45.5+05:30")
    encoded = encode_task(Task(task_id="T", created=naive, modified=shifted))
    assert encoded["created"] == "2026-02-07T05:57:45Z"
    assert encoded["modified"] == "2026-02-07T05:57:46Z"
    assert encode_task(Task(task_id="T", created=ist))["created"] == "2026-02-07T05:57:45.500000Z"


def test_copy_and_pickle_keep_the_wire_text() -> None:
    task = decode_task(samples.server_task())
    for clone in (copy.deepcopy(task), pickle.loads(pickle.dumps(task))):
        assert clone == task
        assert clone.created is not None and clone.created.wire == "2026-02-07T05:57:45"
        _assert_exact(encode_task(clone), samples.server_task())


# --- enums --------------------------------------------------------------------------------------


def test_known_enum_values_decode_to_members() -> None:
    task = decode_task(samples.doc_task())
    assert task.status is TaskStatus.COMPLETED
    assert task.execution_type is ExecutionType.CALL
    assert task.run_mode is RunMode.PROD
    assert decode_task(samples.server_task()).status is TaskStatus.IN_PROGRESS


def test_unknown_enum_values_decode_to_plain_strings() -> None:
    task = decode_task(samples.unknown_values_task())
    for value, text in (
        (task.status, "escalated_to_human"),
        (task.execution_type, "carrier_pigeon"),
        (task.run_mode, "staging"),
    ):
        assert type(value) is str
        assert value == text


def test_enum_members_encode_as_plain_strings() -> None:
    encoded = encode_task(Task(task_id="T", status=TaskStatus.HOLD, run_mode="canary"))
    assert type(encoded["status"]) is str
    assert encoded == {"task_id": "T", "status": "hold", "run_mode": "canary"}


# --- secrets ------------------------------------------------------------------------------------


def test_user_token_never_appears_in_repr_or_str() -> None:
    task = decode_task(samples.server_task())
    assert task.user_info is not None
    assert task.user_info.user_token == samples.SECRET_USER_TOKEN
    for text in (repr(task), str(task), repr(task.user_info), str(task.user_info)):
        assert samples.SECRET_USER_TOKEN not in text
        assert "user_token" not in text
    assert encode_task(task)["user_info"]["user_token"] == samples.SECRET_USER_TOKEN


def test_repr_hides_wire_details_but_shows_data() -> None:
    text = repr(decode_task(samples.explicit_nulls_task()))
    assert "explicit_nulls" not in text
    assert "task_id='Tnulls'" in text


# --- decode errors ------------------------------------------------------------------------------

_BAD = "S3CRET-BAD-VALUE"

_Mutator = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> _Mutator:
    """A mutator that sets ``value`` at a dotted path (``output.transcript.2.content``)."""

    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = obj
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _turns(count: int) -> _Mutator:
    def mutate(obj: dict[str, Any]) -> None:
        obj["output"]["transcript"] = [{"role": "user", "content": "hi"} for _ in range(count)]

    return mutate


def _both(*mutators: _Mutator) -> _Mutator:
    def mutate(obj: dict[str, Any]) -> None:
        for m in mutators:
            m(obj)

    return mutate


TID = "T8ff2ccdffe9a11f0878d43cd8a99e069"

_HOSTILE: list[tuple[str, _Mutator, str, str | None]] = [
    ("full_name_is_a_number", _set("user_info.full_name", 5), "$.user_info.full_name", TID),
    ("email_is_a_list", _set("user_info.email", [_BAD]), "$.user_info.email", TID),
    ("user_info_is_a_string", _set("user_info", _BAD), "$.user_info", TID),
    ("user_id_is_an_object", _set("user_info.id", {"x": _BAD}), "$.user_info.id", TID),
    ("transcript_is_a_string", _set("output.transcript", _BAD), "$.output.transcript", TID),
    (
        "turn_is_not_an_object",
        _both(_turns(3), _set("output.transcript.2", _BAD)),
        "$.output.transcript[2]",
        TID,
    ),
    (
        "turn_content_is_a_number",
        _both(_turns(4), _set("output.transcript.2.content", 12345)),
        "$.output.transcript[2].content",
        TID,
    ),
    (
        "turn_timestamp_is_not_a_time",
        _both(_turns(2), _set("output.transcript.1.timestamp", _BAD)),
        "$.output.transcript[1].timestamp",
        TID,
    ),
    (
        "turn_timestamp_is_a_boolean",
        _both(_turns(2), _set("output.transcript.0.timestamp", True)),
        "$.output.transcript[0].timestamp",
        TID,
    ),
    ("created_is_not_a_time", _set("created", _BAD), "$.created", TID),
    ("created_is_empty", _set("created", ""), "$.created", TID),
    ("created_is_a_number", _set("created", 1770443865), "$.created", TID),
    ("start_time_is_not_a_time", _set("output.start_time", _BAD), "$.output.start_time", TID),
    ("duration_is_a_string", _set("output.duration", "285"), "$.output.duration", TID),
    ("duration_is_a_boolean", _set("output.duration", True), "$.output.duration", TID),
    (
        "post_call_data_is_a_list",
        _set("output.post_call_data", [_BAD]),
        "$.output.post_call_data",
        TID,
    ),
    (
        "summary_is_a_number",
        _set("output.post_call_data.summary", 3),
        "$.output.post_call_data.summary",
        TID,
    ),
    (
        "summary_name_is_a_number",
        _set("output.post_call_data.summary", {"name": 7}),
        "$.output.post_call_data.summary.name",
        TID,
    ),
    ("status_is_a_number", _set("status", 1), "$.status", TID),
    ("input_is_a_list", _set("input", [_BAD]), "$.input", TID),
    ("task_definition_is_a_string", _set("task", _BAD), "$.task", TID),
    ("objective_is_an_object", _set("task.objective", {"a": _BAD}), "$.task.objective", TID),
    ("id_is_a_number", _set("_id", 5), "$._id", TID),
    ("task_id_is_a_number", _set("task_id", 12345), "$.task_id", None),
    ("task_id_is_null", _set("task_id", None), "$.task_id", None),
    (
        "provider_started_at_is_not_a_time",
        _set("output", {"startedAt": _BAD, "assistantId": "a"}),
        "$.output.startedAt",
        TID,
    ),
]


_EAGER = make_converter(lazy=False)


def _decode_and_read(obj: Any) -> Task:
    """Decode with the package's converter and read ``output``, which it decodes on access."""
    task = decode_task(obj)
    task.output  # noqa: B018 - the read is what decodes it
    return task


@pytest.mark.parametrize(
    ("mutate", "path", "task_id"),
    [pytest.param(m, p, t, id=name) for name, m, p, t in _HOSTILE],
)
@pytest.mark.parametrize("how", ["eager", "lazy"])
def test_wrong_types_raise_decode_error_naming_path_and_task_but_not_the_value(
    mutate: _Mutator, path: str, task_id: str | None, how: str
) -> None:
    obj = samples.doc_task()
    mutate(obj)
    if how == "eager":  # every error at decode time
        with pytest.raises(DecodeError) as info:
            decode_task(obj, converter=_EAGER)
    elif path.startswith("$.output"):  # the package's converter: raised by reading output
        task = decode_task(obj)
        task.status  # noqa: B018 - decodes the rest of the task, not its output
        with pytest.raises(DecodeError) as info:
            task.output  # noqa: B018
    elif path != "$.task_id":  # the package's converter: raised by the first read
        task = decode_task(obj)
        assert task.task_id == obj["task_id"]  # kept at once: a walk reads it
        for _ in range(2):  # and from every read after it
            with pytest.raises(DecodeError) as info:
                task.status  # noqa: B018
        assert encode_task(task) == obj  # what was sent, as it was sent
    else:
        with pytest.raises(DecodeError) as info:
            decode_task(obj)
    err = info.value
    assert err.json_path == path
    assert err.task_id == task_id
    assert _BAD not in str(err) and "12345" not in str(err)
    assert err.__cause__ is None and err.__suppress_context__


def test_missing_task_id_is_a_decode_error() -> None:
    obj = samples.doc_task()
    del obj["task_id"]
    with pytest.raises(DecodeError, match="required key is missing") as info:
        decode_task(obj)
    assert info.value.json_path == "$.task_id"
    assert info.value.task_id is None


@pytest.mark.parametrize("value", [[_BAD], _BAD, 5, None, True])
def test_task_that_is_not_an_object_is_a_decode_error(value: Any) -> None:
    with pytest.raises(DecodeError) as info:
        decode_task(value)
    assert info.value.json_path == "$"
    assert _BAD not in str(info.value)


def test_decode_tasks_names_the_index_of_the_failing_task() -> None:
    objs = samples.random_tasks(seed=3, count=5)
    objs[3]["created"] = _BAD
    with pytest.raises(DecodeError, match=r"item 3 of 5") as info:
        decode_tasks(objs, converter=_EAGER)
    assert info.value.task_id == objs[3]["task_id"]
    assert info.value.json_path == "$.created"
    assert _BAD not in str(info.value)


def test_decoding_leaves_the_garbage_collector_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # No process-wide state on the hot path: a host application's threads keep collecting.
    import gc

    def refuse(*_: object) -> None:
        raise AssertionError("the garbage collector was reconfigured")

    for name in ("disable", "enable", "freeze", "set_threshold"):
        monkeypatch.setattr(gc, name, refuse)
    assert gc.isenabled()
    decode_tasks(samples.random_tasks(seed=4, count=3))
    with pytest.raises(DecodeError):
        decode_tasks([{"task_id": 1}])
    assert gc.isenabled()


def test_space_with_a_wrong_type_is_a_decode_error() -> None:
    with pytest.raises(DecodeError) as info:
        decode_space({"id": "sp", "created_at": _BAD})
    assert info.value.json_path == "$.created_at"
    assert info.value.task_id is None
    assert _BAD not in str(info.value)
    with pytest.raises(DecodeError):
        decode_space({"id": 1.5})


def _swap_one_value(rng: random.Random, obj: Any) -> None:
    """Replace one value somewhere in ``obj`` with a value of a random JSON type."""
    path = []
    node = obj
    while isinstance(node, dict | list) and node and rng.random() < 0.8:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append((node, key))
        node = node[key]
    if path:
        parent, key = path[-1]
        parent[key] = rng.choice([None, True, 0, 1.5, "x", "2026-02-07", [], [1], {}, {"a": 1}])


def test_random_type_swaps_either_round_trip_or_raise_decode_error() -> None:
    rng = random.Random(99)
    errors: list[DecodeError] = []
    for obj in samples.random_tasks(seed=11, count=800):
        _swap_one_value(rng, obj)
        try:
            task = _decode_and_read(obj)
        except DecodeError as exc:
            errors.append(exc)
            continue
        _assert_exact(encode_task(task), obj)
    assert len(errors) > 50
    assert all(exc.json_path.startswith("$") for exc in errors)


# --- the converter and odd inputs -----------------------------------------------------------


def test_converter_structures_and_unstructures_every_model() -> None:
    obj = samples.summary_object_task()
    task = converter.structure(obj, Task)
    assert task == decode_task(obj)
    _assert_exact(converter.unstructure(task), obj)
    assert orjson.loads(converter.dumps(task)) == obj
    assert converter.structure(obj["user_info"], UserInfo) == task.user_info
    assert task.output is not None
    assert converter.structure(obj["output"], CallOutput) == task.output
    assert converter.unstructure(task.output) == obj["output"]
    item = samples.doc_spaces_page()["data"][0]
    assert converter.unstructure(converter.structure(item, Space)) == item
    stamp = converter.structure("2026-02-07T05:57:45", Timestamp)
    assert converter.unstructure(stamp) == "2026-02-07T05:57:45"
    with pytest.raises(DecodeError) as info:
        converter.structure({"full_name": 5}, UserInfo)
    assert info.value.json_path == "$.full_name"


def test_dict_and_str_subclasses_are_accepted() -> None:
    obj = samples.doc_task()
    obj["output"]["transcript"] = [OrderedDict(role="user", content="hi")]
    obj["user_info"] = OrderedDict(obj["user_info"])
    obj["status"] = TaskStatus.FAILED
    task = decode_task(OrderedDict(obj))
    assert task.status is TaskStatus.FAILED
    assert task.output is not None and task.output.transcript == (
        TranscriptTurn(role="user", content="hi"),
    )
    assert encode_task(task) == obj


def test_decoded_tasks_do_not_share_extra_dicts() -> None:
    first, second = decode_tasks([samples.doc_task(), samples.doc_task()])
    assert first.extra == {} and first.extra is not second.extra
    assert first.user_info is not None and second.user_info is not None
    assert first.user_info.extra is not second.user_info.extra


def test_decoded_models_are_frozen_instances_of_their_class() -> None:
    task = decode_task(samples.doc_task())
    assert isinstance(task, Task)  # a subclass until read, then a Task in place
    assert task.output is not None
    assert type(task) is Task
    assert type(decode_task(samples.doc_task(), converter=_EAGER)) is Task
    assert task.output is not None and task.output.transcript is not None
    assert type(task.output.transcript[0]) is TranscriptTurn
    with pytest.raises(AttributeError):
        task.task_id = "other"  # type: ignore[misc]


def test_task_page_iterates_and_counts_its_tasks() -> None:
    tasks = tuple(decode_tasks(samples.random_tasks(seed=1, count=3)))
    page = TaskPage(page=2, page_size=3, count=9, tasks=tasks)
    assert len(page) == 3
    assert list(page) == list(tasks)
    assert (page.status_code, page.message, page.reread) == (200, None, False)


def test_secret_looking_keys_in_free_form_data_are_masked_in_repr() -> None:
    from spacetasks_async import decode_task

    task = decode_task(
        {
            "task_id": "T1",
            "input": {"name": "x", "password": "PW-1"},
            "user_info": {"user_token": "UT-1", "session": {"access_token": "AT-1"}},
            "output": {"call_id": "c", "metadata": {"api_key": "AK-1"}},
            "vendor_secret": "VS-1",
        }
    )
    text = repr(task)
    for secret in ("PW-1", "UT-1", "AT-1", "AK-1", "VS-1"):
        assert secret not in text
    assert "'name': 'x'" in text  # the rest is shown as it is
    assert task.input == {"name": "x", "password": "PW-1"}  # and kept, unchanged
