"""Hostile servers and proxies, and hostile configuration: bounded, typed, never silent.

Each test runs a tiny aiohttp server on 127.0.0.1 (ephemeral port) that misbehaves in one
way: a body that never ends, drips, inflates to gigabytes or announces terabytes; an error
page that quotes the request's ``Authorization`` header back. Ceilings are small so that
the suite stays fast; no test sleeps to synchronise (the drip server's pauses are the
behaviour under test).
"""

from __future__ import annotations

import ast
import asyncio
import html
import inspect
import json
import logging
import subprocess
import sys
import time
import traceback
import tracemalloc
import urllib.parse
import warnings
import zlib
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as hs

import spacetasks_async as st
import spacetasks_async._client as client_module
import spacetasks_async._validate as validate_module
from spacetasks_async import Client, RetryPolicy
from spacetasks_async._errors import SecretScrubber, mask_secrets
from spacetasks_async._validate import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_IN_FLIGHT,
    MAX_SPACE_TOKEN_CHARS,
    validate_limit,
)

KEY = "sk-live-h0st1le-9f8e7d6c5b4a"
# Every character here is escaped by some layer (JSON, HTML, URLs) when a server echoes it.
ODD_KEY = 'k3y+/=&<">\\~%!Zq'
TOKEN = "8KZAMRAHSXXXXXXMAYNASMJC"
KIB = 1024
MIB = 1024 * 1024

Handler = Callable[[web.Request, "Hostile"], Awaitable[web.StreamResponse]]


