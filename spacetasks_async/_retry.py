"""Retry policy and rate control: what to retry, how long to wait, how fast to go.

Retries are driven by tenacity (well kept, async-native, with a full-jitter exponential wait
and injectable sleep) rather than a hand-written loop; this module decides *what* is
retryable and *how long* to wait, including the server's ``Retry-After``.

Rate control is shared by every request of one :class:`~spacetasks_async.Client`:
an optional requests-per-second token bucket, and an adaptive ceiling on requests in flight
that halves on a 429 and grows back by one after a run of successes (AIMD), so the whole
client slows down when the server says so, not only the request that was told.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import tenacity

from ._errors import (
    APIError,
    BackendFailureError,
    ProtocolError,
    RateLimitError,
    ServerError,
    SpaceTasksError,
    TransportError,
)

__all__ = ["FairLimiter", "RateController", "RetryEvent", "RetryPolicy"]

log = logging.getLogger("spacetasks_async")


@attrs.frozen
class RetryEvent:
    """One retry about to happen: what failed, which attempt it was, how long we wait."""

    method: str
    path: str
    attempt: int
    wait: float
    error: SpaceTasksError


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """When and how requests are retried.

    Retried: 429, 500, 502, 503, 504, connection errors, timeouts, and a body cut off or not
    parseable (all requests here are idempotent GETs). Never retried: 400, 401, 403, 404, an
    invalid space token or missing access (206), a body above the client's
    ``max_body_bytes`` (:class:`ResponseTooLargeError`): they cannot succeed on a second try.

    The 206 "Tasks Fetch Failed" backend failure is retried like a 5xx by default: it is
    what the real server answers when its backend is unreachable or overloaded, so giving up
    early would lose data. It is also what a page holding one broken task looks like, which
    no retry fixes; that costs ``max_attempts`` requests before the error (naming the space
    and page) is raised. ``backend_failure_retries`` caps its retries lower if wanted.

    Waits are exponential with full jitter, ``uniform(0, min(max_wait, initial_wait * 2**n))``,
    unless the server sent ``Retry-After``: then that is the wait. A ``Retry-After`` above
    ``max_retry_after`` is not slept: :class:`RateLimitError` is raised with ``retry_after``.

    >>> RetryPolicy(max_attempts=3, initial_wait=0.1)  # doctest: +ELLIPSIS
    RetryPolicy(max_attempts=3, initial_wait=0.1, ...)
    """

    # 8 attempts: a harvest makes thousands of requests, and with one request in five
    # failing, 5 attempts would still lose a page in about one harvest of 400 pages in 8.
    max_attempts: int = attrs.field(default=8, validator=attrs.validators.ge(1))
    initial_wait: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    max_wait: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    max_retry_after: float = attrs.field(default=120.0, validator=attrs.validators.ge(0))
    backend_failure_retries: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(0))
    )
    retry_statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that makes every request exactly once."""
        return cls(max_attempts=1)

    def is_retryable(self, error: BaseException, attempt: int) -> bool:
        """Whether ``error``, raised by attempt number ``attempt`` (1-based), is retried."""
        if attempt >= self.max_attempts:
            return False
        if isinstance(error, BackendFailureError):
            cap = self.backend_failure_retries
            return cap is None or attempt <= cap
        if isinstance(error, RateLimitError | ServerError):
            if error.status not in self.retry_statuses:
                return False
            return error.retry_after is None or error.retry_after <= self.max_retry_after
        if isinstance(error, ProtocolError):
            return error.transient
        return isinstance(error, TransportError)

    def backoff(self, attempt: int, error: BaseException | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if isinstance(error, APIError) and error.retry_after is not None:
            return error.retry_after
        ceiling = min(self.max_wait, self.initial_wait * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling)


class _PolicyRetry(tenacity.retry_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        return error is not None and self._policy.is_retryable(error, retry_state.attempt_number)


class _PolicyWait(tenacity.wait.wait_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        return self._policy.backoff(retry_state.attempt_number, error)


class FairLimiter:
    """A ceiling on work in flight, shared fairly between keys, that can shrink and regrow.

    Waiters are queued per key and served round-robin across keys, so one space with many
    queued requests cannot starve the others; with a single key it is a FIFO semaphore.
    :meth:`throttled` halves the ceiling and :meth:`succeeded` grows it back by one per
    ceiling's worth of successes (AIMD, as TCP congestion avoidance), which is how the
    client as a whole slows down on 429 answers.
    """

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.in_flight = 0
        self._queues: dict[object, collections.deque[asyncio.Future[None]]] = {}
        self._ring: collections.deque[object] = collections.deque()

    @contextlib.asynccontextmanager
    async def slot(self, key: object = None) -> AsyncIterator[None]:
        """Hold one slot for the duration of the block; waits for its turn."""
        await self.acquire(key)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, key: object = None) -> None:
        """Take a slot, waiting in ``key``'s queue for a round-robin turn."""
        if self.in_flight < int(self.limit) and not self._ring:
            self.in_flight += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = collections.deque()
            self._ring.append(key)
        queue.append(fut)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()  # granted, then cancelled: hand the slot on
            else:
                queue.remove(fut)
                if not queue:
                    del self._queues[key]
                    self._ring.remove(key)
            raise

    def release(self) -> None:
        """Give a slot back and hand it to the next waiter in turn."""
        self.in_flight -= 1
        self._grant()

    def _grant(self) -> None:
        while self._ring and self.in_flight < int(self.limit):
            key = self._ring.popleft()
            queue = self._queues[key]
            self.in_flight += 1
            queue.popleft().set_result(None)
            if queue:
                self._ring.append(key)
            else:
                del self._queues[key]

    def throttled(self) -> None:
        """The server pushed back: halve the ceiling (never below one)."""
        self.limit = max(1.0, self.limit / 2)

    def succeeded(self) -> None:
        """A request succeeded: regrow the ceiling by one per ceiling's worth of successes."""
        if self.limit < self.ceiling:
            self.limit = min(float(self.ceiling), self.limit + 1 / max(1.0, self.limit))
            self._grant()


class _TokenBucket:
    """Requests per second across the whole client; bursts up to one second's worth."""

    def __init__(
        self,
        rate: float,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:  # FIFO: callers are served in arrival order
            while True:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1 - 1e-9:  # tolerance: float sums of rate * dt
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                await self._sleep((1 - self._tokens) / self.rate)


class RateController:
    """Everything that paces one client's requests: retries, rate, adaptive concurrency.

    Built by :class:`~spacetasks_async.Client`; one per client, shared by all its walks.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        max_in_flight: int,
        rate: float | None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.concurrency = FairLimiter(max_in_flight)
        self._bucket = _TokenBucket(rate, sleep=sleep, clock=clock) if rate else None
        self._sleep = sleep

    async def call(
        self,
        attempt_fn: Callable[[], Awaitable[Any]],
        *,
        method: str,
        path: str,
        on_retry: Callable[[RetryEvent], None] | None = None,
    ) -> Any:
        """Run ``attempt_fn`` under the rate limits, retrying as the policy says.

        Args:
            attempt_fn: makes one attempt; what it raises decides whether to retry.
            method: the HTTP method, for retry events and log lines.
            path: the path and query, for retry events and log lines.
            on_retry: called with a :class:`RetryEvent` before each retry's wait.

        Returns:
            what the first successful attempt returned.

        Raises:
            SpaceTasksError: the last attempt's error, once the policy retries no more.
        """
        # Fast path: nearly every request succeeds at once, and building tenacity's
        # machinery (retrying object, closures, its action chain) cost about 25 us a
        # request, measured, more than the rest of this module. The first attempt runs
        # bare; only a failure the policy retries builds the loop.
        try:
            return await self._one(attempt_fn)
        except Exception as exc:  # BaseExceptions (cancellation) are never retried
            if not self.policy.is_retryable(exc, 1):
                raise
            first: BaseException | None = exc
        return await self._retry(attempt_fn, first, method=method, path=path, on_retry=on_retry)

    async def _retry(
        self,
        attempt_fn: Callable[[], Awaitable[Any]],
        first: BaseException | None,
        *,
        method: str,
        path: str,
        on_retry: Callable[[RetryEvent], None] | None,
    ) -> Any:
        """The tenacity loop after a failed first attempt; tenacity's attempt 1 is ``first``.

        The failure is replayed as attempt 1 rather than retried from attempt 2, so that
        tenacity makes every decision (wait, stop, ``before_sleep``, attempt numbers)
        exactly as it would have had it run the first attempt itself.
        """

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            assert isinstance(error, SpaceTasksError)
            wait = state.next_action.sleep if state.next_action else 0.0
            event = RetryEvent(method, path, state.attempt_number, wait, error)
            log.info(
                "retrying %s %s after attempt %d in %.2fs: %s",
                method,
                path,
                state.attempt_number,
                wait,
                _reason(error),
            )
            if on_retry is not None:
                on_retry(event)

        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.policy.max_attempts),
            wait=_PolicyWait(self.policy),
            retry=_PolicyRetry(self.policy),
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if first is not None:
                    replay, first = first, None
                    raise replay
                return await self._one(attempt_fn)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _one(self, attempt_fn: Callable[[], Awaitable[Any]]) -> Any:
        if self._bucket is not None:
            await self._bucket.take()
        await self.concurrency.acquire()
        try:
            result = await attempt_fn()
        except RateLimitError:
            self.concurrency.throttled()
            raise
        finally:
            self.concurrency.release()
        self.concurrency.succeeded()
        return result


def _reason(error: SpaceTasksError) -> str:
    """A short one-line reason for a log line: the error's class and message, cut short."""
    message = error.message if len(error.message) <= 100 else error.message[:99] + "…"
    return f"{type(error).__name__}: {message}"
