"""Policy rules: what a human has decided must never be left to the model.

Rules are plain data with defaults in code; the admin may override a default
by its name, switch it off, or add rules (see models.PolicyRule). A policy's
version is a hash of its effective rules, so every route records exactly which
rules it was judged by.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace

from .features import Analysis
from .types import ActionInput, Tier

KINDS = ("pattern", "threshold", "indicator", "first_sighting")
UP = "up"
OPS: Mapping[str, tuple[Callable[[float, float], bool], str]] = {
    ">=": (operator.ge, "≥"),
    ">": (operator.gt, ">"),
    "<=": (operator.le, "≤"),
    "<": (operator.lt, "<"),
}


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule. `match` means, by kind:

    - pattern: a shell-style glob over the action type or tool, case-insensitive;
      it also sees the name as underscore-joined words (`GmailSendEmail` →
      `gmail_send_email`), so one rule covers both naming styles;
    - threshold: `amount` (largest payload amount, in major units),
      `recipients`, `rows`, or a glob over payload leaf keys;
    - indicator: an indicator name from indicators.INDICATOR_NAMES (`moves_money`,
      `amount_unread` and `read_only` come from the name and payload, see features.analyze);
    - first_sighting: `agent` or `action_type`.
    """

    name: str
    kind: str
    match: str
    tier: str = Tier.BLOCKING.value  # or "up": one tier above whatever else decided
    op: str = ">="
    value: float | None = None
    four_eyes: bool = False
    reason: str = ""
    unless: str = ""  # an indicator that disarms the rule, e.g. dry_run
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...]
    company_domains: tuple[str, ...] = ("acme.example",)
    version: str = ""


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    tier: Tier
    reasons: tuple[str, ...] = ()
    bumps: tuple[str, ...] = ()  # reasons of "up" rules, applied after the model
    four_eyes: bool = False
    fired: tuple[str, ...] = ()


def _block(name: str, match: str, reason: str) -> Rule:
    return Rule(name=name, kind="pattern", match=match, reason=reason)


