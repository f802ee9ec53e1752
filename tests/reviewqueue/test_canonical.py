"""Canonical JSON is the stdlib's sorted, compact form byte for byte: every
stored hash (audit chain, approved payloads) was made with it."""

import json

import pytest

from reviewqueue.core.canonical import canonical_bytes, canonical_json, sha256_hex


def _stdlib(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [True, None, "x"], "é": {"z": "日本", "y": "\U0001f600"}},
        {"small": 1e-05, "tiny": 1.5e-07, "edge": 0.0001, "under": 9.9e-05, "big": 1e16, "huge": 1.2345678901234568e17},
        {"amount": 48000.0, "rate": 0.0123, "neg": -0.0, "third": 1 / 3},
        {"beyond 64 bits": 10**30, "negative": -(2**70)},
        {"text": 'line\nbreak\ttab "quoted" back\\slash \x01 \u2028', "a-e-": "one-off e-mail 0.0000"},
        [1e-7, 2.5e-300, 5e-324, 1.7976931348623157e308],
        {"\uffff": 1, "\U00010000": 2, "Z": 3, "a": 4},
    ],
)
def test_the_bytes_are_the_stdlibs(value):
    assert canonical_json(value) == _stdlib(value)
    assert canonical_bytes(value) == _stdlib(value).encode()


def test_what_the_stdlib_refuses_is_refused():
    from datetime import UTC, datetime

    with pytest.raises(TypeError):
        canonical_json({"at": datetime(2026, 11, 24, tzinfo=UTC)})


def test_keys_that_are_not_strings_are_written_as_the_stdlib_writes_them():
    assert canonical_json({2: "b", 1: "a"}) == _stdlib({2: "b", 1: "a"}) == '{"1":"a","2":"b"}'


def test_a_payload_hash_is_sha256_of_those_bytes():
    import hashlib

    payload = {"amount": 1e-05, "to": "acct_123"}
    assert sha256_hex(payload) == hashlib.sha256(_stdlib(payload).encode()).hexdigest()