class Hostile:
    """One misbehaving aiohttp server on 127.0.0.1, serving ``handler`` for every GET.

    ``release`` is set when the test leaves the block: handlers that hold a connection
    open wait on it. ``hung_up`` is set by a handler that saw the client go away.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.release = asyncio.Event()
        self.hung_up = asyncio.Event()
        self.requests: list[web.Request] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        return await self._handler(request, self)

    async def __aenter__(self) -> Hostile:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release.set()
        assert self._runner is not None
        await self._runner.cleanup()


async def no_sleep(_: float) -> None:
    return None


def client_for(server: Hostile, key: str = KEY, **kw: Any) -> Client:
    kw.setdefault("retry", RetryPolicy.never())
    return Client(key, base_url=server.base_url, sleep=no_sleep, **kw)


async def stream_forever(
    request: web.Request, server: Hostile, chunk: bytes, *, pause: float = 0.0, **headers: str
) -> web.StreamResponse:
    """Send ``chunk`` again and again until the client hangs up (then set ``hung_up``)."""
    resp = web.StreamResponse(headers={"Content-Type": "application/json", **headers})
    await resp.prepare(request)
    try:
        while not server.release.is_set():
            await resp.write(chunk)
            if pause:
                await asyncio.sleep(pause)
    except ConnectionError:
        server.hung_up.set()
    return resp


@pytest.fixture
def traced_peak() -> Iterator[Callable[[], int]]:
    """Peak bytes allocated by Python (``tracemalloc``) from now until the call."""
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    tracemalloc.reset_peak()
    yield lambda: tracemalloc.get_traced_memory()[1]
    if not already:
        tracemalloc.stop()


def page_json(size: int) -> bytes:
    """A valid empty page, padded with spaces to exactly ``size`` bytes."""
    body = b'{"count": 0, "status_code": 200, "message": "ok", "data": []}'
    return body + b" " * (size - len(body))


# -- body size ceiling -----------------------------------------------------------------------


async def test_a_content_length_above_the_ceiling_fails_at_once_and_is_not_retried() -> None:
    async def announce_a_terabyte(request: web.Request, server: Hostile) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 10**12
        await resp.prepare(request)
        await resp.write(b'{"count": 1, ')
        await server.release.wait()  # the rest never comes: reading it would time out
        return resp

    async with Hostile(announce_a_terabyte) as server:
        retry = RetryPolicy(max_attempts=3)
        async with client_for(server, max_body_bytes=64 * KIB, timeout=30, retry=retry) as c:
            with pytest.raises(st.ResponseTooLargeError) as info:
                await c.get_page(TOKEN, page=2)
        assert len(server.requests) == 1
    exc = info.value
    assert isinstance(exc, st.ProtocolError) and not exc.transient
    assert exc.limit == 64 * KIB and exc.content_length == 10**12 and exc.received is None
    assert "max_body_bytes" in str(exc) and str(64 * KIB) in str(exc)
    assert exc.status == 200 and exc.space_token == TOKEN and exc.page == 2


async def test_an_endless_chunked_body_stops_at_the_ceiling_and_the_connection_is_dropped() -> None:
    async def endless(request: web.Request, server: Hostile) -> web.StreamResponse:
        return await stream_forever(request, server, b"[" * (64 * KIB))

    async with Hostile(endless) as server:
        async with client_for(server, max_body_bytes=256 * KIB, retry=RetryPolicy()) as c:
            with pytest.raises(st.ResponseTooLargeError) as info:
                await c.get_page(TOKEN)
        # The client hung up instead of draining the body.
        await asyncio.wait_for(server.hung_up.wait(), 10)
        assert len(server.requests) == 1  # not retried: the same request gets the same body
    exc = info.value
    assert exc.received is not None and 256 * KIB < exc.received <= 256 * KIB + MIB
    assert exc.content_length is None


def _bomb_units(encoding: str) -> tuple[bytes, bytes]:
    """The start of a compressed stream of zeros, and a unit that inflates to 1 MiB more.

    After a full flush the compressor starts afresh, so one unit can be sent again and again:
    about 1 KiB on the wire per MiB inflated, without compressing gigabytes in the test.
    """
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = bytes(MIB)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    unit = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    return first, unit


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "chunked"])
async def test_a_compression_bomb_stops_at_the_ceiling_with_memory_bounded(
    encoding: str, announced: bool, traced_peak: Callable[[], int]
) -> None:
    first, unit = _bomb_units(encoding)
    units = 4096  # 4 GiB inflated, about 4 MiB on the wire

    async def bomb(request: web.Request, server: Hostile) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "application/json", "Content-Encoding": encoding}
        )
        if announced:  # honest about the wire size, which is far under the ceiling
            resp.content_length = len(first) + 63 * len(unit)
        await resp.prepare(request)
        try:
            await resp.write(first)
            for _ in range(63 if announced else units):
                await resp.write(unit)
        except ConnectionError:
            server.hung_up.set()
        return resp

    async with Hostile(bomb) as server:
        async with client_for(server, max_body_bytes=2 * MIB) as c:
            with pytest.raises(st.ResponseTooLargeError) as info:
                await c.get_page(TOKEN)
    exc = info.value
    # Decompressed bytes were counted: the wire size alone never passed the ceiling.
    assert exc.received is not None and 2 * MIB < exc.received <= 2 * MIB + 4 * MIB
    # Memory stayed within tens of MiB of the ceiling, while the body inflates to 64 MiB
    # (announced) or 4 GiB (chunked).
    assert traced_peak() < 2 * MIB + 24 * MIB


_RSS_SCRIPT = """
import asyncio, resource, zlib
from aiohttp import web
import spacetasks_async as st

MIB = 1024 * 1024
compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
FIRST = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
UNIT = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)

async def bomb(request):
    resp = web.StreamResponse(headers={"Content-Encoding": "gzip"})
    await resp.prepare(request)
    try:
        await resp.write(FIRST)
        for _ in range(4096):  # 4 GiB inflated
            await resp.write(UNIT)
    except ConnectionError:
        pass
    return resp

