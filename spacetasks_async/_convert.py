"""Decoding and encoding of the models: a cattrs converter whose model hooks are generated code.

A page of a walk decodes with one call, ``converter.structure(data, list[Task])``. The hooks
behind it come from hook factories registered on the converter (:func:`make_converter`): the
first time the converter needs the hook of a model, the factory reads the class (its attrs
fields, their types and metadata, see :mod:`._models`) and asks the converter for the hook of
each field's type without ``None``: ``dict[str, Any]`` for ``input: dict[str, Any] | None``.

- A hook of this module (a :class:`_Hook`: the plain kinds registered for ``str``,
  ``datetime``, ``int | float``, ... and the models' own hooks) says what it does, and the
  factory writes that work inline: one ``dict.get`` and one class check per field, nested
  models and transcript turns decoded in the same function, no call per value.
- Any other hook (one a user registered) is called with the value and the type, for present,
  non-null values only: absent keys and explicit nulls are the model's business, so that
  they encode back as they were.

cattrs caches the hooks it builds and forgets them when a hook is registered, so a hook
registered after a first decode is used from the next one on. The generated source is
registered with :mod:`linecache` (as cattrs does), so tracebacks show its lines.

Why generated code: a harvest decodes every task of a space, so decoding must cost about as
much as parsing the JSON. cattrs' own generated hooks validate in detail but take several
times the cost of ``orjson.loads``; a frozen attrs class's ``__init__`` alone (one
``object.__setattr__`` call per field) costs more than the rest of decoding a small object.

Construction: a model whose ``__init__`` does nothing but store its arguments (no validator,
no converter, no ``__attrs_pre_init__``/``__attrs_post_init__``, every field in ``__init__``
and in ``__slots__``: read from the class's attrs metadata, see :func:`_twin_of`) is built
by filling a plain slotted twin class and assigning ``__class__``; any other model is built
by calling the class, so that what its ``__init__`` does is never skipped.

Pay for what is used: with ``make_converter(lazy=True)`` (the package's converter) a task is
not decoded with its page. Its ``task_id`` is checked and kept (a walk needs it), the object
is kept as sent, and the first read of any other attribute decodes the whole task in place
(see :func:`_deferring` and :func:`~._models.deferred_subclass`); ``Task.output`` (marked
``DECODED_ON_ACCESS``: the call, its transcript and its analysis) stays as sent even then,
until it is read itself (see :class:`~._models._OnAccess`). A task that is never read, such
as one the command line writes back as JSON, is never decoded, and encoding it gives back
what was sent without decoding it. ``==``, ``repr``, pickling and ``attrs.evolve`` read
attributes, so they see decoded values only. A task (or output) that does not decode raises
its :class:`~spacetasks_async._errors.DecodeError` from the read that decodes it, naming the
same task and JSON path as an eager converter (``lazy=False``), which decodes everything with
the page and raises while decoding it. Measured in ``benchmarks/_decode.py``.

Errors: the generated code raises a private ``_Invalid`` carrying the JSON path relative to
the object being decoded; each enclosing level prepends its own segment on the way out (try
blocks cost nothing in Python 3.11 until something raises). The hooks turn it into a
:class:`~spacetasks_async._errors.DecodeError` naming the task and the path, and only ever
the *type* of a bad value, never the value.

Nothing here touches process-wide state (the GC, the recursion limit, ...): a library's hot
path must not.
"""

from __future__ import annotations

import enum
import itertools
import linecache
import types
import weakref
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Union, get_args, get_origin

import attrs
import cattrs
import msgspec
import orjson
from cattrs.preconf.orjson import OrjsonConverter
from cattrs.preconf.orjson import make_converter as _make_orjson_converter

from ._errors import DecodeError
from ._models import (
    DECODED_ON_ACCESS,
    JSON_KEY,
    KEEP_OTHER_JSON,
    NO_NULLS,
    PROVIDER_KEY,
    OutputShape,
    Space,
    Task,
    Timestamp,
    _OnAccess,
    _Undecoded,
    deferred_subclass,
    pending_of,
)

__all__ = [
    "converter",
    "decode_space",
    "decode_task",
    "decode_tasks",
    "encode_space",
    "encode_task",
    "make_converter",
    "parse_timestamp",
]

StructureHook = Callable[[Any, Any], Any]


RawJSON = msgspec.Raw
"""The JSON text of one item of a page, as sent (the client parses a page's envelope only).

A page's ``data`` comes to the converter as a list of these (see
:func:`~._errors.parse_page_envelope`): the hooks of this module take one wherever they take
the parsed object, and the package's converter keeps it as the task's source until the task
is read.
"""


def _parse_item(text: RawJSON | bytes) -> Any:
    """The parsed JSON text of one item (``_Invalid`` if it does not parse)."""
    try:
        return orjson.loads(text if text.__class__ is bytes else memoryview(text))
    except orjson.JSONDecodeError:
        # The page's syntax was checked with it: what is left is a number out of range or
        # a bad escape. orjson's message is not quoted: it may hold part of the text.
        reason = "the JSON text does not parse (a number or an escape out of range)"
        raise _Invalid("", reason) from None


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


def _type_label(type_: Any) -> str:
    return type_.__name__ if isinstance(type_, type) else repr(type_)


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
        raise _not_a_time(segment) from None
    stamp._wire = text
    return stamp


def _not_a_time(segment: str) -> _Invalid:
    return _Invalid(segment, "expected an ISO 8601 time, got a string that is not one")


def _to_utc(plain: datetime, segment: str) -> datetime:
    # Text with an offset: moved to UTC (OverflowError: out of range once moved).
    try:
        return plain.astimezone(UTC)
    except OverflowError:
        raise _not_a_time(segment) from None


def _time_lines(v: str, seg: str) -> list[str]:
    """Statements that turn the string in local ``v`` into a Timestamp: _decode_time inline.

    A call less per time (there are four in a call task) is worth the lines.
    """
    if not _stamp_from_state:  # pragma: no cover - other implementations
        return [f"{v} = _decode_time({v}, {seg})"]
    return [
        "try:",
        f"    {v}_t = _parse({v})",
        "except ValueError:",
        f"    raise _not_a_time({seg}) from None",
        f"if {v}_t.tzinfo is not None and {v}_t.tzinfo is not _UTC:",
        f"    {v}_t = _to_utc({v}_t, {seg})",
        f"{v}_s = _new_stamp(_state_of({v}_t)[1][0], _UTC)",
        f"{v}_s._wire = {v}",
        f"{v} = {v}_s",
    ]


def _encode_time(value: datetime) -> str:
    wire = getattr(value, "_wire", None)
    if isinstance(wire, str):
        return wire
    if value.tzinfo is None:  # naive means UTC in this API
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- helpers the generated code calls on rare or slow paths -----------------------------------


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


def _segment(key: str) -> str:
    return f".{key}" if key.isidentifier() else f"[{key!r}]"


def _call_hook(hook: StructureHook, type_: Any, value: Any, segment: str) -> Any:
    """Call a hook that is not this module's; what it raises becomes a path and a reason."""
    try:
        return hook(value, type_)
    except DecodeError as exc:  # a hook that decodes through the converter: keep its path
        raise _Invalid(segment + exc.json_path[1:], exc.reason) from None
    except Exception as exc:
        # Only the exception's type: its message may quote the value.
        raise _Invalid(
            segment, f"the hook for {_type_label(type_)} raised {type(exc).__name__}"
        ) from None


