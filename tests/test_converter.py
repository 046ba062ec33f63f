"""The converter: one call per page, hooks from factories, user hooks, construction, laziness."""

from __future__ import annotations

import linecache
import pickle
from collections.abc import Iterator
from typing import Any

import attrs
import cattrs
import orjson
import pytest
import samples  # tests/ is on sys.path (pytest's default import mode)
from hypothesis import given, settings
from hypothesis import strategies as st

from spacetasks_async._convert import (
    _Hook,
    _twin_of,
    converter,
    decode_task,
    decode_tasks,
    encode_task,
    make_converter,
)
from spacetasks_async._errors import DecodeError
from spacetasks_async._models import (
    NO_NULLS,
    CallOutput,
    CallSummary,
    PostCallData,
    Space,
    Task,
    TaskDefinition,
    TranscriptTurn,
    UserInfo,
)

MODELS = (Task, UserInfo, TaskDefinition, CallOutput, TranscriptTurn, PostCallData, CallSummary)
_EAGER = make_converter(lazy=False)
_LAZY = make_converter()


def _assert_exact(got: Any, want: Any) -> None:
    # == alone would take 1 == 1.0 == True; the round trip must keep JSON types too.
    assert got == want
    assert orjson.dumps(got, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        want, option=orjson.OPT_SORT_KEYS
    )


# --- one call into a converter whose model hooks come from factories ---------------------------


def test_a_page_decodes_with_one_call_into_the_converter(monkeypatch: pytest.MonkeyPatch) -> None:
    conv = make_converter()
    calls = []
    structure = conv.structure

    def spy(obj: Any, cl: Any) -> Any:
        calls.append(cl)
        return structure(obj, cl)

    monkeypatch.setattr(conv, "structure", spy)
    data = samples.random_tasks(seed=2, count=20)
    tasks = decode_tasks(data, converter=conv)
    assert calls == [list[Task]]
    assert tasks == decode_tasks(data) == converter.structure(data, list[Task])


def test_model_hooks_are_generated_code_registered_with_linecache() -> None:
    conv = make_converter()
    for model in (*MODELS, Space):
        hook = conv.get_structure_hook(model)
        assert isinstance(hook, _Hook)
        assert hook.kind.name == "model" and hook.kind.of is model
        assert hook.kind.raw is not None
        filename = hook.kind.raw.__code__.co_filename
        if model is Task:  # the lazy converter keeps a task as sent until it is read
            assert hook.kind.raw.__qualname__ == "_deferring.<locals>.defer"
            eager = make_converter(lazy=False).get_structure_hook(Task)
            filename = eager.kind.raw.__code__.co_filename
        if model is not CallOutput:  # its raw decoder picks one of three generated ones
            assert filename.startswith("<spacetasks_async generated structure")
            assert linecache.getline(filename, 1).startswith("def decode_")


def test_converters_are_independent_and_copies_keep_the_hooks() -> None:
    theirs = make_converter()
    theirs.register_structure_hook(UserInfo, lambda value, _: "replaced")
    obj = samples.doc_task()
    replaced: Any = decode_task(obj, converter=theirs).user_info  # what the hook gave
    assert replaced == "replaced"
    assert isinstance(decode_task(obj).user_info, UserInfo)
    assert isinstance(decode_task(obj, converter=make_converter()).user_info, UserInfo)
    copied = converter.copy()
    assert decode_task(obj, converter=copied) == decode_task(obj)


# --- hooks of the user's --------------------------------------------------------------------


@attrs.frozen
class Lead:
    """What a user of the package decodes a task's ``input`` into."""

    name: str
    contact_number: str
    email: str | None = None
    context: str | None = None


def _lead_converter() -> cattrs.Converter:
    theirs = make_converter()

    def structure_input(value: Any, _: Any) -> Lead:
        lead: Lead = theirs.structure(value, Lead)
        return lead

    # dict[str, Any] is the type of Task.input without None (cattrs takes a predicate for a
    # generic alias).
    theirs.register_structure_hook_func(lambda t: t == dict[str, Any], structure_input)
    return theirs


def test_a_user_hook_decodes_input_into_their_own_class() -> None:
    theirs = _lead_converter()
    data = samples.doc_page()["data"]
    (task,) = decode_tasks(data, converter=theirs)
    lead: Any = task.input  # the attribute holds what the hook gave; its annotation stays
    assert lead == Lead(
        name="John Doe",
        contact_number="1234567890",
        email="john@example.com",
        context="Follow up on proposal",
    )
    # The rest decodes as ever, and the package's own converter is untouched.
    (plain,) = decode_tasks(data)
    assert plain.input == data[0]["input"]
    assert attrs.evolve(task, input=plain.input) == plain
    # Encoded back through the same converter: cattrs unstructures Lead to the same object.
    _assert_exact(encode_task(task, converter=theirs), data[0])