DEFAULT_RULES: tuple[Rule, ...] = (
    # Patterns: verbs whose worst case is irreversible, whatever the payload says.
    _block("block-wire-transfer", "*wire*", "moves money by wire"),
    _block("block-send-money", "*send_money*", "sends money"),
    _block("block-withdraw", "*withdraw*", "withdraws funds"),
    _block("block-payout", "*payout*create*", "creates payouts"),
    _block("block-bank-details", "*bank_details*", "changes where money is paid"),
    _block("block-bank-account-update", "*update*bank*", "changes where money is paid"),
    _block("block-bank-account-change", "*bank*account*update*", "changes where money is paid"),
    _block("block-delete-backup", "*backup*delete*", "deletes backups"),
    _block("block-delete-backup-2", "*delete*backup*", "deletes backups"),
    _block("block-disable-backup", "*backup*disable*", "switches off backups"),
    _block("block-disable-backup-2", "*disable*backup*", "switches off backups"),
    _block("block-snapshot-delete", "*delete*snapshot*", "deletes snapshots"),
    _block("block-drop-database", "*drop_database*", "drops a database"),
    _block("block-terminate", "*terminate_instance*", "terminates instances"),
    _block("block-iam", "*iam*attach*", "attaches an IAM policy"),
    _block("block-grant", "*grant*", "grants access"),
    _block("block-payroll-submit", "*payroll*submit*", "submits payroll"),
    _block("block-stop-audit-log", "*stop_logging*", "turns off audit logging"),
    _block("block-disable-audit", "*disable*audit*", "turns off auditing"),
    _block("block-delete-trail", "*delete_trail*", "deletes an audit trail"),
    # Thresholds on what the payload says.
    # A quote or a balance lookup moves nothing, so thresholds skip read-only names.
    Rule(name="amount-blocks", kind="threshold", match="amount", value=1000, unless="read_only"),
    # Below the blocking threshold, real money still gets a person's look the
    # same day (for amounts `money-moves` below doesn't hold already, or when
    # ops switch it off): the model alone never waves through more than small change.
    Rule(
        name="amount-reviewed",
        kind="threshold",
        match="amount",
        value=100,
        tier=Tier.ASYNC_REVIEW.value,
        unless="read_only",
        reason="reviewed the same day",
    ),
    Rule(
        name="amount-four-eyes",
        kind="threshold",
        match="amount",
        value=50_000,
        four_eyes=True,
        reason="needs two approvers",
    ),
    # The thresholds above see only amounts they can read: money moved with the
    # amount left out (a full refund), unreadable or "all" waits for a person.
    Rule(
        name="money-amount-unread", kind="indicator", match="amount_unread", reason="moves money; amount not readable"
    ),
    # Money never moves on the model's word alone, however small the amount:
    # every money-moving name waits for a person (ops may switch this off in
    # the admin's policy rules). Names that only read money (`refund.status`,
    # `payouts.list`) don't move it, see features.analyze. No `unless`: money
    # wins where the words disagree (`expensify_reimburse_report` is a read to
    # vocabulary.READ_ONLY_VERBS, but an expense report is reimbursed).
    Rule(name="money-moves", kind="indicator", match="moves_money", reason="moves money"),
    Rule(name="bulk-recipients", kind="threshold", match="recipients", value=100),
    Rule(
        name="bulk-rows", kind="threshold", match="rows", value=10_000, tier=Tier.ASYNC_REVIEW.value, unless="read_only"
    ),
    # Indicators.
    Rule(
        name="prompt-injection",
        kind="indicator",
        match="prompt_injection",
        reason="instructions aimed at the agent inside the action",
    ),
    Rule(name="secret", kind="indicator", match="secret", reason="credentials in the action"),
    Rule(name="card-number", kind="indicator", match="card_number", reason="a card number in the action"),
    Rule(
        name="external-personal-data",
        kind="indicator",
        match="external_personal_data",
        reason="personal data going outside the company's domains",
    ),
    Rule(name="public-share", kind="indicator", match="public_share", reason="shared publicly"),
    Rule(
        name="destructive-command",
        kind="indicator",
        match="destructive_command",
        unless="dry_run",
        reason="a destructive command",
    ),
    Rule(
        name="writing-commands",
        kind="indicator",
        match="writing_commands",
        unless="dry_run",
        tier=Tier.ASYNC_REVIEW.value,
        reason="runs commands or SQL that are not read-only",
    ),
    Rule(name="privilege-change", kind="indicator", match="privilege_change", reason="a privilege change"),
    Rule(
        name="access-change",
        kind="indicator",
        match="access_change",
        tier=Tier.ASYNC_REVIEW.value,
        reason="changes who may see or edit something",
    ),
    Rule(
        name="external-recipient",
        kind="indicator",
        match="external_recipient",
        tier=Tier.ASYNC_REVIEW.value,
        reason="recipient outside the company's domains",
    ),
    # First sightings.
    Rule(name="new-agent", kind="first_sighting", match="agent", tier=UP, reason="first action from this agent"),
    Rule(
        name="new-action-type", kind="first_sighting", match="action_type", tier=UP, reason="first action of this type"
    ),
)


def rule_problem(rule: Rule) -> str | None:
    """Why a rule can't be applied (a hand-made database row, say), or None."""
    from .indicators import INDICATOR_NAMES

    if rule.kind not in KINDS:
        return f"unknown kind {rule.kind!r}"
    if rule.tier != UP and rule.tier not in {t.value for t in Tier}:
        return f"unknown tier {rule.tier!r}"
    if rule.kind == "threshold" and (rule.value is None or rule.op not in OPS):
        return "a threshold needs an operator and a value"
    if rule.kind == "indicator" and rule.match not in INDICATOR_NAMES:
        return f"unknown indicator {rule.match!r}"
    if rule.kind == "first_sighting" and rule.match not in {"agent", "action_type"}:
        return "first_sighting matches agent or action_type"
    if rule.kind == "pattern" and not rule.match.strip():
        return "empty pattern"
    if rule.unless and rule.unless not in INDICATOR_NAMES:
        return f"unknown indicator {rule.unless!r} in unless"
    return None


