"""Decoding and encoding of the models: one cattrs converter, fast generated hooks.

Why generated code: a harvest decodes every task of a space, so decoding must cost about as
much as parsing the JSON. cattrs' own generated hooks validate in detail but take several
times the cost of ``orjson.loads``. Here a small table per model (:data:`_SPECS`) says, for
every attribute, its JSON key and its kind; from it, straight-line decode and encode functions
are generated once at import: one ``dict.get`` and one class check per field, nested models
and transcript turns decoded inline, and instances built without a call per field (see
:func:`_twin_of`). The same table drives both directions, which is what keeps the round trip
exact. The generated source is in ``_CODECS["__source__"]``.

Errors: the generated code raises a private ``_Invalid`` carrying the JSON path relative to the
object being decoded; each enclosing level prepends its own segment on the way out (try blocks
cost nothing in Python 3.11 until something raises). The public functions turn it into a
:class:`~spacetasks_async._errors.DecodeError` naming the task and the path, and only ever the
*type* of a bad value, never the value.

The generated source is registered with :mod:`linecache`, so tracebacks show its lines.
"""

from __future__ import annotations

import enum
import linecache
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import attrs
import cattrs
from cattrs.preconf.orjson import make_converter

from ._errors import DecodeError
from ._gc import gc_paused
from ._models import (
    NO_NULLS,
    CallOutput,
    CallSummary,
    ExecutionType,
    OutputShape,
    PostCallData,
    RunMode,
    Space,
    Task,
    TaskDefinition,
    TaskStatus,
    Timestamp,
    TranscriptTurn,
    UserInfo,
)

__all__ = [
    "converter",
    "decode_space",
    "decode_task",
    "decode_tasks",
    "encode_space",
    "encode_task",
    "parse_timestamp",
]

_M = TypeVar("_M")


class _Invalid(Exception):
    """A value has the wrong type; ``path`` grows from the inside out as it propagates."""

    __slots__ = ("path", "reason")

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason

    def under(self, segment: str) -> _Invalid:
        self.path = segment + self.path
        return self


_JSON_TYPE_NAMES: Final[Mapping[type, str]] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _type_name(value: object) -> str:
    # Only the type of a bad value is ever reported: the value may be personal data or a token.
    return _JSON_TYPE_NAMES.get(type(value)) or f"a {type(value).__name__}"


def _wrong_type(segment: str, value: object, expected: str) -> _Invalid:
    return _Invalid(segment, f"expected {expected}, got {_type_name(value)}")


# --- timestamps -------------------------------------------------------------------------------

_parse = datetime.fromisoformat
_state_of = datetime.__reduce__
# The constructor, called with a pickled state that its type stubs do not describe.
_new_stamp: Final[Any] = Timestamp


def _build_stamp_from_state(plain: datetime) -> Timestamp:
    # ``datetime(state, tzinfo)`` is the unpickling form of the constructor (CPython and
    # the pure-Python datetime both take it): the 10-byte state of a *plain* datetime,
    # already validated by ``fromisoformat``, builds the subclass in one allocation, without
    # parsing eight arguments. Building a datetime subclass any other way (``fromisoformat``
    # on the subclass, ``replace``, the field constructor) costs two to three times more.
    stamp: Timestamp = _new_stamp(_state_of(plain)[1][0], UTC)
    return stamp


def _build_stamp_from_fields(plain: datetime) -> Timestamp:
    return Timestamp(
        plain.year,
        plain.month,
        plain.day,
        plain.hour,
        plain.minute,
        plain.second,
        plain.microsecond,
        UTC,
    )


def _pick_stamp_builder() -> Callable[[datetime], Timestamp]:
    # Checked once at import: the state form is used only where it gives the same value.
    probe = datetime(2026, 2, 7, 5, 57, 45, 123456)
    try:
        built = _build_stamp_from_state(probe)
    except (TypeError, ValueError, IndexError):  # pragma: no cover - other implementations
        return _build_stamp_from_fields
    if type(built) is Timestamp and built == probe.replace(tzinfo=UTC) and built.tzinfo is UTC:
        return _build_stamp_from_state
    return _build_stamp_from_fields  # pragma: no cover