def _refused(cls: type, exc: Exception) -> _Invalid:
    # A model built by calling it (see _twin_of) whose validator or __attrs_post_init__
    # refused the values; only the exception's type is reported, its message may quote one.
    return _Invalid("", f"{cls.__name__} refused the values: {type(exc).__name__}")


# --- the hooks of this module, and what they say about themselves -------------------------------


@attrs.frozen
class _Kind:
    """What a hook does, so that a model's factory can write the same work inline.

    ``name`` is one of "str", "scalar" (a JSON value that is not an object or an array),
    "str_or_int", "number" (int or float, not bool), "dict", "time" (a string parsed to a
    :class:`Timestamp`), "time_or_number", "enum" (``of``: a str enum; an unknown value
    stays a str), "any" (kept as sent), "model" (``of``: a model; ``raw``: its decoder, which
    raises ``_Invalid``), "models" (an array of ``of`` models, decoded to a tuple),
    "str_or_model"; or "hook": a hook that is not this module's (``hook``, called with the
    value and ``type``).
    """

    name: str
    of: Any = None
    raw: Callable[[dict[str, Any]], Any] | None = None
    hook: StructureHook | None = None
    type: Any = None
    # A model's decoder of the JSON text of one object (a page's item, see RawJSON).
    from_json: Callable[[RawJSON], Any] | None = None
    # Whether the model's decoders keep it unread until first read (see _deferring).
    deferred: bool = False


_ANY: Final = _Kind("any")


class _Hook:
    """A structure hook of this module: a cattrs hook that also says what it does (``kind``)."""

    __slots__ = ("_call", "kind")

    def __init__(self, kind: _Kind, call: StructureHook) -> None:
        self.kind = kind
        self._call = call

    def __call__(self, value: Any, type_: Any) -> Any:
        return self._call(value, type_)

    def __repr__(self) -> str:
        of = f" of {_type_label(self.kind.of)}" if self.kind.of is not None else ""
        return f"<spacetasks_async {self.kind.name} hook{of}>"


_NONE_TYPE: Final = type(None)


def _is_union(type_: Any) -> bool:
    return get_origin(type_) in (Union, types.UnionType)


def _without_none(type_: Any) -> Any:
    """``type_`` without ``None``: ``str`` for ``str | None``."""
    if not _is_union(type_):
        return type_
    rest = tuple(arg for arg in get_args(type_) if arg is not _NONE_TYPE)
    return rest[0] if len(rest) == 1 else Union[rest]  # noqa: UP007 - built from a tuple


def _is_wire_model(type_: Any) -> bool:
    """An attrs class in the form of the models: its last fields are ``extra`` and
    ``explicit_nulls``."""
    if not (isinstance(type_, type) and attrs.has(type_)):
        return False
    names = [a.name for a in attrs.fields(type_)]
    return names[-2:] == ["extra", "explicit_nulls"]


def _shape_attr(cls: type) -> str | None:
    # A model with an OutputShape attribute (CallOutput) has several shapes on the wire.
    for a in attrs.fields(attrs.resolve_types(cls)):
        if a.type is OutputShape:
            name: str = a.name
            return name
    return None


def _kind_of_type(type_: Any, conv: cattrs.Converter) -> _Kind:
    """How a field of type ``type_`` decodes on ``conv``: a kind of this module's, or a hook."""
    base = _without_none(type_)
    if base is Any:  # any JSON value, kept as sent
        return _ANY
    hook = conv.get_structure_hook(base)
    if isinstance(hook, _Hook):
        return hook.kind
    return _Kind("hook", hook=hook, type=base)


# --- the models, as their classes describe them --------------------------------------------------


@attrs.frozen
class _Field:
    """One attribute of a model in one shape: its JSON key and how its value decodes."""

    attr: str
    key: str
    kind: _Kind
    required: bool
    keep_other: bool
    # Kept as sent when it is an object, decoded on first access (see _models._OnAccess).
    lazy: bool = False


def _wire_fields(
    cls: type, shape: str | None, conv: cattrs.Converter, lazy: bool = False
) -> list[_Field]:
    """The attributes read from the wire in ``shape`` ("native", "provider", "empty", or
    ``None`` for a model with one shape), in the class's order.

    With ``lazy``, a field marked DECODED_ON_ACCESS whose values are objects (a model, or
    a hook of the user's) is kept as sent.
    """
    attrs.resolve_types(cls)
    shape_attr = _shape_attr(cls)
    out = []
    for a in attrs.fields(cls):
        if a.name in ("extra", "explicit_nulls") or a.name == shape_attr or not a.init:
            continue
        required = a.default is attrs.NOTHING
        if not required and a.default is not None:
            # An absent key is None, and None is not written back: any other default would
            # turn an absent key into a present one.
            raise TypeError(f"{cls.__name__}.{a.name}: a model's attributes default to None")
        if shape == "empty":
            continue
        key = a.metadata.get(PROVIDER_KEY) if shape == "provider" else a.metadata.get(JSON_KEY)
        if key is None:
            if shape == "provider":  # no key in this shape
                continue
            key = a.name
        kind = _kind_of_type(a.type, conv)
        keep_other = bool(a.metadata.get(KEEP_OTHER_JSON))
        on_access = (
            lazy
            and bool(a.metadata.get(DECODED_ON_ACCESS))
            and kind.name in ("model", "hook")
            and isinstance(cls.__dict__.get(a.name), _OnAccess)
        )
        out.append(_Field(a.name, key, kind, required, keep_other, on_access))
    return out


# Weak: a class made at run time (attrs.make_class) must not be kept alive by its twin.
_TWINS: weakref.WeakKeyDictionary[type, type | None] = weakref.WeakKeyDictionary()


def _twin_of(cls: type) -> type | None:
    """A plain slotted class that ``cls`` can be built as without its ``__init__``, or ``None``.

    A frozen attrs instance is built with one ``object.__setattr__`` call per field, which is
    most of the cost of decoding a small object. Instead, decoders store the fields on a plain
    class with the same slots (plain attribute stores, which the interpreter specialises) and
    then assign ``__class__``. That gives the same instance as ``cls(...)`` only when
    ``__init__`` does nothing but store every field, which the class's own attrs metadata
    says: no validator, no converter, every field in ``__init__`` and in ``__slots__`` (and
    nothing else there, such as a hash cache), no ``__attrs_pre_init__`` or
    ``__attrs_post_init__``, the ``__init__`` attrs wrote, plain ``__new__`` and metaclass.
    Anything else, and ``None``: decoders call the class. CPython allows the assignment only
    between classes of identical layout and refuses it otherwise; it is tried once here.
    """
    try:
        return _TWINS[cls]
    except KeyError:
        pass
    twin = _make_twin(cls)
    _TWINS[cls] = twin
    return twin


def _make_twin(cls: type) -> type | None:
    fields = attrs.fields(cls)
    if any(a.validator is not None or a.converter is not None or not a.init for a in fields):
        return None
    if hasattr(cls, "__attrs_pre_init__") or hasattr(cls, "__attrs_post_init__"):
        return None
    init = cls.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    if code is None or not code.co_filename.startswith("<attrs generated"):
        return None
    if any("__new__" in vars(base) for base in cls.__mro__[:-1]):
        return None
    if type(cls) is not type:  # a metaclass could do anything on a call
        return None
    slots = cls.__dict__.get("__slots__")
    if slots is None or set(slots) - {"__weakref__"} != {a.name for a in fields}:
        return None
    twin = type(f"_Twin{cls.__name__}", (), {"__slots__": slots})
    probe: Any = object.__new__(twin)
    try:
        probe.__class__ = cls
    except TypeError:
        return None
    return twin