def test_a_user_hook_sees_neither_absent_keys_nor_nulls() -> None:
    theirs = _lead_converter()
    absent, null = samples.doc_task(), samples.doc_task()
    del absent["input"]
    null["input"] = None
    for obj in (absent, null):
        task = decode_task(obj, converter=theirs)
        assert task.input is None
        _assert_exact(encode_task(task, converter=theirs), obj)


def test_a_hook_registered_after_a_first_decode_is_used_from_the_next() -> None:
    conv = make_converter()
    obj = samples.doc_task()
    assert decode_task(obj, converter=conv).input == obj["input"]
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], lambda v, _: tuple(v))
    replaced: Any = decode_task(obj, converter=conv).input
    assert replaced == tuple(obj["input"])


def test_a_user_hook_for_a_model_is_called_inside_the_task() -> None:
    theirs = make_converter()
    ours = theirs.get_structure_hook(UserInfo)

    def shouting(value: Any, type_: Any) -> UserInfo:
        info: UserInfo = ours(value, type_)
        return attrs.evolve(info, full_name=(info.full_name or "").upper())

    theirs.register_structure_hook(UserInfo, shouting)
    task = decode_task(samples.doc_task(), converter=theirs)
    assert task.user_info is not None and task.user_info.full_name == "JOHN DOE"
    # An error inside the package's hook, called by the user's, keeps its full path.
    obj = samples.doc_task()
    obj["user_info"]["full_name"] = 5
    lazy = decode_task(obj, converter=theirs)  # decoded (and refused) when first read
    with pytest.raises(DecodeError) as info:
        lazy.user_info  # noqa: B018
    assert info.value.json_path == "$.user_info.full_name"
    assert info.value.task_id == obj["task_id"]


def test_a_failing_user_hook_is_named_by_path_and_exception_type_only() -> None:
    theirs = make_converter()

    def refuse(value: Any, _: Any) -> Any:
        raise ValueError(f"no thanks: {value!r}")

    theirs.register_structure_hook_func(lambda t: t == dict[str, Any], refuse)
    obj = samples.doc_task()
    obj["input"] = {"secret": "S3CRET-INPUT"}
    eager = make_converter(lazy=False)
    eager.register_structure_hook_func(lambda t: t == dict[str, Any], refuse)
    with pytest.raises(DecodeError) as info:
        decode_tasks([samples.doc_task() | {"input": None}, obj], converter=eager)
    err = info.value
    assert err.json_path == "$.input"
    assert "ValueError" in err.reason and "item 1 of 2" in err.reason
    assert "S3CRET" not in str(err) and err.__cause__ is None
    # The lazy converter calls the hook when the task is first read: the same error, but
    # the page is not there any more to give the item's index.
    first, second = decode_tasks([samples.doc_task() | {"input": None}, obj], converter=theirs)
    assert first.input is None
    with pytest.raises(DecodeError) as info:
        second.status  # noqa: B018
    err = info.value
    assert err.json_path == "$.input" and err.task_id == obj["task_id"]
    assert "ValueError" in err.reason and "S3CRET" not in str(err) and err.__cause__ is None


@attrs.frozen
class Line:
    """What a user of the package decodes a transcript turn into."""

    role: str
    content: str


@pytest.mark.parametrize("lazy", [True, False])
def test_a_user_hook_for_transcript_turns_decodes_and_encodes_each_turn(lazy: bool) -> None:
    theirs = make_converter(lazy=lazy)
    theirs.register_structure_hook(TranscriptTurn, lambda value, _: theirs.structure(value, Line))
    obj = samples.doc_task()
    task = decode_task(obj, converter=theirs)
    assert task.output is not None
    lines: Any = task.output.transcript
    assert lines == (
        Line("agent", "Hello, am I speaking with John Doe?"),
        Line("user", "Yes, this is John."),
    )
    task.output.post_call_data  # noqa: B018 - the rest of the output is the package's
    _assert_exact(encode_task(task, converter=theirs), obj)
    obj["output"]["transcript"][1] = {"role": "user"}  # Line requires content
    with pytest.raises(DecodeError) as info:  # at decode time, or when output is read
        decode_task(obj, converter=theirs).output  # noqa: B018
    assert info.value.json_path == "$.output.transcript[1]"
    assert "ClassValidationError" in info.value.reason


