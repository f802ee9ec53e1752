"""Splitting action types and tool names the way agents write them."""

import re
from functools import lru_cache

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def split_identifier(name: str) -> list[str]:
    """`GmailSendEmail` → gmail send email; `payments.refund` → payments refund."""
    if len(name) <= 64:  # tool names and payload keys repeat: remember the short ones
        return list(_split_short(name))
    return _split(name)


def _split(name: str) -> list[str]:
    words: list[str] = []
    for part in re.split(r"[^A-Za-z0-9]+", name):
        words.extend(w.lower() for w in _CAMEL.findall(part))
    return words


@lru_cache(maxsize=4096)
def _split_short(name: str) -> tuple[str, ...]:
    return tuple(_split(name))