def policy_version(rules: Iterable[Rule], company_domains: Iterable[str]) -> str:
    body = json.dumps(
        {"rules": [asdict(r) for r in rules if r.enabled], "domains": sorted(company_domains)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return "policy-" + hashlib.sha256(body.encode()).hexdigest()[:12]


def build_policy(
    *,
    overrides: Iterable[Rule] = (),
    company_domains: Iterable[str] = ("acme.example",),
    defaults: Iterable[Rule] = DEFAULT_RULES,
) -> Policy:
    """Defaults overlaid by name with `overrides` (which may disable them)."""
    by_name = {rule.name: rule for rule in defaults}
    for rule in overrides:
        by_name[rule.name] = rule
    rules = tuple(rule for rule in by_name.values() if rule.enabled)
    domains = tuple(d.strip().lower() for d in company_domains if d.strip())
    return Policy(rules=rules, company_domains=domains, version=policy_version(rules, domains))


DEFAULT_POLICY = build_policy()


def fmt_number(value: float) -> str:
    """48000 → '48,000'; 12.5 → '12.50'."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str):
    """A compiled matcher per glob: fnmatch's own cache is keyed per call and slower."""
    return re.compile(fnmatch.translate(pattern)).match


@functools.lru_cache(maxsize=64)
def _any_pattern(patterns: tuple[str, ...]):
    """One regex for all of a policy's patterns: most actions match none, and find out in one call."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)).match


@functools.lru_cache(maxsize=4096)
def _pattern_hit(patterns: tuple[str, ...], names: tuple[str, ...]) -> bool:
    """Whether any pattern matches any name form; agents send the same few
    action types and tools over and over, so the answers are remembered."""
    any_pattern = _any_pattern(patterns)
    return any_pattern is not None and any(n and any_pattern(n) for n in names)


def _name_forms(action: ActionInput, analysis: Analysis) -> tuple[str, ...]:
    return (action.action_type.lower(), action.tool.lower(), "_".join(analysis.type_words))


def _threshold(rule: Rule, analysis: Analysis) -> str | None:
    compare, symbol = OPS.get(rule.op, OPS[">="])
    if rule.value is None:
        return None
    limit = fmt_number(rule.value)
    if rule.match == "amount":
        biggest = analysis.max_amount
        candidates = [a for a in analysis.amounts if compare(a.value, rule.value)]
        if not candidates:
            return None
        hit = biggest if biggest in candidates else candidates[0]
        unit = f" ({fmt_number(hit.raw)} in minor units)" if hit.minor_units else ""
        return f"amount {fmt_number(hit.value)}{unit} {symbol} {limit}"
    if rule.match == "recipients":
        n = analysis.recipient_count
        return f"{fmt_number(n)} recipients {symbol} {limit}" if n and compare(n, rule.value) else None
    if rule.match == "rows":
        n = analysis.row_count
        return f"{fmt_number(n)} rows {symbol} {limit}" if n and compare(n, rule.value) else None
    for path, value in analysis.leaves:
        leaf = path.rsplit(".", 1)[-1]
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and fnmatch.fnmatch(leaf.lower(), rule.match.lower())
            and compare(value, rule.value)
        ):
            return f"{leaf} {fmt_number(value)} {symbol} {limit}"
    return None


def _indicator_evidence(name: str, analysis: Analysis) -> str:
    ind = analysis.indicators
    evidence = {
        "external_recipient": ind.external_recipients,
        "secret": ind.secrets,
        "card_number": ind.cards,
        "prompt_injection": ind.injection,
        "destructive_command": ind.destructive_commands,
        "privilege_change": ind.privilege,
        "access_change": ind.access_change,
        "iban": ind.ibans,
        "phone": ind.phones,
        "ssn": ind.ssns,
        "external_personal_data": ind.external_recipients,
        "destructive_verb": ind.destructive_verbs,
        "moves_money": analysis.moves_money,
        "amount_unread": analysis.amount_unread,
    }.get(name, ())
    if not evidence:
        return ""
    if name in {"external_recipient", "external_personal_data"}:
        # Reasons are shown before a reviewer may reveal personal data: the domain says enough.
        evidence = tuple(dict.fromkeys("…@" + e.split("@", 1)[1] if "@" in e else e for e in evidence))
    elif name == "phone":
        evidence = tuple("…" + e[-2:] for e in evidence)
    shown = ", ".join(f"'{e}'" if name in {"prompt_injection", "destructive_command"} else str(e) for e in evidence[:2])
    more = f" and {len(evidence) - 2} more" if len(evidence) > 2 else ""
    return f": {shown}{more}"


def evaluate(policy: Policy, *, action: ActionInput, analysis: Analysis) -> PolicyDecision:
    """The policy's tier for one action, with a reason per rule that fired."""
    tier = Tier.AUTO
    reasons: list[str] = []
    bumps: list[str] = []
    fired: list[str] = []
    four_eyes = False
    names = _name_forms(action, analysis)
    pattern_hit = _pattern_hit(tuple(r.match.lower() for r in policy.rules if r.kind == "pattern"), names)
    indicators = set(analysis.indicators.names())
    if analysis.read_only_type:
        indicators.add("read_only")
    if analysis.moves_money:
        indicators.add("moves_money")
    if analysis.amount_unread:
        indicators.add("amount_unread")
    for rule in policy.rules:
        if rule.unless and rule.unless in indicators:
            continue
        reason: str | None = None
        if rule.kind == "pattern":
            if not pattern_hit:
                continue
            matcher = _glob(rule.match.lower())
            hit = next((i for i, n in enumerate(names) if n and matcher(n)), None)
            if hit is not None:
                what = f"tool '{action.tool}'" if hit == 1 else f"action type '{action.action_type}'"
                reason = f"{what} {rule.reason or 'matches ' + rule.match}"
        elif rule.kind == "threshold":
            found = _threshold(rule, analysis)
            if found is not None:
                reason = f"{found}: {rule.reason}" if rule.reason else found
        elif rule.kind == "indicator":
            if rule.match in indicators:
                reason = (rule.reason or rule.match.replace("_", " ")) + _indicator_evidence(rule.match, analysis)
        elif rule.kind == "first_sighting":
            new = action.agent_is_new if rule.match == "agent" else action.action_type_is_new
            if new:
                reason = rule.reason or f"first sighting of this {rule.match}"
        if reason is None:
            continue
        fired.append(rule.name)
        four_eyes = four_eyes or rule.four_eyes
        if rule.tier == UP:
            bumps.append(reason)
        else:
            tier = Tier.highest(tier, Tier(rule.tier))
            reasons.append(reason)
    return PolicyDecision(
        tier=tier,
        reasons=tuple(dict.fromkeys(reasons)),
        bumps=tuple(dict.fromkeys(bumps)),
        four_eyes=four_eyes,
        fired=tuple(fired),
    )


def with_rules(policy: Policy, rules: Iterable[Rule]) -> Policy:
    """A copy of `policy` with its rules replaced (and its version recomputed)."""
    rules = tuple(r for r in rules if r.enabled)
    return replace(policy, rules=rules, version=policy_version(rules, policy.company_domains))


__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_RULES",
    "KINDS",
    "OPS",
    "UP",
    "Policy",
    "PolicyDecision",
    "Rule",
    "build_policy",
    "evaluate",
    "fmt_number",
    "policy_version",
    "rule_problem",
    "with_rules",
]