@pytest.mark.parametrize("lazy", [True, False])
def test_a_user_hook_for_the_call_output_is_used(lazy: bool) -> None:
    theirs = make_converter(lazy=lazy)
    theirs.register_structure_hook(CallOutput, lambda value, _: ("mine", len(value)))
    obj = samples.doc_task()
    mine: Any = decode_task(obj, converter=theirs).output
    assert mine == ("mine", len(obj["output"]))
    assert decode_task(samples.with_output("Email sent"), converter=theirs).output is None


# --- how instances are built --------------------------------------------------------------------


def _attrs_instances(value: Any) -> Iterator[Any]:
    if attrs.has(type(value)):
        yield value
        for a in attrs.fields(type(value)):
            yield from _attrs_instances(getattr(value, a.name))
    elif isinstance(value, tuple):
        for item in value:
            yield from _attrs_instances(item)


def test_every_model_is_built_as_its_init_would_build_it() -> None:
    # The fast construction (a plain twin, then __class__) is allowed for every model of the
    # package, and gives what calling the class gives, eq=False attributes included.
    assert all(_twin_of(model) is not None for model in (*MODELS, Space))
    seen = set()
    for obj in [*samples.named_samples().values(), *samples.random_tasks(seed=5, count=200)]:
        lazy = decode_task(obj)
        lazy.status  # noqa: B018 - decoded in place on first read
        eager = decode_task(obj, converter=make_converter(lazy=False))
        for instance in [*_attrs_instances(lazy), *_attrs_instances(eager)]:
            cls = type(instance)
            values = {a.alias: getattr(instance, a.name) for a in attrs.fields(cls)}
            called = cls(**values)
            assert type(called) is cls
            for a in attrs.fields(cls):
                assert getattr(called, a.name) is getattr(instance, a.name), (cls, a.name)
            seen.add(cls)
    assert seen == set(MODELS)


def _only_user_or_agent(instance: Any, attribute: Any, value: Any) -> None:
    if value not in (None, "user", "agent"):
        raise ValueError(f"unexpected role {value!r}")


@attrs.frozen
class CheckedTurn:
    """A model with a validator: it must run."""

    role: str | None = attrs.field(default=None, validator=_only_user_or_agent)
    content: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)
    explicit_nulls: frozenset[str] = attrs.field(default=NO_NULLS, eq=False)


def _stripped(value: str | None) -> str | None:
    return value.strip() if value is not None else None


@attrs.frozen
class ConvertedTurn:
    """A model with a converter: it must run."""

    role: str | None = None
    content: str | None = attrs.field(default=None, converter=_stripped)
    extra: dict[str, Any] = attrs.field(factory=dict)
    explicit_nulls: frozenset[str] = attrs.field(default=NO_NULLS, eq=False)


POST_INIT_SEEN: list[str | None] = []


@attrs.frozen
class ObservedTurn:
    """A model with ``__attrs_post_init__``: it must run."""

    role: str | None = None
    content: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)
    explicit_nulls: frozenset[str] = attrs.field(default=NO_NULLS, eq=False)

    def __attrs_post_init__(self) -> None:
        POST_INIT_SEEN.append(self.role)


@attrs.frozen(cache_hash=True)
class HashedTurn:
    """A model whose slots hold more than its fields (a hash cache): must be called."""

    role: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)
    explicit_nulls: frozenset[str] = attrs.field(default=NO_NULLS, eq=False)


@attrs.frozen(weakref_slot=False)  # as the package's models (CPython's layout rule)
class Conversation:
    """A model holding the others, so that they are decoded inline inside it."""

    turns: tuple[CheckedTurn, ...] | None = None
    converted: ConvertedTurn | None = None
    observed: ObservedTurn | None = None
    hashed: HashedTurn | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)
    explicit_nulls: frozenset[str] = attrs.field(default=NO_NULLS, eq=False)