_build_stamp: Final = _pick_stamp_builder()
_stamp_from_state: Final = _build_stamp is _build_stamp_from_state


def parse_timestamp(text: str) -> Timestamp:
    """Parse an ISO 8601 time of the API into a UTC :class:`~._models.Timestamp`.

    ``Z``, ``+hh:mm`` and naive text (which the server writes and which means UTC) are all
    accepted; the result remembers ``text`` so that it encodes back unchanged.
    Raises ``ValueError`` when ``text`` is not such a time.
    """
    try:
        return _decode_time(text, "")
    except _Invalid as exc:
        raise ValueError(exc.reason) from None


def _decode_time(text: str, segment: str) -> Timestamp:
    try:
        # Parsed as a plain datetime first (the C parser validates every field), then built
        # as the subclass in one step; see _build_stamp_from_state.
        plain = _parse(text)
        zone = plain.tzinfo
        if zone is not None and zone is not UTC:  # an offset: move it to UTC
            plain = plain.astimezone(UTC)
        # Naive text (the server's form) means UTC: its fields are the UTC fields already.
        if _stamp_from_state:
            stamp: Timestamp = _new_stamp(_state_of(plain)[1][0], UTC)
        else:  # pragma: no cover - other implementations
            stamp = _build_stamp(plain)
    # OverflowError: out of range once moved to UTC.
    except (ValueError, OverflowError):
        raise _Invalid(segment, "expected an ISO 8601 time, got a string that is not one") from None
    stamp._wire = text
    return stamp


def _encode_time(value: datetime) -> str:
    wire = getattr(value, "_wire", None)
    if isinstance(wire, str):
        return wire
    if value.tzinfo is None:  # naive means UTC in this API
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- small helpers the generated code calls on rare or slow paths ------------------------------


def _null_set(cache: dict[int, frozenset[str]], keys: tuple[str, ...], bits: int) -> frozenset[str]:
    # The explicit_nulls of one combination of null keys, built once and then shared (it is
    # immutable); the combinations met are few, and the cache is bounded anyway.
    nulls = frozenset(key for index, key in enumerate(keys) if bits >> index & 1)
    if len(cache) < 1024:
        cache[bits] = nulls
    return nulls


