"""The exception hierarchy, and the one mapping from an HTTP answer to it.

Every error carries what a person needs to act on it (the HTTP status, the server's message,
the request's method and path, and where known the space and page) and nothing secret: the
API key never reaches this module, and what is quoted from a body (snippets, the server's
message) is cut short, with the values of secret-looking keys masked.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = [
    "APIError",
    "AuthenticationError",
    "BackendFailureError",
    "BadRequestError",
    "BusinessLogicError",
    "ConfigurationError",
    "DecodeError",
    "HTTPStatusError",
    "InvalidArgumentError",
    "InvalidSpaceTokenError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProtocolError",
    "RateLimitError",
    "RequestTimeoutError",
    "ServerError",
    "SpaceAccessError",
    "SpaceTasksError",
    "TransportError",
]

_SNIPPET_CHARS = 200
# A snippet of a body can reach a log line, so values of secret-looking keys are masked in
# it. A body that is a page of tasks can hold a user's token (``user_info.user_token``).
_SECRET_WORDS = r"token|api_?key|authorization|password|secret"
_SECRET_KEY = re.compile(_SECRET_WORDS, re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"""(?P<key>["']?[\w-]*(?:""" + _SECRET_WORDS + r""")["']?\s*[:=]\s*)"""
    r"""(?:"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|[^\s,;&}<"']+)""",
    re.IGNORECASE,
)


def redacted(value: Any) -> Any:
    """``value`` (JSON-like) with the values under secret-looking keys replaced by ``***``."""
    if isinstance(value, dict):
        return {
            k: "***" if isinstance(k, str) and _SECRET_KEY.search(k) else redacted(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redacted(v) for v in value]
    return value


def redacted_repr(value: Any) -> str:
    """The repr of :func:`redacted` ``value``: for free-form data in a model's repr."""
    return repr(redacted(value))


class SpaceTasksError(Exception):
    """Base of every error this package raises.

    Attributes are ``None`` where they do not apply. ``space_token`` and ``page`` are filled
    in by the walk, so an error from deep inside a harvest still says where it happened.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        server_message: str | None = None,
        method: str | None = None,
        path: str | None = None,
        space_token: str | None = None,
        page: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.server_message = server_message
        self.method = method
        self.path = path
        self.space_token = space_token
        self.page = page

    def __str__(self) -> str:
        parts = [self.message]
        if self.method and self.path:
            parts.append(f"[{self.method} {self.path}]")
        where = []
        if self.space_token is not None:
            where.append(f"space {self.space_token!r}")
        if self.page is not None:
            where.append(f"page {self.page}")
        if where:
            parts.append(f"({', '.join(where)})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def with_context(self, *, space_token: str | None, page: int | None) -> SpaceTasksError:
        """Fill in the space and page where they are not known yet; returns ``self``."""
        if self.space_token is None:
            self.space_token = space_token
        if self.page is None:
            self.page = page
        return self


class ConfigurationError(SpaceTasksError, ValueError):
    """The client cannot be built as asked (for example: no API key anywhere)."""


class InvalidArgumentError(SpaceTasksError, ValueError):
    """An argument was rejected before any request was sent (bad token, page, page size)."""


class DecodeError(SpaceTasksError, ValueError):
    """A task (or space) could not be decoded.

    Names the task by ``task_id`` when it has one and the JSON path of the bad value
    (``$.output.transcript[2].content``); never includes the payload or the value itself,
    which may hold personal data or a user's token.
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str = "$",
        task_id: str | None = None,
        subject: str = "task",
    ) -> None:
        if task_id is not None:
            who = f"{subject} {task_id!r}"
        elif subject == "task":
            who = "a task without task_id"
        else:
            who = f"a {subject}"
        super().__init__(f"cannot decode {who} at {path}: {reason}")
        self.reason = reason
        self.json_path = path
        self.task_id = task_id
        self.subject = subject


class TransportError(SpaceTasksError):
    """The request did not complete: connection refused or reset, DNS failure, timeout."""


class RequestTimeoutError(TransportError, TimeoutError):
    """The request timed out (connect or total). Also an instance of :class:`TimeoutError`."""


class APIError(SpaceTasksError):
    """The server answered, and the answer is an error.

    ``retry_after`` is the parsed ``Retry-After`` header in seconds, when the answer had one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ProtocolError(APIError):
    """The body is not what the API promises: HTML, truncated or invalid JSON, wrong shape.

    ``snippet`` holds at most the first 200 characters of the body (secret-looking values
    masked), to help diagnosis. ``transient`` is true for a body that is not JSON at all
    (cut off, or a proxy's HTML page), which a second try can fix, and false for JSON of
    the wrong shape, which it cannot.
    """

    def __init__(
        self, message: str, *, snippet: str = "", transient: bool = True, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.snippet = snippet
        self.transient = transient

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}; body starts: {self.snippet!r}" if self.snippet else base


class HTTPStatusError(APIError):
    """An HTTP error status. Subclasses name the common ones; others are this class."""


class BadRequestError(HTTPStatusError):
    """HTTP 400: the parameters were refused (or, on the spaces list, no ``Org-Handle``)."""


class AuthenticationError(HTTPStatusError):
    """HTTP 401: the API key is missing or invalid."""


class PermissionDeniedError(HTTPStatusError):
    """HTTP 403: the key may not do this."""


class NotFoundError(HTTPStatusError):
    """HTTP 404: for example an unknown organization on the spaces list."""


class RateLimitError(HTTPStatusError):
    """HTTP 429: too many requests. ``retry_after`` says how long the server asked to wait."""


class ServerError(HTTPStatusError):
    """HTTP 5xx: the server or a proxy in front of it failed."""


class BusinessLogicError(APIError):
    """HTTP 206 with ``status_code: 206`` in the body: Unpod's "business logic error"."""


class InvalidSpaceTokenError(BusinessLogicError):
    """The space token is unknown ("Invalid Space Token"). A bad token is 206 here, not 404."""


class SpaceAccessError(BusinessLogicError):
    """The key has no access to this space ("You Don't have Access to this Space")."""


class BackendFailureError(BusinessLogicError):
    """The server's backend failed to fetch the tasks ("Tasks Fetch Failed").

    Also what one undecodable task on the server, or ``page <= 0``, produces. ``errors``
    holds the server's own error text, cut short.
    """

    def __init__(self, message: str, *, errors: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.errors = errors


_HTTP_ERRORS: Mapping[int, type[HTTPStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def mask_secrets(text: str) -> str:
    """``text`` with the values of secret-looking keys (``user_token: ...``) replaced.

    >>> mask_secrets('{"user_token": "abc", "name": "x"}')
    '{"user_token": ***, "name": "x"}'
    """
    # JSON's \u escapes could spell a key past the pattern: decode them for the check.
    if "\\u" in text:
        text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text)
    return _SECRET_VALUE.sub(r"\g<key>***", text)


def snippet_of(body: bytes) -> str:
    """The first characters of a body, decoded leniently, for an error message."""
    text = body[: _SNIPPET_CHARS * 4].decode("utf-8", "replace")
    text = mask_secrets(" ".join(text.split()))
    return text[:_SNIPPET_CHARS] + ("…" if len(text) > _SNIPPET_CHARS else "")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Returns ``None`` for a missing or unparseable header, and never a negative number.

    >>> parse_retry_after("2.5")
    2.5
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    10.0
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return mask_secrets(text)[:_SNIPPET_CHARS]


def _load(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def error_for_answer(
    status: int,
    body: bytes,
    *,
    method: str,
    path: str,
    retry_after: str | None = None,
) -> APIError:
    """Map an error answer (any status the caller did not accept) to its exception."""
    parsed = _load(body)
    obj = parsed if isinstance(parsed, dict) else None
    server_message = _text(obj.get("message") or obj.get("detail")) if obj else None
    kw: dict[str, Any] = {
        "status": status,
        "server_message": server_message,
        "method": method,
        "path": path,
        "retry_after": parse_retry_after(retry_after),
    }
    said = f": {server_message}" if server_message else ""

    if status == 206:
        return (
            _business_error(obj, kw)
            if obj is not None
            else _protocol(
                "HTTP 206 with a body that is not a JSON object", body, kw, transient=True
            )
        )
    if 500 <= status <= 599:
        if obj is None:
            return ServerError(f"HTTP {status} (non-JSON body: {snippet_of(body)!r})", **kw)
        return ServerError(f"HTTP {status}{said}", **kw)
    cls = _HTTP_ERRORS.get(status, HTTPStatusError)
    if obj is None and status not in _HTTP_ERRORS:
        return _protocol(f"unexpected HTTP {status} with a non-JSON body", body, kw, transient=True)
    return cls(f"HTTP {status}{said}", **kw)


def _business_error(obj: Mapping[str, Any], kw: dict[str, Any]) -> APIError:
    message = kw["server_message"] or ""
    lowered = message.lower()
    if "invalid space token" in lowered:
        return InvalidSpaceTokenError(f"invalid space token: {message}", **kw)
    if "access" in lowered:
        return SpaceAccessError(f"no access to the space: {message}", **kw)
    data = obj.get("data")
    errors = obj.get("errors")
    if errors is None and isinstance(data, dict):
        errors = data.get("errors")
    if "fetch failed" in lowered or errors is not None:
        return BackendFailureError(
            f"the server's backend failed: {message or 'no message'}", errors=_text(errors), **kw
        )
    return BusinessLogicError(f"business logic error: {message or 'no message'}", **kw)


def _protocol(
    reason: str, body: bytes, kw: dict[str, Any], *, transient: bool = False
) -> ProtocolError:
    return ProtocolError(reason, snippet=snippet_of(body), transient=transient, **kw)


def parse_envelope(
    status: int,
    body: bytes,
    *,
    method: str,
    path: str,
    retry_after: str | None = None,
    data_type: type[list[Any]] | type[dict[str, Any]] = list,
) -> dict[str, Any]:
    """Check a whole answer and return its envelope (``count``, ``data`` list, ...).

    A 2xx status alone is not success: the body must be a JSON object whose ``status_code``
    (when present) is 200 and whose ``data`` is a list (``data_type``; an object for the
    one-space endpoint), with an integer ``count`` when there is one.
    Raises the matching :class:`SpaceTasksError` otherwise.
    """
    if status != 200:
        raise error_for_answer(status, body, method=method, path=path, retry_after=retry_after)
    kw: dict[str, Any] = {"status": status, "method": method, "path": path}
    try:
        obj = orjson.loads(body)  # the client pauses the cyclic GC around this
    except orjson.JSONDecodeError:
        kw["server_message"] = None
        raise _protocol(
            "HTTP 200 with a body that is not valid JSON", body, kw, transient=True
        ) from None
    if not isinstance(obj, dict):
        raise _protocol("HTTP 200 with a body that is not a JSON object", body, kw)
    body_status = obj.get("status_code", 200)
    if body_status != 200:
        # A 200 that says failure in its body: map it like the status it names, so that a
        # proxy or framework that flattens statuses does not turn errors into data.
        kw["server_message"] = _text(obj.get("message"))
        if isinstance(body_status, int) and body_status == 206:
            raise _business_error(obj, kw | {"retry_after": None})
        said = body_status if isinstance(body_status, int) else type(body_status).__name__
        raise _protocol(f"HTTP 200 whose body says status_code {said}", body, kw)
    data = obj.get("data")
    if not isinstance(data, data_type):
        expected = "a list" if data_type is list else "an object"
        raise _protocol(f"HTTP 200 whose 'data' is {type(data).__name__}, not {expected}", body, kw)
    count = obj.get("count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
        said = count if isinstance(count, int) else type(count).__name__
        raise _protocol(f"HTTP 200 whose 'count' is not a count: {said}", body, kw)
    return obj