# --- the code generator -------------------------------------------------------------------------
#
# A decoder reads every field once with ``d.get(key, _ABSENT)`` and sends it down one chain of
# branches, the well-typed case first:
#
#     if <the usual type>:  <convert>          e.g. a str; a dict -> the nested model
#     elif x is _ABSENT:    absent += 1        counted, to learn cheaply if there are unknown keys
#     elif x is None:       remember the null  so that encoding writes it back
#     elif <a subclass>:    <convert>          a str or dict subclass handed to the converter
#     else:                 raise _Invalid     the path segment, and only the value's type
#
# Nested models and the items of an array are decoded inline (no call per transcript turn),
# with their own local names; a try around them adds their path segment to an error.

_SOURCE_SERIAL: Final = itertools.count(1)

_BASE_NAMESPACE: Final[Mapping[str, Any]] = {
    "_Invalid": _Invalid,
    "_wrong_type": _wrong_type,
    "_null_set": _null_set,
    "_NO_NULLS": NO_NULLS,
    "_is_str_or_int": _is_str_or_int,
    "_is_number": _is_number,
    "_decode_time": _decode_time,
    "_parse": _parse,
    "_state_of": _state_of,
    "_new_stamp": _new_stamp,
    "_UTC": UTC,
    "_to_utc": _to_utc,
    "_not_a_time": _not_a_time,
    "_encode_time": _encode_time,
    "_call_hook": _call_hook,
    "_refused": _refused,
    "_plain": _plain,
    "_Undecoded": _Undecoded,
    # object's own __class__ setter: the frozen __setattr__ of a model refuses the name.
    "_retype": object.__dict__["__class__"].__set__,
    "_UNSET": object(),
    "_ABSENT": object(),
    "datetime": datetime,
}


class _Source:
    """Generated functions being written: their lines and the namespace they will run in."""

    def __init__(self, conv: cattrs.Converter | None, what: str, lazy: bool = False) -> None:
        self._conv = conv
        self.lazy = lazy
        self.what = what
        self.ns: dict[str, Any] = dict(_BASE_NAMESPACE)
        self.lines: list[str] = []

    @property
    def conv(self) -> cattrs.Converter:
        """The converter whose hooks the generated code follows."""
        assert self._conv is not None, "a plain hook has no model to follow"
        return self._conv

    def ref(self, name: str, value: Any) -> str:
        """The name under which the generated code sees ``value`` (added if new)."""
        candidate = name
        for index in itertools.count(2):
            present = self.ns.get(candidate, _MISSING)
            if present is value:
                return candidate
            if present is _MISSING:
                self.ns[candidate] = value
                return candidate
            candidate = f"{name}_{index}"
        raise AssertionError("unreachable")  # pragma: no cover

    def compile(self) -> dict[str, Any]:
        """Compile the lines, registered with linecache for tracebacks; the namespace."""
        source = "\n".join(self.lines) + "\n"
        filename = f"<spacetasks_async generated {self.what} #{next(_SOURCE_SERIAL)}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), self.ns)
        return self.ns


_MISSING: Final = object()


def _model_hook_of(conv: cattrs.Converter, cls: type) -> _Kind | None:
    """The kind of ``conv``'s hook for model ``cls`` if it is this module's, else ``None``."""
    hook = conv.get_structure_hook(cls)
    if isinstance(hook, _Hook) and hook.kind.name == "model" and hook.kind.raw is not None:
        return hook.kind
    return None


class _Block:
    """Emits the statements that decode the dict in local ``src`` into ``cls`` (one shape).

    ``p`` prefixes every local name, so that inlined blocks do not clash. The built instance
    ends up in local ``{p}o``.
    """

    def __init__(
        self, out: _Source, cls: type, shape: str | None, src: str, p: str, into: bool = False
    ) -> None:
        self.out, self.cls, self.src, self.p = out, cls, src, p
        # Fill the instance in local ``into`` (a deferred one, see _deferring) instead of a
        # new one: only where a twin is allowed (__init__ only stores the fields), and only
        # once every value is decoded (nothing raises after the first store, so a failed
        # decode leaves the instance as it was).
        self.into = into
        self.shape = shape or ""
        self.fields = _wire_fields(cls, shape, out.conv, out.lazy)
        self.lines: list[str] = []

    def emit(self, *lines: str) -> None:
        self.lines += lines

    def build(self) -> list[str]:
        p, src, out = self.p, self.src, self.out
        self.emit(f"{p}get = {src}.get", f"{p}n = 0", f"{p}absent = 0")
        strays = []
        values: dict[str, str] = {}
        for i, f in enumerate(self.fields):
            var = f"{p}x{i}"
            if f.keep_other:
                strays.append((f"{p}stray{i}", f.key))
                self.emit(f"{p}stray{i} = _UNSET")
            self._field(var, f, i, f"{p}stray{i}")
            values[f.attr] = var
        known = out.ref(f"_known_{self.cls.__name__}", frozenset(f.key for f in self.fields))
        self.emit(
            # Every key is known exactly when the number of known keys present is len(d).
            f"if len({src}) == {len(self.fields)} - {p}absent:",
            f"    {p}extra = {{}}",
            "else:",
            f"    {p}extra = {{k: v for k, v in {src}.items() if k not in {known}}}",
        )
        for stray, key in strays:
            self.emit(f"if {stray} is not _UNSET:", f"    {p}extra[{key!r}] = {stray}")
        # Explicit nulls are collected as bits (one per key, in field order) and turned into
        # a shared frozenset: no list, no call and no new set per object.
        cache = out.ref(f"_nulls_{self.cls.__name__}", {})
        keys = out.ref(f"_null_keys_{self.cls.__name__}", tuple(f.key for f in self.fields))
        shape_attr = _shape_attr(self.cls)
        if shape_attr is not None:  # the block of one shape of several
            values[shape_attr] = out.ref(f"_shape_{self.shape}", OutputShape(self.shape))
        values["extra"] = f"{p}extra"
        values["explicit_nulls"] = (
            f"_NO_NULLS if {p}n == 0 else ({cache}.get({p}n) or _null_set({cache}, {keys}, {p}n))"
        )
        cls_name = out.ref(self.cls.__name__, self.cls)
        names = [a.name for a in attrs.fields(self.cls)]
        twin = _twin_of(self.cls)
        if twin is None:
            # Called, so that validators, converters and __attrs_post_init__ run.
            aliases = {a.name: a.alias for a in attrs.fields(self.cls)}
            args = ", ".join(f"{aliases[n]}={values.get(n, 'None')}" for n in names)
            self.emit(
                "try:",
                f"    {p}o = {cls_name}({args})",
                "except Exception as exc:",
                f"    raise _refused({cls_name}, exc) from None",
            )
        else:
            # See _twin_of: fill a plain slotted twin, then make it the model. Calling the
            # twin (which has no __init__) allocates it faster than object.__new__(twin).
            twin_name = out.ref(f"_twin_{self.cls.__name__}", twin)
            if self.into:
                # The instance is shared: other threads may read it meanwhile, so it never
                # takes the twin's class. Each slot is written through the class's own
                # descriptor, ``extra`` (which says "not decoded yet") last, then the class
                # becomes the model's (see _models.deferred_subclass).
                for n in sorted(names, key=lambda n: n == "extra"):
                    setter = out.ref(f"_set_{n}", self.cls.__dict__[n].__set__)
                    self.emit(f"{setter}(into, {values.get(n, 'None')})")
                self.emit(f"_retype(into, {cls_name})", f"{p}o = into")
                return self.lines
            self.emit(f"{p}o = {twin_name}()")
            self.emit(*(f"{p}o.{n} = {values.get(n, 'None')}" for n in names))
            self.emit(f"{p}o.__class__ = {cls_name}")
        return self.lines

    def _field(self, var: str, f: _Field, index: int, stray: str) -> None:
        p, out = self.p, self.out
        k, seg = repr(f.key), repr(_segment(f.key))
        self.emit(f"{var} = {p}get({k}, _ABSENT)")
        # What is left after the branches: a stray value kept, a hook called, or an error.
        final: list[str] = []
        fast: list[tuple[str, list[str]]]
        slow: list[tuple[str, list[str]]]
        if f.lazy:
            # Kept as sent, with what decodes it on first access.
            resolve = out.ref(f"_resolve_{f.attr}", _resolver(self.cls, f))
            keep = [
                f"{var}_u = _Undecoded()",
                f"{var}_u.raw = {var}",
                f"{var}_u.decode = {resolve}",
            ]
            fast = [(f"{var}.__class__ is dict", [*keep, f"{var} = {var}_u"])]
            slow = [(f"isinstance({var}, dict)", [*keep, f"{var} = {var}_u"])]
            if f.keep_other:
                final = [f"{stray} = {var}", f"{var} = None"]
            else:
                final = [f"raise _wrong_type({seg}, {var}, 'an object')"]
        elif f.kind.name == "hook" and not f.keep_other:
            # Not this module's: called for every present, non-null value.
            hook, type_ = out.ref("_hook", f.kind.hook), out.ref("_type", f.kind.type)
            fast, slow = [], []
            final = [f"{var} = _call_hook({hook}, {type_}, {var}, {seg})"]
        else:
            fast, slow, what = _branches(out, f.kind, var, seg, f"{p}{f.attr}_")
            if f.keep_other:
                # Not an object and not null: kept verbatim in extra (see Task's docstring).
                final = [f"{stray} = {var}", f"{var} = None"]
            elif what:
                final = [f"raise _wrong_type({seg}, {var}, {what!r})"]
        if f.required:
            absent = f"raise _Invalid({seg}, 'the required key is missing')"
            missing = [(f"{var} is _ABSENT", [absent])]
            if not fast and not slow:  # no type to check: null is what is left to refuse
                missing.append((f"{var} is None", [f"raise _wrong_type({seg}, {var}, 'a value')"]))
            branches = [*fast, *slow, *missing]
        else:
            missing = [
                (f"{var} is _ABSENT", [f"{var} = None", f"{p}absent += 1"]),
                (f"{var} is None", [f"{p}n |= {1 << index}"]),
            ]
            branches = [*fast, *missing, *slow]
        for position, (cond, body) in enumerate(branches):
            self.emit(f"{'elif' if position else 'if'} {cond}:")
            self.lines += ["    " + line for line in body]
        if final:
            self.emit("else:", *("    " + line for line in final))


