"""The exception hierarchy, and the one mapping from an HTTP answer to it.

Every error carries what a person needs to act on it (the HTTP status, the server's message,
the request's method and path, and where known the space and page) and nothing secret: what
is quoted from a server (body snippets, the server's message, a redirect's target) passes
through a :class:`SecretScrubber` first, which removes the client's own API key in any
spelling, credentials such as ``Token <x>`` or ``Bearer <x>``, and the values of
secret-looking keys, and is then cut short.

The hierarchy::

    SpaceTasksError
    ├── ConfigurationError          also a ValueError
    ├── InvalidArgumentError        also a ValueError
    ├── DecodeError                 also a ValueError
    ├── TransportError
    │   └── RequestTimeoutError     also a builtin TimeoutError
    ├── WalkIncompleteError         the walk could not prove it handed out every task
    ├── HarvestError                spaces failed: also an ExceptionGroup of their errors
    ├── CheckpointError             the command line's checkpoint cannot be used for this run
    ├── LockedError                 another run holds the output or checkpoint
    ├── OutputError                 the command line's output (files, formats, resume state)
    │   ├── OutputFormatError       also an InvalidArgumentError
    │   ├── OutputExistsError
    │   ├── OutputChangedError
    │   └── MissingDependencyError  also an ImportError (pip install '...[parquet]')
    └── APIError
        ├── ProtocolError
        │   └── ResponseTooLargeError
        ├── HTTPStatusError
        │   ├── BadRequestError, AuthenticationError, PermissionDeniedError,
        │   ├── NotFoundError, RateLimitError
        │   └── ServerError
        └── BusinessLogicError
            ├── InvalidSpaceTokenError
            ├── SpaceAccessError
            └── BackendFailureError

    InsecureTransportWarning        a UserWarning: the API key would be sent in clear
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec
import orjson

__all__ = [
    "APIError",
    "AuthenticationError",
    "BackendFailureError",
    "BadRequestError",
    "BusinessLogicError",
    "CheckpointError",
    "ConfigurationError",
    "DecodeError",
    "HTTPStatusError",
    "InsecureTransportWarning",
    "InvalidArgumentError",
    "InvalidSpaceTokenError",
    "LockedError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProtocolError",
    "RateLimitError",
    "RequestTimeoutError",
    "ResponseTooLargeError",
    "SecretScrubber",
    "ServerError",
    "SpaceAccessError",
    "SpaceTasksError",
    "TransportError",
    "HarvestError",
    "MissingDependencyError",
    "OutputChangedError",
    "OutputError",
    "OutputExistsError",
    "OutputFormatError",
    "WalkIncompleteError",
    "WalkLimitError",
]

_SNIPPET_CHARS = 200
# Text scrubbed beyond what a snippet shows, so that a secret straddling the snippet's end is
# still removed whole before the cut: longer than any API key the client accepts (1024
# characters, see ``_validate``) in its longest escaped spelling.
_SCRUB_MARGIN = 8192
# A snippet of a body can reach a log line, so values of secret-looking keys are masked in
# it. A body that is a page of tasks can hold a user's token (``user_info.user_token``).
# ``auth`` must not be followed by a letter other than the two known endings, so that
# ``author`` is not a secret but ``auth``, ``oauth_token`` and ``Authorization`` are.
_SECRET_WORDS = (
    r"token|api_?key|auth(?:entication|orization)?(?![a-z])|password|passwd|secret"
    r"|bearer|jwt|credentials?|cookie"
)
_SECRET_KEY = re.compile(_SECRET_WORDS, re.IGNORECASE)
# HTTP credential forms, as an ``Authorization`` header's value: the scheme word, then the
# credential (RFC 9110 token68, or anything up to a delimiter). Case-insensitive, as the
# server itself is.
_SCHEMES = r"token|bearer|jwt|basic|digest"
_CREDENTIAL = re.compile(
    r"""(?P<scheme>\b(?:""" + _SCHEMES + r""")\s+)(?P<value>[^\s"'<>,;&\\]+)""",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"""(?P<key>["']?[\w-]*(?:""" + _SECRET_WORDS + r""")["']?\s*[:=]\s*)"""
    r"""(?:"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?"""
    r"""|(?:(?:""" + _SCHEMES + r""")\s+)?[^\s,;&}<"']+)""",
    re.IGNORECASE,
)
_MASK = "***"


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


class WalkIncompleteError(SpaceTasksError):
    """A walk could not prove that it handed out every task, and stopped.

    Raised when its request budget (which grows with the change the walk observes, never
    with what a server claims) runs out while seams are still unproven, or when answers
    stop making progress. ``page`` names the first page in doubt.
    """


#: The name of :class:`WalkIncompleteError` before the exact walk (kept for callers).
WalkLimitError = WalkIncompleteError


class HarvestError(ExceptionGroup[SpaceTasksError], SpaceTasksError):  # type: ignore[override]
    """Spaces of a harvest failed: an exception group of their errors, one per space.

    Both a :class:`SpaceTasksError` (``except SpaceTasksError`` catches it) and an
    ``ExceptionGroup`` (``except* InvalidSpaceTokenError`` picks out one kind). Each
    error names its space in ``space_token``.
    """

    def __new__(cls, message: str, errors: Sequence[SpaceTasksError]) -> HarvestError:
        return super().__new__(cls, message, errors)

    def __init__(self, message: str, errors: Sequence[SpaceTasksError]) -> None:
        # (``message`` is ExceptionGroup's own, read-only attribute)
        self.status = self.server_message = self.method = self.path = None
        self.space_token, self.page = None, None

    def __str__(self) -> str:
        shown = [
            f"{getattr(e, 'space_token', None)}: {getattr(e, 'message', e)}"
            for e in self.exceptions[:5]
        ]
        more = f" and {len(self.exceptions) - 5} more" if len(self.exceptions) > 5 else ""
        return f"{self.message} ({', '.join(shown)}{more})"


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


class ResponseTooLargeError(ProtocolError):
    """The response body is larger than the client's ``max_body_bytes``. Not retried.

    Raised as soon as a ``Content-Length`` above the ceiling is announced, or as soon as
    the bytes read (counted after decompression, so a gzip bomb stops too) pass it; the rest
    of the body is never read.

    Attributes:
        limit: the ceiling in bytes (``Client(max_body_bytes=...)``).
        content_length: the ``Content-Length`` the server announced, if it did.
        received: the decompressed bytes read before giving up (``None`` when the
            announced length alone was enough to refuse).
    """

    def __init__(
        self,
        message: str,
        *,
        limit: int,
        content_length: int | None = None,
        received: int | None = None,
        **kw: Any,
    ) -> None:
        # Not transient: the same request gets the same body again.
        kw.setdefault("transient", False)
        super().__init__(message, **kw)
        self.limit = limit
        self.content_length = content_length
        self.received = received


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


class InsecureTransportWarning(UserWarning):
    """The API key is about to be sent in clear: an ``http://`` base URL to a host that is
    not this machine (loopback). Issued once per :class:`~spacetasks_async.Client`.

    Silence it deliberately, for example for a trusted local network::

        warnings.filterwarnings("ignore", category=InsecureTransportWarning)
    """


_HTTP_ERRORS: Mapping[int, type[HTTPStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def _decode_escapes(text: str) -> str:
    # JSON's \u escapes could spell a key (or the API key) past the patterns: decode them.
    if "\\u" in text:
        return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text)
    return text


# C0 and C1 control characters and DEL. From a hostile server they could rewrite a terminal
# (ANSI escapes) or forge log lines (newlines) once quoted in an error.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _mask_forms(text: str) -> str:
    # Credentials first, so that ``Authorization: Token KEY`` cannot become
    # ``Authorization: *** KEY``; then whole values under secret-looking keys.
    text = _CREDENTIAL.sub(lambda m: m["scheme"] + _MASK, text)
    text = _SECRET_VALUE.sub(lambda m: m["key"] + _MASK, text)
    return _CONTROL.sub(lambda m: " " if m[0].isspace() else "\ufffd", text)


def mask_secrets(text: str) -> str:
    """``text`` with credentials and the values of secret-looking keys replaced by ``***``.

    Masks ``Token <x>``, ``Bearer <x>``, ``JWT <x>``, ``Basic <x>`` (any case) and the whole
    value under keys such as ``user_token``, ``api_key``, ``auth``, ``Authorization``,
    ``bearer`` or ``password``, quoted or not. Control characters become a space (tabs,
    newlines) or U+FFFD (the rest). Knows no particular secret: see
    :class:`SecretScrubber` for removing the client's own API key wherever it appears.

    >>> mask_secrets('{"user_token": "abc", "name": "x"}')
    '{"user_token": ***, "name": "x"}'
    >>> mask_secrets("Authorization: Token abc123")
    'Authorization: ***'
    """
    return _mask_forms(_decode_escapes(text))


_NAMED_ENTITIES = {"&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos"}


def _spellings(secret: str) -> str:
    """A regex matching ``secret`` with each character raw or escaped in any way a server
    may echo it: percent-encoded, an HTML entity, or JSON-escaped (``\\u`` escapes are
    decoded before matching). Per character, so that mixed spellings match too."""
    parts = []
    for ch in secret:
        code = ord(ch)
        options = [re.escape(ch), f"%{code:02x}", f"&#0*{code};", f"&#x0*{code:x};"]
        if ch in _NAMED_ENTITIES:
            options.append(f"&{_NAMED_ENTITIES[ch]};")
        if ch in '"\\/':
            options.append(re.escape("\\" + ch))
        parts.append(f"(?:{'|'.join(options)})")
    return "".join(parts)


class SecretScrubber:
    """Removes given secrets however a server spells them, then masks like mask_secrets.

    A server or proxy can quote the request's ``Authorization`` header anywhere: in an HTML
    error page, in a JSON message, percent-encoded in a URL, HTML- or JSON-escaped. The
    client builds one scrubber knowing its API key and passes every text that comes from the
    server through it before that text reaches an exception, a log line or an event. The
    secrets are matched case-insensitively, each character raw or percent-, HTML- or
    JSON-escaped.

    Args:
        secrets: the literal secrets to remove (empty strings are ignored).

    >>> SecretScrubber(["s3cr3t-key"])("echo: s3cr3t-key, s3cr3t%2Dkey")
    'echo: ***, ***'
    """

    __slots__ = ("_pattern",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so that a secret that contains another is removed whole.
        ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(map(_spellings, ordered)), re.IGNORECASE) if ordered else None
        )

    def __call__(self, text: str) -> str:
        """``text`` without the secrets, with credentials and secret-looking values masked."""
        text = _decode_escapes(text)
        if self._pattern is not None:
            text = self._pattern.sub(_MASK, text)
        return _mask_forms(text)

    def __repr__(self) -> str:
        # Never the pattern: it spells the secrets.
        return "SecretScrubber(<secrets>)"


Scrub = Callable[[str], str]


def snippet_of(body: bytes, scrub: Scrub = mask_secrets) -> str:
    """The first characters of a body, decoded leniently and scrubbed, for an error message.

    Args:
        body: the body as received.
        scrub: what removes secrets from the text (:func:`mask_secrets` by default; the
            client passes its :class:`SecretScrubber`).
    """
    # Scrubbed beyond the cut, so that a secret that starts inside the snippet goes whole.
    text = body[: _SNIPPET_CHARS * 4 + _SCRUB_MARGIN].decode("utf-8", "replace")
    text = scrub(" ".join(text.split()))
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


def _text(value: Any, scrub: Scrub) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    # Cut before scrubbing (a message can be megabytes), but past the margin, so that a
    # secret starting inside what is kept is scrubbed whole.
    return scrub(text[: _SNIPPET_CHARS + _SCRUB_MARGIN])[:_SNIPPET_CHARS]


_NOT_JSON: Any = object()


def _load(body: bytes) -> Any:
    """The parsed body, or ``_NOT_JSON``."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _NOT_JSON


def error_for_answer(
    status: int,
    body: bytes,
    *,
    method: str,
    path: str,
    retry_after: str | None = None,
    scrub: Scrub = mask_secrets,
) -> APIError:
    """Map an error answer (any status the caller did not accept) to its exception.

    Args:
        status: the HTTP status.
        body: the whole body.
        method: the request's method, for the error.
        path: the request's path and query, for the error.
        retry_after: the ``Retry-After`` header, if any.
        scrub: what removes secrets from every text quoted from the answer.
    """
    parsed = _load(body)
    obj = parsed if isinstance(parsed, dict) else None
    server_message = _text(obj.get("message") or obj.get("detail"), scrub) if obj else None
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
            _business_error(obj, kw, scrub)
            if obj is not None
            else _protocol(
                "HTTP 206 with a body that is not a JSON object", body, kw, scrub, transient=True
            )
        )
    if 500 <= status <= 599:
        if obj is None:
            return ServerError(f"HTTP {status} (non-JSON body: {snippet_of(body, scrub)!r})", **kw)
        return ServerError(f"HTTP {status}{said}", **kw)
    cls = _HTTP_ERRORS.get(status, HTTPStatusError)
    if obj is None and status not in _HTTP_ERRORS:
        return _protocol(
            f"unexpected HTTP {status} with a non-JSON body", body, kw, scrub, transient=True
        )
    return cls(f"HTTP {status}{said}", **kw)


def _business_error(obj: Mapping[str, Any], kw: dict[str, Any], scrub: Scrub) -> APIError:
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
            f"the server's backend failed: {message or 'no message'}",
            errors=_text(errors, scrub),
            **kw,
        )
    return BusinessLogicError(f"business logic error: {message or 'no message'}", **kw)


def _protocol(
    reason: str, body: bytes, kw: dict[str, Any], scrub: Scrub, *, transient: bool = False
) -> ProtocolError:
    return ProtocolError(reason, snippet=snippet_of(body, scrub), transient=transient, **kw)


def parse_envelope(
    status: int,
    body: bytes,
    *,
    method: str,
    path: str,
    retry_after: str | None = None,
    data_type: type[list[Any]] | type[dict[str, Any]] = list,
    scrub: Scrub = mask_secrets,
) -> dict[str, Any]:
    """Check a whole answer and return its envelope (``count``, ``data`` list, ...).

    A 2xx status alone is not success: the body must be a JSON object whose ``status_code``
    (when present) is 200 and whose ``data`` is a list (``data_type``; an object for the
    one-space endpoint), with an integer ``count`` when there is one.
    Raises the matching :class:`SpaceTasksError` otherwise.

    Args:
        status: the HTTP status.
        body: the whole body.
        method: the request's method, for errors.
        path: the request's path and query, for errors.
        retry_after: the ``Retry-After`` header, if any.
        data_type: ``list`` (a page) or ``dict`` (one object) for ``data``.
        scrub: what removes secrets from every text an error quotes from the answer.
    """
    if status != 200:
        raise error_for_answer(
            status, body, method=method, path=path, retry_after=retry_after, scrub=scrub
        )
    kw: dict[str, Any] = {"status": status, "method": method, "path": path}
    obj = _load(body)
    if obj is _NOT_JSON:
        # Raised outside any except block: orjson's error holds the whole body (``doc``),
        # and ``from None`` would still keep it as the new error's __context__.
        kw["server_message"] = None
        raise _protocol(
            "HTTP 200 with a body that is not valid JSON", body, kw, scrub, transient=True
        )
    if not isinstance(obj, dict):
        raise _protocol("HTTP 200 with a body that is not a JSON object", body, kw, scrub)
    body_status = obj.get("status_code", 200)
    if body_status != 200:
        # A 200 that says failure in its body: map it like the status it names, so that a
        # proxy or framework that flattens statuses does not turn errors into data.
        kw["server_message"] = _text(obj.get("message"), scrub)
        if isinstance(body_status, int) and body_status == 206:
            raise _business_error(obj, kw | {"retry_after": None}, scrub)
        said = body_status if isinstance(body_status, int) else type(body_status).__name__
        raise _protocol(f"HTTP 200 whose body says status_code {said}", body, kw, scrub)
    data = obj.get("data")
    if not isinstance(data, data_type):
        expected = "a list" if data_type is list else "an object"
        raise _protocol(
            f"HTTP 200 whose 'data' is {type(data).__name__}, not {expected}", body, kw, scrub
        )
    count = obj.get("count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
        said = count if isinstance(count, int) else type(count).__name__
        raise _protocol(f"HTTP 200 whose 'count' is not a count: {said}", body, kw, scrub)
    return obj


class OutputError(SpaceTasksError):
    """Base of the errors about the output: its name, format, existing content, or state."""


class OutputFormatError(OutputError, InvalidArgumentError):
    """The output was asked for in a way that cannot work (the message says what to change).

    A suffix that names no format, an unsupported compression, Parquet with a compression,
    standard output with anything but JSON Lines, undeclared or badly typed extra columns,
    or a resume state of another format, compression, columns or version.
    """


class OutputExistsError(OutputError):
    """A fresh output would replace an existing file or a non-empty directory."""


class OutputChangedError(OutputError):
    """The output on disk is not the one the resume state describes; nothing was changed."""


class MissingDependencyError(OutputError, ImportError):
    """An optional package this output needs (pyarrow, zstandard) is not installed."""


class CheckpointError(SpaceTasksError):
    """The command line's checkpoint file cannot be used for this run (the message says why
    and what to do)."""


class LockedError(SpaceTasksError):
    """Another run holds the lock of the output or checkpoint (the message names it)."""


class _PageEnvelope(msgspec.Struct):
    """A page's envelope as the fast path reads it: ``data`` items kept as JSON text."""

    data: list[msgspec.Raw]
    count: int | None = None
    status_code: int = 200
    message: Any = None


