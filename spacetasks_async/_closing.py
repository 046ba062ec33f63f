"""The shape shared by every iterator here: ``async for`` it, ``async with`` it to close it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["AsyncClosing"]


class AsyncClosing:
    """``async with x:`` calls ``await x.aclose()`` on the way out, whatever happened."""

    async def aclose(self) -> None:
        """Release what the object holds; subclasses say what that is."""
        raise NotImplementedError

    def __aiter__(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
