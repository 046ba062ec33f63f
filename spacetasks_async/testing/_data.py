# The generated texts use non-ASCII punctuation on purpose (clients must round-trip it).
# ruff: noqa: RUF001
"""Seeded, lazily generated data of the local Unpod server.

A task is a pure function of (space seed, index): index 0 is the oldest task of a space and
``created`` grows strictly with the index, so "newest first" is simply "highest index first".
Each space pre-renders a few dozen realistic task *templates* as JSON bytes in which the
per-task values (ids, timestamps) are ``%(name)s`` placeholders; rendering task ``i`` is one
C-level ``bytes % dict`` substitution. Nothing per task is stored, so a space of a million
tasks costs the same memory as a space of ten.

Drift is modelled without materialising tasks either: creating tasks just raises the upper
index bound (new indices are newer than every existing one), and deleting keeps a sorted list
of deleted indices; positions in server order are mapped to indices with ``bisect``.
"""

from __future__ import annotations

import hashlib
import random
import string
import time
from bisect import bisect_left, insort
from collections.abc import Iterable
from typing import Any, Final

import attrs
import orjson

__all__ = ["SpaceData", "SpaceInfo", "derive_seed", "generate_spaces"]

_M64: Final = (1 << 64) - 1
_C1: Final = 0xBF58476D1CE4E5B9
_C2: Final = 0x94D049BB133111EB
_C1_INV: Final = pow(_C1, -1, 1 << 64)
_C2_INV: Final = pow(_C2, -1, 1 << 64)
_RUN_XOR: Final = 0x5DEECE66D2B7E151

# Number of pre-rendered templates per space: enough that every kind of task shows up several
# times with different people and texts, few enough that building a space stays cheap.
TEMPLATES_PER_SPACE: Final = 48

# Naive UTC "now" of the generated world: the newest generated task of every space is a little
# before this instant (the date of the documentation's sample).
_ANCHOR: Final = 1770444000  # 2026-02-07T06:00:00 UTC


def _mix(x: int) -> int:
    """A bijection of 64-bit integers that looks random (splitmix64's finaliser)."""
    x = (x * _C1) & _M64
    x ^= x >> 31
    x = (x * _C2) & _M64
    x ^= x >> 32
    return x


def _unmix(x: int) -> int:
    """The inverse of :func:`_mix`, so a task id can be mapped back to its index."""
    x ^= x >> 32
    x = (x * _C2_INV) & _M64
    x ^= (x >> 31) ^ (x >> 62)
    x = (x * _C1_INV) & _M64
    return x


