"""Typed, lossless models of what the Unpod tasks API returns.

Every model is a frozen, slotted attrs class. Decoding and encoding live in
:mod:`spacetasks_async._convert`; these classes only hold data. The models are built so that
``encode_task(decode_task(obj)) == obj`` for every task the server can send:

- unknown keys are kept verbatim in ``extra`` (values are not copied);
- a known key that was absent stays absent, and one sent as ``null`` is written back as
  ``null``: ``explicit_nulls`` names the JSON keys that were an explicit ``null``;
- timestamps are :class:`Timestamp`, a UTC-aware ``datetime`` that remembers the text it was
  parsed from, so that ``2026-02-07T05:57:45`` is not rewritten as ``...Z``.

A model's attrs metadata says everything the converter needs besides the types: an attribute
is read from the JSON key of its name unless its metadata names another (:data:`JSON_KEY`),
``CallOutput``'s attributes name their key in the provider's shape (:data:`PROVIDER_KEY`), and
``Task.output`` keeps a value of another JSON type in ``extra`` (:data:`KEEP_OTHER_JSON`) and
may be left as sent until it is first read (:data:`DECODED_ON_ACCESS`). The last two
attributes of every model, ``extra`` and ``explicit_nulls``, hold the rest of the wire form;
every other attribute defaults to ``None`` (absent), except the required ones.

Equality compares the data only: the spelling of a timestamp and ``explicit_nulls`` do not
take part in ``==``.

Enum-typed fields hold the enum member for a known value and the plain ``str`` for a value
this version does not know yet (the server adds statuses without notice), so a field typed
``TaskStatus | str | None`` is never a reason to reject a task.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Final, SupportsIndex, TypeAlias, TypeVar

import attrs

from ._errors import redacted_repr

__all__ = [
    "DECODED_ON_ACCESS",
    "JSON_KEY",
    "KEEP_OTHER_JSON",
    "NO_NULLS",
    "PROVIDER_KEY",
    "CallOutput",
    "CallSummary",
    "ExecutionType",
    "JsonScalar",
    "OutputShape",
    "PostCallData",
    "RunMode",
    "Space",
    "Task",
    "TaskDefinition",
    "TaskPage",
    "TaskStatus",
    "Timestamp",
    "TranscriptTurn",
    "UserInfo",
]

JsonScalar: TypeAlias = str | int | float | bool | None
"""A JSON value that is not an object or an array."""

JSON_KEY: Final = "json_key"
"""Field metadata: the JSON key of an attribute, where it is not the attribute's name."""

PROVIDER_KEY: Final = "provider_key"
"""Field metadata of :class:`CallOutput`: the attribute's key in the provider's shape.

An attribute without it has no key in that shape (see :class:`CallOutput`).
"""

KEEP_OTHER_JSON: Final = "keep_other_json"
"""Field metadata: a value that is neither an object nor ``null`` is kept in ``extra``.

It is kept verbatim under the attribute's JSON key, and the attribute is ``None``.
"""

DECODED_ON_ACCESS: Final = "decoded_on_access"
"""Field metadata: the converter may keep the value as sent and decode it when first read.

The attribute of such a field is an :class:`_OnAccess` descriptor (see
:func:`_decode_on_access`), so the public type of the attribute does not change.
"""

NO_NULLS: frozenset[str] = frozenset()
"""The ``explicit_nulls`` of an object that had no explicit ``null`` (shared, it is immutable)."""


class Timestamp(datetime):
    """A timezone-aware UTC ``datetime`` that remembers the text it was parsed from.

    The API writes times as ``...Z``, with an offset, or naive (meaning UTC). Decoding turns
    each into UTC; encoding writes back :attr:`wire`, the exact original text, so a round trip
    does not change the payload. A ``Timestamp`` built in code (or derived by arithmetic or
    ``replace``) has no wire text and is encoded as ISO 8601 with ``Z``.
    """

    __slots__ = ("_wire",)

    _wire: str

    @property
    def wire(self) -> str | None:
        """The text this timestamp was parsed from, or ``None`` if it was not parsed."""
        return getattr(self, "_wire", None)

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        # datetime's own pickling rebuilds the value only; keep the wire text too, so that
        # copy.deepcopy or pickle of a task does not change how it encodes.
        reduced = super().__reduce_ex__(protocol)
        assert isinstance(reduced, tuple)  # datetime reduces to (callable, args)
        return (_restore_timestamp, (reduced[0], reduced[1], self.wire))


def _restore_timestamp(
    rebuild: Callable[..., Timestamp], args: tuple[Any, ...], wire: str | None
) -> Timestamp:
    stamp = rebuild(*args)
    if wire is not None:
        stamp._wire = wire
    return stamp