def _branches(
    out: _Source, kind: _Kind, v: str, seg: str, q: str
) -> tuple[list[tuple[str, list[str]]], list[tuple[str, list[str]]], str]:
    """(fast branches, subclass branches, what was expected) for a value of ``kind``.

    ``v`` is the local holding the value (the branches convert it in place), ``seg`` the
    path segment (a literal) and ``q`` the prefix for the locals of an inlined block.
    """
    is_str, is_dict = f"{v}.__class__ is str", f"{v}.__class__ is dict"
    any_str, any_dict = f"isinstance({v}, str)", f"isinstance({v}, dict)"
    to_time = _time_lines(v, seg)
    number = f"{v}.__class__ is int or {v}.__class__ is float"
    name = kind.name
    if name == "any":
        return [], [], ""
    if name == "str":
        return [(is_str, ["pass"])], [(any_str, ["pass"])], "a string"
    if name == "scalar":
        scalar = f"isinstance({v}, (str, int, float))"
        return [(is_str, ["pass"])], [(scalar, ["pass"])], "a string, number or boolean"
    if name == "str_or_int":
        str_or_int = f"{is_str} or {v}.__class__ is int"
        return [(str_or_int, ["pass"])], [(f"_is_str_or_int({v})", ["pass"])], "a string or integer"
    if name == "number":
        return [(number, ["pass"])], [(f"_is_number({v})", ["pass"])], "a number"
    if name == "dict":
        return [(is_dict, ["pass"])], [(any_dict, ["pass"])], "an object"
    if name == "time":
        return [(is_str, to_time)], [(any_str, to_time)], "a time string"
    if name == "time_or_number":
        fast = [(is_str, to_time), (number, ["pass"])]
        return fast, [(any_str, to_time), (f"_is_number({v})", ["pass"])], "a time or number"
    if name == "enum":
        table = out.ref(f"_values_of_{kind.of.__name__}", {m.value: m for m in kind.of})
        lookup = [f"{v} = {table}.get({v}, {v})"]
        return [(is_str, lookup)], [(any_str, lookup)], "a string"
    if name == "hook":  # a model field kept-other, decoded by a hook that is not ours
        hook, type_ = out.ref("_hook", kind.hook), out.ref("_type", kind.type)
        call = [f"{v} = _call_hook({hook}, {type_}, {v}, {seg})"]
        return [(is_dict, call)], [(any_dict, call)], "an object"
    if name in ("model", "str_or_model"):
        decode = _object_decoder(out, kind.of, v, seg, q, inline=name == "model")
        slow_decode = _object_decoder(out, kind.of, v, seg, q, inline=False)
        if name == "str_or_model":
            return (
                [(is_str, ["pass"]), (is_dict, decode)],
                [(any_str, ["pass"]), (any_dict, slow_decode)],
                "a string or an object",
            )
        return [(is_dict, decode)], [(any_dict, slow_decode)], "an object"
    if name == "models":
        items, item = f"{q}items", f"{q}item"
        decode = _object_decoder(out, kind.of, item, "''", q, inline=True, result=f"{q}o")
        slow_one = _object_decoder(out, kind.of, item, "''", q, inline=False, result=f"{q}o")
        loop = [
            f"{items} = []",
            "try:",
            f"    for {item} in {v}:",
            f"        if {item}.__class__ is dict:",
            *("            " + line for line in decode),
            f"            {items}.append({q}o)",
            f"        elif isinstance({item}, dict):",
            *("            " + line for line in slow_one),
            f"            {items}.append({q}o)",
            "        else:",
            f"            raise _wrong_type('', {item}, 'an object')",
            "except _Invalid as exc:",
            # The failing item is the one after those already decoded.
            f"    raise exc.under({seg} + '[' + str(len({items})) + ']') from None",
            f"{v} = tuple({items})",
        ]
        is_list, any_list = f"{v}.__class__ is list", f"isinstance({v}, list)"
        slow = [(any_list, [f"{v} = list({v})", *loop])]
        return [(is_list, loop)], slow, "an array"
    raise AssertionError(f"unknown kind {name!r}")  # pragma: no cover


