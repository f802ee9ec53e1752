"""Personal data in payloads: masked for display, revealed only with permission.

Masking replaces each personal value with a token that names its kind and
keeps a hint a reviewer needs (the domain of an email, the last four digits
of a card), e.g. ``⟦email #1: m•••@acme.example⟧``. Tokens are numbered in a
fixed walk order, so the masked payload can be edited and `payload_unmask`
puts the original values back: a reviewer can edit-and-approve without ever
seeing the data. Every reveal is written to the audit trail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from riskrouter.indicators import EMAIL, iban_ok, luhn_ok

from .audit import audit_append
from .errors import Forbidden, InvalidInput
from .models import Action

OPEN, CLOSE = "⟦", "⟧"
TOKEN = re.compile(r"⟦[a-z_]+ #(\d+)(?::[^⟦⟧]*)?⟧")
DOT = "•••"

# Keys whose whole value is personal (or secret), whatever it looks like.
_SENSITIVE_KEY = re.compile(
    r"(?i)(?:^|[_\-.])(?:e-?mail|phone|mobile|tel|ssn|social_security|dob|date_of_birth|birth_?date|"
    r"address|street|postcode|zip|iban|account_number|card_number|card|cvc|cvv|passport|tax_id|"
    r"national_id|password|passwd|secret|api_key|token)(?:$|[_\-.])"
)
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d ().-]{6,18}\d(?![\w])")


@dataclass
class Masked:
    """A masked copy of a JSON value and what it hides."""

    value: Any
    originals: list[Any] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    # False when the payload itself contains token brackets: then an edit of
    # the masked form could not be told apart from agent text.
    editable: bool = True

    @property
    def count(self) -> int:
        return len(self.originals)


def _hint(kind: str, text: str) -> str:
    if kind == "email" and "@" in text:
        local, _, domain = text.partition("@")
        return f"{local[:1]}{DOT}@{domain}"
    digits = re.sub(r"\W", "", text)
    if kind in {"card", "iban", "phone", "account"} and len(digits) > 6 and kind != "secret":
        return f"{DOT}{digits[-4:]}"
    return DOT


_KINDS = (("mail", "email"), ("phone", "phone"), ("mobile", "phone"), ("tel", "phone"), ("iban", "iban"),
          ("card", "card"), ("account", "account"), ("ssn", "ssn"), ("social", "ssn"), ("pass", "secret"),
          ("secret", "secret"), ("token", "secret"), ("api_key", "secret"), ("birth", "birth_date"),
          ("dob", "birth_date"), ("address", "address"), ("street", "address"), ("zip", "address"),
          ("postcode", "address"))


def _kind_of(path: str, value) -> str:
    if isinstance(value, str) and EMAIL.fullmatch(value):
        return "email"
    key = path.rsplit(".", 1)[-1].lower()
    return next((kind for word, kind in _KINDS if word in key), "personal")


def _phone_ok(raw: str) -> bool:
    digits = sum(ch.isdigit() for ch in raw)
    if not 7 <= digits <= 15 or raw.isdigit() or re.fullmatch(r"[\d.]+", raw):
        return False
    try:
        number = phonenumbers.parse(raw, None if raw.startswith("+") else "US")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


class _Masker:
    def __init__(self) -> None:
        self.masked = Masked(value=None)

    def token(self, kind: str, original: Any, path: str) -> str:
        self.masked.originals.append(original)
        self.masked.paths.append(path)
        hint = _hint(kind, str(original))
        return f"{OPEN}{kind} #{len(self.masked.originals)}: {hint}{CLOSE}"

    def text(self, text: str, path: str) -> str:
        def sub(kind: str, check=None):
            def replace(match: re.Match) -> str:
                found = match.group()
                if check and not check(found):
                    return found
                if OPEN in found:
                    return found
                return self.token(kind, found, path)
            return replace

        text = EMAIL.sub(sub("email"), text)
        text = _IBAN.sub(sub("iban", iban_ok), text)
        text = _CARD.sub(sub("card", lambda s: luhn_ok(re.sub(r"[ -]", "", s))), text)
        text = _SSN.sub(sub("ssn"), text)
        text = _PHONE.sub(sub("phone", lambda s: _phone_ok(s.strip())), text)
        return text

    def walk(self, value: Any, path: str, sensitive: bool) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                child = f"{path}.{key}"
                masked_key = self.text(str(key), child)
                out[masked_key] = self.walk(item, child, bool(_SENSITIVE_KEY.search(str(key))))
            return out
        if isinstance(value, list):
            return [self.walk(item, f"{path}[{i}]", sensitive) for i, item in enumerate(value)]
        if sensitive and isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
            return self.token(_kind_of(path, value), value, path)
        if isinstance(value, str):
            return self.text(value, path)
        return value


def payload_mask(value: Any) -> Masked:
    """Mask personal data in a JSON value (a copy; the value is not changed)."""
    masker = _Masker()
    masker.masked.value = masker.walk(value, "$", False)
    from .canonical import canonical_json

    masker.masked.editable = OPEN not in canonical_json(value) and CLOSE not in canonical_json(value)
    return masker.masked


def payload_unmask(edited: Any, *, original: Any) -> Any:
    """Put the original values back into an edit of `payload_mask(original).value`.

    A token standing alone becomes the original value (its JSON type kept);
    inside a longer string it becomes the original text. A token the mask of
    `original` never issued is refused, so an edit can't smuggle one in.
    """
    originals = payload_mask(original).originals

    def lookup(number: str) -> Any:
        index = int(number) - 1
        if not 0 <= index < len(originals):
            raise InvalidInput(f"The edit refers to a masked value #{number} that does not exist.")
        return originals[index]

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {walk(key): walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, str):
            whole = TOKEN.fullmatch(value)
            if whole:
                return lookup(whole.group(1))
            return TOKEN.sub(lambda m: str(lookup(m.group(1))), value)
        return value

    return walk(edited)


def may_reveal(user: AbstractBaseUser) -> bool:
    """Senior reviewers and admins may see personal data in the clear."""
    from .selectors import user_roles

    return bool(user_roles(user) & {"senior_reviewer", "admin"})


def payload_reveal(*, action: Action, user: AbstractBaseUser) -> Any:
    """The unmasked payload, for a user allowed to see it; audited every time."""
    if not may_reveal(user):
        raise Forbidden("Only senior reviewers and admins may reveal personal data.")
    masked = payload_mask(action.payload)
    with transaction.atomic():
        audit_append(
            kind="action.pii_revealed", actor=f"user:{user.get_username()}", action=action,
            data={"fields": masked.paths, "count": masked.count},
        )
    return action.payload


@dataclass(frozen=True)
class Change:
    path: str
    op: str  # "added", "removed", "changed"
    before: str
    after: str


def _shown(key: str, value: Any) -> str:
    """One value as a reviewer sees it: JSON, with personal data masked."""
    import json

    if value is _MISSING:
        return ""
    masked = payload_mask({key: value}).value
    return json.dumps(next(iter(masked.values())), ensure_ascii=False, sort_keys=True)


_MISSING = object()


def payload_diff(before: Any, after: Any) -> list[Change]:
    """Path-by-path differences between two JSON values, masked for display."""
    changes: list[Change] = []

    def walk(a: Any, b: Any, path: str, key: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in list(a) + [k for k in b if k not in a]:
                walk(a.get(k, _MISSING), b.get(k, _MISSING), f"{path}.{k}", str(k))
            return
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{path}[{i}]", key)
            return
        if a is _MISSING:
            changes.append(Change(path, "added", "", _shown(key, b)))
        elif b is _MISSING:
            changes.append(Change(path, "removed", _shown(key, a), ""))
        elif a != b or type(a) is not type(b):
            changes.append(Change(path, "changed", _shown(key, a), _shown(key, b)))

    walk(before, after, "$", "")
    return changes
