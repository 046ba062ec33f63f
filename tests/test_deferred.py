"""A task of the package's (lazy) converter: kept as sent, decoded in place on first read.

The oracle is the eager converter (``make_converter(lazy=False)``), which decodes every task
with its page: whatever a reader does first to a deferred task (read an attribute, compare,
hash, repr, pickle, copy, evolve, encode), it must see what it would have seen on the eager
task, and a task that does not decode must raise the eager converter's error.
"""

from __future__ import annotations

import copy
import pickle
import random
from collections.abc import Callable
from typing import Any

import attrs
import pytest
import samples  # tests/ is on sys.path (pytest's default import mode)
from hypothesis import given, settings
from hypothesis import strategies as hs

from spacetasks_async import DecodeError, Task, decode_task, decode_tasks, encode_task
from spacetasks_async._convert import make_converter
from spacetasks_async._models import pending_of

_EAGER = make_converter(lazy=False)

# What a reader may do first to a task (one holds dicts: it has no hash); each returns
# something comparable with the eager task's answer.
_FIRST_READS: dict[str, Callable[[Task], Any]] = {
    "attribute": lambda t: (t.status, t.created, t.user_info),
    "output": lambda t: t.output,
    "extra": lambda t: t.extra,
    "explicit_nulls": lambda t: t.explicit_nulls,
    "eq": lambda t: t == decode_task(encode_task(t), converter=_EAGER),
    "repr": repr,
    "pickle": lambda t: pickle.loads(pickle.dumps(t)),
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
    "evolve": lambda t: attrs.evolve(t, status="other"),
    "asdict": lambda t: attrs.asdict(t, recurse=False),
    "class": lambda t: t.__class__,
    "encode": encode_task,
}

# Changes that make a task undecodable somewhere other than its task_id: (key, value, path).
_BREAKS: dict[str, tuple[str, Any, str]] = {
    "created": ("created", 5, "$.created"),
    "status": ("status", [], "$.status"),
    "user_info": ("user_info", "x", "$.user_info"),
    "email": ("user_info", {"email": 7}, "$.user_info.email"),
    "input": ("input", [1], "$.input"),
}


def _task(seed: int) -> dict[str, Any]:
    return samples.random_task(random.Random(seed))


@settings(max_examples=150, deadline=None)
@given(seed=hs.integers(0, 2**32), first=hs.sampled_from(sorted(_FIRST_READS)))
def test_any_first_read_sees_the_eagerly_decoded_task(seed: int, first: str) -> None:
    obj = _task(seed)
    (lazy,) = decode_tasks([obj])
    eager = decode_task(obj, converter=_EAGER)
    assert isinstance(lazy, Task) and lazy.task_id == obj["task_id"]
    assert pending_of(lazy) is not None  # task_id and isinstance read nothing else
    read = _FIRST_READS[first]
    assert read(lazy) == read(eager)
    if first != "encode":  # encoding an unread task writes it back without decoding it
        assert type(lazy) is Task and pending_of(lazy) is None
    # Decoded or not, it is the eager task in every respect, and encodes back exactly.
    assert lazy == eager and repr(lazy) == repr(eager)
    assert type(lazy) is Task
    assert encode_task(lazy) == obj == encode_task(eager)
    assert pickle.loads(pickle.dumps(lazy)) == eager


@settings(max_examples=100, deadline=None)
@given(
    seed=hs.integers(0, 2**32),
    first=hs.sampled_from(sorted(set(_FIRST_READS) - {"encode"})),
    broken=hs.sampled_from(sorted(_BREAKS)),
)
def test_a_task_that_does_not_decode_raises_the_eager_error_from_every_read(
    seed: int, first: str, broken: str
) -> None:
    obj = _task(seed)
    key, value, path = _BREAKS[broken]
    obj[key] = value
    with pytest.raises(DecodeError) as eager_info:
        decode_task(obj, converter=_EAGER)
    lazy = decode_task(obj)
    for _ in range(2):
        with pytest.raises(DecodeError) as info:
            _FIRST_READS[first](lazy)
        assert info.value.json_path == path == eager_info.value.json_path
        assert info.value.task_id == obj["task_id"]
        assert info.value.reason == eager_info.value.reason
        assert info.value.__cause__ is None and info.value.__suppress_context__
    # Still what was sent: its id, and its encoding.
    assert lazy.task_id == obj["task_id"] and pending_of(lazy) is not None
    assert encode_task(lazy) == obj


def test_encoding_an_unread_task_gives_a_copy_of_what_was_sent() -> None:
    obj = samples.doc_task()
    lazy = decode_task(obj)
    encoded = encode_task(lazy)
    assert encoded == obj and encoded is not obj
    encoded["status"] = "changed"  # the caller's copy: the task is not changed by it
    assert lazy.status == obj["status"]


def test_a_deferred_task_is_frozen() -> None:
    lazy = decode_task(samples.doc_task())
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        lazy.status = "x"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        lazy.task_id = "x"  # type: ignore[misc]
    assert pending_of(lazy) is not None or type(lazy) is Task


def test_a_missing_or_wrong_task_id_is_refused_with_the_page() -> None:
    # task_id is the one key a walk needs from every task: checked at once.
    for obj, reason in ((samples.doc_task() | {"task_id": 5}, "got an integer"), ({}, "missing")):
        with pytest.raises(DecodeError, match=reason) as info:
            decode_tasks([samples.doc_task(), obj])
        assert info.value.json_path == "$.task_id" and "item 1 of 2" in info.value.reason


def test_a_user_hook_runs_when_the_task_is_read() -> None:
    theirs = make_converter()
    calls: list[Any] = []

    def count(value: Any, _: Any) -> Any:
        calls.append(value)
        return dict(value, seen=True)

    theirs.register_structure_hook_func(lambda t: t == dict[str, Any], count)
    tasks = decode_tasks([samples.doc_task(), samples.doc_task()], converter=theirs)
    assert calls == []  # nothing read yet
    assert tasks[0].input is not None and tasks[0].input["seen"] is True
    assert len(calls) == 1


def test_threads_reading_unread_tasks_at_once_all_see_the_decoded_tasks() -> None:
    # Two threads may decode one task at once; each must see the whole decoded task. A
    # switch interval of a microsecond makes the threads interleave inside the decoding.
    import sys
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import orjson

    from spacetasks_async._errors import parse_page_envelope

    objs = [_task(seed) for seed in range(40)]
    body = orjson.dumps({"count": len(objs), "data": objs})
    expected = [repr(t) for t in decode_tasks(objs, converter=_EAGER)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(10):
            data = parse_page_envelope(200, body, method="GET", path="/p")["data"]
            tasks = decode_tasks(data)
            barrier = threading.Barrier(4)

            def read_all(_: int, tasks: list[Task] = tasks, barrier: Any = barrier) -> list[str]:
                barrier.wait()
                return [repr(t) for t in tasks]

            with ThreadPoolExecutor(4) as pool:
                seen = list(pool.map(read_all, range(4)))
            assert all(reprs == expected for reprs in seen)
            assert all(type(t) is Task for t in tasks)
    finally:
        sys.setswitchinterval(interval)


def test_a_task_decoded_from_a_dict_does_not_follow_later_changes_of_the_dict() -> None:
    obj = samples.doc_task()
    lazy = decode_task(obj)
    expected = decode_task(dict(obj), converter=_EAGER)
    obj["status"] = "changed afterwards"
    del obj["created"]
    assert lazy == expected and lazy.status == expected.status
