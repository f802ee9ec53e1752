"""Personal data: masked wherever it is shown, revealed only with permission, every reveal audited.

Masking replaces each personal value with a token that names its kind and
keeps a hint a reviewer needs (the domain of an email, the last four digits
of a card), e.g. ``⟦email #1: m•••@acme.example⟧``. Tokens are numbered in a
fixed walk order, so the masked payload can be edited and `payload_unmask`
puts the original values back: a reviewer can edit-and-approve without ever
seeing the data.

Nothing shown to a user is derived from an original value unless it went
through a mask first:

- a reviewer's edit is previewed on its masked form (`edit_diff`): a token
  stays a token wherever it is moved (another key, a key name, inside longer
  text), and a value typed in is masked like any other, so a guess is never
  confirmed;
- an edit kept on the server (a pending or approved payload) is masked
  against the agent's payload (`payload_diff`): any occurrence of an original
  value, as a value, a key or inside text, shows as that value's token;
- free text (summaries, rationales, reasons, notes, messages) goes through
  `text_mask` for every user, seniors too: it is shown in the clear only on an
  action's page after an audited reveal (`action_reveal`), like the payload.

The detectors are the risk router's (`riskrouter.personal`): `personal_spans`
in text, `PERSONAL_KEY` for keys whose whole value is personal, so what the
router flags is what is masked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.crypto import constant_time_compare, salted_hmac

from reviewqueue.audit.trail import audit_append
from reviewqueue.core import roles
from reviewqueue.core.canonical import canonical_json
from reviewqueue.core.errors import Forbidden, InvalidInput
from reviewqueue.models import Action
from riskrouter.personal import EMAIL, KEY_KINDS, PERSONAL_KEY, personal_spans

OPEN, CLOSE = "⟦", "⟧"
# At most 9 digits: a longer number is text, never an int() of thousands of digits.
TOKEN = re.compile(r"⟦[a-z_]+ #(\d{1,9})(?::[^⟦⟧]*)?⟧")
DOT = "•••"
# Originals shorter than this are matched only as whole values, not inside text.
_MIN_INNER = 3


@dataclass
class Masked:
    """A masked copy of a JSON value and what it hides (originals[i] is shown as tokens[i])."""

    value: Any
    originals: list[Any] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
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
    if kind in {"card", "iban", "phone", "account"} and len(digits) > 6:
        return f"{DOT}{digits[-4:]}"
    return DOT


def _kind_of(path: str, value) -> str:
    if isinstance(value, str) and EMAIL.fullmatch(value):
        return "email"
    key = path.rsplit(".", 1)[-1].lower()
    return next((kind for word, kind in KEY_KINDS if word in key), "personal")


def _as_text(value: Any) -> str | None:
    """How an original can reappear in text or as a key (what `payload_unmask` writes)."""
    if isinstance(value, bool) or value is None:
        return None
    return value if isinstance(value, str) else str(value) if isinstance(value, (int, float)) else None


class _Masker:
    """One masking walk.

    Plain: detectors and sensitive keys. With a `base` (the agent payload's
    mask), numbering goes on after the base's tokens and either
    - `typed`: the value is a reviewer's edit of the masked form, whose tokens
      refer to the base's (canonicalised, unknown numbers refused), or
    - not typed: the value may hold the base's originals (an edit kept on the
      server), each shown as its base token wherever it occurs.
    """

    def __init__(self, base: Masked | None = None, *, typed: bool = False, numbered: bool = True) -> None:
        self.masked = Masked(value=None)
        self.typed, self.numbered = typed, numbered
        self.base_tokens: list[str] = []
        self.known: dict[str, str] = {}  # an original as text (in keys and inside text) -> its token
        self.known_values: dict[tuple[bool, str], str] = {}  # (is a string, as text) -> token, for whole values
        self.known_at: dict[tuple[str, bool, str], str] = {}  # the same by path: an unmoved value keeps its token
        self.known_re: re.Pattern[str] | None = None
        if base is None:
            return
        self.base_tokens = list(base.tokens)
        self.masked.originals, self.masked.paths = list(base.originals), list(base.paths)
        self.masked.tokens = list(base.tokens)
        if typed:
            return
        for original, token, path in zip(base.originals, base.tokens, base.paths, strict=True):
            text = _as_text(original)
            if text:
                self.known.setdefault(text, token)
                self.known_values.setdefault((isinstance(original, str), text), token)
                self.known_at[(path, isinstance(original, str), text)] = token
        inner = sorted((k for k in self.known if len(k) >= _MIN_INNER), key=len, reverse=True)
        if inner:
            self.known_re = re.compile("|".join(map(re.escape, inner)))

    def token(self, kind: str, original: Any, path: str) -> str:
        self.masked.originals.append(original)
        self.masked.paths.append(path)
        number = f" #{len(self.masked.originals)}" if self.numbered else ""
        token = f"{OPEN}{kind}{number}: {_hint(kind, str(original))}{CLOSE}"
        self.masked.tokens.append(token)
        return token

    def base_token(self, number: str) -> str:
        index = int(number) - 1
        if not 0 <= index < len(self.base_tokens):
            raise InvalidInput(f"The edit refers to a masked value #{number} that does not exist.")
        return self.base_tokens[index]

    def detect(self, text: str, path: str) -> str:
        if not text:
            return text
        out, at = [], 0
        for kind, start, end in personal_spans(text):
            found = text[start:end]
            if OPEN in found or CLOSE in found:
                continue
            out += [text[at:start], self.token(kind, found, path)]
            at = end
        return "".join(out) + text[at:] if out else text

    def text(self, text: str, path: str) -> str:
        pattern = TOKEN if self.typed else self.known_re
        if pattern is None:
            return self.detect(text, path)
        out, at = [], 0
        for match in pattern.finditer(text):
            ref = self.base_token(match.group(1)) if self.typed else self.known[match.group()]
            out += [self.detect(text[at : match.start()], path), ref]
            at = match.end()
        return "".join(out) + self.detect(text[at:], path)

    def leaf(self, value: Any, path: str, sensitive: bool) -> Any:
        if isinstance(value, bool) or value is None:
            return value
        if self.typed and isinstance(value, str) and (whole := TOKEN.fullmatch(value)):
            return self.base_token(whole.group(1))
        text = _as_text(value)
        if text is None:
            return value
        key = (isinstance(value, str), text)
        if key in self.known_values:
            return self.known_at.get((path, *key)) or self.known_values[key]
        if sensitive and value != "":
            return self.token(_kind_of(path, value), value, path)
        if isinstance(value, str):
            return self.text(value, path)
        # A number can be a card (or an IBAN's digits…) under any key: the whole number is masked.
        spans = personal_spans(text) if len(text) >= 9 else ()
        return self.token(spans[0][0], value, path) if spans else value

    def walk(self, value: Any, path: str, sensitive: bool = False) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                # Paths are built from masked keys: they are shown and audited, and a key may be personal.
                masked_key = self.leaf(str(key), path, False)
                out[masked_key] = self.walk(item, f"{path}.{masked_key}", bool(PERSONAL_KEY.search(str(key))))
            return out
        if isinstance(value, list):
            return [self.walk(item, f"{path}[{i}]", sensitive) for i, item in enumerate(value)]
        return self.leaf(value, path, sensitive)


def payload_mask(value: Any, *, like: Any = None) -> Masked:
    """Mask personal data in a JSON value (a copy; the value is not changed).

    With `like` (the agent's payload), `value` is an edit of it kept on the
    server: wherever one of `like`'s personal values occurs in `value`, it is
    shown as the token `payload_mask(like)` gave it.
    """
    masker = _Masker(payload_mask(like) if like is not None else None)
    masker.masked.value = masker.walk(value, "$")
    text = canonical_json(value)
    masker.masked.editable = OPEN not in text and CLOSE not in text
    return masker.masked


def text_mask(text: str, *, like: Any = None) -> str:
    """Free text with personal data masked, and any of `like`'s personal values (see `payload_mask`).

    Tokens found only in the text carry no number: they are not the payload's.
    """
    masker = _Masker(payload_mask(like) if like is not None else None, numbered=False)
    return masker.text(text or "", "$")


def payload_unmask(edited: Any, *, original: Any) -> Any:
    """Put the original values back into an edit of `payload_mask(original).value`.

    A token standing alone becomes the original value (its JSON type kept);
    inside a longer string or a key it becomes the original text. A token the
    mask of `original` never issued is refused, so an edit can't smuggle one in.
    """
    originals = payload_mask(original).originals

    def lookup(number: str) -> Any:
        index = int(number) - 1
        if not 0 <= index < len(originals):
            raise InvalidInput(f"The edit refers to a masked value #{number} that does not exist.")
        return originals[index]

    def text(value: str) -> str:
        return TOKEN.sub(lambda m: str(lookup(m.group(1))), value)

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {text(key): walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, str):
            whole = TOKEN.fullmatch(value)
            return lookup(whole.group(1)) if whole else text(value)
        return value

    return walk(edited)


@dataclass(frozen=True)
class Revealed:
    """An action's personal data in the clear, after an audited reveal."""

    payload: Any
    approved_payload: Any
    summary: str
    rationale: str
    context: Any
    edited_payloads: list[tuple[Any, Any]]  # (decision, its edited payload)


def text_fields_masked(action: Action) -> list[str]:
    """Which of an action's texts a reveal shows in the clear hold personal data (masked otherwise)."""
    reasons = action.risk_reasons if isinstance(action.risk_reasons, list) else []
    texts = (
        ("summary", [action.summary]),
        ("rationale", [action.rationale]),
        ("risk_reasons", [str(r) for r in reasons]),
    )
    return [name for name, values in texts if any(text_mask(v or "") != (v or "") for v in values)]


def action_reveal(*, action: Action, user: AbstractBaseUser, via: str = "dashboard") -> Revealed:
    """Everything of an action in the clear, for a user allowed to see it; audited every time."""
    if not roles.may_reveal(user):
        raise Forbidden("Only senior reviewers and admins may reveal personal data.")
    masked = payload_mask(action.payload)
    texts = text_fields_masked(action)  # shown in the clear with the payload
    with transaction.atomic():
        audit_append(
            kind="action.pii_revealed",
            actor=f"user:{user.get_username()}",
            action=action,
            data={"fields": [*masked.paths, *texts], "count": masked.count, "via": via},
        )
    return Revealed(
        payload=action.payload,
        approved_payload=action.approved_payload,
        summary=action.summary,
        rationale=action.rationale,
        context=action.context,
        edited_payloads=[
            (d, d.edited_payload) for d in action.decisions.select_related("user") if d.edited_payload is not None
        ],
    )


def payload_reveal(*, action: Action, user: AbstractBaseUser) -> Any:
    """The unmasked payload, for a user allowed to see it; audited every time."""
    return action_reveal(action=action, user=user).payload


def payload_seal(action_id: Any, sha256: str) -> str:
    """What a page carries to name the payload it showed, instead of its SHA-256.

    A payload's hash lets whoever sees it test guesses of its masked values
    offline (a phone number with its last four digits shown is a million
    guesses); this keyed digest means something only to the server.
    """
    return salted_hmac("reviewqueue.privacy.payload_seal", f"{action_id}:{sha256}", algorithm="sha256").hexdigest()


def seal_matches(action_id: Any, sha256: str, seal: str) -> bool:
    return constant_time_compare(payload_seal(action_id, sha256), seal)


@dataclass(frozen=True)
class Change:
    path: str
    op: str  # "added", "removed", "changed"
    before: str
    after: str


_MISSING = object()


def _shown(value: Any) -> str:
    return "" if value is _MISSING else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _diff(before: Any, after: Any) -> list[Change]:
    """Path-by-path differences between two masked JSON values."""
    changes: list[Change] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in list(a) + [k for k in b if k not in a]:
                walk(a.get(k, _MISSING), b.get(k, _MISSING), f"{path}.{k}")
            return
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{path}[{i}]")
            return
        if a is _MISSING:
            changes.append(Change(path, "added", "", _shown(b)))
        elif b is _MISSING:
            changes.append(Change(path, "removed", _shown(a), ""))
        elif a != b or type(a) is not type(b):
            changes.append(Change(path, "changed", _shown(a), _shown(b)))

    walk(before, after, "$")
    return changes


def payload_diff(before: Any, after: Any) -> list[Change]:
    """How an edit kept on the server (`after`) differs from the agent's payload, masked for display."""
    return _diff(payload_mask(before).value, payload_mask(after, like=before).value)


def edit_diff(original: Any, edited: Any) -> list[Change]:
    """How a reviewer's edit of the masked payload differs from it, computed on the masked forms.

    Nothing here is derived from an original value: a token is shown as the
    token it refers to wherever it was moved, and a value typed in is masked
    as new (so typing the right guess shows the same as a wrong one). A token
    the payload's mask never issued raises InvalidInput.
    """
    base = payload_mask(original)
    masker = _Masker(base, typed=True)
    return _diff(base.value, masker.walk(edited, "$"))
