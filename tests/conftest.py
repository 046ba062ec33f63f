"""Shared test set-up.

aioresponses compatibility shim
-------------------------------
aioresponses 0.7.9 (the newest release) builds ``aiohttp.ClientResponse`` without the
``stream_writer`` argument that aiohttp 3.14 made required, so every mocked request fails with
``ClientResponse.__init__() missing ... 'stream_writer'`` (aioresponses issue #289, fix open
as PR #288). aiohttp 3.14.0 is a security release, so the package does not cap aiohttp;
instead the tests hand aioresponses a response class that supplies a stand-in writer.
Remove this shim once an aioresponses release with the fix is out.
"""

from __future__ import annotations

import inspect
from typing import Any
from unittest import mock

import aiohttp
import aioresponses.core


def _needs_stream_writer_shim() -> bool:
    params = inspect.signature(aiohttp.ClientResponse.__init__).parameters
    stream_writer = params.get("stream_writer")
    return stream_writer is not None and stream_writer.default is inspect.Parameter.empty


if _needs_stream_writer_shim():

    class _CompatClientResponse(aiohttp.ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # The request is already "sent" (writer=None), so aiohttp only reads
            # output_size from the writer.
            kwargs.setdefault("stream_writer", mock.Mock(output_size=0))
            super().__init__(*args, **kwargs)

    aioresponses.core.ClientResponse = _CompatClientResponse  # type: ignore[misc]
