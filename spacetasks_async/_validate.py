"""Argument checks, and the bounds they enforce, in one leaf module.

Everything here runs before any request is sent, so that a bad argument fails at once with
an error naming it, instead of as a confusing answer (or a misrouted request) later. The
module imports nothing from the package but :mod:`._errors`, so any other module can use it
without an import cycle.
"""

from __future__ import annotations

import urllib.parse
from typing import Final

from ._errors import ConfigurationError, InvalidArgumentError, SpaceTasksError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_IN_FLIGHT",
    "MAX_BODY_BYTES",
    "MAX_HEADER_VALUE_CHARS",
    "MAX_IN_FLIGHT",
    "MAX_PAGE_SIZE",
    "MAX_SPACE_TOKEN_CHARS",
    "MIN_BODY_BYTES",
    "validate_header_value",
    "validate_limit",
    "validate_page",
    "validate_page_size",
    "validate_space_token",
]

#: The server has no maximum page size (and 0 means "everything"); a client-side ceiling
#: keeps one answer from holding a whole space in memory.
MAX_PAGE_SIZE: Final = 10_000
#: Real space tokens are 24 characters; the bound keeps a pasted file or a runaway string
#: out of URLs, checkpoints and error messages.
MAX_SPACE_TOKEN_CHARS: Final = 256
#: Longest API key or organization handle accepted. Servers commonly refuse request header
#: lines above 8 KiB; the bound also caps what the client scans for the key in error text.
MAX_HEADER_VALUE_CHARS: Final = 1024
#: Ceiling on one client's requests in flight. Each one may hold a socket, and a process
#: often has only 1024 file descriptors (``ulimit -n``): 256 leaves room for the rest of
#: the program (output files, logs, other clients).
MAX_IN_FLIGHT: Final = 256
DEFAULT_MAX_IN_FLIGHT: Final = 32
#: Default ceiling on one response body, decompressed: a page of 100 tasks is tens to
#: hundreds of KiB, the largest allowed page (10,000 tasks) a few tens of MiB.
DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024 * 1024
#: Below this not even an error answer fits.
MIN_BODY_BYTES: Final = 1024
#: Above this one body alone could exhaust a machine's memory.
MAX_BODY_BYTES: Final = 16 * 1024 * 1024 * 1024

# Characters of a space token that cannot be sent even percent-encoded: path separators
# (a server or proxy may decode %2F before routing).
_SEPARATORS: Final = frozenset("/\\")


def _type_name(value: object) -> str:
    return type(value).__name__


def _first_invisible(value: str) -> int | None:
    """Index of the first character outside visible ASCII (``!`` to ``~``), or ``None``.

    That excludes space, tab, C0 and C1 control characters, DEL and everything non-ASCII:
    the characters that would change an HTTP header's meaning (``\\r\\n`` starts a new
    header), that a server or proxy may decode differently, or that are invisible in a log.
    """
    for index, ch in enumerate(value):
        if not "!" <= ch <= "~":
            return index
    return None


