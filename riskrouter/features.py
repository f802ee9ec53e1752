"""From an action to what the policy and the model look at.

`analyze` does the one pass over the action (flatten the payload, find the
numbers and the indicators); `featurize` turns that into the sparse dict the
model's DictVectorizer was fitted on. Both the sklearn pipeline (training,
batch) and the hand-wired one-row path use the same dicts, so they agree.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import money
from .indicators import Indicators, detect
from .statements import heads, strip_literals
from .tokens import split_identifier
from .types import ActionInput
from .vocabulary import (
    DOING_VERBS,
    EXEC_TYPE_WORDS,
    MONEY_READING_VERBS,
    MONEY_WORDS,
    READ_ONLY_VERBS,
    SEARCH_VERBS,
    SENDING_VERBS,
    VERB_FAMILIES,
    WRITE_VERBS,
)

FEATURES_VERSION = "f5"

# Bounds that keep one hostile payload from costing more than a normal one.
MAX_LEAVES = 400
MAX_TEXT = 20_000
MAX_DEPTH = 12

_WORD = re.compile(r"[a-z][a-z0-9']{1,24}|\d+")
_MONEY_IN_TEXT = re.compile(
    r"(?:[$€£¥]|\b(?:usd|eur|gbp|cad|aud|chf|jpy)\s?)(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?\s*([kKmM])?\b"
    r"|\b(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?\s*([kKmM])?\s*(?:usd|eur|gbp|cad|aud|chf|dollars|euros|pounds)\b",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"\d")
_NUMBER = re.compile(r"^\s*[$€£]?\s*-?\d{1,3}(?:,\d{3})*(?:\.\d+)?\s*$|^\s*-?\d+(?:\.\d+)?\s*$")
_AMOUNT_WORDS = frozenset("limit".split()) | money.AMOUNT_KEYS
_AMOUNT_STRONG = frozenset("budget".split()) | money.STRONG_AMOUNT_KEYS
_MINOR_UNIT_WORDS = frozenset("cents minor".split())
_MINOR_UNIT_TOOLS = frozenset("stripe adyen square checkout".split())
_RECIPIENT_KEYS = frozenset(
    "to cc bcc recipient recipients attendees attendee invitees invitee guests emails email members member "
    "share_with shared_with users user phone phone_number phone_numbers number numbers audience grantee "
    "grantees collaborators address addresses destination forward_to reply_to participants".split()
)
_RECIPIENT_COUNT_WORDS = frozenset(
    "recipients recipient audience subscribers contacts members attendees items employees users".split()
)
_ROW_WORDS = frozenset("rows row records record affected items objects files documents entries messages count".split())
_COUNT_WORDS = frozenset("count counts num".split())
_ID_WORDS = frozenset("id ids uuid guid sid psid".split())
# Payload fields whose text would be executed.
_COMMAND_KEYS = frozenset(
    "command commands cmd cmds script scripts sql statement statements shell argv args bash".split()
)
# Keys that hold something executable only for a tool that executes, or when
# the value reads like SQL (a Gmail "query" is a search, not a statement).
_MAYBE_COMMAND_KEYS = frozenset("query queries q code expression input text body content".split())
_SQL_START = re.compile(
    r"^\s*(?:select|with|insert|update|delete|drop|truncate|alter|create|merge|explain|grant|revoke)\b", re.I
)

# Word → its families: featurize looks up each word once instead of scanning every family.
_FAMILIES_OF: dict[str, frozenset[str]] = {
    word: frozenset(family for family, vocabulary in VERB_FAMILIES.items() if word in vocabulary)
    for word in frozenset().union(*VERB_FAMILIES.values())
}


@dataclass(frozen=True, slots=True)
class Amount:
    path: str
    value: float  # in major units
    raw: float
    minor_units: bool


@dataclass(frozen=True, slots=True)
class Analysis:
    """One action, read once."""

    type_words: tuple[str, ...]
    key_words: tuple[str, ...]
    context_words: tuple[str, ...]
    text_words: tuple[str, ...]
    summary_words: tuple[str, ...]
    amounts: tuple[Amount, ...]
    text_amounts: tuple[float, ...]
    recipient_count: int
    row_count: int
    leaves: tuple[tuple[str, Any], ...]
    commands: tuple[str, ...]
    read_only_type: bool
    indicators: Indicators
    # The words of the name that move money, and why its amount could not be
    # read (both empty for anything that moves no money).
    moves_money: tuple[str, ...] = ()
    amount_unread: tuple[str, ...] = ()

    @property
    def max_amount(self) -> Amount | None:
        return max(self.amounts, key=lambda a: a.value, default=None)


def flatten(payload: Any, *, prefix: str = "", depth: int = 0, out: list | None = None) -> list[tuple[str, Any]]:
    """(dotted path, scalar value) pairs; list items share their parent's path."""
    out = [] if out is None else out
    if len(out) >= MAX_LEAVES or depth > MAX_DEPTH:
        return out
    if isinstance(payload, Mapping):
        for key, value in payload.items():
            flatten(value, prefix=f"{prefix}.{key}" if prefix else str(key), depth=depth + 1, out=out)
    elif isinstance(payload, (list, tuple)):
        if not payload:
            out.append((prefix, ""))
        for value in payload:
            flatten(value, prefix=prefix, depth=depth + 1, out=out)
    else:
        out.append((prefix, payload))
    return out


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            return float(value) if math.isfinite(value) else None
        except OverflowError:  # an integer past a double's range: no count or amount we can compare
            return None
    if isinstance(value, str) and len(value) < 32 and _NUMBER.match(value):
        try:
            return float(re.sub(r"[^\d.-]", "", value))
        except ValueError:
            return None
    return None


