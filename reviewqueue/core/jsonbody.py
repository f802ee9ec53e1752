"""JSON in and out of the API. Reading an untrusted body: size, syntax,
depth and text that the database would choke on, each refused with its own
clear error. Writing: orjson, in Django's formats."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from ninja.parser import Parser

from reviewqueue.core.errors import (
    BodyTooLarge,
    DuplicateKey,
    InvalidInput,
    MalformedJson,
)

# Integers are kept exactly at any size Python's parser reads (4,300 digits;
# answers past 64 bits go through the stdlib), but one beyond the range of a
# double (about 1.8e308) is refused: no other JSON reader can hold it even
# approximately, and the risk router could not compare it with a threshold.
FLOAT_DIGITS = 308


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


class _IntegerTooLarge(ValueError):
    pass


def _bounded_int(text: str) -> int:
    value = int(text)  # over 4,300 digits this raises ValueError: malformed, as before
    if len(text) > FLOAT_DIGITS and not _fits_a_double(value):
        raise _IntegerTooLarge
    return value


def _fits_a_double(value: int) -> bool:
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """Builds each object; a key named twice is an error, not "the last one wins".
    One C-level dict() per object: cheaper than any check that could rule
    duplicates out from the bytes (measured: about 0.5 µs per object)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                shown = printable(key[:100])
                raise DuplicateKey(
                    f"The key {shown!r} appears more than once in one object; send each key once.",
                    details={"key": shown},
                )
            seen.add(key)
    return value


def printable(text: str) -> str:
    """`text` safe to echo in an error: no NUL, no unpaired surrogate."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")


def body_too_large(size: int | None = None) -> BodyTooLarge:
    limit = settings.REVIEWQUEUE["MAX_BODY_BYTES"]
    said = f"is {size:,} bytes" if size is not None else "is too large"
    return BodyTooLarge(f"The body {said}; the limit is {limit:,} bytes.", details={"limit_bytes": limit})


def parse_json_body(body: bytes) -> Any:
    limits: dict[str, Any] = settings.REVIEWQUEUE
    if len(body) > limits["MAX_BODY_BYTES"]:
        raise body_too_large(len(body))
    try:
        value = json.loads(
            body,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:
        raise InvalidInput(f"JSON nested deeper than {limits['MAX_JSON_DEPTH']} levels.") from None
    except _IntegerTooLarge:
        raise _integer_too_large(body) from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, NaN, integers over 4,300 digits
        raise MalformedJson(f"The body is not valid JSON: {exc}") from None
    if not _plainly_safe(body, max_depth=limits["MAX_JSON_DEPTH"]):
        check_json_value(value, max_depth=limits["MAX_JSON_DEPTH"])
    return value


def _integer_too_large(body: bytes) -> InvalidInput:
    """The error for an integer beyond 64 bits, naming where it is (the
    error path only: parse again without the bound and find it)."""
    try:
        check_json_value(
            json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float),
            max_depth=int(settings.REVIEWQUEUE["MAX_JSON_DEPTH"]),
            integers=True,
        )
    except InvalidInput as exc:
        return exc
    except (ValueError, RecursionError):
        pass
    return InvalidInput("An integer in the body is beyond the range of a JSON number; send it as a string.")


def _plainly_safe(body: bytes, *, max_depth: int) -> bool:
    """Whether the bytes alone show what check_json_value would find: without
    escapes (\\u), NUL bytes (no UTF-16) or 0xED bytes (surrogates in UTF-8,
    which the parser lets through) no string can hold a NUL or a lone
    surrogate, and with no more brackets than `max_depth` nothing nests deeper."""
    return (
        b"\\u" not in body
        and b"\x00" not in body
        and b"\xed" not in body
        and body.count(b"{") + body.count(b"[") <= max_depth
    )


def check_json_value(value: Any, *, max_depth: int, integers: bool = False) -> None:
    """Refuse nesting over `max_depth` and strings PostgreSQL can't store
    (NUL characters, lone surrogates), and with `integers` any integer beyond
    a double's range. Iterative: no recursion limit to hit."""
    stack = [(value, 1, "$")]
    while stack:
        item, depth, path = stack.pop()
        if integers and type(item) is int and not _fits_a_double(item):
            raise InvalidInput(
                f"The integer at {printable(path)} has {len(str(abs(item))):,} digits, beyond the range of a JSON "
                "number (about 1.8e308): send it as a string.",
                details={"path": printable(path)},
            )
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise InvalidInput(f"JSON nested deeper than {max_depth} levels at {path}.", details={"path": path})
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key, path)
                    stack.append((child, depth + 1, f"{path}.{key[:40]}"))
            else:
                stack.extend((child, depth + 1, f"{path}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, str):
            _check_text(item, path)


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise InvalidInput(f"Text at {path} contains a NUL character.", details={"path": path})
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"Text at {path} contains an unpaired surrogate.", details={"path": path}) from None


class StrictJsonParser(Parser):
    def parse_body(self, request):
        try:
            body = request.body
        except RequestDataTooBig:
            raise body_too_large() from None
        value = parse_json_body(body)
        if not isinstance(value, dict):
            raise InvalidInput("The body must be a JSON object.")
        return value


_django_default = DjangoJSONEncoder().default


def json_bytes(value: Any) -> bytes:
    """`value` as UTF-8 JSON, datetimes as Django writes them (milliseconds,
    "Z"). orjson is some ten times faster than the stdlib on an action; it
    refuses integers beyond 64 bits, which an agent's payload may hold, and
    those go through the stdlib."""
    try:
        return orjson.dumps(value, default=_django_default, option=orjson.OPT_PASSTHROUGH_DATETIME)
    except orjson.JSONEncodeError:
        return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":")).encode()


def json_response(value: Any, *, status: int = 200) -> HttpResponse:
    return HttpResponse(json_bytes(value), status=status, content_type="application/json")
