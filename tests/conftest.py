"""Shared test set-up: the aioresponses shim, and a served local organization.

aioresponses compatibility shim
-------------------------------
aioresponses 0.7.9 (the newest release) builds ``aiohttp.ClientResponse`` without the
``stream_writer`` argument that aiohttp 3.14 made required, so every mocked request fails with
``ClientResponse.__init__() missing ... 'stream_writer'`` (aioresponses issue #289, fix open
as PR #288). aiohttp 3.14.0 is a security release, so the package does not cap aiohttp;
instead the tests hand aioresponses a response class that supplies a stand-in writer.
Remove this shim once an aioresponses release with the fix is out.

A served local organization
---------------------------
The package's own Unpod server (``spacetasks_async.testing``), started in the test's event
loop, and clients bound to it:

- ``server``: one server for the whole test, as the nearest ``@pytest.mark.served(...)``
  configures it (any ``ServerConfig`` field; default :data:`DEFAULT_SERVED`);
- ``client``: a client of ``server``;
- ``serve``: a server and a client for one block, configured in the test (several in one
  test, or a configuration that depends on a parameter)::

      async with serve(seed=3, spaces=[1234], client={"retry": policy}) as (server, client):
          ...

A client gets the server's key, base URL and organization handle, and no retries unless
told otherwise (a failing answer shows at once instead of after backoff).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from unittest import mock

import aiohttp
import aioresponses.core
import pytest

from spacetasks_async import Client, RetryPolicy
from spacetasks_async.testing import UnpodServer


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


# -- a served local organization ------------------------------------------------------------

#: What ``server`` serves without a ``served`` marker: three spaces, one of them empty.
DEFAULT_SERVED: Mapping[str, Any] = {"seed": 1, "spaces": (120, 0, 45)}

#: The ``serve`` fixture: ``serve(client=None, **config)`` -> ``async with ... as (server,
#: client)``.
Serve = Callable[..., contextlib.AbstractAsyncContextManager[tuple[UnpodServer, Client]]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "served(**config): the local server the `server` fixture starts (ServerConfig "
        "fields, e.g. seed=1, spaces=[100, 0])",
    )


def bound_client(server: UnpodServer, **options: Any) -> Client:
    """A client of ``server`` (its key, base URL and org handle); no retries unless
    ``options`` (any ``Client`` keyword) say otherwise."""
    options.setdefault("retry", RetryPolicy.never())
    options.setdefault("org_handle", server.org_handle)
    return Client(server.api_key, base_url=server.base_url, **options)


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[UnpodServer]:
    """The test's local server, configured by its nearest ``served`` marker."""
    marker = request.node.get_closest_marker("served")
    config = marker.kwargs if marker is not None else DEFAULT_SERVED
    async with UnpodServer(**config) as served:
        yield served


@pytest.fixture
async def client(server: UnpodServer) -> AsyncIterator[Client]:
    """A client of ``server`` (see :func:`bound_client`), closed before the server."""
    async with bound_client(server) as bound:
        yield bound


@pytest.fixture
def serve() -> Serve:
    """A server and a client of it for one ``async with`` block (see the module's text)."""

    @contextlib.asynccontextmanager
    async def serving(
        *, client: Mapping[str, Any] | None = None, **config: Any
    ) -> AsyncIterator[tuple[UnpodServer, Client]]:
        async with UnpodServer(**config) as served, bound_client(served, **(client or {})) as bound:
            yield served, bound

    return serving