def derive_seed(*parts: object) -> int:
    """A stable 64-bit seed from arbitrary parts (Python's ``hash`` is salted per process)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


# Timestamps are formatted from lookup tables (``time.strftime`` per field would cost more
# than the rest of a task's rendering): "YYYY-MM-DDTHH:" per hour, cached as hours are met
# (a space spans a few thousand hours), and "MM:SS" for the 3600 seconds of an hour.
_MIN_SEC: Final = [b"%02d:%02d" % divmod(k, 60) for k in range(3600)]
_HOUR_PREFIX: dict[int, bytes] = {}


def _hour_prefix(hour: int) -> bytes:
    prefix = time.strftime("%Y-%m-%dT%H:", time.gmtime(hour * 3600)).encode()
    _HOUR_PREFIX[hour] = prefix
    return prefix


def _ts(epoch: int) -> bytes:
    """Naive UTC ISO-8601 ``YYYY-MM-DDTHH:MM:SS`` of an epoch second, as the server writes."""
    hour, rest = divmod(epoch, 3600)
    prefix = _HOUR_PREFIX.get(hour)
    if prefix is None:
        prefix = _hour_prefix(hour)
    return prefix + _MIN_SEC[rest]


def ts_text(epoch: int) -> str:
    """:func:`_ts` as text."""
    return _ts(epoch).decode()


@attrs.frozen
class SpaceInfo:
    """What the spaces endpoints tell about one space."""

    id: str
    name: str
    token: str
    agent_handle: str
    created_at: str
    seed: int
    size: int

    def as_json(self) -> dict[str, Any]:
        """The space as the spaces endpoints render it."""
        return {
            "id": self.id,
            "name": self.name,
            "token": self.token,
            "agent_handle": self.agent_handle,
            "created_at": self.created_at,
        }


_SPACE_NAMES: Final = (
    "Sales Outreach Q1",
    "Customer Support – EMEA",
    "Recrutement Lyon 🇫🇷",
    "营销活动 2026",
    "Renewals & Upsell",
    "Onboarding calls",
    "Feedback surveys 📋",
    "Clínica São Paulo",
    "Appointment reminders",
    "Lead qualification (inbound)",
)

_TOKEN_ALPHABET: Final = string.ascii_uppercase + string.digits


def generate_spaces(seed: int, sizes: Iterable[int], extra: int = 0) -> list[SpaceInfo]:
    """Space descriptions for ``sizes`` (tasks per space) plus ``extra`` zero-size spaces.

    Tokens (24 uppercase alphanumerics), ids, names and handles all derive from ``seed``.
    The result is in creation order (oldest first).
    """
    rng = random.Random(derive_seed("spaces", seed))
    all_sizes = [*sizes, *([0] * extra)]
    tokens: set[str] = set()
    result: list[SpaceInfo] = []
    created = _ANCHOR - 400 * 86400 + rng.randrange(86400)
    for number, size in enumerate(all_sizes, start=1):
        token = "".join(rng.choices(_TOKEN_ALPHABET, k=24))
        while token in tokens:
            token = "".join(rng.choices(_TOKEN_ALPHABET, k=24))
        tokens.add(token)
        handle = "".join(rng.choices(string.ascii_lowercase + string.digits, k=24))
        name = _SPACE_NAMES[(number - 1) % len(_SPACE_NAMES)]
        if number > len(_SPACE_NAMES):
            name = f"{name} #{number}"
        created += rng.randrange(3600, 5 * 86400)
        result.append(
            SpaceInfo(
                id=f"sp_{number:03d}",
                name=name,
                token=token,
                agent_handle=f"space-agent-{handle}",
                created_at=ts_text(created),
                seed=derive_seed("space", seed, number),
                size=size,
            )
        )
    return result


# --- templates ---------------------------------------------------------------------------

# (full name, email, phone) of people the agents talk to; the unicode ones are deliberate.
_PEOPLE: Final = (
    ("John Doe", "john.doe@example.com", "+14155550123"),
    ("José Álvarez", "jose.alvarez@example.es", "+34612345678"),
    ("Zoë Müller", "zoe.mueller@example.de", "+4915112345678"),
    ("王芳", "wang.fang@example.cn", "+8613800138000"),
    ("Аня Смирнова", "anya.smirnova@example.ru", "+79161234567"),
    ("Priya Sharma", "priya.sharma@example.in", "+919812345678"),
    ("Søren Ødegård", "soren@example.dk", "+4520123456"),
    ("Łukasz Żółć", "lukasz@example.pl", "+48601234567"),
    ("山田 太郎", "taro.yamada@example.jp", "+819012345678"),
    ("Fatima Zahra 🌟", "fatima.zahra@example.ma", "+212612345678"),
    ('O\'Brien "Bob" Smith', "bob.obrien@example.ie", "+353871234567"),
    ("Nguyễn Văn An", "an.nguyen@example.vn", "+84912345678"),
)

_OBJECTIVES: Final = (
    "Call the lead and discuss the project requirements.",
    "Confirm tomorrow's appointment and offer to reschedule if needed.",
    "Follow up on the proposal sent last week 📄",
    "Qualify the inbound lead: budget, authority, need, timeline.",
    "Collect feedback about the onboarding (NPS 0–10).",
    "Remind the customer that the invoice #4711 is overdue.",
    "预约下周的产品演示。",
)

_CONTEXTS: Final = (
    "Follow up on proposal",
    "Met at the trade fair in Köln",
    "Prefers calls after 17:00 ⏰",
    "VIP customer — be polite 🙏",
    "客户要求用中文沟通",
    "",
    "Line 1\nLine 2\ttabbed \\ backslash",
)

_SUMMARIES: Final = (
    "Discussed the project requirements; the lead wants a quote by Friday.",
    "Customer confirmed the appointment. 👍",
    "Voicemail reached, left a short message.",
    "客户对产品很感兴趣，要求发送报价。",
    "Le client rappellera la semaine prochaine.",
)

_AGENT_LINES: Final = (
    "Hello, am I speaking with {name}?",
    "Hi {name}, this is Ava calling from Acme. Do you have a minute?",
    "Bonjour {name}, je vous appelle au sujet de votre demande.",
    "您好，{name}，我是Acme的客服。",
)

_USER_LINES: Final = (
    "Yes, this is {name}.",
    "Sure, go ahead 😀",
    "Can you call me back later?",
    "是的，请讲。",
    "Not interested, thanks.",
)

_STATUSES_DONE: Final = ("completed", "completed", "completed", "failed", "partially_completed")
_STATUSES_OPEN: Final = ("pending", "in_progress", "hold")


def _ph(name: str) -> str:
    # A marker that orjson leaves alone and that no generated text can contain.
    return f"@@{name}@@"


@attrs.frozen
class _Template:
    fmt: bytes
    modified_offset: int
    start_offset: int
    duration: int
    needs_uuid: bool
    needs_call_times: bool


def _users(rng: random.Random, space_number_seed: int) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = []
    for k, (full_name, email) in enumerate(
        (
            ("Maria García", "maria.garcia@acme.example"),
            ("Chen Wei 陈伟", "chen.wei@acme.example"),
            ("Ops Bot 🤖", "ops-bot@acme.example"),
        )
    ):
        users.append(
            {
                "email": email,
                "full_name": full_name,
                "id": 1000 + (space_number_seed % 900) * 3 + k,
                # A secret of that user; the client must never print it.
                "user_token": "".join(rng.choices("0123456789abcdef", k=40)),
            }
        )
    return users


def _transcript(rng: random.Random, name: str, with_timestamps: bool) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for turn in range(rng.randrange(2, 7)):
        if turn % 2 == 0:
            entry: dict[str, Any] = {
                "role": "agent",
                "content": rng.choice(_AGENT_LINES).format(name=name),
            }
        else:
            entry = {"role": "user", "content": rng.choice(_USER_LINES).format(name=name)}
        if with_timestamps:
            entry["timestamp"] = round(turn * 4.2 + rng.random(), 2)
        lines.append(entry)
    return lines


def _post_call_data(rng: random.Random, name: str, phone: str, object_summary: bool) -> Any:
    summary: Any = rng.choice(_SUMMARIES)
    if object_summary:
        # The server may send the summary as an object instead of the documented string.
        summary = {
            "status": rng.choice(("interested", "callback", "not_interested")),
            "summary": summary,
            "name": name,
            "contact": phone,
            "callback_datetime": rng.choice((None, "2026-02-10T15:30:00")),
        }
    return {
        "summary": summary,
        "outcome": rng.choice(("interested", "not_interested", "callback", "voicemail")),
        "sentiment": rng.choice(("positive", "neutral", "negative")),
        "classification": rng.choice(("lead", "support", "spam")),
        "success_evaluator": rng.choice((True, False, "8/10")),
        # Documented as a JSON *string*.
        "structured_data": orjson.dumps(
            {"budget": rng.randrange(1000, 50000), "name": name}
        ).decode(),
        "call_evaluation": {"score": rng.randrange(1, 11), "notes": "auto"},
        "profile_summary": f"{name} — decision maker",
    }


def _native_output(
    rng: random.Random, name: str, phone: str, status: str, duration: int
) -> dict[str, Any]:
    # Some call providers write zoned timestamps inside the output; the top level is naive.
    zone = rng.choice(("", "Z"))
    failed = status == "failed"
    return {
        "call_id": "CALL_" + _ph("Y"),
        "start_time": _ph("S") + zone,
        "end_time": _ph("E") + zone,
        "duration": 0 if failed else duration,
        "recording_url": None
        if failed
        else "https://cdn.example.com/recordings/CALL_" + _ph("Y") + ".mp3",
        "transcript": [] if failed else _transcript(rng, name, rng.random() < 0.4),
        "post_call_data": {} if failed else _post_call_data(rng, name, phone, rng.random() < 0.5),
        "call_type": rng.choice(("outbound", "outbound", "inbound")),
        "call_status": "failed" if failed else "completed",
        "customer": name,
        "contact_number": phone,
        "call_end_reason": "no-answer" if failed else "customer-ended-call",
        "assistant_number": "+14155550100",
        "call_summary": "" if failed else rng.choice(_SUMMARIES),
        "cost": round(rng.uniform(0.01, 0.9), 4),
        "metadata": {"campaign": "q1", "attempt": rng.randrange(1, 4)},
        "status_update": None,
        "error": "Number unreachable" if failed else None,
        "notes": "",
    }


def _provider_output(
    rng: random.Random, name: str, phone: str, status: str, duration: int
) -> dict[str, Any]:
    transcript = _transcript(rng, name, False)
    return {
        "id": _ph("UUID"),
        "assistantId": "4c1b2f9e-7d3a-4e8b-9f21-" + "".join(rng.choices("0123456789abcdef", k=12)),
        "type": "outboundPhoneCall",
        "startedAt": _ph("S") + ".000Z",
        "endedAt": _ph("E") + ".000Z",
        "recordingUrl": "https://storage.vapi.example/" + _ph("UUID") + "-mono.wav",
        "costBreakdown": {
            "transport": 0.0,
            "stt": round(rng.uniform(0, 0.05), 4),
            "llm": round(rng.uniform(0, 0.1), 4),
            "tts": round(rng.uniform(0, 0.05), 4),
            "vapi": round(duration / 60 * 0.05, 4),
            "total": round(rng.uniform(0.05, 0.5), 4),
        },
        "analysis": {
            "summary": rng.choice(_SUMMARIES),
            "successEvaluation": rng.choice(("true", "false")),
        },
        "artifact": {
            "transcript": "\n".join(
                ("AI: " if t["role"] == "agent" else "User: ") + t["content"] for t in transcript
            ),
            "messages": [
                {"role": "bot" if t["role"] == "agent" else "user", "message": t["content"]}
                for t in transcript
            ],
        },
        "costs": [{"type": "model", "cost": round(rng.uniform(0, 0.1), 4)}],
        "monitor": {"listenUrl": "wss://phone-call-websocket.example/" + _ph("UUID") + "/listen"},
        "customer": {"number": phone, "name": name},
        "endedReason": "customer-did-not-answer" if status == "failed" else "customer-ended-call",
    }


# Relative frequency of each kind of task.
_KINDS: Final = (
    "native",
    "native",
    "native",
    "native_summary_object",
    "provider",
    "provider",
    "pending_empty",
    "pending_null",
    "open_other",
    "email",
    "native_failed",
    "provider_failed",
)


def _make_template(
    rng: random.Random,
    kind: str,
    info: SpaceInfo,
    users: list[dict[str, Any]],
    org_id: int,
) -> _Template:
    name, email, phone = rng.choice(_PEOPLE)
    duration = rng.randrange(20, 900)
    status: str
    output: Any
    execution_type = "call"
    if kind in ("native", "native_summary_object"):
        status = rng.choice((*_STATUSES_DONE[:3], "partially_completed"))
        output = _native_output(rng, name, phone, status, duration)
        if kind == "native_summary_object":
            output["post_call_data"] = _post_call_data(rng, name, phone, True)
    elif kind == "native_failed":
        status = "failed"
        output = _native_output(rng, name, phone, status, duration)
    elif kind == "provider":
        status = "completed"
        output = _provider_output(rng, name, phone, status, duration)
    elif kind == "provider_failed":
        status = "failed"
        output = _provider_output(rng, name, phone, status, duration)
    elif kind == "pending_empty":
        status, output = "pending", {}
    elif kind == "pending_null":
        status, output = "pending", None
    elif kind == "open_other":
        status = rng.choice(_STATUSES_OPEN)
        output = rng.choice(({}, None, {"queued_at": _ph("C")}, "scheduled"))
    else:  # email
        execution_type = "email"
        status = rng.choice(("completed", "pending", "failed"))
        output = rng.choice(
            (
                {},
                None,
                {
                    "message_id": "<" + _ph("Y") + "@mail.example.com>",
                    "subject": f"Re: your request, {name}",
                    "delivered": status == "completed",
                },
            )
        )
    task: dict[str, Any] = {
        "thread_id": "thread_" + _ph("TH"),
        "user_info": rng.choice(users),
        "task_id": "T" + _ph("X"),
        "run_id": "R" + _ph("Y"),
        "task": {"objective": rng.choice(_OBJECTIVES)},
        "input": {
            "name": name,
            "contact_number": phone,
            "email": email,
            "context": rng.choice(_CONTEXTS),
        },
        "output": output,
        "assignee": info.agent_handle,
        "status": status,
        "execution_type": execution_type,
        "run_mode": rng.choice(("prod", "prod", "prod", "dev")),
        "created": _ph("C"),
        "modified": _ph("M"),
        "space_id": info.id,
        "user": rng.choice(users)["id"],
        "user_org_id": org_id,
        "collection_ref": f"collection_data_{info.id}",
        "attachments": rng.choice(
            ([], [], [{"name": "brochure.pdf", "url": "https://cdn.example.com/b.pdf"}])
        ),
        "ref_id": rng.choice((None, f"lead_{rng.randrange(10**6):06d}")),
    }
    raw = orjson.dumps(task)
    # Escape literal '%' before turning the markers into %-format fields.
    fmt = raw.replace(b"%", b"%%")
    for field in ("X", "Y", "TH", "C", "M", "S", "E", "UUID"):
        fmt = fmt.replace(_ph(field).encode(), b"%(" + field.encode() + b")s")
    start_offset = rng.randrange(1, 120)
    finished = status not in ("pending", "in_progress", "hold")
    modified_offset = start_offset + duration + rng.randrange(1, 30) if finished else 0
    return _Template(
        fmt=fmt,
        modified_offset=modified_offset,
        start_offset=start_offset,
        duration=duration,
        needs_uuid=b"%(UUID)s" in fmt,
        needs_call_times=b"%(S)s" in fmt,
    )


class SpaceData:
    """The tasks of one space: lazily rendered, with creations and deletions applied.

    Indices ``0 .. total-1`` are the tasks ever present (oldest first); ``deleted`` is the
    sorted list of the deleted ones. Server order (position 0) is the newest live task.
    """

    __slots__ = (
        "_base",
        "_deleted",
        "_hex",
        "_salt",
        "_step",
        "_templates",
        "_thread_salt",
        "info",
        "total",
    )

    def __init__(self, info: SpaceInfo, org_id: int) -> None:
        self.info = info
        self.total = info.size
        self._deleted: list[int] = []
        rng = random.Random(info.seed)
        self._salt = rng.getrandbits(64)
        self._thread_salt = rng.getrandbits(64)
        # The first half of every id is the space's own; the second is a bijection of the
        # index, so ids are unique and can be mapped back to an index.
        self._hex = b"%016x" % rng.getrandbits(64)
        users = _users(rng, info.seed)
        self._templates = [
            _make_template(rng, _KINDS[k % len(_KINDS)], info, users, org_id)
            for k in range(TEMPLATES_PER_SPACE)
        ]
        # Spread the generated tasks over about 90 days before the anchor.
        self._step = max(2, min(3600, 90 * 86400 // max(info.size, 1)))
        self._base = _ANCHOR - rng.randrange(3600) - info.size * self._step

    # --- rendering ---------------------------------------------------------------------

    def render(self, index: int) -> bytes:
        """The JSON bytes of the task at ``index`` (whether or not it is deleted)."""
        x = _mix(index ^ self._salt)
        template = self._templates[x % TEMPLATES_PER_SPACE]
        created = self._base + index * self._step + (x >> 40) % self._step
        y = b"%016x" % (x ^ _RUN_XOR)
        values = {
            b"X": self._hex + b"%016x" % x,
            b"Y": self._hex + y,
            b"TH": b"%016x" % _mix((index // 3) ^ self._thread_salt),
            b"C": _ts(created),
            b"M": _ts(created + template.modified_offset),
        }
        if template.needs_call_times:
            start = created + template.start_offset
            values[b"S"] = _ts(start)
            values[b"E"] = _ts(start + template.duration)
        if template.needs_uuid:
            values[b"UUID"] = b"%s-%s-4%s-a%s-%s" % (
                y[:8],
                y[8:12],
                y[13:16],
                y[1:4],
                self._hex[:12],
            )
        return template.fmt % values

    def task_id(self, index: int) -> str:
        """The ``task_id`` of the task at ``index``, without rendering it."""
        return "T" + (self._hex + b"%016x" % _mix(index ^ self._salt)).decode()

    def index_of(self, task_id: str) -> int | None:
        """The index of a live task of this space with id ``task_id``, or None."""
        prefix = "T" + self._hex.decode()
        if len(task_id) != 33 or not task_id.startswith(prefix):
            return None
        try:
            x = int(task_id[17:], 16)
        except ValueError:
            return None
        index = _unmix(x) ^ self._salt
        if index >= self.total or self._is_deleted(index):
            return None
        return index

    # --- positions ---------------------------------------------------------------------

    @property
    def live_count(self) -> int:
        """Number of tasks currently in the space (the ``count`` of an answer)."""
        return self.total - len(self._deleted)

    @property
    def deleted_count(self) -> int:
        """Number of deleted indices kept (the only per-task memory of a space)."""
        return len(self._deleted)

    def _is_deleted(self, index: int) -> bool:
        k = bisect_left(self._deleted, index)
        return k < len(self._deleted) and self._deleted[k] == index

    def _kth_live(self, rank: int) -> int:
        """Index of the live task of ascending ``rank`` (0 = oldest live task)."""
        deleted = self._deleted
        # The answer is rank + j, where j counts deleted indices below it; deleted[m] - m is
        # non-decreasing, so j is the first m with deleted[m] - m > rank.
        lo, hi = 0, len(deleted)
        while lo < hi:
            mid = (lo + hi) // 2
            if deleted[mid] - mid <= rank:
                lo = mid + 1
            else:
                hi = mid
        return rank + lo

    def indices(self, start: int, limit: int | None) -> list[int]:
        """Indices at server positions ``start .. start+limit-1`` (newest first)."""
        live = self.live_count
        if start >= live or start < 0:
            return []
        n = live - start if limit is None else min(limit, live - start)
        x = self._kth_live(live - 1 - start)
        deleted = self._deleted
        j = bisect_left(deleted, x) - 1
        out: list[int] = []
        append = out.append
        while True:
            append(x)
            if len(out) >= n:
                return out
            x -= 1
            while j >= 0 and deleted[j] == x:
                j -= 1
                x -= 1

    def page_bytes(self, start: int, limit: int | None) -> bytes:
        """The tasks at the given server positions as a JSON array's inner bytes."""
        render = self.render
        return b",".join([render(i) for i in self.indices(start, limit)])

    # --- drift -------------------------------------------------------------------------

    def create(self, n: int) -> list[int]:
        """Add ``n`` tasks newer than every existing one; their indices, newest first."""
        first = self.total
        self.total += n
        return list(range(self.total - 1, first - 1, -1))

    def delete_index(self, index: int) -> bool:
        """Delete the task at ``index``; False if it is not a live task."""
        if index < 0 or index >= self.total or self._is_deleted(index):
            return False
        insort(self._deleted, index)
        return True