def validate_limit(
    name: str,
    value: object,
    low: int,
    high: int,
    *,
    error: type[SpaceTasksError] = InvalidArgumentError,
) -> int:
    """Return ``value`` if it is an int (not a bool) with ``low <= value <= high``.

    Args:
        name: the argument's name, for the message.
        value: what the caller passed.
        low: the smallest value allowed.
        high: the largest value allowed.
        error: the exception class to raise; :class:`ConfigurationError` for the arguments
            of a :class:`~spacetasks_async.Client` itself.

    Raises:
        InvalidArgumentError: (or ``error``) naming the argument and both bounds.

    >>> validate_limit("window", 8, 1, 64)
    8
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise error(f"{name} must be an int from {low} to {high}, not {_type_name(value)}")
    if not low <= value <= high:
        raise error(f"{name} must be from {low} to {high}, got {value}")
    return value


def validate_header_value(name: str, value: object, *, secret: bool = False) -> str:
    """Return ``value`` if it can be sent as an HTTP header value: visible ASCII, bounded.

    RFC 9110 allows visible ASCII in a field value (``obs-text`` above it is obsolete and
    read differently by different servers), and a control character could split the header.
    Spaces are refused too: neither an API key nor an organization handle has one, and one
    in ``Token <key>`` would make the credential ambiguous.

    Args:
        name: what the value is, for the message (``"the API key"``, ``"org_handle"``).
        value: the value to check.
        secret: when true, the message never quotes the value or any of its characters.

    Raises:
        ConfigurationError: naming ``name`` and where the bad character is.
    """
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a str, not {_type_name(value)}")
    if not value:
        raise ConfigurationError(f"{name} is empty")
    if len(value) > MAX_HEADER_VALUE_CHARS:
        raise ConfigurationError(
            f"{name} is {len(value)} characters long; at most {MAX_HEADER_VALUE_CHARS} are allowed"
        )
    index = _first_invisible(value)
    if index is not None:
        what = "a character" if secret else f"U+{ord(value[index]):04X}"
        raise ConfigurationError(
            f"{name} contains {what} at position {index} that is not allowed in an HTTP "
            "header: only visible ASCII (no spaces, control or non-ASCII characters)"
        )
    return value


def validate_space_token(space_token: object) -> str:
    """Return the token as one percent-encoded path segment, or raise before any request.

    A token must be visible ASCII (no spaces, control or non-ASCII characters), at most
    :data:`MAX_SPACE_TOKEN_CHARS` long, without ``/`` or ``\\``, and not ``.`` or ``..``
    (which a server would read as a path step). Characters that mean something in a URL
    (``%``, ``?``, ``#``, ...) are allowed and percent-encoded.

    Args:
        space_token: the token as given by the caller.

    Raises:
        InvalidArgumentError: naming what is wrong with the token.
    """
    if not isinstance(space_token, str):
        raise InvalidArgumentError(f"space_token must be a str, not {_type_name(space_token)}")
    if not space_token or not space_token.strip():
        raise InvalidArgumentError("space_token is empty")
    if len(space_token) > MAX_SPACE_TOKEN_CHARS:
        # Not quoted: it may be a whole file pasted by mistake.
        raise InvalidArgumentError(
            f"space_token is {len(space_token)} characters long; "
            f"at most {MAX_SPACE_TOKEN_CHARS} are allowed"
        )
    if any(ch in _SEPARATORS for ch in space_token):
        raise InvalidArgumentError(f"space_token {space_token!r} contains a slash")
    if space_token in {".", ".."}:
        raise InvalidArgumentError(f"space_token {space_token!r} is not a token")
    index = _first_invisible(space_token)
    if index is not None:
        ch = space_token[index]
        if ch == " ":
            kind = "a space"
        elif not ch.isprintable():  # C0, DEL and C1 (U+0080 to U+009F) alike
            kind = "a control character"
        else:
            kind = "a non-ASCII character"
        raise InvalidArgumentError(
            f"space_token contains {kind} (U+{ord(ch):04X}) at position {index}: only "
            "visible ASCII is allowed (no spaces, control or non-ASCII characters)"
        )
    return urllib.parse.quote(space_token, safe="")


def validate_page_size(page_size: object) -> int:
    """Reject a page size the client must never send (0 means "everything" on the server).

    Args:
        page_size: tasks per page asked of the server, 1 to :data:`MAX_PAGE_SIZE`.

    Raises:
        InvalidArgumentError: for a non-int, or a size out of bounds.
    """
    if not isinstance(page_size, int) or isinstance(page_size, bool):
        raise InvalidArgumentError(f"page_size must be an int, not {_type_name(page_size)}")
    if page_size < 1:
        raise InvalidArgumentError(f"page_size must be at least 1, got {page_size}")
    if page_size > MAX_PAGE_SIZE:
        raise InvalidArgumentError(f"page_size must be at most {MAX_PAGE_SIZE}, got {page_size}")
    return page_size


def validate_page(page: object) -> int:
    """Reject a page number below 1 (the server answers those with a 206).

    Args:
        page: the 1-based page number.

    Raises:
        InvalidArgumentError: for a non-int or a page below 1.
    """
    if not isinstance(page, int) or isinstance(page, bool):
        raise InvalidArgumentError(f"page must be an int, not {_type_name(page)}")
    if page < 1:
        raise InvalidArgumentError(f"page must be at least 1, got {page}")
    return page