def _object_decoder(
    out: _Source,
    cls: type,
    v: str,
    seg: str,
    q: str,
    *,
    inline: bool,
    result: str | None = None,
) -> list[str]:
    """Statements that decode the dict in ``v`` into model ``cls``, stored in ``result``
    (``v`` itself by default), with ``seg`` prepended to the path of an error.

    Inline where the converter's hook for ``cls`` is this module's and ``inline`` asks for
    it (a model of several shapes is always called); else a call of the model's decoder or
    of the converter's hook.
    """
    target = result or v
    ours = _model_hook_of(out.conv, cls)
    if ours is None:  # a hook of the user's
        hook, type_ = out.ref("_hook", out.conv.get_structure_hook(cls)), out.ref("_type", cls)
        return [f"{target} = _call_hook({hook}, {type_}, {v}, {seg})"]
    if inline and _shape_attr(cls) is None:
        inner = _Block(out, cls, None, v, q).build()
        return _guarded([*inner, f"{target} = {q}o"], seg)
    raw = out.ref(f"_decode_{cls.__name__}", ours.raw)
    return _guarded([f"{target} = {raw}({v})"], seg)


def _resolver(cls: type, f: _Field) -> Callable[[Any, Any], Any]:
    """What decodes the value of lazy field ``f`` of ``cls`` on first access.

    Its DecodeError names the owner's task and the path from the owner (``$.output...``).
    """
    segment = _segment(f.key)
    subject = _SUBJECTS.get(cls, cls.__name__)
    hook, type_, raw_decode = f.kind.hook, f.kind.type, f.kind.raw

    def decode(raw: Any) -> Any:
        if raw_decode is not None:  # the package's model decoder
            return raw_decode(raw)
        assert hook is not None  # else a hook of the user's (see _wire_fields)
        return _call_hook(hook, type_, raw, "")

    def resolve(raw: Any, owner: Any) -> Any:
        try:
            return decode(raw)
        except _Invalid as exc:
            task_id = getattr(owner, "task_id", None)
            raise DecodeError(
                exc.reason,
                path="$" + segment + exc.path,
                task_id=task_id if isinstance(task_id, str) else None,
                subject=subject,
            ) from None

    return resolve


def _guarded(lines: list[str], seg: str) -> list[str]:
    if seg == "''":  # nothing to add to the path (an item: its loop adds the index)
        return lines
    return [
        "try:",
        *("    " + line for line in lines),
        "except _Invalid as exc:",
        f"    raise exc.under({seg}) from None",
    ]


def _encode_value(out: _Source, var: str, f: _Field) -> str:
    """The expression that encodes non-None ``var`` of field ``f``."""
    kind = f.kind
    name = kind.name
    conv = out.conv
    if name == "enum":
        return f"{var} if {var}.__class__ is str else _plain({var})"
    if name == "time":
        return f"_encode_time({var})"
    if name == "time_or_number":
        return f"_encode_time({var}) if isinstance({var}, datetime) else {var}"
    if name in ("model", "models", "str_or_model"):
        if _model_hook_of(conv, kind.of) is None:
            # Items decoded by a hook of the user's: unstructured by their own type.
            encode = out.ref("_unstructure", conv.unstructure)
            if name == "models":
                return f"[{encode}(item) for item in {var}]"
            return f"{var} if {var}.__class__ is str else {encode}({var})"
        model = out.ref(kind.of.__name__, kind.of)
        encode = out.ref(f"_encode_{kind.of.__name__}", conv.get_unstructure_hook(kind.of))
        if name == "model":
            return f"{encode}({var})"
        if name == "models":
            return f"[{encode}(item) for item in {var}]"
        return f"{encode}({var}) if isinstance({var}, {model}) else {var}"
    if name == "hook":
        # Decoded by a hook that is not ours: encoded by whatever the converter does with
        # the value's own type (a user's attrs class, say).
        unstructure = out.ref("_unstructure", conv.unstructure)
        return f"{unstructure}({var})"
    return var


def _encoder(out: _Source, cls: type, shape: str | None, name: str) -> None:
    """Emit ``def name(o)``: the JSON object of ``cls`` instance ``o`` in ``shape``."""
    fields = {f.attr: f for f in _wire_fields(cls, shape, out.conv)}
    every = {f.attr: f for f in _wire_fields(cls, "native" if shape else None, out.conv)}
    lines = [f"def {name}(o):", "    out = {}", "    n = o.explicit_nulls"]
    for attr, native in every.items():
        f = fields.get(attr)
        if f is None:
            # No key in this shape: written under its native key, so that a value set in
            # code is not lost.
            lines += [
                f"    v = o.{attr}",
                "    if v is not None:",
                f"        out[{native.key!r}] = {_encode_value(out, 'v', native)}",
            ]
            continue
        k = repr(f.key)
        on_access = cls.__dict__.get(attr)
        if isinstance(on_access, _OnAccess):
            # Read from the slot as it is: a value never decoded is written back as sent.
            stored = out.ref(f"_stored_{attr}", on_access.stored)
            lines += [
                f"    v = {stored}(o)",
                "    if v.__class__ is _Undecoded:",
                f"        out[{k}] = v.raw",
                "    elif v is not None:",
            ]
        else:
            lines += [f"    v = o.{attr}", "    if v is not None:"]
        lines += [
            f"        out[{k}] = {_encode_value(out, 'v', f)}",
            f"    elif {k} in n:",
            f"        out[{k}] = None",
        ]
    out.lines += [*lines, "    if o.extra:", "        out.update(o.extra)", "    return out", ""]


# --- the hook factories -----------------------------------------------------------------------

# Keys that only one shape of CallOutput uses. A dict with a provider-only key and no
# native-only key is the provider's object; "id", "customer" and "cost" are shared, so they
# decide nothing.
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

# What a DecodeError calls the object it could not decode.
_SUBJECTS: Final[Mapping[type, str]] = {Task: "task", Space: "space"}


def _task_id_of(obj: object) -> str | None:
    if obj.__class__ is RawJSON:
        try:
            obj = orjson.loads(memoryview(obj))
        except orjson.JSONDecodeError:
            return None
    task_id = obj.get("task_id") if isinstance(obj, dict) else None
    return task_id if isinstance(task_id, str) else None


# Models a lazy converter decodes on first access as a whole, and the key each keeps eager.
_DEFERRED_KEYS: Final[Mapping[type, str]] = {Task: "task_id"}