async def main():
    app = web.Application()
    app.router.add_get("/{tail:.*}", bomb)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = "http://127.0.0.1:%d" % runner.addresses[0][1]
    async with st.Client("k", base_url=base, max_body_bytes=2 * MIB) as client:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            await client.get_page("TOKEN")
        except st.ResponseTooLargeError as exc:
            received = exc.received
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    await runner.cleanup()
    print(before, after, received)

asyncio.run(main())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_a_gzip_bomb_leaves_the_peak_rss_of_a_fresh_process_tens_of_mib_over_the_ceiling() -> None:
    # A fresh process, so that the peak RSS is this request's and not the test session's.
    done = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    before, after, received = map(int, done.stdout.split())
    assert 2 * MIB < received <= 6 * MIB
    assert (after - before) * KIB < 64 * MIB  # the body inflates to 4 GiB


@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "chunked"])
async def test_a_body_exactly_at_the_ceiling_is_read_and_one_byte_more_is_refused(
    announced: bool,
) -> None:
    async def sized(request: web.Request, server: Hostile) -> web.StreamResponse:
        size = int(request.query["page_size"]) * KIB + int(request.query["page"]) - 1
        if announced:
            return web.Response(body=page_json(size), content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(page_json(size))
        await resp.write_eof()
        return resp

    async with Hostile(sized) as server:
        async with client_for(server, max_body_bytes=4 * KIB) as c:
            page = await c.get_page(TOKEN, page=1, page_size=4)  # exactly 4 KiB
            assert page.tasks == ()
            with pytest.raises(st.ResponseTooLargeError) as info:
                await c.get_page(TOKEN, page=2, page_size=4)  # 4 KiB and one byte
    assert info.value.limit == 4 * KIB


@pytest.mark.parametrize("pause", [0.02, None], ids=["dripping", "stalled"])
async def test_a_dripping_or_stalled_body_ends_within_the_request_timeout(
    pause: float | None,
) -> None:
    async def slow(request: web.Request, server: Hostile) -> web.StreamResponse:
        if pause is not None:
            return await stream_forever(request, server, b" ", pause=pause)
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b'{"count": ')
        await server.release.wait()
        return resp

    async with Hostile(slow) as server:
        async with client_for(server, timeout=0.3) as c:  # the default (huge) ceiling
            started = time.monotonic()
            with pytest.raises(st.RequestTimeoutError) as info:
                await c.get_page(TOKEN)
            elapsed = time.monotonic() - started
    assert elapsed < 0.3 + 2.0  # bounded by the timeout, whatever the body does
    assert info.value.__context__ is None


@pytest.mark.parametrize(
    ("value", "what"),
    [
        (0, "from 1024 to"),
        (1023, "from 1024 to"),
        (16 * 1024**3 + 1, "got 17179869185"),
        (True, "not bool"),
        (2.5, "not float"),
        ("64MiB", "not str"),
    ],
)
def test_max_body_bytes_is_bounded(value: Any, what: str) -> None:
    with pytest.raises(st.ConfigurationError, match="max_body_bytes") as info:
        Client(KEY, max_body_bytes=value)
    assert what in str(info.value)


def test_the_default_body_ceiling_is_far_above_a_real_page() -> None:
    client = Client(KEY)
    assert client.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 64 * MIB
    assert "max_body_bytes" in (Client.__doc__ or "")


# -- secrets echoed by a server --------------------------------------------------------------


def _auth(request: web.Request) -> str:
    return request.headers["Authorization"]


def _key(request: web.Request) -> str:
    return _auth(request).split(" ", 1)[1]


async def _html_500(request: web.Request) -> web.Response:
    auth = html.escape(_auth(request))
    page = (
        "<html><body><h1>Server Error (500)</h1><pre>GET /api/v2/... HTTP/1.1\n"
        f"Authorization: {auth}\nAccept: application/json</pre>"
        f"<table><tr><td>Authorization</td><td>{auth}</td></tr></table></body></html>"
    )
    return web.Response(status=500, text=page, content_type="text/html")


