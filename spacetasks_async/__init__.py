"""spacetasks_async: fast, lossless asyncio harvesting of the tasks of Unpod spaces."""

from __future__ import annotations

from ._errors import (
    APIError,
    AuthenticationError,
    BackendFailureError,
    BadRequestError,
    BusinessLogicError,
    ConfigurationError,
    DecodeError,
    HTTPStatusError,
    InvalidArgumentError,
    InvalidSpaceTokenError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    SpaceAccessError,
    SpaceTasksError,
    TransportError,
)

__version__ = "0.1.0"

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
    "__version__",
]