def _deferring(
    cls: type,
    twin: type,
    key: str,
    decode: Callable[[dict[str, Any]], Any],
    decode_into: Callable[[dict[str, Any], Any], None],
    subject: str,
) -> tuple[Callable[[dict[str, Any]], Any], Callable[[RawJSON], Any]]:
    """The lazy decoders of ``cls`` (of a parsed object, of its JSON text): check ``key``,
    keep the object as sent, decode it in place when it is first read.

    From the JSON text (a page's item, the client's hot path) only ``key`` is parsed, with
    msgspec; the text is kept (a copy of its bytes: a task kept unread does not keep the
    whole page's body alive) and parsed when the task is read. Measured on pages of 100
    tasks (``benchmarks/_decode.py``), in units of ``orjson.loads`` of the page: the walk's
    reading of a page costs about 0.6; reading every task afterwards brings it to about 3.0,
    and every output too to 3.6, where the eager converter costs 3.3 (it decodes outputs).
    A reader that hands tasks on as JSON (:func:`tasks_as_sent`, the command line) never
    parses them at all. See
    :func:`~._models.deferred_subclass` for what the instance does until it is read.
    """
    deferred = deferred_subclass(cls, key)
    key_of = msgspec.json.Decoder(msgspec.defstruct(f"_{cls.__name__}Key", [(key, str)])).decode

    def refused(exc: _Invalid, d: Any) -> DecodeError:
        task_id = d.get(key) if isinstance(d, dict) else None
        return DecodeError(
            exc.reason,
            path="$" + exc.path,
            task_id=task_id if isinstance(task_id, str) else None,
            subject=subject,
        )

    def materialize(d: Any, obj: Any) -> None:
        try:
            if d.__class__ is bytes:  # the text kept by defer_json
                d = _parse_item(d)
            decode_into(d, obj)
        except _Invalid as exc:
            # The task as it stands (its id is known) names the task, whatever failed, and
            # the space and page it came from when the client said (see mark_source).
            error = refused(exc, {key: object.__getattribute__(obj, key)})
            where = getattr(object.__getattribute__(obj, "extra"), "where", None)
            if where is not None:
                error.with_context(space_token=where[0], page=where[1])
            raise error from None

    def keep(value: str, source: Any) -> Any:
        o = twin()
        setattr(o, key, value)
        pending = _Undecoded()
        pending.raw = source
        pending.decode = materialize
        o.extra = pending
        o.__class__ = deferred
        return o

    def defer(d: dict[str, Any]) -> Any:
        value = d.get(key, _ABSENT)
        if value.__class__ is not str:
            return decode(d)  # a missing or wrong key raises; a str subclass decodes now
        # A copy: the caller's dict may change before the task is read (what an eager
        # decode shares with it, the nested values as sent, a lazy one shares too).
        return keep(value, dict(d))

    def defer_json(text: RawJSON) -> Any:
        try:
            value = key_of(text).__getattribute__(key)
        except msgspec.DecodeError:  # not an object, or no string key: parsed, to say why
            parsed = _parse_item(text)
            if parsed.__class__ is not dict:
                raise _wrong_type("", parsed, "an object") from None
            return defer(parsed)
        # Its own bytes: an unread task kept does not keep its page's body alive.
        return keep(value, bytes(memoryview(text)))

    return defer, defer_json


_ABSENT: Final = _BASE_NAMESPACE["_ABSENT"]


def _structure_model_factory(cls: type, conv: cattrs.Converter, lazy: bool) -> _Hook:
    """The structure hook of a model: generated code (see the module's docstring).

    With ``lazy``, fields marked DECODED_ON_ACCESS are kept as sent (see _models._OnAccess),
    and a model of ``_DEFERRED_KEYS`` is decoded when first read (see :func:`_deferring`).
    The hook takes the parsed object or its JSON text (:data:`RawJSON`).
    """
    out = _Source(conv, f"structure {cls.__module__}.{cls.__qualname__}", lazy)
    shapes = ("native", "provider", "empty") if _shape_attr(cls) else (None,)
    for shape in shapes:
        body = _Block(out, cls, shape, "d", "").build()
        name = f"decode_{shape or 'model'}"
        out.lines += [f"def {name}(d):", *("    " + line for line in body), "    return o", ""]
    deferred_key = _DEFERRED_KEYS.get(cls) if lazy and shapes == (None,) else None
    twin = _twin_of(cls) if deferred_key is not None else None
    if twin is not None:
        body = _Block(out, cls, None, "d", "", into=True).build()
        out.lines += ["def decode_into(d, into):", *("    " + line for line in body), ""]
    ns = out.compile()
    subject = _SUBJECTS.get(cls, cls.__name__)
    raw: Callable[[dict[str, Any]], Any]
    from_json: Callable[[RawJSON], Any] | None = None
    if twin is not None:
        assert deferred_key is not None
        raw, from_json = _deferring(
            cls, twin, deferred_key, ns["decode_model"], ns["decode_into"], subject
        )
    elif shapes == (None,):
        raw = ns["decode_model"]
    else:
        native, provider, empty = ns["decode_native"], ns["decode_provider"], ns["decode_empty"]

        def by_shape(d: dict[str, Any]) -> Any:
            if not d:
                return empty(d)
            keys = d.keys()
            # A native output usually answers the first test at its first key.
            if not keys.isdisjoint(_NATIVE_ONLY) or keys.isdisjoint(_PROVIDER_ONLY):
                return native(d)
            return provider(d)

        raw = by_shape

    if from_json is None:
        decode_dict = raw

        def parse_then_decode(text: RawJSON) -> Any:
            parsed = _parse_item(text)
            if parsed.__class__ is not dict:
                raise _wrong_type("", parsed, "an object")
            return decode_dict(parsed)

        from_json = parse_then_decode

    has_task_id = "task_id" in attrs.fields_dict(cls)
    decode_json = from_json

    def structure(obj: Any, _: Any) -> Any:
        try:
            if obj.__class__ is RawJSON:
                return decode_json(obj)
            if obj.__class__ is not dict and not isinstance(obj, dict):
                raise _wrong_type("", obj, "an object")
            return raw(obj)
        except _Invalid as exc:
            task_id = _task_id_of(obj) if has_task_id else None
            path = "$" + exc.path
            raise DecodeError(exc.reason, path=path, task_id=task_id, subject=subject) from None

    kind = _Kind("model", of=cls, raw=raw, from_json=from_json, deferred=twin is not None)
    return _Hook(kind, structure)


def _unstructure_model_factory(cls: type, conv: cattrs.Converter) -> Callable[[Any], Any]:
    """The unstructure hook of a model: the JSON object it was decoded from."""
    out = _Source(conv, f"unstructure {cls.__module__}.{cls.__qualname__}")
    shape_attr = _shape_attr(cls)
    if shape_attr is None:
        _encoder(out, cls, None, "encode")
        encode: Callable[[Any], Any] = out.compile()["encode"]
        if cls not in _DEFERRED_KEYS:
            return encode

        def encode_deferred(obj: Any) -> Any:
            # One never read is written back as it came, without decoding it (a copy: the
            # caller may change what it gets).
            if type(obj) is not cls:
                pending = pending_of(obj)
                if pending is not None:
                    source = pending.raw
                    if source.__class__ is bytes:
                        try:
                            parsed: dict[str, Any] = _parse_item(source)
                        except _Invalid as exc:
                            task_id = object.__getattribute__(obj, "task_id")
                            raise DecodeError(
                                exc.reason, path="$", task_id=task_id, subject="task"
                            ) from None
                        return parsed
                    return dict(source)
            return encode(obj)

        return encode_deferred
    _encoder(out, cls, "native", "encode_native")
    _encoder(out, cls, "provider", "encode_provider")
    ns = out.compile()
    native, provider = ns["encode_native"], ns["encode_provider"]

    def encode_shaped(obj: Any) -> Any:
        # EMPTY has no attributes set, so the native encoder gives {}; one set in code is
        # written under its native key.
        if getattr(obj, shape_attr) is OutputShape.PROVIDER:
            return provider(obj)
        return native(obj)

    return encode_shaped


def _plain_hook(kind: _Kind, what: str) -> _Hook:
    """A hook of a plain kind, generated from the same branches the models inline."""
    out = _Source(None, f"structure {what}")
    fast, slow, expected = _branches(out, kind, "x", "''", "")
    lines = ["def structure(x, _):"]
    for position, (cond, body) in enumerate([*fast, *slow]):
        lines.append(f"    {'elif' if position else 'if'} {cond}:")
        lines += ["        " + line for line in body]
    if expected:
        lines += ["    else:", f"        raise _wrong_type('', x, {expected!r})"]
    out.lines += [*lines, "    return x", ""]
    decode = out.compile()["structure"]

    def structure(value: Any, type_: Any) -> Any:
        try:
            return decode(value, type_)
        except _Invalid as exc:
            raise DecodeError(exc.reason, path="$" + exc.path, subject="value") from None

    return _Hook(kind, structure)


