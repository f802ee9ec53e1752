"""Money: which action names move it, and reading amounts however they are written.

An agent that leaves the amount out (a full refund), writes it as text
("420 USD", "EUR 5.000,00", "five hundred dollars"), puts it under an unusual
key or makes it negative must not slip under the amount thresholds. This
module reads what can be read; features.analyze applies it to the payload, and
the policy blocks a money-moving action whose amount stays unread.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from .vocabulary import MAYBE_MONEY_VERBS, MONEY_MAKING_VERBS, MONEY_NOUNS, MONEY_VERBS, NOT_MONEY_OBJECTS

# Payload keys that name an amount: a number under one is an amount, and a
# money-moving action whose only such value can't be read is blocked.
AMOUNT_KEYS = frozenset(
    "amount amounts amt amnt total totals price cost payout budget sum balance value net gross money cents "
    "subtotal".split()
)
# Keys whose value must be an amount: anything there we can't read is unread.
# The weaker ones above (value, sum, balance...) count only with a digit or a currency in them.
STRONG_AMOUNT_KEYS = frozenset("amount amounts amt amnt total price cost net gross cents subtotal".split())
# Words that make an amount-like key about something else: `value_date`, `amount_currency`, `payout_to`.
NOT_AMOUNT_WORDS = frozenset(
    "date dates time timestamp day days at on by to from type kind currency code status reason name method account "
    "destination source mode format unit label".split()
)
MINOR_UNIT_KEYS = frozenset("cents minor".split())
# "Everything": a flag or word that asks for the whole balance instead of a number.
WHOLE_WORDS = frozenset("full all entire remaining whole max maximum everything".split())
# Parts of a payload that describe rather than instruct: an amount there is not the one moved.
DESCRIPTIVE_KEYS = frozenset(
    "metadata meta note notes description memo comment comments tags labels context custom extra display "
    "statement descriptor".split()
)

_SYMBOLS = "$€£¥₹₩₽₺₪฿₫₦₱"
_CURRENCY_WORDS = frozenset(
    "usd eur gbp jpy cad aud chf cny rmb inr nzd sek nok dkk pln czk huf brl mxn zar sgd hkd krw try ils aed sar "
    "btc eth usdc usdt dollar dollars euro euros pound pounds yen bucks quid sterling".split()
)
_SCALES = {
    "k": 1e3,
    "thousand": 1e3,
    "m": 1e6,
    "mm": 1e6,
    "mn": 1e6,
    "million": 1e6,
    "millions": 1e6,
    "b": 1e9,
    "bn": 1e9,
    "billion": 1e9,
}
_UNITS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen".split()
    )
}
_TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
_TOKEN = re.compile(r"\d[\d.,'_\u00a0\u202f ]*\d|\d|[a-z]+|[()+-]")
_GROUPED = re.compile(r"\d{1,3}(?:[.,'_\u00a0\u202f ]\d{2,3})+")
_MAX_TEXT = 64  # an amount is short; a sentence is not an amount


def moves_money(words: Sequence[str]) -> tuple[str, ...]:
    """The words of an action type and tool that say it moves money (empty if none).

    PayPal splits into "pay pal": that is a company, not a verb.
    """
    words = list(words)
    for i in range(len(words) - 1, 0, -1):
        if words[i] == "pal" and words[i - 1] == "pay":
            words[i - 1 : i + 1] = ["paypal"]
    found = [w for w in words if w in MONEY_VERBS]
    if not NOT_MONEY_OBJECTS.intersection(words):
        found += [w for w in words if w in MAYBE_MONEY_VERBS]
        if MONEY_MAKING_VERBS.intersection(words):
            found += [w for w in words if w in MONEY_NOUNS]
    return tuple(dict.fromkeys(found))


def has_currency(text: str) -> bool:
    """A currency symbol or code in a short text: it was meant as money even if we can't read it."""
    lowered = text.lower()
    return any(ch in lowered for ch in _SYMBOLS) or bool(_CURRENCY_WORDS.intersection(re.findall(r"[a-z]+", lowered)))


def parse_amount(value: object) -> tuple[float, bool] | None:
    """(magnitude, written as money) for a number or a text amount; None if it can't be read.

    "Written as money" means a currency or a decimal separator was given, so
    the value is in major units whatever the tool's habit. A negative amount
    reads as its magnitude: the money still moves, only the sign was played with.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            return (abs(float(value)), False) if math.isfinite(value) else None
        except OverflowError:  # an integer beyond any float is no amount anyone agreed to
            return None
    if isinstance(value, str):
        return parse_money_text(value)
    return None


def parse_money_text(text: str) -> tuple[float, bool] | None:
    """'420 USD', '$1,200.50', 'EUR 5.000,00', '-€3', '1.2k', 'five hundred dollars' → (value, marked)."""
    lowered = text.strip().lower()
    if not lowered or len(lowered) > _MAX_TEXT:
        return None
    marked = any(ch in _SYMBOLS for ch in lowered)
    for ch in _SYMBOLS:
        lowered = lowered.replace(ch, " ")
    tokens = _TOKEN.findall(lowered)
    if "".join(tokens).replace(" ", "") != re.sub(r"\s+", "", lowered):
        return None  # something we don't understand (a '/', a '%', a ':' in a time...)
    numbers: list[str] = []
    words: list[str] = []
    scale = 1.0
    for token in tokens:
        if token in "()+-":  # noqa: S105 (a token of the amount's text, not a credential)
            continue  # a sign or accounting brackets: the magnitude is what moves
        if token in _CURRENCY_WORDS or token == "us":  # noqa: S105 (US$; a text token, not a credential)
            marked = True
        elif token in _SCALES and numbers:
            scale *= _SCALES[token]
        elif token[0].isdigit():
            if words or numbers:
                return None
            numbers.append(token)
        else:
            words.append(token)
    if numbers:
        if words:
            return None
        number = _digits(numbers[0])
        if number is None:
            return None
        value, decimal = number
        return value * scale, marked or decimal
    worded = _number_words(words)
    return (worded * scale, marked) if worded is not None else None


def _digits(token: str) -> tuple[float, bool] | None:
    """Digits in any thousands/decimal convention; an ambiguous '5.000' or '1,200' reads as the larger value."""
    token = re.sub(r"[\s\u00a0\u202f]", " ", token)
    if token.isdigit():
        return float(token), False
    last = max(token.rfind("."), token.rfind(","))
    if last < 0:  # 1 200, 1'200, 1_200
        return (float(re.sub(r"\D", "", token)), False) if _GROUPED.fullmatch(token) else None
    whole, tail = token[:last], token[last + 1 :]
    if not tail.isdigit():
        return None
    if (
        len(tail) == 3
        and whole != "0"
        and token.count(token[last]) == len(re.findall(r"\D", token))
        and (_GROUPED.fullmatch(token))
    ):
        return float(re.sub(r"\D", "", token)), False  # 5.000 / 1,200 / 1.000.000: thousands
    if whole and not (whole.isdigit() or _GROUPED.fullmatch(whole)):
        return None
    return float(f"{re.sub(r'[^0-9]', '', whole) or '0'}.{tail}"), True


def _number_words(words: Sequence[str]) -> float | None:
    """'five hundred', 'two thousand five hundred', 'a million'; None for anything else."""
    words = [w for w in words if w not in {"and", "a", "an"}]
    if not words:
        return None
    total = current = 0.0
    seen = False
    for word in words:
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word in _SCALES and len(word) > 2:
            total += max(current, 1) * _SCALES[word]
            current = 0.0
        else:
            return None
        seen = True
    return total + current if seen else None