def _text_amounts(text: str) -> list[float]:
    found: list[float] = []
    if not _DIGIT.search(text):  # most summaries name no sum; the money scan is the slow part
        return found
    for m in _MONEY_IN_TEXT.finditer(text):
        whole, cents, scale = (
            (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(4), m.group(5), m.group(6))
        )
        value = float(whole.replace(",", "")) + (float(f"0.{cents}") if cents else 0.0)
        value *= {"k": 1e3, "m": 1e6}.get((scale or "").lower(), 1.0)
        found.append(value)
    return found


def _path_words(path: str) -> list[str]:
    return [w for part in path.split(".")[-2:] for w in split_identifier(part)]


def analyze(action: ActionInput, *, company_domains: Iterable[str] = ("acme.example",)) -> Analysis:
    """Everything the policy and the model need from one action, in one pass."""
    leaves = flatten(action.payload)
    context_leaves = flatten(action.context) if action.context else []
    type_words = tuple(split_identifier(action.action_type) + split_identifier(action.tool))
    texts = [action.summary, action.rationale]
    key_words: list[str] = []
    key_values: list[tuple[str, str]] = []
    recipients: list[str] = []
    amounts: list[Amount] = []
    numbers: list[tuple[list[str], list[str], float, bool, bool]] = []
    unread: list[str] = []
    type_set = set(type_words)
    # A name made only of read verbs ("HubSpotGetContact") sends nothing, so
    # the addresses in it are lookups, not recipients.
    read_only_type = bool(type_set & READ_ONLY_VERBS) and not type_set & WRITE_VERBS
    searching = bool(type_set & SEARCH_VERBS)
    executes = bool(type_set & EXEC_TYPE_WORDS)
    command_parts: dict[str, list[str]] = {}
    for path, value in leaves:
        leaf = path.rsplit(".", 1)[-1]
        leaf_words = split_identifier(leaf)
        key_words.extend(leaf_words)
        if _ID_WORDS.intersection(leaf_words):
            continue  # an identifier is neither text, nor a number, nor a recipient
        if (
            isinstance(value, str)
            and value
            and (
                set(leaf_words) & _COMMAND_KEYS
                or (set(leaf_words) & _MAYBE_COMMAND_KEYS and ((executes and not searching) or _SQL_START.match(value)))
            )
        ):
            # argv lists arrive as one leaf per item under the same path: rejoin them.
            command_parts.setdefault(path, []).append(value)
        if isinstance(value, str):
            texts.append(value)
            key_values.append((leaf, value))
        elif isinstance(value, bool):
            key_values.append((leaf, "true" if value else "false"))
        elif value is not None:
            texts.append(str(value))
            key_values.append((leaf, str(value)))
        if not read_only_type and (
            leaf.lower() in _RECIPIENT_KEYS
            or any(w in ("recipient", "recipients", "to", "cc", "bcc") for w in leaf_words)
            or (
                set(leaf_words) & {"url", "endpoint", "webhook", "callback", "destination"} and type_set & SENDING_VERBS
            )
        ):
            recipients.append(str(value))
        words = _path_words(path)
        written = described = False
        if _AMOUNT_WORDS.intersection(words) or money.WHOLE_WORDS.intersection(leaf_words):
            # Amounts are read however they are written; what can't be read is remembered.
            described = bool(money.DESCRIPTIVE_KEYS.intersection(split_identifier(path)))
            parsed = money.parse_amount(value)
            number, written = parsed if parsed is not None else (None, False)
            if not described:
                unread.extend(_unread_amount(leaf_words, value, number))
        else:
            number = _as_number(value)
        if number is not None:
            numbers.append((words, leaf_words, number, written, described))
    commands = [" ".join(parts) for parts in command_parts.values()]
    context_words: list[str] = []
    for path, value in context_leaves:
        context_words.extend(split_identifier(path.rsplit(".", 1)[-1]))
        if isinstance(value, str):
            texts.append(value)
    text = "\n".join(t for t in texts if t)[:MAX_TEXT]
    text_amounts = _text_amounts(f"{action.summary}\n{action.rationale}")
    minor_tool = any(w in _MINOR_UNIT_TOOLS for w in type_words)
    recipient_count = 0
    row_count = 0
    moved = 0  # amounts outside descriptive parts (metadata, notes): what the action would move
    for words, leaf_words, number, written, described in numbers:
        if any(w in _AMOUNT_STRONG for w in words) or (
            any(w in _AMOUNT_WORDS for w in words) and "limit" not in leaf_words
        ):
            if any(w in ("count", "days", "rate", "percent", "pct", "qty", "quantity") for w in leaf_words):
                continue
            minor = any(w in _MINOR_UNIT_WORDS for w in words) or (
                not written
                and number.is_integer()
                and (minor_tool or any(abs(t * 100 - number) < 0.5 for t in text_amounts))
                and not any(abs(t - number) < 0.5 for t in text_amounts)
            )
            amounts.append(
                Amount(path=".".join(words), value=number / 100 if minor else number, raw=number, minor_units=minor)
            )
            moved += not described
        elif any(w in _RECIPIENT_COUNT_WORDS for w in leaf_words) and (
            len(leaf_words) == 1 or any(w in _COUNT_WORDS or w == "total" for w in leaf_words)
        ):
            recipient_count = max(recipient_count, int(number))
        elif any(w in _ROW_WORDS or w in _COUNT_WORDS for w in leaf_words) and "limit" not in leaf_words:
            row_count = max(row_count, int(number))
    indicators = detect(
        text=text,
        recipients=recipients,
        type_words=type_words,
        key_values=key_values,
        company_domains=company_domains,
        commands=commands,
    )
    listed = sum(len(_split_recipients(r)) for r in recipients)
    money_words = money.moves_money(type_words)
    # A name that only reads ("payments.refund.status", "payouts.list") moves nothing.
    moves_money = money_words if money_words and (not type_set & MONEY_READING_VERBS or type_set & DOING_VERBS) else ()
    if moves_money and not moved and not unread:
        unread.append("no amount in the payload")
    recipient_count = max(recipient_count, listed)
    return Analysis(
        type_words=type_words,
        key_words=tuple(key_words),
        context_words=tuple(context_words),
        text_words=tuple(_WORD.findall(text.lower())),
        summary_words=tuple(w for w in _WORD.findall(action.summary.lower()) if not w.isdigit()),
        amounts=tuple(amounts),
        text_amounts=tuple(text_amounts),
        recipient_count=recipient_count,
        row_count=row_count,
        leaves=tuple(leaves),
        commands=tuple(commands),
        read_only_type=read_only_type,
        indicators=indicators,
        moves_money=moves_money,
        amount_unread=tuple(dict.fromkeys(unread)) if moves_money else (),
    )