class _Undecoded:
    """A value kept as sent (``raw``), to be decoded on first access by ``decode(raw, owner)``.

    Only ever stored in the slot of a :data:`DECODED_ON_ACCESS` field (reading the attribute
    never returns it, see :class:`_OnAccess`) or in ``extra`` of an instance of a
    :func:`deferred_subclass`, where ``raw`` is the whole object as sent: its parsed dict, or
    its JSON text. The converter builds one per task, so it has no ``__init__`` to call: it
    is created empty and its two slots are assigned.
    """

    __slots__ = ("decode", "raw", "where")

    raw: Any
    decode: Callable[[Any, Any], Any]
    #: The space and page the object came from, when the client knows them (set only for
    #: a whole task; read only when decoding it fails, to name them in the error).
    where: tuple[str, int]


class _OnAccess:
    """The attribute of a :data:`DECODED_ON_ACCESS` field: decodes an undecoded value once.

    Stands in front of the field's slot. Reading it turns an :class:`_Undecoded` value into
    the decoded one and stores that in the slot, so it is decoded once; a value that does
    not decode raises :class:`~spacetasks_async.DecodeError` on every read instead. Writing
    goes to the slot (attrs' ``__init__`` and ``__setstate__`` write through
    ``object.__setattr__``). Everything that reads attributes (``==``, ``repr``, pickling,
    ``attrs.evolve``) therefore sees decoded values only. :attr:`stored` reads the slot
    as it is, for the encoder, which writes an undecoded value back as it came. Two threads
    reading it at once may both decode it; they get equal values, and one is kept.
    """

    __slots__ = ("_get", "_set", "stored")

    def __init__(self, slot: Any) -> None:
        self._get: Callable[[Any], Any] = slot.__get__
        self._set: Callable[[Any, Any], None] = slot.__set__
        self.stored: Callable[[Any], Any] = slot.__get__
        """The value in the slot of an instance, undecoded or not."""

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = self._get(obj)
        if value.__class__ is _Undecoded:
            value = value.decode(value.raw, obj)
            self._set(obj, value)
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        self._set(obj, value)


_C = TypeVar("_C", bound=type)


def _decode_on_access(cls: _C) -> _C:
    """Put an :class:`_OnAccess` in front of the slot of every DECODED_ON_ACCESS field."""
    for a in attrs.fields(cls):
        if a.metadata.get(DECODED_ON_ACCESS):
            setattr(cls, a.name, _OnAccess(cls.__dict__[a.name]))
    return cls


def deferred_subclass(cls: type, eager: str) -> type:
    """The class of an instance of ``cls`` whose decoding waits until an attribute is read.

    Such an instance (the package's lazy converter makes them for :class:`Task`) has only
    two slots filled: ``eager`` (``task_id``, which a walk reads from every task) and
    ``extra``, which holds an :class:`_Undecoded` of the whole object as sent (its JSON
    text, from a page the client read; or its parsed dict). Reading any
    other attribute, ``__class__`` included, first runs ``decode(raw, instance)``, which
    fills every slot in place and turns the instance into a plain ``cls`` (``__class__``
    assignment, between classes of one layout: this subclass adds no slot). From then on it
    *is* a ``cls``: attribute reads are plain slot reads again. Everything that reads
    attributes (``==``, ``hash``, ``repr``, pickling, ``copy``, ``attrs.evolve`` and
    ``asdict``) therefore sees a decoded instance; ``isinstance(task, cls)`` holds
    throughout, ``type(task) is cls`` only once it was read. A decode that fails leaves the
    instance as it was and raises from every read (as :class:`_OnAccess` does). Two threads
    reading one instance first at once may both decode it; they store equal values.
    """

    def read_eager(self: Any) -> Any:
        return object.__getattribute__(self, eager)

    def __getattribute__(self: Any, name: str) -> Any:
        if name == eager:
            return read_eager(self)
        # object.__getattribute__ reads the slot whatever the class is right now (another
        # thread may be decoding this instance).
        pending = object.__getattribute__(self, "extra")
        if pending.__class__ is _Undecoded:
            pending.decode(pending.raw, self)
        if name == "__class__":
            # Decoded, by this thread or another that has not assigned the class yet.
            return cls
        return object.__getattribute__(self, name)

    return type(
        f"_Deferred{cls.__name__}",
        (cls,),
        {
            "__slots__": (),
            "__getattribute__": __getattribute__,
            "__module__": cls.__module__,
            "__doc__": f"A {cls.__name__} not decoded yet (see deferred_subclass).",
        },
    )


def pending_of(obj: object) -> _Undecoded | None:
    """The :class:`_Undecoded` of an instance of a :func:`deferred_subclass` not read yet."""
    value = object.__getattribute__(obj, "extra")
    return value if value.__class__ is _Undecoded else None


