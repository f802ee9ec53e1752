"""How scopes and kill switches match an action's names.

An agent chooses how to spell `action_type` and `tool`, so matching must not
depend on spelling: `Payments:Refund`, `payments_refund`, `PaymentsRefund`
and `payments.refund` are one name. Names and patterns are both cut into
words at `.` `:` `_` `-` `/`, spaces and CamelCase boundaries, lower-cased
and joined with dots; the patterns are shell-style (`*`, `?`, `[...]`) over
that form, and `x.*` also covers `x` itself.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from functools import lru_cache

_WORD_BREAK = re.compile(r"[.:_\-/\s]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@lru_cache(maxsize=8192)  # agents repeat their names: normalise each once
def name_normalize(name: str) -> str:
    """`GmailSendEmail`, `gmail-send_email` → `gmail.send.email`."""
    return ".".join(word for word in _WORD_BREAK.split(name) if word).lower()


@lru_cache(maxsize=8192)
def pattern_matches(pattern: str, name: str) -> bool:
    """Whether the shell-style `pattern` covers `name`, whatever their spelling."""
    pattern, name = name_normalize(pattern), name_normalize(name)
    return fnmatchcase(name, pattern) or (pattern.endswith(".*") and fnmatchcase(name, pattern[:-2]))


def names_within(patterns: list[str], *names: str) -> bool:
    """Whether every non-empty name is covered by one of the patterns."""
    return all(any(pattern_matches(p, name) for p in patterns) for name in names if name)


def names_touch(pattern: str, *names: str) -> bool:
    """Whether the pattern covers any of the non-empty names (a kill switch
    covers an action when it matches what it is called or what it runs)."""
    return any(pattern_matches(pattern, name) for name in names if name)