async def _message_206(request: web.Request) -> web.Response:
    auth = _auth(request)
    body = {
        "status_code": 206,
        "message": f"Tasks Fetch Failed for {auth}",
        "data": {"errors": f"backend refused {auth}"},
        "errors": f"backend refused {auth}",
    }
    return web.json_response(body, status=206)


async def _json_400(request: web.Request) -> web.Response:
    auth, key = _auth(request), _key(request)
    body = {
        "status_code": 400,
        "message": f"bad request, headers were Authorization: {auth}",
        "data": {"auth": auth, "bearer": f"Bearer {key}", "authorization": auth},
    }
    return web.json_response(body, status=400)


async def _bare_key_401(request: web.Request) -> web.Response:
    return web.json_response({"detail": f"the key {_key(request)} is not valid"}, status=401)


async def _escaped_key_500(request: web.Request) -> web.Response:
    spelled = "".join(f"\\u{ord(ch):04x}" for ch in _key(request))
    return web.Response(status=502, text=f'{{"message": "upstream said {spelled}"}}')


async def _html_200(request: web.Request) -> web.Response:
    key = _key(request)
    page = (
        f"<html><p>Signed in with {html.escape(key)}</p>"
        f"<a href='/logout?k={urllib.parse.quote(key)}'>out</a></html>"
    )
    return web.Response(text=page, content_type="text/html")


async def _wrong_shape_200(request: web.Request) -> web.Response:
    body = {"status_code": 200, "count": 1, "data": {"echo": {"auth": _auth(request)}}}
    return web.json_response(body)


async def _redirect(request: web.Request) -> web.Response:
    target = f"https://login.example/?next=%2Fx&key={urllib.parse.quote(_key(request), safe='')}"
    return web.Response(status=302, headers={"Location": target})


async def _too_large(request: web.Request) -> web.Response:
    return web.Response(text=f"Authorization: {_auth(request)} " + "x" * 9000)


Responder = Callable[[web.Request], Awaitable[web.Response]]
# (name, answer, error raised, whether it is retried: a retry logs and emits an event)
ECHOES: list[tuple[str, Responder, type[Exception], bool]] = [
    ("html 500", _html_500, st.ServerError, True),
    ("206 message", _message_206, st.BackendFailureError, True),
    ("400 json", _json_400, st.BadRequestError, False),
    ("401 bare key", _bare_key_401, st.AuthenticationError, False),
    ("502 unicode escapes", _escaped_key_500, st.ServerError, True),
    ("200 html", _html_200, st.ProtocolError, True),
    ("200 wrong shape", _wrong_shape_200, st.ProtocolError, False),
    ("302 location", _redirect, st.HTTPStatusError, False),
    ("too large", _too_large, st.ResponseTooLargeError, False),
]


def _texts(exc: BaseException) -> list[str]:
    """Every text an exception shows: str, repr, attributes, and the printed traceback."""
    texts = ["".join(traceback.format_exception(exc))]
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen), repr(vars(seen)), repr(seen.args)]
        seen = seen.__cause__ or seen.__context__
    return texts


