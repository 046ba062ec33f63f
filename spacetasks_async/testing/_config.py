"""Configuration of the local Unpod server: the server itself, faults and drift."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import attrs

__all__ = [
    "DriftPlan",
    "Endpoint",
    "FaultKind",
    "FaultPlan",
    "ServerConfig",
]


class Endpoint(enum.StrEnum):
    """The endpoints the server answers."""

    TASKS = "tasks"
    """``GET /api/v2/platform/spaces/{token}/tasks/``"""
    SPACES = "spaces"
    """``GET /api/v2/platform/spaces/``"""
    SPACE = "space"
    """``GET /api/v2/platform/spaces/{token}/``"""


class FaultKind(enum.StrEnum):
    """A way for one answer to go wrong, as seen on a real deployment behind a proxy."""

    HTTP_500_JSON = "http_500_json"
    """500 with a JSON envelope."""
    HTTP_500_HTML = "http_500_html"
    """500 with an HTML error page (backend unreachable)."""
    HTTP_502 = "http_502"
    """502 Bad Gateway, an HTML page from the proxy."""
    HTTP_503 = "http_503"
    """503 Service Unavailable, an HTML page from the proxy."""
    HTTP_504 = "http_504"
    """504 Gateway Timeout, an HTML page from the proxy."""
    HTTP_429 = "http_429"
    """429 with ``Retry-After: <seconds>`` (``ServerConfig.retry_after``)."""
    HTTP_429_DATE = "http_429_date"
    """429 with ``Retry-After`` as an HTTP date ``retry_after`` seconds from now."""
    HTTP_429_BARE = "http_429_bare"
    """429 without ``Retry-After``."""
    DROP_MID_BODY = "drop_mid_body"
    """Headers and half of the real body, then the connection is closed."""
    TRUNCATED_JSON = "truncated_json"
    """A 200 whose body is cut short (with a Content-Length matching what is sent)."""
    SLOW = "slow"
    """The real answer, after ``ServerConfig.slow_seconds`` (cancelled if the client leaves)."""
    BACKEND_206 = "backend_206"
    """The 206 "Tasks Fetch Failed" business-logic error."""


def _freeze_rates(rates: Mapping[FaultKind | str, float]) -> Mapping[FaultKind, float]:
    frozen = {FaultKind(kind): float(rate) for kind, rate in rates.items()}
    for kind, rate in frozen.items():
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate of {kind} must be within [0, 1], got {rate}")
    if sum(frozen.values()) > 1.0 + 1e-9:
        raise ValueError("fault rates must add up to at most 1")
    return MappingProxyType(frozen)


def _opt_tokens(tokens: Iterable[str] | None) -> frozenset[str] | None:
    return None if tokens is None else frozenset(tokens)


def _endpoints(endpoints: Iterable[Endpoint | str]) -> frozenset[Endpoint]:
    return frozenset(Endpoint(e) for e in endpoints)


@attrs.frozen
class FaultPlan:
    """Random faults at a given rate per kind, deterministic for a given seed.

    Whether a request fails is decided from (seed, endpoint, space token, page, page_size,
    attempt number of that same request), not from a shared random stream, so the same set
    of requests sees the same faults however concurrent requests interleave.
    """

    rates: Mapping[FaultKind, float] = attrs.field(factory=dict, converter=_freeze_rates)
    """Probability of each kind per request; the sum must be at most 1."""
    seed: int = 0
    max_faults_per_page: int | None = None
    """After this many faults for one (endpoint, token, page, page_size), no more for it:
    lets a retrying client always get through."""
    tokens: frozenset[str] | None = attrs.field(default=None, converter=_opt_tokens)
    """Only these space tokens get faults (None: all)."""
    endpoints: frozenset[Endpoint] = attrs.field(
        default=frozenset({Endpoint.TASKS}), converter=_endpoints
    )
    """Endpoints that get faults (default: the tasks endpoint only)."""
    max_faults: int | None = None
    """Total faults this plan may inject (None: unlimited)."""

    @classmethod
    def uniform(
        cls,
        rate: float,
        kinds: Iterable[FaultKind] | None = None,
        *,
        seed: int = 0,
        max_faults_per_page: int | None = None,
    ) -> FaultPlan:
        """A plan failing ``rate`` of the requests, spread evenly over ``kinds`` (default:
        every kind but SLOW)."""
        chosen = list(kinds) if kinds is not None else [k for k in FaultKind if k != "slow"]
        return cls(
            rates={k: rate / len(chosen) for k in chosen},
            seed=seed,
            max_faults_per_page=max_faults_per_page,
        )

    def draw(
        self, endpoint: Endpoint, token: str, page: int, page_size: int, attempt: int
    ) -> FaultKind | None:
        """The fault (or None) of one request; a pure function of its arguments."""
        if self.tokens is not None and token not in self.tokens:
            return None
        if endpoint not in self.endpoints:
            return None
        key = f"{self.seed}|{endpoint}|{token}|{page}|{page_size}|{attempt}".encode()
        u = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64
        acc = 0.0
        for kind in FaultKind:  # fixed order: deterministic
            acc += self.rates.get(kind, 0.0)
            if u < acc:
                return kind
        return None


@attrs.frozen
class DriftPlan:
    """Tasks created and deleted while a client pages, applied on tasks requests.

    Each tasks request of a space (once the space has seen ``start_after`` tasks requests)
    first creates ``create_per_request`` new tasks (the newest) then deletes
    ``delete_per_request`` tasks at random positions. Positions come from one random stream
    seeded with ``seed``, consumed in request order.
    """

    create_per_request: int = 0
    delete_per_request: int = 0
    seed: int = 0
    start_after: int = 0
    """Tasks requests of a space served without drift first (1: only after the first one)."""
    between_count_and_data: bool = False
    """Apply the drift after computing ``count`` and before slicing the page, so ``count``
    disagrees with ``data`` within one answer (the server runs two separate queries)."""
    tokens: frozenset[str] | None = attrs.field(default=None, converter=_opt_tokens)
    """Only these space tokens drift (None: all)."""


def _spaces(value: int | Iterable[int]) -> int | tuple[int, ...]:
    if isinstance(value, int):
        if value < 0:
            raise ValueError("the number of spaces must be >= 0")
        return value
    sizes = tuple(int(v) for v in value)
    if any(v < 0 for v in sizes):
        raise ValueError("space sizes must be >= 0")
    return sizes


@attrs.frozen
class ServerConfig:
    """Everything the local Unpod server is built from; every field has a usable default."""

    seed: int = 1
    """Seed of all generated data and of the latency jitter."""
    spaces: int | tuple[int, ...] = attrs.field(default=5, converter=_spaces)
    """A number of spaces (of ``tasks_per_space`` tasks each) or the task count per space."""
    tasks_per_space: int = 100
    api_key: str | None = attrs.field(default=None, repr=False)
    """The one accepted key; None derives one from the seed. Never shown in a repr."""
    org_handle: str = "acme"
    port: int = 0
    """Port on 127.0.0.1; 0 picks a free one."""
    latency: float = 0.0
    """Seconds slept (without blocking the loop) before answering any request."""
    latency_jitter: float = 0.0
    """Up to this many seconds more, drawn from the seeded random stream."""
    default_page_size: int = 50
    """The real server's default when ``page_size`` is absent or not an integer."""
    no_access_spaces: int = 1
    """Extra seeded spaces that exist but the key has no access to (206 "no access")."""
    no_access_tokens: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    """More tokens answered with 206 "You Don't have Access to this Space"."""
    paginate_spaces: bool = False
    """Page the spaces list with page/page_size like the tasks (the real server does not)."""
    slow_seconds: float = 30.0
    """How long a SLOW fault waits before answering."""
    retry_after: int = 1
    """Seconds announced by the 429 faults."""
    honour_space_id_param: bool = True
    """Like the real server, let a ``space_id`` query parameter pick another space."""
    fault_plan: FaultPlan | None = None
    drift_plan: DriftPlan | None = None
    space_names: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    """Names of the first accessible spaces, in order, instead of generated ones (e.g. names
    a client must show safely: markup, control characters, very long)."""

    @property
    def space_sizes(self) -> tuple[int, ...]:
        """Task count of each accessible space, in creation order."""
        if isinstance(self.spaces, int):
            return (self.tasks_per_space,) * self.spaces
        return self.spaces

    @property
    def resolved_api_key(self) -> str:
        """The api key in effect."""
        if self.api_key is not None:
            return self.api_key
        digest = hashlib.blake2b(f"api-key|{self.seed}".encode(), digest_size=20).hexdigest()
        return f"upk_test_{digest}"
