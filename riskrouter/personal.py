"""Personal data and secrets: where they sit in a text, and which payload keys hold them.

The one home for these detectors. The risk indicators (indicators.detect) and
the service's masking (reviewqueue.privacy.masking) both use them, so what the
router flags as personal data is what a reviewer sees masked.

Pure and cheap: regexes with literal prefilters, phonenumbers only on digit runs
that look like phone numbers, Luhn and ISO 13616 (mod 97) checks so that order
numbers and tracking ids are not taken for cards and IBANs.
"""

from __future__ import annotations

import re

import phonenumbers

EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@([A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24})\b"
)
_CARD_CANDIDATE = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IBAN_CANDIDATE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_PHONE_CANDIDATE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d ().-]{6,18}\d(?![\w])")
_DIGIT = re.compile(r"\d")
_DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}")
_SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")

# Key material has shapes; the generic "password=..." form needs a value. Each
# pattern runs only when its lowercase trigger occurs in the text.
_SECRETS: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = (
    ("AWS access key", ("akia", "asia"), re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("private key", ("private key",), re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")),
    ("Stripe secret key", ("sk_", "rk_"), re.compile(r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,}\b")),
    ("API token", ("sk-",), re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}\b")),
    (
        "GitHub token",
        ("gh", "github_pat_"),
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})\b"),
    ),
    ("Slack token", ("xox",), re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("Google API key", ("aiza",), re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("JWT", ("eyj",), re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    (
        "password",
        ("pass", "pwd", "secret", "key", "token"),
        re.compile(r"(?i)\b(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token)\s*[:=]\s*['\"]?[^\s'\",;*]{6,}"),
    ),
    ("connection string with a password", ("://",), re.compile(r"\b[a-z][a-z0-9+.-]{1,20}://[^/\s:@]+:[^/\s@*]{3,}@")),
)
SECRET_KEYS = frozenset(
    "password passwd secret client_secret api_key apikey private_key secret_key access_key "
    "access_token auth_token refresh_token".split()
)

PERSONAL_KEY = re.compile(
    r"(?i)(?:^|[_\-.])(?:e-?mail|phone|mobile|tel|ssn|social_security|dob|date_of_birth|birth_?date|"
    r"address|street|postcode|zip|iban|account_number|card_number|card|cvc|cvv|passport|tax_id|"
    r"national_id|password|passwd|secret|api_key|token)(?:$|[_\-.])"
)
"""A payload key that names personal data or a secret (`email`, `street_address`, `card_cvc`): its
value is personal whatever it looks like, so masking hides all of it. The name must be a whole part
of the key (`_`, `-` or `.` around it): `zipper` and `tokenizer` are not personal."""

KEY_KINDS: tuple[tuple[str, str], ...] = (
    ("mail", "email"),
    ("phone", "phone"),
    ("mobile", "phone"),
    ("tel", "phone"),
    ("iban", "iban"),
    ("card", "card"),
    ("account", "account"),
    ("ssn", "ssn"),
    ("social", "ssn"),
    ("pass", "secret"),
    ("secret", "secret"),
    ("token", "secret"),
    ("api_key", "secret"),
    ("birth", "birth_date"),
    ("dob", "birth_date"),
    ("address", "address"),
    ("street", "address"),
    ("zip", "address"),
    ("postcode", "address"),
)
"""(substring of a lowercase key, kind): the kind a value under a PERSONAL_KEY is masked as, the
first match winning (`mobile_phone` → phone); a key matching none is plain "personal"."""


def digit_count(text: str) -> int:
    """How many digits a text holds: each finder needs so many at least (a phone 7, an SSN 9, a card 13)."""
    return len(_DIGIT.findall(text))


def luhn_ok(digits: str) -> bool:
    """The card-number checksum; rejects runs of one digit, which pass it trivially."""
    if not digits.isdigit() or not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AT": 20,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "CH": 21,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MT": 31,
    "NL": 18,
    "NO": 15,
    "PL": 28,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TR": 26,
    "UA": 29,
}


def iban_ok(text: str) -> bool:
    """ISO 13616: known country length and mod-97 remainder 1."""
    iban = text.replace(" ", "").upper()
    if len(iban) < 15 or _IBAN_LENGTHS.get(iban[:2], len(iban)) != len(iban) or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


_CARD_GROUPING = re.compile(r"\d+|\d{4}(?:[ -]\d{4}){2,3}(?:[ -]\d{1,3})?|\d{4}[ -]\d{6}[ -]\d{5}")


def find_cards(text: str) -> list[str]:
    """Luhn-valid digit runs, written whole or grouped as cards are (not an order no. 113-8823341-0091827)."""
    found = []
    for match in _CARD_CANDIDATE.finditer(text):
        if not _CARD_GROUPING.fullmatch(match.group()):
            continue
        digits = re.sub(r"[ -]", "", match.group())
        if luhn_ok(digits):
            found.append(f"…{digits[-4:]}")
    return found


def find_ibans(text: str) -> list[str]:
    return [f"{m.group()[:4]}…" for m in _IBAN_CANDIDATE.finditer(text) if iban_ok(m.group())]


def find_phones(text: str, *, default_region: str = "US") -> list[str]:
    """Digit runs that phonenumbers accepts as valid numbers (not dates or amounts)."""
    found = []
    for match in _PHONE_CANDIDATE.finditer(text):
        number = _valid_phone(match.group().strip(), default_region)
        if number is not None:
            found.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return found


def _valid_phone(raw: str, default_region: str) -> phonenumbers.PhoneNumber | None:
    digits = sum(ch.isdigit() for ch in raw)
    # A bare digit run is an id far more often than a phone number.
    if not 7 <= digits <= 15 or raw.isdigit() or _DATE_LIKE.fullmatch(raw) or re.fullmatch(r"[\d.]+", raw):
        return None
    if luhn_ok(re.sub(r"\D", "", raw)) and digits >= 13:
        return None  # a card number, not a phone
    try:
        number = phonenumbers.parse(raw, None if raw.startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def find_secrets(text: str) -> list[str]:
    lowered = text.lower()
    return [
        name
        for name, triggers, pattern in _SECRETS
        if any(map(lowered.__contains__, triggers)) and pattern.search(text)
    ]


def find_ssns(text: str) -> list[str]:
    """US social security numbers in their written form (123-45-6789), as their last four digits."""
    return [m.group()[-4:] for m in _SSN.finditer(text)]


_SECRET_VALUE = re.compile(r"[:=]\s*['\"]?")


def personal_spans(text: str, *, default_region: str = "US") -> list[tuple[str, int, int]]:
    """Where personal data and secrets sit in a text: (kind, start, end), in order, not overlapping.

    The same finders as `indicators.detect`, for masking: kinds are email, iban, card,
    ssn, phone and secret.
    """
    found: list[tuple[str, int, int]] = []

    def add(kind: str, start: int, end: int) -> None:
        if all(end <= s or start >= e for _, s, e in found):
            found.append((kind, start, end))

    for m in EMAIL.finditer(text):
        add("email", m.start(), m.end())
    digits = digit_count(text)
    if digits >= 2:
        for m in _IBAN_CANDIDATE.finditer(text):
            if iban_ok(m.group()):
                add("iban", m.start(), m.end())
    if digits >= 13:
        for m in _CARD_CANDIDATE.finditer(text):
            if _CARD_GROUPING.fullmatch(m.group()) and luhn_ok(re.sub(r"[ -]", "", m.group())):
                add("card", m.start(), m.end())
    if digits >= 9:
        for m in _SSN.finditer(text):
            add("ssn", m.start(), m.end())
    if digits >= 7:
        for m in _PHONE_CANDIDATE.finditer(text):
            raw = m.group()
            if _valid_phone(raw.strip(), default_region) is not None:
                lead = len(raw) - len(raw.lstrip())
                add("phone", m.start() + lead, m.start() + len(raw.rstrip()))
    lowered = text.lower()
    for name, triggers, pattern in _SECRETS:
        if any(map(lowered.__contains__, triggers)):
            for m in pattern.finditer(text):
                start = m.start()
                if name == "password":  # keep "password=" readable, mask what follows
                    separator = _SECRET_VALUE.search(m.group())
                    if separator is None:  # the password pattern requires ':' or '='
                        raise ValueError(f"no ':' or '=' in a password match: {m.group()!r}")
                    start += separator.end()
                add("secret", start, m.end())
    return sorted(found, key=lambda span: span[1])