def _subclass_aware(hook: _Hook, own: tuple[type, ...], build: Callable[[Any, Any], Any]) -> _Hook:
    # Registered for a class, a hook also answers for its subclasses (a str enum for str):
    # those other than ``own`` are built as cattrs builds them.
    def structure(value: Any, type_: Any) -> Any:
        if type_ in own:
            return hook(value, type_)
        return build(value, type_)

    return _Hook(hook.kind, structure)


def _union_of(type_: Any) -> frozenset[Any]:
    return frozenset(get_args(type_)) if _is_union(type_) else frozenset()


def _is_str_enum_or_str(type_: Any) -> bool:
    args = _union_of(type_)
    enums = [a for a in args - {str} if isinstance(a, type) and issubclass(a, enum.Enum)]
    return len(args) == 2 and str in args and len(enums) == 1 and issubclass(enums[0], str)


def _enum_factory(type_: Any) -> _Hook:
    (member_type,) = _union_of(type_) - {str}
    return _plain_hook(_Kind("enum", of=member_type), _type_label(type_))


def _is_str_or_model(type_: Any) -> bool:
    args = _union_of(type_)
    return len(args) == 2 and str in args and all(_is_wire_model(a) for a in args - {str})


def _str_or_model_factory(type_: Any, conv: cattrs.Converter) -> _Hook:
    (model,) = _union_of(type_) - {str}
    item = conv.get_structure_hook(model)

    def structure(value: Any, _: Any) -> Any:
        return value if isinstance(value, str) else item(value, model)

    return _Hook(_Kind("str_or_model", of=model), structure)


def _is_sequence_of_models(origin: type) -> Callable[[Any], bool]:
    def predicate(type_: Any) -> bool:
        args = get_args(type_)
        if get_origin(type_) is not origin or not args or not _is_wire_model(args[0]):
            return False
        return args[1:] == ((Ellipsis,) if origin is tuple else ())

    return predicate


def _items_failure(
    item: StructureHook, model: type, objs: list[Any], first: Exception
) -> Exception:
    # Only runs on failure: decode one by one to name the failing item's index.
    for index, obj in enumerate(objs):
        try:
            item(obj, model)
        except DecodeError as exc:
            reason = f"{exc.reason} (item {index} of {len(objs)})"
            return DecodeError(reason, path=exc.json_path, task_id=exc.task_id, subject=exc.subject)
    # A hook that failed once and then did not: its first error stands.
    if isinstance(first, _Invalid):
        return DecodeError(first.reason, path="$" + first.path)
    return first