def _unread_amount(leaf_words: list[str], value: Any, number: float | None) -> list[str]:
    """Why an amount-like field says nothing we can compare: the reasons name our
    vocabulary, never the agent's key or value (either may hold personal data)."""
    keys = set(leaf_words)
    if keys & money.NOT_AMOUNT_WORDS:
        return []
    if (
        keys & money.WHOLE_WORDS
        and keys & (_AMOUNT_WORDS | MONEY_WORDS)
        and value
        not in (
            False,
            None,
            "",
            0,
            "false",
            "no",
        )
    ):
        return ["asks for the full amount"]  # full_refund: true, refund_all, amount: "max"...
    if number is not None:
        return []
    strong = keys & money.STRONG_AMOUNT_KEYS
    if strong:
        return [f"'{min(strong)}' is not a number"]
    weak = keys & money.AMOUNT_KEYS
    if weak and isinstance(value, str) and (_DIGIT.search(value) or money.has_currency(value)):
        return [f"'{min(weak)}' is not a number"]
    return []


def _split_recipients(value: str) -> list[str]:
    return [p for p in re.split(r"[,;\s]+", value) if "@" in p or p.startswith("+") or p.startswith("#")]


def _bucket(name: str, value: float, edges: tuple[float, ...], out: dict[str, float]) -> None:
    """One-hot bucket plus a smooth log term: LR gets both a step and a slope."""
    for edge in edges:
        if value < edge:
            out[f"{name}<{edge:g}"] = 1.0
            break
    else:
        out[f"{name}>={edges[-1]:g}"] = 1.0
    out[f"{name}:log"] = math.log10(1.0 + max(value, 0.0)) / 6.0


