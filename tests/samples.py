"""JSON samples of the Unpod tasks API, and a seeded generator of varied tasks.

The first samples are copied from the API reference (``unpod-api.md``); the others are what
the reference says the real server sends beyond the documentation. Every sample is a function
returning a fresh object, so a test that mutates one cannot affect another.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson

_DOC_PAGE: dict[str, Any] = {
    "count": 45,
    "status_code": 200,
    "message": "Tasks Fetched Successfully",
    "data": [
        {
            "_id": "697debb84c27faa892bfa0cc",
            "thread_id": "thread_9xkL2mQpR7vNwY4sZ3cJ8hF1",
            "user_info": {"email": "user@example.com", "full_name": "John Doe"},
            "task_id": "T8ff2ccdffe9a11f0878d43cd8a99e069",
            "run_id": "R8ff2ccdefe9a11f0878d43cd8a99e069",
            "task": {"objective": "Call the lead and discuss the project requirements."},
            "input": {
                "name": "John Doe",
                "contact_number": "1234567890",
                "email": "john@example.com",
                "context": "Follow up on proposal",
            },
            "output": {
                "call_id": "CALL_7dAb3kR9mXvQ2pLw",
                "start_time": "2026-02-07T05:57:45Z",
                "end_time": "2026-02-07T06:02:30Z",
                "duration": 285,
                "recording_url": "https://cdn.example.com/recordings/CALL_7dAb3kR9mXvQ2pLw.mp3",
                "transcript": [
                    {"role": "agent", "content": "Hello, am I speaking with John Doe?"},
                    {"role": "user", "content": "Yes, this is John."},
                ],
                "post_call_data": {
                    "summary": "Discussed the project requirements.",
                    "outcome": "interested",
                    "sentiment": "positive",
                },
                "call_type": "outbound",
                "call_status": "completed",
            },
            "assignee": "space-agent-8qmk42nslp91wrh3dz7btxc4",
            "status": "completed",
            "execution_type": "call",
            "run_mode": "prod",
            "created": "2026-02-07T05:57:45Z",
            "modified": "2026-02-07T06:02:30Z",
        }
    ],
}

_DOC_SPACES_PAGE: dict[str, Any] = {
    "count": 1,
    "status_code": 200,
    "message": "Spaces fetched successfully",
    "data": [
        {
            "id": "sp_001",
            "name": "Sales Outreach Q1",
            "token": "8KZAMRAHSXXXXXXMAYNASMJC",
            "agent_handle": "space-agent-8qmk42nslp91wrh3dz7btxc4",
            "created_at": "2026-01-10T08:00:00Z",
        }
    ],
}

SECRET_USER_TOKEN = "utok_DO-NOT-PRINT-4f1c9a7e2b"


def doc_page() -> dict[str, Any]:
    """The documented sample page of tasks."""
    return copy.deepcopy(_DOC_PAGE)


def doc_task() -> dict[str, Any]:
    """The one task of the documented sample page."""
    return copy.deepcopy(_DOC_PAGE["data"][0])


def doc_spaces_page() -> dict[str, Any]:
    """The documented sample spaces list."""
    return copy.deepcopy(_DOC_SPACES_PAGE)


def server_task() -> dict[str, Any]:
    """A task as the real server writes it: no ``_id``, naive times, extra fields, a secret."""
    task = doc_task()
    del task["_id"]
    task["created"] = "2026-02-07T05:57:45"
    task["modified"] = "2026-02-07T06:02:30.123456"
    task["output"]["start_time"] = "2026-02-07T05:57:45"
    task["output"]["end_time"] = "2026-02-07T06:02:30"
    task["status"] = "in_progress"
    task["user_info"]["id"] = 42
    task["user_info"]["user_token"] = SECRET_USER_TOKEN
    task.update(
        {
            "space_id": "sp_001",
            "user": 42,
            "user_org_id": 7,
            "collection_ref": "col_2026_02",
            "attachments": [{"name": "brief.pdf", "url": "https://cdn.example.com/brief.pdf"}],
            "ref_id": None,
        }
    )
    return task


def provider_output() -> dict[str, Any]:
    """A call output in the voice provider's camelCase shape."""
    return {
        "id": "019c2f4e-7a1b-7c3d-9e8f-0a1b2c3d4e5f",
        "assistantId": "asst_5d1e",
        "type": "outboundPhoneCall",
        "startedAt": "2026-02-07T05:57:45.123Z",
        "endedAt": "2026-02-07T06:02:30.456Z",
        "recordingUrl": "https://storage.example.com/rec/019c2f4e.wav",
        "endedReason": "customer-ended-call",
        "cost": 0.1234,
        "costBreakdown": {"transport": 0.01, "stt": 0.02, "llm": 0.05, "tts": 0.0434},
        "costs": [{"type": "transport", "cost": 0.01}],
        "analysis": {"summary": "Customer wants a callback.", "successEvaluation": "true"},
        "artifact": {
            "transcript": "AI: Hello?\nUser: Hi.",
            "messages": [{"role": "bot", "message": "Hello?", "time": 1770443865123}],
        },
        "monitor": {"listenUrl": "wss://example.com/listen", "controlUrl": None},
        "customer": {"number": "+15551234567"},
        "status": "ended",
    }