_decode_page_envelope = msgspec.json.Decoder(_PageEnvelope).decode


def parse_page_envelope(
    status: int,
    body: bytes,
    *,
    method: str,
    path: str,
    retry_after: str | None = None,
    scrub: Scrub = mask_secrets,
) -> dict[str, Any]:
    """:func:`parse_envelope` for a page of tasks, its ``data`` items left as JSON text.

    The usual answer (HTTP 200, a JSON object in UTF-8 whose ``status_code`` is 200 or
    absent, ``data`` an array, ``count`` a count or absent) is read with msgspec, which
    checks the syntax of the whole body but only splits ``data`` into the text of each item
    (``msgspec.Raw``): the decoder parses what it needs from each (see
    :mod:`spacetasks_async._convert`). Any other answer goes through :func:`parse_envelope`,
    so that every error is the one it raises. Reading a page this way costs about a third
    of ``orjson.loads`` (msgspec, and a check of the body's UTF-8 when it is not ASCII); the
    page's objects are not built.

    Args:
        status: the HTTP status.
        body: the whole body.
        method: the request's method, for errors.
        path: the request's path and query, for errors.
        retry_after: the ``Retry-After`` header, if any.
        scrub: what removes secrets from every text an error quotes from the answer.
    """
    if status == 200:
        try:
            page = _decode_page_envelope(body)
        except msgspec.DecodeError:  # malformed, or another shape: the careful path says why
            page = None
        if (
            page is not None
            and page.status_code == 200
            and (page.count is None or page.count >= 0)
            # msgspec does not check the UTF-8 of text it skips; orjson refuses bad UTF-8
            and (body.isascii() or _is_utf8(body))
        ):
            return {
                "count": page.count,
                "status_code": 200,
                "message": page.message,
                "data": page.data,
            }
    return parse_envelope(
        status, body, method=method, path=path, retry_after=retry_after, data_type=list, scrub=scrub
    )


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True
