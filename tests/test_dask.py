"""spacetasks_async.dask: the harvest as a Dask DataFrame, one partition per space.

The local server runs in a thread of its own with its own event loop, for the length of a
test: Dask's schedulers (threads, and the worker processes of a LocalCluster) call it
from elsewhere, and an async test's loop may be blocked by ``compute``.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
pa = pytest.importorskip("pyarrow")

import cloudpickle  # noqa: E402 (dask's dependency: only after the skip above)
import dask  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from spacetasks_async import (  # noqa: E402
    ConfigurationError,
    InvalidArgumentError,
    SpaceAccessError,
    encode_task,
)
from spacetasks_async._formats import open_sink, parquet_schema  # noqa: E402
from spacetasks_async.dask import (  # noqa: E402
    ApiKey,
    frame_of_tasks,
    read_tasks,
    to_parquet,
    worker_slots,
)
from spacetasks_async.testing import UnpodServer  # noqa: E402

KEY = "upk_test_a-key-that-must-not-leak-0123456789"


@contextlib.contextmanager
def served(**config: Any) -> Iterator[UnpodServer]:
    """An UnpodServer serving from a background thread until the block ends."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        box["loop"], box["stop"] = asyncio.get_running_loop(), stop
        try:
            async with UnpodServer(**config) as server:
                box["server"] = server
                started.set()
                await stop.wait()
        finally:
            started.set()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    started.wait(10)
    try:
        if "server" not in box:
            raise RuntimeError("the local server did not start")
        yield box["server"]
    finally:
        if "loop" in box:
            box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)


@pytest.fixture(scope="module")
def server() -> Iterator[UnpodServer]:
    with served(seed=13, spaces=[130, 0, 45], api_key=KEY) as srv:
        yield srv


@pytest.fixture
def env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key in this process's environment: what the threads of the local scheduler read."""
    monkeypatch.setenv("UNPOD_API_KEY", KEY)
    monkeypatch.delenv("UNPOD_BASE_URL", raising=False)
    monkeypatch.delenv("UNPOD_ORG_HANDLE", raising=False)


def schema_dtypes() -> dict[str, Any]:
    return {field.name: pd.ArrowDtype(field.type) for field in parquet_schema()}


def partition_plans(df: Any) -> list[Any]:
    """The worker plan of each partition, read from the graph (the keyword ``plan``)."""
    graph = dict(df.__dask_graph__())
    plans = [
        task.kwargs["plan"]
        for key, task in sorted(graph.items(), key=lambda item: str(item[0]))
        if isinstance(key, tuple) and str(key[0]).startswith("unpod-tasks-")
    ]
    assert len(plans) == df.npartitions
    return plans


def sink_table(server: UnpodServer, path: Path) -> Any:
    """The server's tasks written by the Parquet sink (the CLI's dataset), as one table."""
    with open_sink(path) as sink:
        for token in server.space_tokens:
            sink.write(token, server.expected_tasks(token))
    return ds.dataset(path).to_table()


def by_task(table: Any) -> Any:
    return table.sort_by([("space_token", "ascending"), ("task_id", "ascending")])


# --- building the collection: nothing is fetched --------------------------------------------


def test_meta_is_built_from_the_schema_without_a_request(server: UnpodServer) -> None:
    before = server.stats.requests
    df = read_tasks(server.space_tokens, base_url=server.base_url, workers=2)
    assert df.npartitions == len(server.space_tokens)
    assert list(df.columns) == parquet_schema().names
    assert dict(df.dtypes) == schema_dtypes()
    assert df._meta.empty
    assert server.stats.requests == before  # no request to build it, nor to infer meta


def test_max_in_flight_and_rate_are_shared_by_the_running_partitions() -> None:
    tokens = [f"SPACE{i}" for i in range(5)]
    base = "http://127.0.0.1:9"
    plans = partition_plans(read_tasks(tokens, base_url=base, max_in_flight=10, rate=6, workers=3))
    assert {(p.max_in_flight, p.rate) for p in plans} == {(3, 2.0)}
    # Fewer spaces than workers: only two partitions run at once, each gets half.
    plans = partition_plans(read_tasks(tokens[:2], base_url=base, max_in_flight=10, workers=3))
    assert {(p.max_in_flight, p.rate) for p in plans} == {(5, None)}
    # At least one request each, however small the total.
    plans = partition_plans(read_tasks(tokens, base_url=base, max_in_flight=2, workers=4))
    assert {p.max_in_flight for p in plans} == {1}


def test_worker_slots_without_a_cluster_follow_dask_config() -> None:
    with dask.config.set(num_workers=7):
        assert worker_slots() == 7