def _list_of_models_factory(type_: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """The hook of ``list[Model]`` (a page): all or nothing, naming the failing item."""
    model = get_args(type_)[0]
    item = conv.get_structure_hook(model)
    ours = _model_hook_of(conv, model)
    raw = ours.raw if ours is not None else None
    from_json = ours.from_json if ours is not None else None

    def structure(objs: Any, _: Any) -> list[Any]:
        if objs.__class__ is not list and not isinstance(objs, list):
            raise DecodeError(f"expected an array, got {_type_name(objs)}", subject="list")
        try:
            if from_json is not None and objs and objs[0].__class__ is RawJSON:
                # The client's hot path: a page's items as JSON text, each to the model's
                # decoder of text (anything else to the hook that wraps it).
                return [from_json(o) if o.__class__ is RawJSON else item(o, model) for o in objs]
            if raw is not None:
                # The model's decoder called straight, no call per task into the hook that
                # wraps it (that one runs only for a dict subclass, or a value that is not
                # an object).
                return [raw(o) if o.__class__ is dict else item(o, model) for o in objs]
            return [item(o, model) for o in objs]
        except (_Invalid, DecodeError) as exc:
            raise _items_failure(item, model, objs, exc) from None

    return structure


def _tuple_of_models_factory(type_: Any, conv: cattrs.Converter) -> _Hook:
    """The hook of ``tuple[Model, ...]`` (a transcript), for a direct call of the converter."""
    model = get_args(type_)[0]
    item = conv.get_structure_hook(model)

    def structure(objs: Any, _: Any) -> tuple[Any, ...]:
        if not isinstance(objs, list):
            raise DecodeError(f"expected an array, got {_type_name(objs)}", subject="list")
        decoded = []
        for index, obj in enumerate(objs):
            try:
                decoded.append(item(obj, model))
            except DecodeError as exc:
                path = f"$[{index}]{exc.json_path[1:]}"
                raise DecodeError(exc.reason, path=path, subject=exc.subject) from None
        return tuple(decoded)

    return _Hook(_Kind("models", of=model), structure)


def _equal_to(expected: Any) -> Callable[[Any], bool]:
    def predicate(type_: Any) -> bool:
        return bool(type_ == expected)

    return predicate


_STR_HOOK: Final = _plain_hook(_Kind("str"), "str")
_TIME_HOOK: Final = _plain_hook(_Kind("time"), "datetime")
# The plain types of the models' fields (without None), each with its hook.
_PLAIN_HOOKS: Final[tuple[tuple[Any, _Hook], ...]] = (
    (str | int | float | bool, _plain_hook(_Kind("scalar"), "str | int | float | bool")),
    (str | int, _plain_hook(_Kind("str_or_int"), "str | int")),
    (int | float, _plain_hook(_Kind("number"), "int | float")),
    (dict[str, Any], _plain_hook(_Kind("dict"), "dict[str, Any]")),
    (datetime | int | float, _plain_hook(_Kind("time_or_number"), "datetime | int | float")),
)


def make_converter(*, lazy: bool = True) -> OrjsonConverter:
    """A new converter that decodes and encodes every model of the package, for you to extend.

    It is a cattrs orjson converter (``dumps`` gives JSON bytes) with the package's hooks:
    ``structure(obj, Task)`` is :func:`decode_task`, ``structure(data, list[Task])`` is
    :func:`decode_tasks`, ``unstructure(task)`` is :func:`encode_task`; the same for every
    model, ``tuple[TranscriptTurn, ...]``, :class:`~._models.Timestamp` and ``datetime``
    (which structures to a ``Timestamp``; ``str`` refuses what is not a string).

    Each field of a model is decoded by the converter's hook for the field's type without
    ``None`` (``dict[str, Any]`` for ``Task.input``, ``UserInfo`` for ``Task.user_info``), so
    a hook you register for such a type is used from the next decode on, for present,
    non-null values (absent keys and nulls stay as they were). Register it as cattrs takes
    it: ``register_structure_hook(UserInfo, hook)`` for a class,
    ``register_structure_hook_func(lambda t: t == dict[str, Any], hook)`` for any other type
    (a union or a generic alias). A field decoded by your hook is encoded by
    ``unstructure(value)`` (cattrs unstructures an attrs class to a dict). Pass the converter
    to :func:`decode_tasks` (and ``Client(converter=...)``) to decode pages with it.

    ``lazy`` (the default) decodes a task when it is first read rather than with its page:
    only ``task_id`` is checked at once; the first read of another attribute decodes the
    task in place, except ``Task.output`` (the call, its transcript and its analysis, about
    two thirds of the cost of a call task), decoded when it is read itself. A value that does
    not decode raises :class:`~spacetasks_async.DecodeError` from that read rather than from
    the decode of the page; a task never read encodes back as sent without being decoded.
    ``lazy=False`` decodes everything at once: all errors at decode time (the command line's
    ``--decode``).

    Each call gives an independent converter: hooks registered on it do not reach the
    package's own :data:`converter`.
    """
    conv = _make_orjson_converter()
    # Registered for classes, these answer for subclasses too (a str enum, Timestamp).
    conv.register_structure_hook(str, _subclass_aware(_STR_HOOK, (str,), _call_class))
    time_hook = _subclass_aware(_TIME_HOOK, (datetime, Timestamp), _from_iso)
    conv.register_structure_hook(datetime, time_hook)
    for type_, hook in _PLAIN_HOOKS:
        conv.register_structure_hook_func(_equal_to(type_), hook)
    conv.register_structure_hook_factory(_is_str_enum_or_str, _enum_factory)
    conv.register_structure_hook_factory(_is_str_or_model, _str_or_model_factory)
    conv.register_structure_hook_factory(_is_sequence_of_models(tuple), _tuple_of_models_factory)
    conv.register_structure_hook_factory(_is_sequence_of_models(list), _list_of_models_factory)

    def structure_model_factory(cls: type, conv: cattrs.Converter) -> _Hook:
        return _structure_model_factory(cls, conv, lazy)

    conv.register_structure_hook_factory(_is_wire_model, structure_model_factory)
    conv.register_unstructure_hook_factory(_is_wire_model, _unstructure_model_factory)
    conv.register_unstructure_hook(Timestamp, _encode_time)
    return conv


def defers_tasks(conv: cattrs.Converter) -> bool:
    """Whether ``conv`` keeps a task unread until first read (a lazy :func:`make_converter`).

    Such a converter is fastest given a page's items as JSON text (it parses only their
    ``task_id``); any other is given them parsed.
    """
    kind = _model_hook_of(conv, Task)
    return kind is not None and kind.deferred


def derived_from_package(conv: cattrs.Converter) -> bool:
    """Whether ``conv`` decodes tasks with this module's hooks (:func:`make_converter`'s).

    True for a converter of :func:`make_converter`, hooks registered on it or not, and for
    a ``copy()`` of one; False for any other cattrs converter. Builds (and caches) the
    converter's hook for :class:`~._models.Task` if it had none yet.
    """
    try:
        hook = conv.get_structure_hook(Task)
    except Exception:  # whatever a foreign converter raises: it is not one of ours
        return False
    return isinstance(hook, _Hook)


def _call_class(value: Any, type_: Any) -> Any:
    return type_(value)


def _from_iso(value: Any, type_: Any) -> Any:
    return type_.fromisoformat(value)


converter: Final[OrjsonConverter] = make_converter()
"""The package's converter (see :func:`make_converter`); derive your own, do not change it."""

_CONVERTER: Final = converter  # under another name for functions whose parameter is `converter`


# --- the public functions -------------------------------------------------------------------


def decode_task(obj: Any, converter: cattrs.Converter | None = None) -> Task:
    """Decode one task (the parsed JSON object) into a :class:`~._models.Task`.

    ``converter`` is the converter to decode with (one of :func:`make_converter`, with your
    hooks); by default the package's own. Raises :class:`~spacetasks_async.DecodeError`
    naming the ``task_id`` and the JSON path of the first value of a wrong type (for example
    ``$.output.transcript[2].content``).
    """
    conv = _CONVERTER if converter is None else converter
    task: Task = conv.structure(obj, Task)
    return task


def decode_tasks(data: Any, converter: cattrs.Converter | None = None) -> list[Task]:
    """Decode a list of tasks (the ``data`` of a page), all or nothing, in one converter call.

    ``converter`` is the converter to decode with: one of :func:`make_converter`, with your
    hooks (the client passes its ``Client(converter=...)`` here); by default the package's
    own. The call is ``converter.structure(data, list[Task])``.

    Raises :class:`~spacetasks_async.DecodeError` as :func:`decode_task` does, its reason
    also naming the task's index in ``data`` (``item 3 of 100``); or when ``data`` is not an
    array. What a lazy converter (the package's) leaves for later, ``Task.output``, raises
    its DecodeError when it is read instead (see :class:`~._models.Task`).
    """
    conv = _CONVERTER if converter is None else converter
    tasks: list[Task] = conv.structure(data, list[Task])
    return tasks


def encode_task(task: Task, converter: cattrs.Converter | None = None) -> dict[str, Any]:
    """Encode a task back into the JSON object it was decoded from (exactly, for a decoded one).

    ``converter`` is the converter that decoded it, when one of yours did (its hooks' values
    are unstructured by it); by default the package's own. The result holds only JSON types
    (enum members as their values, timestamps as text) and shares unmodified sub-objects
    (``input``, ``extra`` values) with the task.
    """
    conv = _CONVERTER if converter is None else converter
    encoded: dict[str, Any] = conv.unstructure(task, Task)
    return encoded


def task_json(task: Task) -> bytes | None:
    """The JSON text the server sent for ``task``, if it was kept and the task never read.

    A task of a page the client decoded with a lazy converter (the package's) keeps the
    text of its JSON object, exactly as sent, until it is read; this gives it without
    parsing it (``None`` for any other task: :func:`encode_task` then gives its object).
    The command line writes it to JSON Lines as is.
    """
    if type(task) is Task:
        return None
    pending = pending_of(task)
    if pending is None or pending.raw.__class__ is not bytes:
        return None
    text: bytes = pending.raw
    return text


def tasks_as_sent(tasks: Iterable[Task]) -> list[bytes | dict[str, Any]]:
    """Each task as the server sent it: its JSON text if kept (:func:`task_json`), else its
    object (:func:`encode_task`). What the command line hands its output, in one call per
    page."""
    out: list[bytes | dict[str, Any]] = []
    append = out.append
    for task in tasks:
        if type(task) is not Task:
            pending = _extra_slot(task)
            if pending.__class__ is _Undecoded and pending.raw.__class__ is bytes:
                append(pending.raw)
                continue
        append(encode_task(task))
    return out


def mark_source(tasks: Iterable[Task], space_token: str, page: int) -> None:
    """Note where tasks not read yet came from, so that a task that does not decode when it
    is read raises a DecodeError naming its space and page, as one decoded with its page
    does. (One store per task; nothing for a task decoded already.)"""
    where = (space_token, page)
    for task in tasks:
        if type(task) is not Task:
            pending = _extra_slot(task)
            if pending.__class__ is _Undecoded:
                pending.where = where


# The slot of Task.extra read straight (a task not read yet keeps its text there).
_extra_slot: Final[Callable[[Task], Any]] = Task.__dict__["extra"].__get__


def decode_space(obj: Any, converter: cattrs.Converter | None = None) -> Space:
    """Decode one item of the spaces list into a :class:`~._models.Space`.

    ``converter`` is the converter to decode with (by default the package's own). Raises
    :class:`~spacetasks_async.DecodeError` (with no ``task_id``) on a wrong type.
    """
    conv = _CONVERTER if converter is None else converter
    space: Space = conv.structure(obj, Space)
    return space


def encode_space(space: Space, converter: cattrs.Converter | None = None) -> dict[str, Any]:
    """Encode a space back into the JSON object it was decoded from.

    ``converter`` is the converter that decoded it (by default the package's own).
    """
    conv = _CONVERTER if converter is None else converter
    encoded: dict[str, Any] = conv.unstructure(space, Space)
    return encoded