@pytest.mark.parametrize("key", [KEY, ODD_KEY], ids=["plain key", "odd key"])
@pytest.mark.parametrize(
    ("respond", "error", "retried"), [e[1:] for e in ECHOES], ids=[e[0] for e in ECHOES]
)
async def test_a_server_echoing_the_key_never_gets_it_into_an_error_log_or_event(
    key: str,
    respond: Responder,
    error: type[Exception],
    retried: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    async def echo(request: web.Request, server: Hostile) -> web.StreamResponse:
        assert request.headers["Authorization"] == f"Token {key}"  # it was really sent
        return await respond(request)

    events: list[st.RetryEvent] = []
    async with Hostile(echo) as server:
        policy = RetryPolicy(max_attempts=2, initial_wait=0)
        async with client_for(
            server, key, retry=policy, on_retry=events.append, max_body_bytes=8 * KIB
        ) as c:
            with pytest.raises(error) as info:
                await c.get_page(TOKEN)
    texts = _texts(info.value)
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(e) for e in events] + [str(e.error) for e in events]
    for text in texts:
        assert key.lower() not in text.lower()
        assert urllib.parse.quote(key, safe="") not in text
    assert type(info.value) is error
    # A retried answer went through the retry event and the INFO log line too.
    assert len(events) == (1 if retried else 0)
    assert any("retrying" in r.getMessage() for r in caplog.records) == retried


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1%s\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\n",
        b"Authorization: Token %s\r\n\r\n",
    ],
    ids=["bad content-length", "bad chunk size", "bad status line"],
)
async def test_a_malformed_answer_quoting_the_key_is_a_scrubbed_transport_error(
    raw: bytes,
) -> None:
    # aiohttp quotes the offending bytes in its parser errors; they come from the server.
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(raw % KEY.encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Client(KEY, base_url=f"http://127.0.0.1:{port}", retry=RetryPolicy.never()) as c:
            with pytest.raises(st.TransportError) as info:
                await c.get_page(TOKEN)
    finally:
        server.close()
        await server.wait_closed()
    for text in _texts(info.value):
        assert KEY not in text
    assert info.value.__context__ is None  # aiohttp's error holds the request headers
    assert "\n" not in str(info.value)  # a server cannot forge log lines


MASKED: list[tuple[str, str]] = [
    ("Authorization: Token SECRETVALUE1", "Authorization: ***"),
    ('"auth": "Token SECRETVALUE1"', '"auth": ***'),
    ('"bearer": "Bearer SECRETVALUE1"', '"bearer": ***'),
    ('{"Authorization": "JWT SECRETVALUE1"}', '{"Authorization": ***}'),
    ("for token SECRETVALUE1 here", "for token *** here"),
    ("BEARER SECRETVALUE1", "BEARER ***"),
    ("jwt SECRETVALUE1", "jwt ***"),
    ("Authorization: Basic U0VDUkVUVkFMVUUx", "Authorization: ***"),
    ("HTTP_AUTHORIZATION='Token SECRETVALUE1'", "HTTP_AUTHORIZATION=***"),
    ("x-auth-token=SECRETVALUE1&a=1", "x-auth-token=***&a=1"),
    (
        "<td>Authorization</td><td>Token SECRETVALUE1</td>",
        "<td>Authorization</td><td>Token ***</td>",
    ),
    ("author: Jane Doe", "author: Jane Doe"),
    ("Invalid Space Token", "Invalid Space Token"),
    ("Invalid token.", "Invalid token."),
    ("a\x1b[2Jb\r\nc", "a\ufffd[2Jb  c"),
]


@pytest.mark.parametrize(("text", "expected"), MASKED, ids=[m[0] for m in MASKED])
def test_credential_forms_and_secret_keys_are_masked(text: str, expected: str) -> None:
    assert mask_secrets(text) == expected


_KEY_CHARS = hs.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="*")


@settings(max_examples=300, deadline=None)
@given(
    key=hs.text(_KEY_CHARS, min_size=6, max_size=40),
    before=hs.text(max_size=30),
    after=hs.text(max_size=30),
    spelling=hs.sampled_from(["raw", "upper", "percent", "html", "json", "unicode", "token"]),
)
def test_the_scrubber_removes_the_key_in_any_spelling(
    key: str, before: str, after: str, spelling: str
) -> None:
    spelled = {
        "raw": key,
        "upper": key.upper(),
        "percent": urllib.parse.quote(key, safe=""),
        "html": html.escape(key),
        "json": json.dumps(key)[1:-1],
        "unicode": "".join(f"\\u{ord(ch):04x}" for ch in key),
        "token": f"Token {key}",
    }[spelling]
    scrubbed = SecretScrubber([key])(before + spelled + after)
    assert key.lower() not in scrubbed.lower()