def test_tokens_are_checked_and_deduplicated() -> None:
    base = "http://127.0.0.1:9"
    df = read_tasks(["A", "B", "A"], base_url=base, workers=1)
    assert df.npartitions == 2
    with pytest.raises(InvalidArgumentError, match="single str"):
        read_tasks("ORGORTOKEN", base_url=base)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        read_tasks(["good", "bad/token"], base_url=base)
    with pytest.raises(InvalidArgumentError):
        read_tasks(["A"], base_url=base, filters={"space_id": "x"})
    with pytest.raises(ConfigurationError):
        read_tasks(["A"], base_url=base, max_in_flight=0)
    with pytest.raises(ConfigurationError):
        read_tasks(["A"], base_url=base, rate=float("nan"))
    with pytest.raises(ConfigurationError):
        read_tasks(["A"], base_url="ftp://example.com")


def test_no_tokens_is_an_empty_frame_of_the_schema() -> None:
    df = read_tasks([], base_url="http://127.0.0.1:9")
    frame = df.compute(scheduler="sync")
    assert frame.empty
    assert dict(frame.dtypes) == schema_dtypes()


def test_listing_the_organization_needs_a_handle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNPOD_ORG_HANDLE", raising=False)
    with pytest.raises(ConfigurationError, match="org_handle"):
        read_tasks(None, api_key=KEY, base_url="http://127.0.0.1:9")


# --- credentials ---------------------------------------------------------------------------


def test_api_key_is_masked_and_its_token_is_not_derived_from_it() -> None:
    key = ApiKey(KEY)
    assert KEY not in repr(key)
    assert KEY not in str(key)
    assert KEY not in f"{key!r} {key}"
    assert key.reveal() == KEY
    copy = pickle.loads(pickle.dumps(key))
    assert copy.reveal() == KEY
    assert dask.base.tokenize(copy) == dask.base.tokenize(key)  # stable for one key object
    assert dask.base.tokenize(ApiKey(KEY)) != dask.base.tokenize(key)  # random, not a hash
    with pytest.raises(ConfigurationError):
        ApiKey("")
    with pytest.raises(ConfigurationError):
        ApiKey("two\nlines")


def graph_texts(df: Any) -> tuple[str, str, bytes]:
    graph = df.__dask_graph__()
    return repr(df.dask), str(dict(graph)), cloudpickle.dumps(dict(graph))


def test_the_default_key_is_read_on_the_worker_and_is_nowhere_in_the_graph(
    server: UnpodServer, env_key: None
) -> None:
    df = read_tasks(None, base_url=server.base_url, org_handle=server.org_handle)
    for text in graph_texts(df):
        assert (KEY.encode() if isinstance(text, bytes) else KEY) not in text
    plans = partition_plans(df)
    assert all(plan.api_key is None for plan in plans)
    assert KEY not in repr(plans) + str(df.expr) + repr(df)


def test_an_explicit_key_is_masked_in_reprs_and_names(server: UnpodServer) -> None:
    df = read_tasks(server.space_tokens, api_key=KEY, base_url=server.base_url)
    shown, as_str, pickled = graph_texts(df)
    assert KEY not in shown
    assert KEY not in as_str
    assert all(KEY not in str(key) for key in df.__dask_keys__())
    # Documented: an explicit key travels to the workers inside the pickled graph.
    assert KEY.encode() in pickled
    frame = df.compute(scheduler="sync")
    assert len(frame) == sum(len(server.expected_task_ids(t)) for t in server.space_tokens)


