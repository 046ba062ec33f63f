"""A page's envelope read with msgspec (items kept as JSON text) against the orjson reading.

The oracle is :func:`parse_envelope` followed by the eager converter: it parses the whole
body and builds every task. The fast path (:func:`parse_page_envelope`, then the converters
taking each item's JSON text) must give the same tasks, or raise the same error, for any
answer: hostile envelopes, odd spacing and escapes, bad UTF-8, truncated bodies.
"""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
import pytest
import samples  # tests/ is on sys.path (pytest's default import mode)
from hypothesis import given, settings
from hypothesis import strategies as hs

from spacetasks_async import DecodeError, encode_task
from spacetasks_async._convert import decode_tasks, make_converter, task_json
from spacetasks_async._errors import parse_envelope, parse_page_envelope

_EAGER = make_converter(lazy=False)

_ODD = [None, True, False, -1, 0, 3, 2.5, "7", "x", [], {}, [1], {"a": 1}]


def _outcome(parse: Any, status: int, body: bytes, converter: Any) -> tuple[Any, ...]:
    try:
        envelope = parse(status, body, method="GET", path="/p")
        tasks = decode_tasks(envelope["data"], converter)
        encoded = [encode_task(t) for t in tasks]
    except Exception as exc:  # compared by type and text
        return ("error", type(exc).__name__, str(exc))
    return (
        "ok",
        envelope.get("count"),
        envelope.get("status_code", 200),
        envelope.get("message"),
        encoded,
    )


@hs.composite
def _answers(draw: hs.DrawFn) -> tuple[int, bytes]:
    status = draw(hs.sampled_from([200, 200, 200, 206, 404, 500]))
    rng = random.Random(draw(hs.integers(0, 2**32)))
    tasks: list[Any] = [samples.random_task(rng) for _ in range(draw(hs.integers(0, 4)))]
    if draw(hs.booleans()):  # an item that is not a task object, or one without a task_id
        tasks.insert(draw(hs.integers(0, len(tasks))), draw(hs.sampled_from([*_ODD, {"x": 1}])))
    envelope: dict[str, Any] = {}
    for key, usual in (("count", len(tasks)), ("status_code", 200), ("message", "ok")):
        choice = draw(hs.integers(0, 3))
        if choice == 1:
            envelope[key] = usual
        elif choice == 2:
            envelope[key] = draw(hs.sampled_from(_ODD))
    data_choice = draw(hs.integers(0, 5))
    if data_choice:
        envelope["data"] = tasks if data_choice > 1 else draw(hs.sampled_from(_ODD))
    if draw(hs.booleans()):
        envelope["extra_key"] = draw(hs.sampled_from(_ODD))
    keys = list(envelope)
    draw(hs.randoms()).shuffle(keys)
    envelope = {k: envelope[k] for k in keys}
    style = draw(hs.sampled_from(["orjson", "indented", "ascii"]))
    if style == "orjson":
        body = orjson.dumps(envelope)
    else:
        body = json.dumps(envelope, indent=2 if style == "indented" else None).encode()
    damage = draw(hs.sampled_from(["none", "none", "truncate", "bad_utf8", "not_json", "array"]))
    if damage == "truncate" and body:
        body = body[: draw(hs.integers(0, len(body) - 1))]
    elif damage == "bad_utf8":
        at = body.find(b'"', 1)
        body = body[: at + 1] + b"\xff\xfe" + body[at + 1 :] if at > 0 else body + b"\xff"
    elif damage == "not_json":
        body = b"<html>500</html>"
    elif damage == "array":
        body = orjson.dumps([envelope])
    return status, body


@settings(max_examples=300, deadline=None)
@given(answer=_answers())
def test_the_fast_reading_gives_what_the_orjson_reading_gives(answer: tuple[int, bytes]) -> None:
    status, body = answer
    expected = _outcome(parse_envelope, status, body, _EAGER)
    assert _outcome(parse_page_envelope, status, body, _EAGER) == expected
    # The lazy converter hands out the same tasks (by id and by encoding), or the same error
    # when a task has no id; other bad values are raised when read (tests/test_deferred.py).
    lazy = _outcome(parse_page_envelope, status, body, None)
    if expected[0] == "ok":
        assert lazy == expected
    elif lazy[0] == "ok":
        assert expected[1] == "DecodeError" and "$.task_id" not in expected[2]