def test_the_scrubber_never_shows_its_secrets() -> None:
    scrubber = SecretScrubber([KEY])
    assert KEY not in repr(scrubber)
    client = Client(KEY)
    assert KEY not in repr(vars(client))


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "sk-secret-part\n",
        "sk-secret-part\x00",
        "sk-secret-part\x7f",
        "sk-secret-part\x85",  # a C1 control character
        "sk-secret-part\u00e9",
        "sk-secret part",
        "sk-secret-part" * 100,
    ],
    ids=["newline", "nul", "del", "c1", "non-ascii", "space", "too long"],
)
def test_an_api_key_that_cannot_be_a_header_is_refused_without_being_quoted(key: str) -> None:
    with pytest.raises(st.ConfigurationError, match="API key") as info:
        Client(key)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize("org", ["acme\r\nX-Evil: 1", "acm\u00e9", "ac me", "\x9bacme", "a" * 2000])
def test_an_org_handle_that_cannot_be_a_header_is_refused(org: str) -> None:
    with pytest.raises(st.ConfigurationError, match="org_handle"):
        Client(KEY, org_handle=org)


@pytest.mark.parametrize(
    "base_url",
    [
        "https://unpod.test/?api_key=QSECRET",
        "https://unpod.test?",
        "https://unpod.test/#QSECRET",
        "https://unpod.test/prefix;QSECRET",
        "https://user@unpod.test",
        "https://user:QSECRET@unpod.test",
        "ftp://unpod.test",
        "unpod.test",
        "https://",
        "https://unpod.test:99999",
        "https://unpod.test/pre fix",
        "https://unpod.test/\x00",
    ],
)
def test_a_base_url_must_be_scheme_host_port_and_path_prefix_only(base_url: str) -> None:
    with pytest.raises(st.ConfigurationError, match="base_url") as info:
        Client(KEY, base_url=base_url)
    assert "QSECRET" not in str(info.value)


async def test_a_base_url_path_prefix_is_kept() -> None:
    async def prefixed(request: web.Request, server: Hostile) -> web.StreamResponse:
        return web.Response(body=page_json(100), content_type="application/json")

    async with Hostile(prefixed) as server:
        async with Client(KEY, base_url=f"{server.base_url}/unpod/") as c:
            assert c.base_url == f"{server.base_url}/unpod"
            await c.get_page(TOKEN)
        [request] = server.requests
    assert request.path == f"/unpod/api/v2/platform/spaces/{TOKEN}/tasks/"


@pytest.mark.parametrize(
    "base_url",
    [
        "http://unpod.example",
        "http://10.1.2.3:8000",
        "http://[2001:db8::1]/api",
        "http://127.example",
    ],
)
def test_plain_http_to_another_host_warns_once_per_client(base_url: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Client(KEY, base_url=base_url)
        Client(KEY, base_url=base_url)
    assert [w.category for w in caught] == [st.InsecureTransportWarning] * 2
    assert "in clear" in str(caught[0].message) and KEY not in str(caught[0].message)
    assert caught[0].filename == __file__  # points at the caller, not the library
    with pytest.warns(st.InsecureTransportWarning):
        Client(KEY, base_url=base_url)


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8080",
        "http://127.8.9.10",
        "http://[::1]:9000",
        "http://[::ffff:127.0.0.1]",
        "http://localhost:8000",
        "http://LOCALHOST.",
        "http://api.localhost",
        "https://unpod.example",
    ],
)
def test_loopback_or_https_does_not_warn(base_url: str) -> None:
    Client(KEY, base_url=base_url)  # pytest turns any warning into an error