def test_a_worker_without_a_key_says_where_to_set_it(
    server: UnpodServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNPOD_API_KEY", raising=False)
    df = read_tasks(server.space_tokens[:1], base_url=server.base_url)
    with pytest.raises(ConfigurationError, match="UNPOD_API_KEY in the environment of every"):
        df.compute(scheduler="sync")


# --- rows ----------------------------------------------------------------------------------


def test_rows_are_the_parquet_sinks_rows(server: UnpodServer, tmp_path: Path) -> None:
    expected = sink_table(server, tmp_path / "sink.parquet")
    frames = [frame_of_tasks(t, server.expected_tasks(t)) for t in server.space_tokens]
    ours = pa.Table.from_pandas(pd.concat(frames), schema=parquet_schema(), preserve_index=False)
    assert by_task(ours).equals(by_task(expected))


def test_a_space_larger_than_one_chunk(
    server: UnpodServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import spacetasks_async.dask as module

    monkeypatch.setattr(module, "_CHUNK_ROWS", 7)
    token = server.space_tokens[0]
    tasks = server.expected_tasks(token)
    frame = frame_of_tasks(token, tasks)
    assert list(frame["task_id"]) == [t["task_id"] for t in tasks]
    assert dict(frame.dtypes) == schema_dtypes()


def test_threaded_scheduler_harvests_every_task_once(server: UnpodServer, env_key: None) -> None:
    df = read_tasks(server.space_tokens, base_url=server.base_url, page_size=20)
    parts = dask.compute(*df.to_delayed(), scheduler="threads")
    assert len(parts) == len(server.space_tokens)
    for token, part in zip(server.space_tokens, parts, strict=True):
        assert list(part["task_id"]) == server.expected_task_ids(token)  # server order, once
        assert set(part["space_token"]) <= {token}
        assert dict(part.dtypes) == schema_dtypes()


async def test_compute_from_a_running_event_loop(server: UnpodServer, env_key: None) -> None:
    # The synchronous scheduler runs the partition in this thread, whose loop is running.
    df = read_tasks(server.space_tokens[:1], base_url=server.base_url)
    frame = df.compute(scheduler="sync")
    assert list(frame["task_id"]) == server.expected_task_ids(server.space_tokens[0])


def test_a_failing_space_fails_the_computation(server: UnpodServer, env_key: None) -> None:
    df = read_tasks([server.space_tokens[0], server.no_access_tokens[0]], base_url=server.base_url)
    with pytest.raises(SpaceAccessError):
        df.compute(scheduler="threads")


def test_filters_and_max_items_reach_the_walk(server: UnpodServer, env_key: None) -> None:
    token = server.space_tokens[0]
    df = read_tasks([token], base_url=server.base_url, max_items_per_space=11, page_size=5)
    assert list(df.compute(scheduler="sync")["task_id"]) == server.expected_task_ids(token)[:11]


def test_frame_of_decoded_tasks_round_trips_through_encode_task(server: UnpodServer) -> None:
    from spacetasks_async import decode_task

    token = server.space_tokens[2]
    raw = server.expected_tasks(token)
    decoded = [encode_task(decode_task(task)) for task in raw]
    assert frame_of_tasks(token, decoded).equals(frame_of_tasks(token, raw))


# --- a cluster of two worker processes ---------------------------------------------------------


def test_local_cluster_of_two_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Latency, so that requests overlap and the cluster-wide ceiling is measurable.
    with served(seed=29, spaces=[240, 0, 90, 160], api_key=KEY, latency=0.01) as srv:
        # The workers are spawned with this environment: the key reaches them without the
        # graph (the default path).
        monkeypatch.setenv("UNPOD_API_KEY", KEY)
        monkeypatch.delenv("UNPOD_BASE_URL", raising=False)
        monkeypatch.setenv("UNPOD_ORG_HANDLE", srv.org_handle)
        with (
            distributed.LocalCluster(
                n_workers=2,
                processes=True,
                threads_per_worker=1,
                # Any free port: 8787 may be taken by another cluster (a warning, an error here).
                dashboard_address="127.0.0.1:0",
                worker_dashboard_address="127.0.0.1:0",
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            assert worker_slots() == 2
            df = read_tasks(None, base_url=srv.base_url, max_in_flight=4, page_size=20)
            assert sorted(plan.max_in_flight for plan in partition_plans(df)) == [2] * 4
            for text in graph_texts(df):
                assert (KEY.encode() if isinstance(text, bytes) else KEY) not in text

            srv.reset_stats()
            tokens = [srv.space_tokens[i] for i in (3, 2, 1, 0)]  # the list: newest first
            futures = client.compute(df.to_delayed())
            distributed.wait(futures)
            where = client.who_has(futures)
            assert len({address for held in where.values() for address in held}) == 2
            parts = client.gather(futures)
            assert 2 <= srv.stats.max_in_flight <= 4  # the total holds across the workers
            assert len(parts) == len(tokens)
            for token, part in zip(tokens, parts, strict=True):
                assert list(part["task_id"]) == srv.expected_task_ids(token)
                assert set(part["space_token"]) <= {token}
                assert dict(part.dtypes) == schema_dtypes()

            out = tmp_path / "dask.parquet"
            to_parquet(df, out)
            written = ds.dataset(out)
            assert written.schema.equals(parquet_schema())  # nullability and types
            assert written.schema.metadata[b"spacetasks_async.schema"] == b"1"
            plain = tmp_path / "plain.parquet"
            df.to_parquet(plain)
            plain_schema = pq.read_schema(next(plain.glob("*.parquet")))
            for field in parquet_schema():
                assert plain_schema.field(field.name).type == field.type
            table = written.to_table()

            # A failing partition with an explicit key: the error comes back, and what the
            # workers logged about the failed task shows the key masked, never in clear.
            failing = read_tasks(srv.no_access_tokens[:1], api_key=KEY, base_url=srv.base_url)
            with pytest.raises(SpaceAccessError):
                failing.compute()
            logs = str(client.get_worker_logs()) + str(client.get_scheduler_logs())
            assert "Compute Failed" in logs
            assert KEY not in logs

        expected = sink_table(srv, tmp_path / "cli.parquet")
        assert by_task(table).equals(by_task(expected))  # the CLI's dataset, row for row