def provider_task() -> dict[str, Any]:
    """A task whose output is in the provider shape."""
    task = server_task()
    task["output"] = provider_output()
    return task


def with_output(output: Any) -> dict[str, Any]:
    """The server task with ``output`` replaced (or removed, for ``...``)."""
    task = server_task()
    if output is ...:
        del task["output"]
    else:
        task["output"] = output
    return task


def summary_object_task() -> dict[str, Any]:
    """A task whose ``post_call_data.summary`` is the object form, with every extra field."""
    task = server_task()
    task["output"]["post_call_data"] = {
        "summary": {
            "status": "callback",
            "summary": "Asked to be called back.",
            "name": "John Doe",
            "contact": "1234567890",
            "callback_datetime": "tomorrow after five",
        },
        "outcome": "callback",
        "sentiment": "neutral",
        "classification": {"label": "warm", "score": 0.71},
        "success_evaluator": True,
        "structured_data": '{"budget": 5000}',
        "call_evaluation": [1, 2.5, "x"],
        "profile_summary": None,
    }
    return task


def offset_time_task() -> dict[str, Any]:
    """A task with ``+05:30`` offsets and a transcript with time strings and numbers."""
    task = doc_task()
    task["created"] = "2026-02-07T11:27:45+05:30"
    task["modified"] = "2026-02-07T11:32:30.5+05:30"
    task["output"]["transcript"] = [
        {"role": "agent", "content": "Hi", "timestamp": "2026-02-07T05:57:46Z"},
        {"role": "user", "content": "Hello", "timestamp": 1770443867},
        {"role": "agent", "content": "Bye", "timestamp": 12.75},
        {"role": "user", "content": "Bye", "timestamp": "2026-02-07T05:57:49.250"},
    ]
    return task


def unknown_values_task() -> dict[str, Any]:
    """A task with status, execution type and run mode values the client does not know."""
    task = doc_task()
    task["status"] = "escalated_to_human"
    task["execution_type"] = "carrier_pigeon"
    task["run_mode"] = "staging"
    return task


def extra_keys_task() -> dict[str, Any]:
    """A task with an unknown key at every level."""
    task = provider_task()
    task["output"] = doc_task()["output"]
    task["new_top"] = {"nested": [1, 2.0, None, "x"]}
    task["user_info"]["avatar"] = "https://cdn.example.com/a.png"
    task["task"]["priority"] = 3
    task["output"]["disposition"] = "warm"
    task["output"]["transcript"][0]["confidence"] = 0.93
    task["output"]["post_call_data"]["keywords"] = ["budget", "timeline"]
    return task


def explicit_nulls_task() -> dict[str, Any]:
    """A task where many known keys are present with ``null`` (and others are absent)."""
    return {
        "task_id": "Tnulls",
        "_id": None,
        "thread_id": None,
        "user_info": {"email": None, "full_name": "Ann", "id": None},
        "task": {"objective": None},
        "input": None,
        "output": {
            "call_id": "C1",
            "start_time": None,
            "duration": None,
            "transcript": [{"role": "user", "content": None, "timestamp": None}],
            "post_call_data": {"summary": None, "outcome": None, "structured_data": None},
            "customer": None,
            "notes": None,
        },
        "status": None,
        "execution_type": None,
        "created": None,
        "space_id": None,
        "attachments": None,
    }