class TaskStatus(enum.StrEnum):
    """The task statuses the server is known to use. Others decode as plain ``str``."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    HOLD = "hold"
    FAILED = "failed"
    PARTIALLY_COMPLETED = "partially_completed"


class ExecutionType(enum.StrEnum):
    """How a task is carried out. Others decode as plain ``str``."""

    CALL = "call"
    EMAIL = "email"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    CHAT = "chat"


class RunMode(enum.StrEnum):
    """The environment a task ran in. Others decode as plain ``str``."""

    DEV = "dev"
    PROD = "prod"


class OutputShape(enum.StrEnum):
    """Which of the server's shapes a :class:`CallOutput` was decoded from (and encodes to).

    ``NATIVE`` uses the platform's snake_case keys, ``PROVIDER`` the voice provider's camelCase
    object (``id``, ``startedAt``, ``endedAt``, ...), ``EMPTY`` was ``{}``.
    """

    NATIVE = "native"
    PROVIDER = "provider"
    EMPTY = "empty"


@attrs.frozen(weakref_slot=False)
class UserInfo:
    """The user a task belongs to (JSON key ``user_info``).

    ``user_token`` is that user's secret: it is kept (so a round trip is lossless) but never
    shown in ``repr``.
    """

    email: str | None = None
    full_name: str | None = None
    id: JsonScalar = None
    user_token: str | None = attrs.field(default=None, repr=False)
    extra: dict[str, Any] = attrs.field(factory=dict, repr=redacted_repr)
    explicit_nulls: frozenset[str] = attrs.field(default=NO_NULLS, repr=False, eq=False)


@attrs.frozen(weakref_slot=False)
class TaskDefinition:
    """What the task asks for (JSON key ``task``)."""

    objective: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=redacted_repr)
    explicit_nulls: frozenset[str] = attrs.field(default=NO_NULLS, repr=False, eq=False)


@attrs.frozen(weakref_slot=False)
class TranscriptTurn:
    """One turn of a call transcript.

    ``timestamp`` is a :class:`Timestamp` when the server sent a time string, and the number
    itself (seconds, as sent) when it sent a number.
    """

    role: str | None = None
    content: str | None = None
    timestamp: datetime | int | float | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=redacted_repr)
    explicit_nulls: frozenset[str] = attrs.field(default=NO_NULLS, repr=False, eq=False)


@attrs.frozen(weakref_slot=False)
class CallSummary:
    """The object form of ``post_call_data.summary``.

    ``callback_datetime`` is kept as the text sent: it is extracted from the conversation and
    is often not a machine-readable time ("tomorrow after five").
    """

    status: str | None = None
    summary: str | None = None
    name: str | None = None
    contact: JsonScalar = None
    callback_datetime: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=redacted_repr)
    explicit_nulls: frozenset[str] = attrs.field(default=NO_NULLS, repr=False, eq=False)


@attrs.frozen(weakref_slot=False)
class PostCallData:
    """The analysis of a call (``output.post_call_data``).

    ``summary`` is a string (documented) or a :class:`CallSummary` (what the server may send).
    The undocumented fields hold any JSON value, as sent (``structured_data`` is typically a
    JSON document inside a string and is not parsed).
    """

    summary: str | CallSummary | None = None
    outcome: str | None = None
    sentiment: str | None = None
    classification: Any = None
    success_evaluator: Any = None
    structured_data: Any = None
    call_evaluation: Any = None
    profile_summary: Any = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=redacted_repr)
    explicit_nulls: frozenset[str] = attrs.field(default=NO_NULLS, repr=False, eq=False)


@attrs.frozen(weakref_slot=False)
class CallOutput:
    """The ``output`` of a call task, in either of the server's two shapes.

    ``shape`` says which keys the object uses on the wire. In the ``PROVIDER`` shape the
    attributes are read from ``id`` (``call_id``), ``startedAt``, ``endedAt``, ``recordingUrl``,
    ``endedReason`` (``call_end_reason``), ``customer`` and ``cost``; every other provider key
    (``assistantId``, ``costBreakdown``, ``analysis``, ``artifact``, ``costs``, ``monitor``, ...)
    stays in ``extra`` under its own name. Encoding writes each value back under the key of
    its shape. The undocumented native fields hold any JSON value, as sent.
    """

    shape: OutputShape = OutputShape.NATIVE
    call_id: str | None = attrs.field(default=None, metadata={PROVIDER_KEY: "id"})
    start_time: datetime | None = attrs.field(default=None, metadata={PROVIDER_KEY: "startedAt"})
    end_time: datetime | None = attrs.field(default=None, metadata={PROVIDER_KEY: "endedAt"})
    duration: int | float | None = None
    recording_url: str | None = attrs.field(default=None, metadata={PROVIDER_KEY: "recordingUrl"})
    transcript: tuple[TranscriptTurn, ...] | None = None
    post_call_data: PostCallData | None = None
    call_type: str | None = None
    call_status: str | None = None
    customer: Any = attrs.field(
        default=None, repr=redacted_repr, metadata={PROVIDER_KEY: "customer"}
    )
    contact_number: Any = None
    call_end_reason: str | None = attrs.field(default=None, metadata={PROVIDER_KEY: "endedReason"})
    assistant_number: Any = None
    call_summary: Any = None
    cost: Any = attrs.field(default=None, metadata={PROVIDER_KEY: "cost"})
    metadata: Any = attrs.field(default=None, repr=redacted_repr)
    status_update: Any = None
    error: Any = None
    notes: Any = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=redacted_repr)
    explicit_nulls: frozenset[str] = attrs.field(default=NO_NULLS, repr=False, eq=False)


@_decode_on_access
@attrs.frozen(weakref_slot=False)
class Task:
    """One task of a space.

    ``task_id`` is the only required key. ``id`` is the JSON key ``_id`` and ``definition`` the
    JSON key ``task``. ``input`` is the free-form input object, as sent.

    ``output`` is a :class:`CallOutput` when the JSON ``output`` is an object and ``None`` when
    it is ``null`` or absent. When it is anything else (a string, a list, a number: the server
    does this for some pending and email tasks) ``output`` is ``None`` and the value is kept
    verbatim in ``extra["output"]``, so that encoding gives back exactly what was sent.

    The package's converter decodes a task when it is first read, not with its page: only
    ``task_id`` is checked and kept at once, and the first read of any other attribute
    decodes the task in place (``isinstance(task, Task)`` holds all along; ``type(task)`` is
    a private subclass until then). It keeps the ``output`` object as sent even then, and
    decodes it when that attribute is first read: most readers of a space never look at call
    details, and they are two thirds of the cost of decoding a call task. Decoded values are
    kept (a later read of ``output`` costs about 0.1 us). A task or an ``output`` that does
    not decode raises :class:`~spacetasks_async.DecodeError` from every read, naming the task
    and the path (``$.created``, ``$.output.transcript[2].content``), where an eager
    converter (``make_converter(lazy=False)``) raises it while decoding the page.

    The server's undocumented fields (``space_id``, ``user``, ``user_org_id``,
    ``collection_ref``, ``attachments``, ``ref_id``) hold any JSON value, as sent.
    """

    task_id: str
    id: str | None = attrs.field(default=None, metadata={JSON_KEY: "_id"})
    thread_id: str | None = None
    run_id: str | None = None
    user_info: UserInfo | None = None
    definition: TaskDefinition | None = attrs.field(default=None, metadata={JSON_KEY: "task"})
    input: dict[str, Any] | None = attrs.field(default=None, repr=redacted_repr)
    output: CallOutput | None = attrs.field(
        default=None, metadata={KEEP_OTHER_JSON: True, DECODED_ON_ACCESS: True}
    )
    assignee: str | None = None
    status: TaskStatus | str | None = None
    execution_type: ExecutionType | str | None = None
    run_mode: RunMode | str | None = None
    created: datetime | None = None
    modified: datetime | None = None
    space_id: Any = None
    user: Any = attrs.field(default=None, repr=redacted_repr)
    user_org_id: Any = None
    collection_ref: Any = None
    attachments: Any = None
    ref_id: Any = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=redacted_repr)
    explicit_nulls: frozenset[str] = attrs.field(default=NO_NULLS, repr=False, eq=False)


@attrs.frozen(weakref_slot=False)
class Space:
    """One space of an organization (an item of the spaces list).

    ``token`` is the space's public token, the one the tasks endpoint takes.
    """

    id: str | int | None = None
    name: str | None = None
    token: str | None = None
    agent_handle: str | None = None
    created_at: datetime | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=redacted_repr)
    explicit_nulls: frozenset[str] = attrs.field(default=NO_NULLS, repr=False, eq=False)


@attrs.frozen(weakref_slot=False)
class TaskPage:
    """One page of a space's tasks, as the walk hands it out.

    ``count`` is the server's total for the space (``None`` when the answer had none); it is
    computed apart from the page and can disagree with it. ``reread`` marks a page that was
    read again to recover tasks that drift moved to an earlier page.
    """

    page: int
    page_size: int
    count: int | None
    tasks: tuple[Task, ...]
    status_code: int = 200
    message: str | None = None
    reread: bool = False
    repeated_ids: frozenset[str] = attrs.field(default=frozenset(), repr=False)
    """Ids of this page's tasks left out because the walk had handed them out already."""

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)