def test_models_whose_init_does_more_are_built_by_calling_them() -> None:
    for model in (CheckedTurn, ConvertedTurn, ObservedTurn, HashedTurn):
        assert _twin_of(model) is None, model
    assert _twin_of(Conversation) is not None
    POST_INIT_SEEN.clear()
    conv = make_converter()
    obj = {
        "turns": [{"role": "user", "content": "hi"}, {"role": "agent"}],
        "converted": {"content": "  padded  "},
        "observed": {"role": "agent", "mood": "fine"},
        "hashed": {"role": "user"},
    }
    decoded = conv.structure(obj, Conversation)
    assert decoded.turns == (CheckedTurn("user", "hi"), CheckedTurn("agent"))
    assert decoded.converted == ConvertedTurn(content="padded")  # the converter ran
    assert POST_INIT_SEEN == ["agent"]  # __attrs_post_init__ ran, once
    assert decoded.observed == ObservedTurn(role="agent", extra={"mood": "fine"})
    assert hash(decoded.hashed) == hash(HashedTurn(role="user"))
    # The validator runs too, and its refusal is a DecodeError at the value's path that
    # names the exception's type only (its message quotes the value).
    obj["turns"] = [{"role": "user"}, {"role": "S3CRET-ROLE"}]
    with pytest.raises(DecodeError) as info:
        conv.structure(obj, Conversation)
    assert info.value.json_path == "$.turns[1]"
    assert "ValueError" in info.value.reason
    assert "S3CRET" not in str(info.value)


# --- Task.output, decoded on first read ---------------------------------------------------------


def test_output_is_decoded_on_first_read_and_kept() -> None:
    obj = samples.doc_task()
    task = decode_task(obj)
    first = task.output
    assert isinstance(first, CallOutput)
    assert task.output is first
    assert first == decode_task(obj, converter=_EAGER).output


def test_an_unread_output_round_trips_as_sent_and_compares_as_decoded() -> None:
    for obj in samples.random_tasks(seed=9, count=200):
        unread, eager = decode_task(obj), decode_task(obj, converter=_EAGER)
        _assert_exact(encode_task(unread), obj)
        assert encode_task(unread).get("output") is obj.get("output")  # not even copied
        assert unread == eager
        _assert_exact(encode_task(unread), encode_task(eager))


def test_an_unread_output_pickles_and_masks_secrets_in_repr() -> None:
    obj = samples.doc_task()
    obj["output"]["metadata"] = {"api_key": "AK-SECRET-1"}
    task = decode_task(obj)
    assert "AK-SECRET-1" not in repr(decode_task(obj))
    clone = pickle.loads(pickle.dumps(decode_task(obj)))
    assert clone == task
    _assert_exact(encode_task(clone), obj)


def test_an_output_that_does_not_decode_fails_when_read_not_with_its_page() -> None:
    page = samples.random_tasks(seed=3, count=4)
    page[2] = samples.doc_task()
    page[2]["output"]["transcript"][1]["content"] = 12345
    tasks = decode_tasks(page)  # the rest of the page is fine
    for _ in range(2):  # every read raises: a value that does not decode is not kept
        with pytest.raises(DecodeError) as info:
            tasks[2].output  # noqa: B018
        assert info.value.json_path == "$.output.transcript[1].content"
        assert info.value.task_id == page[2]["task_id"]
        assert "12345" not in str(info.value)
    _assert_exact(encode_task(tasks[2]), page[2])  # still written back as sent
    with pytest.raises(DecodeError, match="item 2 of 4"):
        decode_tasks(page, converter=_EAGER)


# --- exact round trip, whatever the free-form parts hold -------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson reads and writes
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
_unknown_keys = st.dictionaries(st.text(min_size=1, max_size=8), _json, max_size=3)


@settings(max_examples=150, deadline=None)
@given(
    top=_unknown_keys,
    output_extra=_unknown_keys,
    turn_extra=_unknown_keys,
    anys=st.lists(_json, min_size=4, max_size=4),
    nulls=st.sets(st.sampled_from(["thread_id", "status", "created", "user_info", "_id"])),
    lazy=st.booleans(),
)
def test_any_task_round_trips_exactly(
    top: dict[str, Any],
    output_extra: dict[str, Any],
    turn_extra: dict[str, Any],
    anys: list[Any],
    nulls: set[str],
    lazy: bool,
) -> None:
    obj = samples.doc_task()
    obj["output"]["transcript"][0].update(
        {k: v for k, v in turn_extra.items() if k not in ("role", "content", "timestamp")}
    )
    obj["output"].update({k: v for k, v in output_extra.items() if k not in obj["output"]})
    obj.update({k: v for k, v in top.items() if k not in obj})
    obj["user"], obj["attachments"], obj["input"]["nested"], obj["output"]["cost"] = anys
    obj.update(dict.fromkeys(nulls))
    conv = _LAZY if lazy else _EAGER
    task = decode_task(obj, converter=conv)
    task.output  # noqa: B018 - decoded, so that both directions are exercised
    _assert_exact(encode_task(task, converter=conv), obj)
