"""Hostile servers and proxies, and hostile configuration: bounded, typed, never silent.

This part: what a server quotes back is scrubbed of the API key and credentials.
"""

from __future__ import annotations

import html
import json
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from spacetasks_async._errors import SecretScrubber, mask_secrets

KEY = "sk-live-h0st1le-9f8e7d6c5b4a"

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
    assert KEY not in repr(SecretScrubber([KEY]))