def minimal_task() -> dict[str, Any]:
    """The smallest valid task: only ``task_id``."""
    return {"task_id": "Tmin"}


def named_samples() -> dict[str, dict[str, Any]]:
    """Every sample task, by name (for parametrized tests)."""
    return {
        "doc_task": doc_task(),
        "server_task": server_task(),
        "provider_task": provider_task(),
        "empty_output": with_output({}),
        "null_output": with_output(None),
        "absent_output": with_output(...),
        "string_output": with_output("Email sent to john@example.com"),
        "list_output": with_output([{"channel": "email"}, "sent"]),
        "number_output": with_output(0),
        "bool_output": with_output(False),
        "summary_object": summary_object_task(),
        "offset_times": offset_time_task(),
        "unknown_values": unknown_values_task(),
        "extra_keys": extra_keys_task(),
        "explicit_nulls": explicit_nulls_task(),
        "minimal": minimal_task(),
    }


# --- generated tasks ----------------------------------------------------------------------------

_WORDS = ("hello", "yes", "no", "maybe", "budget", "project", "call", "back", "demo", "user")


def _time_text(rng: random.Random) -> str:
    base = (
        f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        f"T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    )
    frac = rng.choice(["", ".5", ".123", ".123456"])
    zone = rng.choice(["", "", "Z", "+00:00", "+05:30", "-08:00"])
    return base + frac + zone


def _sentence(rng: random.Random, words: int = 8) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(8 if depth < 2 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.random() < 0.5
    if pick == 2:
        return rng.randint(-(10**12), 10**12)
    if pick == 3:
        return rng.uniform(-1e6, 1e6)
    if pick in (4, 5):
        return _sentence(rng, 3)
    if pick == 6:
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}": _json_value(rng, depth + 1) for i in range(rng.randint(0, 3))}


def _maybe(rng: random.Random, obj: dict[str, Any], key: str, value: Any) -> None:
    # A known key is present (75%), present as null (10%) or absent (15%).
    roll = rng.random()
    if roll < 0.75:
        obj[key] = value
    elif roll < 0.85:
        obj[key] = None


def _extra_keys(rng: random.Random, obj: dict[str, Any]) -> None:
    for i in range(rng.choice([0, 0, 0, 1, 2])):
        obj[f"x_unknown_{i}"] = _json_value(rng)


def _turn(rng: random.Random, index: int) -> dict[str, Any]:
    turn: dict[str, Any] = {}
    _maybe(rng, turn, "role", "agent" if index % 2 == 0 else "user")
    _maybe(rng, turn, "content", _sentence(rng, rng.randint(4, 20)))
    if rng.random() < 0.4:
        stamp = rng.choice([_time_text(rng), rng.randint(0, 2_000_000_000), rng.uniform(0, 600)])
        _maybe(rng, turn, "timestamp", stamp)
    _extra_keys(rng, turn)
    return turn


def _native_output(rng: random.Random, turns: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _maybe(rng, out, "call_id", f"CALL_{rng.getrandbits(48):012x}")
    _maybe(rng, out, "start_time", _time_text(rng))
    _maybe(rng, out, "end_time", _time_text(rng))
    _maybe(rng, out, "duration", rng.choice([rng.randint(0, 3600), rng.uniform(0, 3600)]))
    _maybe(rng, out, "recording_url", "https://cdn.example.com/r.mp3")
    _maybe(rng, out, "transcript", [_turn(rng, i) for i in range(turns)])
    post: dict[str, Any] = {}
    summary: Any = _sentence(rng)
    if rng.random() < 0.4:
        summary = {"status": "done", "summary": _sentence(rng), "name": "Ann"}
        _maybe(rng, summary, "contact", rng.choice(["+15551234567", 15551234567]))
        _maybe(rng, summary, "callback_datetime", _time_text(rng))
        _extra_keys(rng, summary)
    _maybe(rng, post, "summary", summary)
    _maybe(rng, post, "outcome", rng.choice(["interested", "not_interested"]))
    _maybe(rng, post, "sentiment", rng.choice(["positive", "neutral", "negative"]))
    for key in ("classification", "success_evaluator", "structured_data", "call_evaluation"):
        _maybe(rng, post, key, _json_value(rng))
    _extra_keys(rng, post)
    _maybe(rng, out, "post_call_data", post)
    _maybe(rng, out, "call_type", rng.choice(["outbound", "inbound"]))
    _maybe(rng, out, "call_status", rng.choice(["completed", "no-answer", "busy"]))
    for key in ("customer", "contact_number", "assistant_number", "cost", "metadata", "notes"):
        if rng.random() < 0.3:
            out[key] = _json_value(rng)
    _maybe(rng, out, "call_end_reason", "hangup")
    _extra_keys(rng, out)
    return out


def _provider_output(rng: random.Random) -> dict[str, Any]:
    out = provider_output()
    for key in list(out):
        roll = rng.random()
        if roll < 0.1:
            del out[key]
        elif roll < 0.15:
            out[key] = None
    out["startedAt"] = _time_text(rng)  # a provider-only key keeps the shape recognisable
    _extra_keys(rng, out)
    return out


def random_task(rng: random.Random, turns: int | None = None) -> dict[str, Any]:
    """One varied task: keys present, null or absent, both output shapes, odd values."""
    task: dict[str, Any] = {"task_id": f"T{rng.getrandbits(64):016x}"}
    _maybe(rng, task, "_id", f"{rng.getrandbits(96):024x}")
    _maybe(rng, task, "thread_id", f"thread_{rng.getrandbits(64):x}")
    _maybe(rng, task, "run_id", f"R{rng.getrandbits(64):x}")
    user: dict[str, Any] = {}
    _maybe(rng, user, "email", "a@example.com")
    _maybe(rng, user, "full_name", "Ann Example")
    _maybe(rng, user, "id", rng.choice([rng.randint(1, 10**6), "u_1", 1.5, True]))
    _maybe(rng, user, "user_token", SECRET_USER_TOKEN)
    _extra_keys(rng, user)
    _maybe(rng, task, "user_info", user)
    definition: dict[str, Any] = {}
    _maybe(rng, definition, "objective", _sentence(rng))
    _extra_keys(rng, definition)
    _maybe(rng, task, "task", definition)
    _maybe(rng, task, "input", {"name": "Ann", "contact_number": "123", "n": _json_value(rng)})
    n_turns = rng.randint(0, 12) if turns is None else turns
    output: Any = rng.choice(
        [
            _native_output(rng, n_turns),
            _native_output(rng, n_turns),
            _provider_output(rng),
            {},
            "sent",
            [1, "a"],
            3.5,
        ]
    )
    _maybe(rng, task, "output", output)
    _maybe(rng, task, "assignee", "space-agent-x")
    _maybe(rng, task, "status", rng.choice(["pending", "completed", "hold", "brand_new"]))
    _maybe(rng, task, "execution_type", rng.choice(["call", "email", "fax"]))
    _maybe(rng, task, "run_mode", rng.choice(["dev", "prod", "canary"]))
    _maybe(rng, task, "created", _time_text(rng))
    _maybe(rng, task, "modified", _time_text(rng))
    for key in ("space_id", "user", "user_org_id", "collection_ref", "attachments", "ref_id"):
        if rng.random() < 0.5:
            task[key] = _json_value(rng)
    _extra_keys(rng, task)
    return task


def random_tasks(seed: int, count: int) -> list[dict[str, Any]]:
    """``count`` varied tasks from a seeded generator (the same seed gives the same tasks)."""
    rng = random.Random(seed)
    return [random_task(rng) for _ in range(count)]


def realistic_task(rng: random.Random) -> dict[str, Any]:
    """A task like the server's: native output, naive times, 6-12 transcript turns."""
    task = server_task()
    task["task_id"] = f"T{rng.getrandbits(64):016x}"
    task["output"]["transcript"] = [
        {"role": "agent" if i % 2 == 0 else "user", "content": _sentence(rng, rng.randint(6, 25))}
        for i in range(rng.randint(6, 12))
    ]
    return task


def realistic_page_bytes(count: int, seed: int = 0) -> bytes:
    """A page of ``count`` realistic tasks, as JSON bytes (for benchmarks)."""
    rng = random.Random(seed)
    data = [realistic_task(rng) for _ in range(count)]
    page = {"count": count, "status_code": 200, "message": "ok", "data": data}
    return orjson.dumps(page)
