"""The shared fixtures of conftest.py serve what they say."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from conftest import DEFAULT_SERVED  # tests/ is on sys.path

from spacetasks_async import Client, RetryPolicy, SpaceTasksError, TransportError
from spacetasks_async.testing import UnpodServer

if TYPE_CHECKING:
    from conftest import Serve


async def sizes_seen_by(client: Client) -> list[int]:
    """Tasks of each space of the organization, newest space first, as the client walks
    them (every task, not only the ``count`` the server announces)."""
    sizes = []
    async for space in client.iter_spaces():
        assert space.token is not None
        page = await client.get_page(space.token, page_size=1)
        walked = [task async for task in client.iter_tasks(space.token, page_size=100)]
        assert page.count == len(walked)
        sizes.append(len(walked))
    return sizes


@pytest.mark.served(seed=7, spaces=[3, 0, 250])
async def test_server_and_client_serve_the_marker_s_organization(
    server: UnpodServer, client: Client
) -> None:
    assert await sizes_seen_by(client) == [250, 0, 3]
    assert client.base_url == server.base_url and client.org_handle == server.org_handle
    assert client.retry == RetryPolicy.never()
    assert [len(server.expected_task_ids(t)) for t in server.space_tokens] == [3, 0, 250]


async def test_server_without_a_marker_serves_the_default(client: Client) -> None:
    assert await sizes_seen_by(client) == list(reversed(DEFAULT_SERVED["spaces"]))


async def test_serve_serves_its_configuration_for_one_block(serve: Serve) -> None:
    policy = RetryPolicy(max_attempts=2)
    async with serve(seed=8, spaces=[40, 7], client={"retry": policy}) as (server, client):
        assert await sizes_seen_by(client) == [7, 40]
        assert client.retry is policy
    with pytest.raises(SpaceTasksError, match="closed"):  # closed with its block
        await client.get_page(server.space_tokens[0])
    async with serve(seed=9, spaces=[5]) as (other, again):
        assert await sizes_seen_by(again) == [5]
    with pytest.raises(TransportError):  # and so was its server
        async with Client(other.api_key, base_url=other.base_url, retry=RetryPolicy.never()) as c:
            await c.get_page(other.space_tokens[0])
