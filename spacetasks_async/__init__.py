"""spacetasks_async: fast, lossless asyncio harvesting of the tasks of Unpod spaces.

>>> async with Client() as client:  # doctest: +SKIP
...     async for task in client.iter_tasks("8KZAMRAHSXXXXXXMAYNASMJC"):
...         print(task.task_id, task.status)
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._client import ALLOWED_FILTERS, DEFAULT_BASE_URL, MAX_PAGE_SIZE, Client
from ._convert import (
    converter,
    decode_space,
    decode_task,
    decode_tasks,
    encode_space,
    encode_task,
    parse_timestamp,
)
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
from ._harvest import Harvest, HarvestedPage, HarvestedTask, SpaceFailure
from ._models import (
    CallOutput,
    CallSummary,
    ExecutionType,
    OutputShape,
    PostCallData,
    RunMode,
    Space,
    Task,
    TaskDefinition,
    TaskPage,
    TaskStatus,
    Timestamp,
    TranscriptTurn,
    UserInfo,
)
from ._paginate import Checkpoint, PageWalk, TaskWalk, WalkLimitError, WalkStats
from ._retry import FairLimiter, RetryEvent, RetryPolicy

__all__ = [
    "ALLOWED_FILTERS",
    "DEFAULT_BASE_URL",
    "MAX_PAGE_SIZE",
    "APIError",
    "AuthenticationError",
    "BackendFailureError",
    "BadRequestError",
    "BusinessLogicError",
    "CallOutput",
    "CallSummary",
    "Checkpoint",
    "Client",
    "ConfigurationError",
    "DecodeError",
    "ExecutionType",
    "FairLimiter",
    "HTTPStatusError",
    "Harvest",
    "HarvestedPage",
    "HarvestedTask",
    "InvalidArgumentError",
    "InvalidSpaceTokenError",
    "NotFoundError",
    "OutputShape",
    "PageWalk",
    "PermissionDeniedError",
    "PostCallData",
    "ProtocolError",
    "RateLimitError",
    "RequestTimeoutError",
    "RetryEvent",
    "RetryPolicy",
    "RunMode",
    "ServerError",
    "Space",
    "SpaceAccessError",
    "SpaceFailure",
    "SpaceTasksError",
    "Task",
    "TaskDefinition",
    "TaskPage",
    "TaskStatus",
    "TaskWalk",
    "Timestamp",
    "TranscriptTurn",
    "TransportError",
    "UserInfo",
    "WalkLimitError",
    "WalkStats",
    "__version__",
    "converter",
    "decode_space",
    "decode_task",
    "decode_tasks",
    "encode_space",
    "encode_task",
    "parse_timestamp",
]