def test_a_task_kept_as_text_writes_back_byte_for_byte_and_reads_like_the_parsed_one() -> None:
    objs = samples.random_tasks(seed=8, count=5)
    # Spaces, escapes and key order as a server might send them: kept exactly.
    texts = [json.dumps(o, indent=None, separators=(", ", " : ")).encode() for o in objs]
    body = b'{"count": 5, "data": [ ' + b" ,\n ".join(texts) + b" ]}"
    envelope = parse_page_envelope(200, body, method="GET", path="/p")
    tasks = decode_tasks(envelope["data"])
    assert [task_json(t) for t in tasks] == texts
    eager = decode_tasks(objs, _EAGER)
    assert tasks == eager  # read: parsed and decoded in place
    assert [task_json(t) for t in tasks] == [None] * 5  # read tasks have no text any more
    assert [encode_task(t) for t in tasks] == objs


def test_a_number_out_of_range_fails_its_task_not_the_page() -> None:
    # orjson refuses 1e999 (the whole page, as invalid JSON); msgspec reads the page and
    # keeps the task's text: the task raises DecodeError, naming itself, when it is read
    # (an eager converter: when its page is decoded), and encodes back to nothing it
    # cannot parse: DecodeError again. The text itself is valid JSON: written as sent.
    body = b'{"count":2,"data":[{"task_id":"T1","cost":1e999},{"task_id":"T2"}]}'
    envelope = parse_page_envelope(200, body, method="GET", path="/p")
    first, second = decode_tasks(envelope["data"])
    assert second.status is None and first.task_id == "T1"
    assert task_json(first) == b'{"task_id":"T1","cost":1e999}'
    for read in (lambda: first.status, lambda: encode_task(first)):
        with pytest.raises(DecodeError) as info:
            read()
        assert info.value.task_id == "T1" and "does not parse" in info.value.reason
    with pytest.raises(DecodeError, match="item 0 of 2"):
        decode_tasks(parse_page_envelope(200, body, method="GET", path="/p")["data"], _EAGER)


def test_an_unread_task_does_not_keep_its_page_body() -> None:
    objs = samples.random_tasks(seed=9, count=3)
    body = orjson.dumps({"count": 3, "data": objs})
    (kept, *_) = decode_tasks(parse_page_envelope(200, body, method="GET", path="/p")["data"])
    text = task_json(kept)
    assert text == orjson.dumps(objs[0])  # its own text only, not a view of the page


_TASK = b'{"task_id":"T1","status":"pending"}'


@pytest.mark.parametrize(
    "body",
    [
        b'{"count":1,"data":[' + _TASK + b"]}",
        b'  {"data":[' + _TASK + b'],"count":1}  ',
        b'{"count":-1,"data":[]}',
        b'{"count":true,"data":[]}',
        b'{"count":1.0,"data":[]}',
        b'{"count":"1","data":[]}',
        b'{"count":null,"data":[' + _TASK + b"]}",
        b'{"status_code":206,"message":"Invalid space token","data":[]}',
        b'{"status_code":"200","data":[]}',
        b'{"status_code":200.0,"count":0,"data":[]}',
        b'{"status_code":500,"message":"fetch failed","data":[]}',
        b'{"data":{"errors":["x"]}}',
        b'{"data":null}',
        b'{"count":1}',
        b'{"data":[' + _TASK + b'],"data":[]}',
        b'{"data":[{"task_id":"\\ud800"}]}',
        b'{"data":["\xff"]}',
        b'{"data":[' + _TASK + b",]}",
        b"[]",
        b"",
    ],
)
def test_hostile_envelopes_read_alike(body: bytes) -> None:
    for converter in (_EAGER, None):
        expected = _outcome(parse_envelope, 200, body, converter)
        assert _outcome(parse_page_envelope, 200, body, converter) == expected


def test_only_a_converter_that_keeps_tasks_unread_is_given_text() -> None:
    # The client reads pages for it with msgspec; an eager converter gets them parsed.
    from spacetasks_async import converter
    from spacetasks_async._convert import defers_tasks

    assert defers_tasks(converter) and defers_tasks(make_converter())
    assert not defers_tasks(_EAGER)


def test_tasks_as_sent_gives_the_text_of_unread_tasks_and_the_object_of_others() -> None:
    from spacetasks_async._convert import tasks_as_sent

    objs = samples.random_tasks(seed=10, count=4)
    body = orjson.dumps({"count": 4, "data": objs})
    tasks = decode_tasks(parse_page_envelope(200, body, method="GET", path="/p")["data"])
    tasks[1].status  # noqa: B018 - read: decoded, its text dropped
    from_dicts = decode_tasks(objs)  # unread, but parsed already: their objects
    eager = decode_tasks(objs, _EAGER)
    sent = tasks_as_sent([*tasks, from_dicts[0], eager[0]])
    assert sent[0] == orjson.dumps(objs[0]) and sent[2] == orjson.dumps(objs[2])
    assert sent[1] == objs[1] and sent[4] == objs[0] and sent[5] == objs[0]
    assert [orjson.loads(s) if isinstance(s, bytes) else s for s in sent[:4]] == objs