def _is_str_or_int(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    # Enum members are written as their plain value, so the encoded dict holds only JSON types.
    return value.value if isinstance(value, enum.Enum) else value


def _enum_table(cls: type[enum.Enum]) -> dict[str, Any]:
    return {member.value: member for member in cls}


def _segment(key: str) -> str:
    return f".{key}" if key.isidentifier() else f"[{key!r}]"


# --- the field tables ---------------------------------------------------------------------------


@attrs.frozen
class _F:
    """How one attribute is stored: its kind, its JSON key (default: its name), its model."""

    kind: str
    key: str | None = None
    of: Any = None
    # Usually absent: test for absence before testing the type.
    rare: bool = False


# Kinds: "str", "required_str", "any" (any JSON value, kept as is), "scalar" (not an object or
# array), "str_or_int", "number" (int or float, not bool), "dict", "time" (string parsed to a
# Timestamp), "time_or_number", "enum", "model", "models" (array of objects -> tuple),
# "summary" (string or CallSummary), "output" (CallOutput; anything else goes to extra).
_SPECS: Final[dict[str, tuple[type, dict[str, _F]]]] = {
    "UserInfo": (
        UserInfo,
        {
            "email": _F("str"),
            "full_name": _F("str"),
            "id": _F("scalar"),
            "user_token": _F("str"),
        },
    ),
    "TaskDefinition": (TaskDefinition, {"objective": _F("str")}),
    "TranscriptTurn": (
        TranscriptTurn,
        {"role": _F("str"), "content": _F("str"), "timestamp": _F("time_or_number", rare=True)},
    ),
    "CallSummary": (
        CallSummary,
        {
            "status": _F("str"),
            "summary": _F("str"),
            "name": _F("str"),
            "contact": _F("scalar"),
            "callback_datetime": _F("str"),
        },
    ),
    "PostCallData": (
        PostCallData,
        {
            "summary": _F("summary"),
            "outcome": _F("str"),
            "sentiment": _F("str"),
            "classification": _F("any"),
            "success_evaluator": _F("any"),
            "structured_data": _F("any"),
            "call_evaluation": _F("any"),
            "profile_summary": _F("any"),
        },
    ),
    "CallOutput_native": (
        CallOutput,
        {
            "call_id": _F("str"),
            "start_time": _F("time"),
            "end_time": _F("time"),
            "duration": _F("number"),
            "recording_url": _F("str"),
            "transcript": _F("models", of=TranscriptTurn),
            "post_call_data": _F("model", of=PostCallData),
            "call_type": _F("str"),
            "call_status": _F("str"),
            "customer": _F("any"),
            "contact_number": _F("any"),
            "call_end_reason": _F("str"),
            "assistant_number": _F("any"),
            "call_summary": _F("any"),
            "cost": _F("any"),
            "metadata": _F("any"),
            "status_update": _F("any"),
            "error": _F("any"),
            "notes": _F("any"),
        },
    ),
    # The voice provider's own call object. Only the keys that mean the same as a native
    # attribute are mapped; the rest (assistantId, costBreakdown, analysis, artifact, ...)
    # stay in extra under their own names.
    "CallOutput_provider": (
        CallOutput,
        {
            "call_id": _F("str", key="id"),
            "start_time": _F("time", key="startedAt"),
            "end_time": _F("time", key="endedAt"),
            "recording_url": _F("str", key="recordingUrl"),
            "call_end_reason": _F("str", key="endedReason"),
            "customer": _F("any"),
            "cost": _F("any"),
        },
    ),
    "Task": (
        Task,
        {
            "task_id": _F("required_str"),
            "id": _F("str", key="_id"),
            "thread_id": _F("str"),
            "run_id": _F("str"),
            "user_info": _F("model", of=UserInfo),
            "definition": _F("model", key="task", of=TaskDefinition),
            "input": _F("dict"),
            "output": _F("output"),
            "assignee": _F("str"),
            "status": _F("enum", of=TaskStatus),
            "execution_type": _F("enum", of=ExecutionType),
            "run_mode": _F("enum", of=RunMode),
            "created": _F("time"),
            "modified": _F("time"),
            "space_id": _F("any"),
            "user": _F("any"),
            "user_org_id": _F("any"),
            "collection_ref": _F("any"),
            "attachments": _F("any"),
            "ref_id": _F("any"),
        },
    ),
    "Space": (
        Space,
        {
            "id": _F("str_or_int"),
            "name": _F("str"),
            "token": _F("str"),
            "agent_handle": _F("str"),
            "created_at": _F("time"),
        },
    ),
}

# Keys that only one output shape uses. A dict with a provider-only key and no native-only
# key is the provider's object; "id", "customer" and "cost" are shared, so they decide nothing.
_PROVIDER_ONLY: Final = frozenset(
    {
        "startedAt",
        "endedAt",
        "recordingUrl",
        "assistantId",
        "costBreakdown",
        "endedReason",
        "artifact",
        "analysis",
        "costs",
        "monitor",
    }
)
_NATIVE_ONLY: Final = frozenset(
    {
        "call_id",
        "start_time",
        "end_time",
        "duration",
        "recording_url",
        "transcript",
        "post_call_data",
        "call_type",
        "call_status",
        "contact_number",
        "call_end_reason",
        "assistant_number",
        "call_summary",
        "status_update",
    }
)
_WIRE_ONLY: Final = frozenset({"extra", "explicit_nulls", "shape"})


# --- the code generator -------------------------------------------------------------------------
#
# Each model gets a decoder ``_dec_<name>(d)`` and an encoder ``_enc_<name>(o)``. In a decoder
# every field is read once with ``d.get(key, _ABSENT)`` and goes down one chain of branches,
# the well-typed case first:
#
#     if <the usual type>:  <convert>          e.g. a str; a dict -> the nested model
#     elif x is _ABSENT:    absent += 1        counted, to learn cheaply if there are unknown keys
#     elif x is None:       remember the null  so that encoding writes it back
#     elif <a subclass>:    <convert>          a str or dict subclass handed to the converter
#     else:                 raise _Invalid     the path segment, and only the value's type
#
# Nested models and the items of an array are decoded inline (no call per transcript turn),
# with their own local names; a try around them adds their path segment to an error.


class _Block:
    """Emits the statements that decode the dict in local ``src`` into model ``name``.

    ``p`` prefixes every local name, so that inlined blocks do not clash. The built instance
    ends up in local ``{p}o``.
    """

    def __init__(self, name: str, src: str, p: str, ns: dict[str, Any]) -> None:
        self.name, self.src, self.p, self.ns = name, src, p, ns
        self.cls, self.spec = _SPECS[name]
        self.lines: list[str] = []

    def emit(self, indent: str, *lines: str) -> None:
        self.lines += [indent + line for line in lines]

    def build(self) -> list[str]:
        p, src = self.p, self.src
        fields = [a.name for a in attrs.fields(self.cls) if a.name not in _WIRE_ONLY]
        self.emit("", f"{p}get = {src}.get", f"{p}n = 0", f"{p}absent = 0")
        has_output = "output" in self.spec
        if has_output:
            self.emit("", f"{p}stray = _UNSET")
        args = ["_shape_" + self.name.rpartition("_")[2]] if self.cls is CallOutput else []
        for i, attr in enumerate(fields):
            f = self.spec.get(attr)
            if f is None:  # an attribute this shape has no key for
                args.append("None")
                continue
            var = f"{p}x{i}"
            self._field(var, f, f.key or attr, attr)
            args.append(var)
        known = f"_known_{self.name}"
        self.emit(
            "",
            # Every key is known exactly when the number of known keys present is len(d).
            f"if len({src}) == {len(self.spec)} - {p}absent:",
            f"    {p}extra = {{}}",
            "else:",
            f"    {p}extra = {{k: v for k, v in {src}.items() if k not in {known}}}",
        )
        if has_output:
            self.emit("", f"if {p}stray is not _UNSET:", f"    {p}extra['output'] = {p}stray")
        # Explicit nulls are collected as bits (one per key, in table order) and turned into
        # a shared frozenset: no list, no call and no new set per object.
        cache, keys = f"_nulls_{self.name}", f"_null_keys_{self.name}"
        self.ns[cache] = {}
        self.ns[keys] = tuple(f.key or attr for attr, f in self.spec.items())
        args += [
            f"{p}extra",
            f"_NO_NULLS if {p}n == 0 else ({cache}.get({p}n) or _null_set({cache}, {keys}, {p}n))",
        ]
        cls_name = self.cls.__name__
        if self.ns[f"_twin_{cls_name}"] is None:
            self.emit("", f"{p}o = {cls_name}({', '.join(args)})")
        else:
            # See _twin_of: fill a plain slotted twin, then make it the model.
            names = [a.name for a in attrs.fields(self.cls)]
            # Calling the twin (which has no __init__) allocates it faster than
            # ``object.__new__(twin)`` does.
            self.emit("", f"{p}o = _twin_{cls_name}()")
            self.emit("", *(f"{p}o.{a} = {v}" for a, v in zip(names, args, strict=True)))
            self.emit("", f"{p}o.__class__ = {cls_name}")
        return self.lines

    def _field(self, var: str, f: _F, key: str, attr: str) -> None:
        p, src = self.p, self.src
        k, seg = repr(key), repr(_segment(key))
        if f.kind == "required_str":
            self.emit(
                "",
                f"{var} = {p}get({k})",
                f"if {var}.__class__ is not str and not isinstance({var}, str):",
                f"    if {k} not in {src}:",
                f"        raise _Invalid({seg}, 'the required key is missing')",
                f"    raise _wrong_type({seg}, {var}, 'a string')",
            )
            return
        self.emit("", f"{var} = {p}get({k}, _ABSENT)")
        fast, slow, what = self._branches(var, f, seg, f"{p}{attr}_")
        missing = [
            (f"{var} is _ABSENT", [f"{var} = None", f"{p}absent += 1"]),
            (f"{var} is None", [f"{p}n |= {1 << list(self.spec).index(attr)}"]),
        ]
        branches = [*missing, *fast] if f.rare else [*fast, *missing]
        for index, (cond, body) in enumerate([*branches, *slow]):
            self.emit("", f"{'elif' if index else 'if'} {cond}:")
            self.lines += ["    " + line for line in body]
        if f.kind == "output":
            # Not an object and not null: kept verbatim in extra (see Task's docstring).
            self.emit("", "else:", f"    {p}stray = {var}", f"    {var} = None")
        elif what:
            self.emit("", "else:", f"    raise _wrong_type({seg}, {var}, {what!r})")

    def _branches(
        self, v: str, f: _F, seg: str, q: str
    ) -> tuple[list[tuple[str, list[str]]], list[tuple[str, list[str]]], str]:
        """(fast branches, subclass branches, what was expected) for one field's kind."""
        is_str, is_dict = f"{v}.__class__ is str", f"{v}.__class__ is dict"
        any_str, any_dict = f"isinstance({v}, str)", f"isinstance({v}, dict)"
        to_time = [f"{v} = _decode_time({v}, {seg})"]
        number = f"{v}.__class__ is int or {v}.__class__ is float"
        kind = f.kind
        if kind == "any":
            return [], [], ""
        if kind == "str":
            return [(is_str, ["pass"])], [(any_str, ["pass"])], "a string"
        if kind == "scalar":
            scalar = f"isinstance({v}, (str, int, float))"
            return [(is_str, ["pass"])], [(scalar, ["pass"])], "a string, number or boolean"
        if kind == "str_or_int":
            str_or_int = f"{is_str} or {v}.__class__ is int"
            return (
                [(str_or_int, ["pass"])],
                [(f"_is_str_or_int({v})", ["pass"])],
                ("a string or integer"),
            )
        if kind == "number":
            return [(number, ["pass"])], [(f"_is_number({v})", ["pass"])], "a number"
        if kind == "dict":
            return [(is_dict, ["pass"])], [(any_dict, ["pass"])], "an object"
        if kind == "time":
            return [(is_str, to_time)], [(any_str, to_time)], "a time string"
        if kind == "time_or_number":
            fast = [(is_str, to_time), (number, ["pass"])]
            return fast, [(any_str, to_time), (f"_is_number({v})", ["pass"])], "a time or number"
        if kind == "enum":
            table = f"_values_of_{f.of.__name__}"
            self.ns[table] = _enum_table(f.of)
            lookup = [f"{v} = {table}.get({v}, {v})"]
            return [(is_str, lookup)], [(any_str, lookup)], "a string"
        if kind in ("model", "summary", "output"):
            target = {"model": f.of.__name__ if f.of else "", "summary": "CallSummary"}
            call = _guarded(f"{v} = _dec_{target.get(kind, 'output')}({v})", seg)
            fast_dict = call
            if kind == "model":  # decoded inline: no call per nested object
                inner = _Block(f.of.__name__, v, q, self.ns).build()
                fast_dict = _guarded_lines([*inner, f"{v} = {q}o"], seg)
            if kind == "summary":
                return (
                    [(is_str, ["pass"]), (is_dict, call)],
                    [(any_str, ["pass"]), (any_dict, call)],
                    "a string or an object",
                )
            return [(is_dict, fast_dict)], [(any_dict, call)], "an object"
        if kind == "models":
            item_name = f.of.__name__
            items, item = f"{q}items", f"{q}item"
            inner = _Block(item_name, item, q, self.ns).build()
            loop = [
                f"{items} = []",
                "try:",
                f"    for {item} in {v}:",
                f"        if {item}.__class__ is dict:",
                *("            " + line for line in inner),
                f"            {items}.append({q}o)",
                f"        elif isinstance({item}, dict):",
                f"            {items}.append(_dec_{item_name}({item}))",
                "        else:",
                f"            raise _wrong_type('', {item}, 'an object')",
                "except _Invalid as exc:",
                # The failing item is the one after those already decoded.
                f"    raise exc.under({seg} + '[' + str(len({items})) + ']') from None",
                f"{v} = tuple({items})",
            ]
            slow = [f"{v} = _decode_items(_dec_{item_name}, {v}, {seg})"]
            is_list, any_list = f"{v}.__class__ is list", f"isinstance({v}, list)"
            return [(is_list, loop)], [(any_list, slow)], "an array"
        raise AssertionError(f"unknown kind {kind!r}")


def _guarded(line: str, seg: str) -> list[str]:
    return _guarded_lines([line], seg)


def _guarded_lines(lines: list[str], seg: str) -> list[str]:
    return [
        "try:",
        *("    " + line for line in lines),
        "except _Invalid as exc:",
        f"    raise exc.under({seg}) from None",
    ]


def _decode_items(decode: Callable[[Any], Any], items: list[Any], seg: str) -> tuple[Any, ...]:
    # The slow path of an array of objects: a list subclass, or items that are dict subclasses.
    out = []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise _wrong_type("", item, "an object")
            out.append(decode(item))
        except _Invalid as exc:
            raise exc.under(f"{seg}[{index}]") from None
    return tuple(out)


def _encode_value(var: str, f: _F) -> str:
    """The expression that encodes non-None ``var`` of kind ``f``."""
    if f.kind == "enum":
        return f"{var} if {var}.__class__ is str else _plain({var})"
    if f.kind == "time":
        return f"_encode_time({var})"
    if f.kind == "time_or_number":
        return f"_encode_time({var}) if isinstance({var}, datetime) else {var}"
    if f.kind == "model":
        return f"_enc_{f.of.__name__}({var})"
    if f.kind == "models":
        return f"[_enc_{f.of.__name__}(item) for item in {var}]"
    if f.kind == "summary":
        return f"_enc_CallSummary({var}) if isinstance({var}, CallSummary) else {var}"
    if f.kind == "output":
        return f"_enc_output({var})"
    return var


def _encoder(name: str) -> list[str]:
    cls, spec = _SPECS[name]
    lines = [f"def _enc_{name}(o):", "    out = {}", "    n = o.explicit_nulls"]
    for a in attrs.fields(cls):
        if a.name in _WIRE_ONLY:
            continue
        f = spec.get(a.name)
        if f is None:
            # No key in this shape: written under its native key, so that a value set in
            # code is not lost.
            f = _SPECS["CallOutput_native"][1][a.name]
            lines += [
                f"    v = o.{a.name}",
                "    if v is not None:",
                f"        out[{a.name!r}] = {_encode_value('v', f)}",
            ]
            continue
        k = repr(f.key or a.name)
        lines += [
            f"    v = o.{a.name}",
            "    if v is not None:",
            f"        out[{k}] = {_encode_value('v', f)}",
            f"    elif {k} in n:",
            f"        out[{k}] = None",
        ]
    return [*lines, "    if o.extra:", "        out.update(o.extra)", "    return out", ""]


def _twin_of(cls: type) -> type | None:
    """A plain slotted class that instances of ``cls`` can be built as, if CPython allows.

    A frozen attrs instance is built with one ``object.__setattr__`` call per field, which is
    most of the cost of decoding a small object such as a transcript turn. Instead, decoders
    store the fields on a plain class with the same slots (plain attribute stores, which the
    interpreter specialises) and then assign ``__class__``. CPython allows that assignment
    only between classes of identical layout and refuses it otherwise; it is tried once here
    and, if refused, decoders call the class normally.
    """
    twin = type(f"_Twin{cls.__name__}", (), {"__slots__": cls.__slots__})  # type: ignore[attr-defined]
    probe: Any = object.__new__(twin)
    try:
        probe.__class__ = cls
    except TypeError:
        return None
    return twin


def _build() -> dict[str, Any]:
    ns: dict[str, Any] = {
        "_Invalid": _Invalid,
        "_wrong_type": _wrong_type,
        "_null_set": _null_set,
        "_NO_NULLS": NO_NULLS,
        "_is_str_or_int": _is_str_or_int,
        "_is_number": _is_number,
        "_decode_time": _decode_time,
        "_decode_items": _decode_items,
        "_encode_time": _encode_time,
        "_plain": _plain,
        "_UNSET": object(),
        "_ABSENT": object(),
        "_shape_native": OutputShape.NATIVE,
        "_shape_provider": OutputShape.PROVIDER,
        "datetime": datetime,
        "_dec_output": _dec_output,
        "_enc_output": _enc_output,
    }
    for cls, spec in _SPECS.values():
        # Checked at import, so that a model and its table cannot drift apart unnoticed.
        fields = {a.name for a in attrs.fields(cls)} - _WIRE_ONLY
        assert set(spec) <= fields, f"{cls.__name__}: no such attributes {set(spec) - fields}"
        assert cls is CallOutput or set(spec) == fields, f"{cls.__name__}: missing entries"
        ns[cls.__name__] = cls
        ns[f"_twin_{cls.__name__}"] = _twin_of(cls)
    lines: list[str] = []
    for name, (_, spec) in _SPECS.items():
        ns[f"_known_{name}"] = frozenset(f.key or attr for attr, f in spec.items())
        body = _Block(name, "d", "", ns).build()
        lines += [f"def _dec_{name}(d):", *("    " + line for line in body), "    return o", ""]
        lines += _encoder(name)
    source = "\n".join(lines)
    filename = "<spacetasks_async generated codecs>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), ns)
    ns["__source__"] = source
    return ns


def _dec_output(d: dict[str, Any]) -> CallOutput:
    if not d:
        return CallOutput(OutputShape.EMPTY)
    keys = d.keys()
    # A native output usually answers the first test at its first key.
    if not keys.isdisjoint(_NATIVE_ONLY) or keys.isdisjoint(_PROVIDER_ONLY):
        return _dec_native(d)
    return _dec_provider(d)


def _enc_output(output: CallOutput) -> dict[str, Any]:
    if output.shape is OutputShape.PROVIDER:
        return _CODECS["_enc_CallOutput_provider"](output)  # type: ignore[no-any-return]
    # EMPTY has no attributes set, so the native encoder gives {}; one set in code is written.
    return _CODECS["_enc_CallOutput_native"](output)  # type: ignore[no-any-return]


_CODECS: Final = _build()
_dec_task: Final[Callable[[dict[str, Any]], Task]] = _CODECS["_dec_Task"]
_dec_native: Final[Callable[[dict[str, Any]], CallOutput]] = _CODECS["_dec_CallOutput_native"]
_dec_provider: Final[Callable[[dict[str, Any]], CallOutput]] = _CODECS["_dec_CallOutput_provider"]
_enc_task: Final[Callable[[Task], dict[str, Any]]] = _CODECS["_enc_Task"]
_dec_space: Final[Callable[[dict[str, Any]], Space]] = _CODECS["_dec_Space"]
_enc_space: Final[Callable[[Space], dict[str, Any]]] = _CODECS["_enc_Space"]


# --- the public functions -------------------------------------------------------------------


def _not_an_object(value: object) -> Any:
    raise _wrong_type("", value, "an object")


def _task_id_of(obj: object) -> str | None:
    task_id = obj.get("task_id") if isinstance(obj, dict) else None
    return task_id if isinstance(task_id, str) else None


def decode_task(obj: Any) -> Task:
    """Decode one task (the parsed JSON object) into a :class:`~._models.Task`.

    Raises :class:`~spacetasks_async.DecodeError` naming the ``task_id`` and the JSON path of
    the first value of a wrong type (for example ``$.output.transcript[2].content``).
    """
    try:
        if obj.__class__ is not dict and not isinstance(obj, dict):
            _not_an_object(obj)
        return _dec_task(obj)
    except _Invalid as exc:
        raise DecodeError(exc.reason, path="$" + exc.path, task_id=_task_id_of(obj)) from None


def decode_tasks(objs: list[Any]) -> list[Task]:
    """Decode a list of tasks (the ``data`` of a page), all or nothing.

    On a task that cannot be decoded raises :class:`~spacetasks_async.DecodeError` as
    :func:`decode_task` does, its reason also naming the task's index in ``objs``.
    """
    dec = _dec_task
    try:
        with gc_paused():
            return [dec(o) if o.__class__ is dict else decode_task(o) for o in objs]
    except (_Invalid, DecodeError):
        pass
    # The slow path only runs on failure: find the failing task to name its index.
    for index, obj in enumerate(objs):
        try:
            decode_task(obj)
        except DecodeError as exc:
            reason = f"{exc.reason} (item {index} of {len(objs)})"
            raise DecodeError(reason, path=exc.json_path, task_id=exc.task_id) from None
    raise AssertionError("a task failed to decode once and then decoded")  # pragma: no cover


def encode_task(task: Task) -> dict[str, Any]:
    """Encode a task back into the JSON object it was decoded from (exactly, for a decoded one).

    The result holds only JSON types (enum members as their values, timestamps as text) and
    shares unmodified sub-objects (``input``, ``extra`` values) with the task.
    """
    return _enc_task(task)


def decode_space(obj: Any) -> Space:
    """Decode one item of the spaces list into a :class:`~._models.Space`.

    Raises :class:`~spacetasks_async.DecodeError` (with no ``task_id``) on a wrong type.
    """
    try:
        if obj.__class__ is not dict and not isinstance(obj, dict):
            _not_an_object(obj)
        return _dec_space(obj)
    except _Invalid as exc:
        raise DecodeError(exc.reason, path="$" + exc.path, subject="space") from None


def encode_space(space: Space) -> dict[str, Any]:
    """Encode a space back into the JSON object it was decoded from."""
    return _enc_space(space)


def _structure_with(decoder: Callable[[dict[str, Any]], _M]) -> Callable[[Any, Any], _M]:
    def structure(obj: Any, _: Any) -> _M:
        try:
            if obj.__class__ is not dict and not isinstance(obj, dict):
                _not_an_object(obj)
            return decoder(obj)
        except _Invalid as exc:
            raise DecodeError(exc.reason, path="$" + exc.path) from None

    return structure


def _structure_timestamp(obj: Any, _: Any) -> Timestamp:
    if not isinstance(obj, str):
        raise DecodeError(f"expected a time string, got {_type_name(obj)}")
    try:
        return parse_timestamp(obj)
    except ValueError:
        raise DecodeError("expected an ISO 8601 time, got a string that is not one") from None


def _make_converter() -> cattrs.Converter:
    conv = make_converter()
    conv.register_structure_hook(Task, lambda obj, _: decode_task(obj))
    conv.register_unstructure_hook(Task, encode_task)
    conv.register_structure_hook(Space, lambda obj, _: decode_space(obj))
    conv.register_unstructure_hook(Space, encode_space)
    conv.register_structure_hook(CallOutput, _structure_with(_dec_output))
    conv.register_unstructure_hook(CallOutput, _enc_output)
    for cls in (UserInfo, TaskDefinition, TranscriptTurn, CallSummary, PostCallData):
        conv.register_structure_hook(cls, _structure_with(_CODECS[f"_dec_{cls.__name__}"]))
        conv.register_unstructure_hook(cls, _CODECS[f"_enc_{cls.__name__}"])
    conv.register_structure_hook(Timestamp, _structure_timestamp)
    conv.register_unstructure_hook(Timestamp, _encode_time)
    return conv


converter: Final[cattrs.Converter] = _make_converter()
"""The package's one converter (orjson preconf) with hooks for every model.

``converter.structure(obj, Task)`` is :func:`decode_task`, ``converter.unstructure(task)`` is
:func:`encode_task`, and ``converter.dumps(task)`` gives JSON bytes.
"""
