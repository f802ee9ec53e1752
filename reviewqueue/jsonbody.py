"""JSON in and out of the API. Reading an untrusted body: size, syntax,
depth and text that the database would choke on, each refused with its own
clear error. Writing: orjson, in Django's formats."""

from __future__ import annotations

import json
import math

import orjson
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from ninja.parser import Parser

from .errors import BodyTooLarge, InvalidInput, MalformedJson


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


def parse_json_body(body: bytes) -> Any:
    limits = settings.REVIEWQUEUE
    if len(body) > limits["MAX_BODY_BYTES"]:
        raise BodyTooLarge(
            f"The body is {len(body):,} bytes; the limit is {limits['MAX_BODY_BYTES']:,}.",
            details={"limit_bytes": limits["MAX_BODY_BYTES"]},
        )
    try:
        value = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise InvalidInput(f"JSON nested deeper than {limits['MAX_JSON_DEPTH']} levels.") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, NaN, overlong integers
        raise MalformedJson(f"The body is not valid JSON: {exc}") from None
    if not _plainly_safe(body, max_depth=limits["MAX_JSON_DEPTH"]):
        check_json_value(value, max_depth=limits["MAX_JSON_DEPTH"])
    return value


def _plainly_safe(body: bytes, *, max_depth: int) -> bool:
    """Whether the bytes alone show what check_json_value would find: without
    escapes (\\u), NUL bytes (no UTF-16) or 0xED bytes (surrogates in UTF-8,
    which the parser lets through) no string can hold a NUL or a lone
    surrogate, and with no more brackets than `max_depth` nothing nests deeper."""
    return (
        b"\\u" not in body and b"\x00" not in body and b"\xed" not in body
        and body.count(b"{") + body.count(b"[") <= max_depth
    )


def check_json_value(value: Any, *, max_depth: int) -> None:
    """Refuse nesting over `max_depth` and strings PostgreSQL can't store
    (NUL characters, lone surrogates). Iterative: no recursion limit to hit."""
    stack = [(value, 1, "$")]
    while stack:
        item, depth, path = stack.pop()
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
            raise BodyTooLarge(f"The body is over {settings.REVIEWQUEUE['MAX_BODY_BYTES']:,} bytes.") from None
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
