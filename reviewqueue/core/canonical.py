"""Canonical JSON: the one byte form we hash (sorted keys, no spaces).

The form is the stdlib's `json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`, which every stored hash was made with. orjson writes
the same bytes several times faster, except for floats below 1e-4 (0.00001
and 1e-7 where the stdlib writes 1e-05 and 1e-07), integers beyond 64 bits
and keys that are not strings; values with those, or whose output merely
contains "e-" or "0.0000", go through the stdlib. A NaN or an infinity, which
no API input can hold, is refused by the stdlib but written as null by
orjson, as the database stores it.
"""

import hashlib
import json
from typing import Any

import orjson

# Datetimes and dataclasses are refused by the stdlib, and so here.
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _fast(value: Any) -> bytes | None:
    """orjson's bytes, or None where they may differ from the stdlib's."""
    try:
        out = orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return None
    return None if b"e-" in out or b"0.0000" in out else out


def _stdlib(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(value: Any) -> str:
    out = _fast(value)
    return _stdlib(value) if out is None else out.decode()


def canonical_bytes(value: Any) -> bytes:
    out = _fast(value)
    return _stdlib(value).encode() if out is None else out


def sha256_hex(value: Any) -> str:
    return hashlib.sha256(canonical_bytes(value)).hexdigest()