@pytest.mark.parametrize(
    ("value", "what"),
    [(0, "got 0"), (MAX_IN_FLIGHT + 1, "got 257"), (True, "not bool"), (8.0, "not float")],
)
def test_max_in_flight_is_bounded(value: Any, what: str) -> None:
    with pytest.raises(st.ConfigurationError, match="max_in_flight must be") as info:
        Client(KEY, max_in_flight=value)
    assert f"from 1 to {MAX_IN_FLIGHT}" in str(info.value) and what in str(info.value)


async def test_the_largest_max_in_flight_fits_a_1024_descriptor_process() -> None:
    assert MAX_IN_FLIGHT <= 256
    async with Client(KEY, max_in_flight=MAX_IN_FLIGHT) as c:
        session = c._ensure_session()
        assert session.connector is not None and session.connector.limit <= MAX_IN_FLIGHT
    default = inspect.signature(Client).parameters["max_in_flight"].default
    assert default <= 64


@pytest.mark.parametrize(
    ("kw", "what"),
    [
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"timeout": True}, "timeout"),
        ({"rate": float("nan")}, "rate"),
        ({"rate": -1}, "rate"),
    ],
)
def test_timeouts_and_rate_must_be_positive_finite_numbers(kw: dict[str, Any], what: str) -> None:
    with pytest.raises(st.ConfigurationError, match=what):
        Client(KEY, **kw)


def test_validate_limit_names_the_argument_and_both_bounds() -> None:
    assert validate_limit("window", 64, 1, 64) == 64
    with pytest.raises(st.InvalidArgumentError, match=r"window must be from 1 to 64, got 65"):
        validate_limit("window", 65, 1, 64)
    with pytest.raises(st.InvalidArgumentError, match=r"window must be an int .* not bool"):
        validate_limit("window", False, 0, 64)
    with pytest.raises(st.ConfigurationError, match="concurrency"):
        validate_limit("concurrency", -1, 1, 8, error=st.ConfigurationError)


@pytest.mark.parametrize(
    ("token", "what"),
    [
        ("A" * (MAX_SPACE_TOKEN_CHARS + 1), f"at most {MAX_SPACE_TOKEN_CHARS}"),
        ("AB CD", "a space (U+0020)"),
        ("ABC\u00e9", "a non-ASCII character (U+00E9)"),
        ("ABC\x85", "a control character (U+0085)"),
        ("ABC\x7f", "control"),
        ("\tABC", "control"),
    ],
)
async def test_space_tokens_are_bounded_and_visible_ascii(token: str, what: str) -> None:
    async def never(request: web.Request, server: Hostile) -> web.StreamResponse:
        raise AssertionError("no request may be sent")

    async with Hostile(never) as server:
        async with client_for(server) as c:
            with pytest.raises(st.InvalidArgumentError, match="space_token") as info:
                await c.get_page(token)
            assert what in str(info.value)
            assert "A" * 100 not in str(info.value)  # a huge token is not quoted back
        assert server.requests == []


async def test_a_token_of_the_largest_length_is_sent() -> None:
    async def empty(request: web.Request, server: Hostile) -> web.StreamResponse:
        return web.Response(body=page_json(100), content_type="application/json")

    async with Hostile(empty) as server:
        async with client_for(server) as c:
            await c.get_page("A" * MAX_SPACE_TOKEN_CHARS)
        assert len(server.requests) == 1


def test_the_validators_live_in_a_leaf_module_and_keep_their_old_home() -> None:
    for name in ("validate_space_token", "validate_page", "validate_page_size"):
        assert getattr(client_module, name) is getattr(validate_module, name)
        assert name in client_module.__all__
    assert client_module.MAX_PAGE_SIZE == validate_module.MAX_PAGE_SIZE == st.MAX_PAGE_SIZE
    tree = ast.parse(inspect.getsource(validate_module))
    relative = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
    assert relative == ["_errors"]


def test_the_client_no_longer_pauses_the_garbage_collector() -> None:
    assert "gc_paused" not in vars(client_module)
    assert "gc." not in inspect.getsource(client_module)