def featurize(analysis: Analysis, *, agent_is_new: bool = False, action_type_is_new: bool = False) -> dict[str, float]:
    """The model's view of one action: binary word features and a few numbers."""
    out: dict[str, float] = {}
    words = analysis.type_words
    for w in words:
        out["t=" + w] = 1.0
    for a, b in itertools.pairwise(words):
        out[f"t2={a}_{b}"] = 1.0
    # Coarse verb families generalize to tools never seen in training.
    families = {family for w in words for family in _FAMILIES_OF.get(w, ())}
    for family in VERB_FAMILIES:
        if family in families:
            out["family=" + family] = 1.0
    if analysis.summary_words:
        out["sv=" + analysis.summary_words[0]] = 1.0
        for w in analysis.summary_words:
            out["s=" + w] = 1.0
    for w in analysis.key_words:
        out["k=" + w] = 1.0
    for w in analysis.context_words:
        out["x=" + w] = 1.0
    text = analysis.text_words
    for w in text:
        if not w.isdigit():
            out["w=" + w] = 1.0
    said = analysis.summary_words
    for a, b in itertools.pairwise(said):
        out[f"s2={a}_{b}"] = 1.0
    biggest = analysis.max_amount
    amount = biggest.value if biggest else max(analysis.text_amounts, default=0.0)
    if biggest or analysis.text_amounts:
        _bucket("amount", amount, (10, 100, 1000, 10_000, 100_000), out)
    if analysis.recipient_count:
        _bucket("recipients", analysis.recipient_count, (2, 11, 101, 1001), out)
    if analysis.row_count:
        _bucket("rows", analysis.row_count, (101, 1001, 10_001, 100_001), out)
    for command in analysis.commands[:20]:
        for head in heads(command)[:12]:
            out["c0=" + head] = 1.0
        for w in _WORD.findall(strip_literals(command).lower()[:2000]):
            if not w.isdigit():
                out["c=" + w] = 1.0
    if analysis.read_only_type:
        out["read_only_type"] = 1.0
    for name in analysis.indicators.names():
        out["ind=" + name] = 1.0
    if analysis.moves_money:
        out["ind=moves_money"] = 1.0
    if analysis.amount_unread:
        out["ind=amount_unread"] = 1.0
    if agent_is_new:
        out["new_agent"] = 1.0
    if action_type_is_new:
        out["new_action_type"] = 1.0
    return out
