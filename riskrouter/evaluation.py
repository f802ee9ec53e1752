"""Measuring the whole router (policy + model) on labelled actions it never trained on.

Stratified k-fold over the golden set: each fold trains a model on the other
folds (plus any feedback labels, which are never scored) and routes the held-out
rows through the real `Router`. Leave-one-domain-out does the same with one
domain held out at a time, because the router will meet tools it has never
seen. The gate turns the figures into a yes or no, with reasons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import StratifiedKFold

from .golden import GoldenRow
from .model import (
    DEFAULT_CONFIG,
    LABEL_TIER,
    LABELS,
    ModelConfig,
    brier_score,
    expected_calibration_error,
    features_for,
    train,
)
from .policy import Policy
from .router import Router
from .types import LabeledAction, Tier

TIERS = (Tier.AUTO, Tier.ASYNC_REVIEW, Tier.BLOCKING)
CV_FOLDS = 5

# Hard floors from the issue: a model that breaks one is never promoted.
FLOORS = {"high_to_auto": 0, "high_recall_blocking": 0.95, "automation_rate": 0.70}
# How much worse than the active model a candidate may be on each figure
# before the gate says no. Signed: a drop for "higher is better" figures, a
# rise for "lower is better" ones. LODO is noisier (whole domains move), so
# it gets more room.
TOLERANCES: Mapping[str, tuple[str, float]] = {
    "cv.high_recall_blocking": ("higher", 0.02),
    "cv.automation_rate": ("higher", 0.03),
    "cv.medium_recall": ("higher", 0.05),
    "cv.accuracy": ("higher", 0.03),
    "cv.brier": ("lower", 0.02),
    "cv.ece": ("lower", 0.03),
    "lodo.high_recall_blocking": ("higher", 0.05),
    "lodo.automation_rate": ("higher", 0.05),
    "lodo.high_to_auto": ("lower", 1),
}


@dataclass(frozen=True, slots=True)
class Prediction:
    id: str
    domain: str
    label: str
    tier: Tier
    probabilities: Mapping[str, float]
    reasons: tuple[str, ...] = ()


@dataclass
class Evaluation:
    cv: dict
    lodo: dict
    lodo_domains: dict[str, dict]
    predictions: list[Prediction] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def metrics(self) -> dict:
        """What is stored with a model version and compared by the gate."""
        return {"cv": self.cv, "lodo": self.lodo, "lodo_domains": self.lodo_domains}


def route_rows(router: Router, rows: Sequence[GoldenRow]) -> list[Prediction]:
    out = []
    for row in rows:
        decided = router.route(row.action)
        out.append(
            Prediction(row.id, row.domain, row.label, decided.tier, dict(decided.probabilities), decided.reasons)
        )
    return out


def _fit(
    train_rows: Sequence[GoldenRow],
    extra: Sequence[LabeledAction],
    *,
    config: ModelConfig,
    features: Mapping[str, dict],
    extra_features: Sequence[dict],
):
    examples = [r.labeled() for r in train_rows] + list(extra)
    rows = [features[r.id] for r in train_rows] + list(extra_features)
    return train(examples, config=config, features=rows)


def cross_validate(
    rows: Sequence[GoldenRow],
    *,
    policy: Policy,
    config: ModelConfig = DEFAULT_CONFIG,
    extra: Sequence[LabeledAction] = (),
    folds: int = CV_FOLDS,
) -> list[Prediction]:
    """Each golden row routed by a model that did not see it."""
    features = {r.id: features_for(r.action, company_domains=config.company_domains) for r in rows}
    extra_features = [features_for(e.action, company_domains=config.company_domains) for e in extra]
    labels = [r.label for r in rows]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    predictions: dict[str, Prediction] = {}
    for train_index, test_index in splitter.split(np.zeros(len(rows)), labels):
        model = _fit(
            [rows[i] for i in train_index], extra, config=config, features=features, extra_features=extra_features
        )
        for p in route_rows(Router(policy=policy, model=model), [rows[i] for i in test_index]):
            predictions[p.id] = p
    return [predictions[r.id] for r in rows]


def leave_one_domain_out(
    rows: Sequence[GoldenRow],
    *,
    policy: Policy,
    config: ModelConfig = DEFAULT_CONFIG,
    extra: Sequence[LabeledAction] = (),
) -> dict[str, list[Prediction]]:
    """Per domain: its rows routed by a model trained on every other domain."""
    features = {r.id: features_for(r.action, company_domains=config.company_domains) for r in rows}
    extra_features = [features_for(e.action, company_domains=config.company_domains) for e in extra]
    out: dict[str, list[Prediction]] = {}
    for domain in sorted({r.domain for r in rows}):
        held = [r for r in rows if r.domain == domain]
        rest = [r for r in rows if r.domain != domain]
        if len({r.label for r in rest} | {e.label for e in extra}) < len(LABELS):
            continue
        model = _fit(rest, extra, config=config, features=features, extra_features=extra_features)
        out[domain] = route_rows(Router(policy=policy, model=model), held)
    return out


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def summarize(predictions: Sequence[Prediction]) -> dict:
    """The figures the issue asks for, as plain JSON-able values."""
    confusion = {label: {t.value: 0 for t in TIERS} for label in LABELS}
    for p in predictions:
        confusion[p.label][p.tier.value] += 1
    by_label = {label: sum(confusion[label].values()) for label in LABELS}
    by_tier = {t.value: sum(confusion[label][t.value] for label in LABELS) for t in TIERS}
    per_tier = {}
    for label in LABELS:
        tier = LABEL_TIER[label].value
        hit = confusion[label][tier]
        per_tier[tier] = {
            "label": label,
            "precision": _ratio(hit, by_tier[tier]),
            "recall": _ratio(hit, by_label[label]),
            "support": by_label[label],
        }
    correct = sum(confusion[label][LABEL_TIER[label].value] for label in LABELS)
    under = sum(confusion[label][t.value] for label in LABELS for t in TIERS if t.rank < LABEL_TIER[label].rank)
    figures = {
        "n": len(predictions),
        "by_label": by_label,
        "confusion": confusion,
        "per_tier": per_tier,
        "accuracy": _ratio(correct, len(predictions)),
        "under_tiered": under,
        "high_to_auto": confusion["high"][Tier.AUTO.value],
        "high_miss_rate": _ratio(confusion["high"][Tier.AUTO.value], by_label["high"]),
        "high_recall_blocking": _ratio(confusion["high"][Tier.BLOCKING.value], by_label["high"]),
        "medium_recall": per_tier[Tier.ASYNC_REVIEW.value]["recall"],
        "automation_rate": _ratio(confusion["low"][Tier.AUTO.value], by_label["low"]),
        "blocking_share": _ratio(by_tier[Tier.BLOCKING.value], len(predictions)),
    }
    scored = [p for p in predictions if p.probabilities]
    if scored:
        proba = np.array([[p.probabilities.get(label, 0.0) for label in LABELS] for p in scored])
        truth = np.array([LABELS.index(p.label) for p in scored])
        figures["brier"] = round(brier_score(proba, truth), 4)
        figures["ece"] = round(expected_calibration_error(proba, truth), 4)
        figures["model_accuracy"] = _ratio(int((proba.argmax(axis=1) == truth).sum()), len(scored))
    return figures


def evaluate(
    rows: Sequence[GoldenRow],
    *,
    policy: Policy,
    config: ModelConfig = DEFAULT_CONFIG,
    extra: Sequence[LabeledAction] = (),
    folds: int = CV_FOLDS,
    lodo: bool = True,
) -> Evaluation:
    cv_predictions = cross_validate(rows, policy=policy, config=config, extra=extra, folds=folds)
    lodo_domains: dict[str, dict] = {}
    pooled: list[Prediction] = []
    if lodo:
        for domain, predictions in leave_one_domain_out(rows, policy=policy, config=config, extra=extra).items():
            lodo_domains[domain] = summarize(predictions)
            pooled.extend(predictions)
    return Evaluation(
        cv=summarize(cv_predictions),
        lodo=summarize(pooled) if pooled else {},
        lodo_domains=lodo_domains,
        predictions=cv_predictions,
    )


def _get(metrics: Mapping, dotted: str):
    value: object = metrics
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def gate(metrics: Mapping, *, baseline: Mapping | None = None) -> list[str]:
    """Why `metrics` must not be promoted; [] means it passes."""
    failures = []
    cv = metrics.get("cv", {})
    if cv.get("high_to_auto", 1) > FLOORS["high_to_auto"]:
        failures.append(f"{cv.get('high_to_auto')} high-risk action(s) routed to auto (must be 0)")
    recall = cv.get("high_recall_blocking")
    if recall is None or recall < FLOORS["high_recall_blocking"]:
        failures.append(f"high-risk recall into blocking {recall} < {FLOORS['high_recall_blocking']}")
    automation = cv.get("automation_rate")
    if automation is None or automation < FLOORS["automation_rate"]:
        failures.append(f"automation rate {automation} < {FLOORS['automation_rate']}")
    if baseline:
        for key, (better, tolerance) in TOLERANCES.items():
            now, before = _get(metrics, key), _get(baseline, key)
            if now is None or before is None:
                continue
            worse = (before - now) if better == "higher" else (now - before)
            if worse > tolerance + 1e-9:
                failures.append(f"{key} regressed: {before} → {now} (tolerance {tolerance})")
    return failures


def _pct(value) -> str:
    return "  n/a" if value is None else f"{value * 100:5.1f}%"


def format_figures(title: str, m: Mapping) -> list[str]:
    if not m:
        return [f"{title}: nothing to report"]
    lines = [f"{title} (n={m['n']}: {', '.join(f'{k} {v}' for k, v in m['by_label'].items())})"]
    lines.append("  tier           label    precision  recall")
    for tier, f in m["per_tier"].items():
        lines.append(f"  {tier:<14} {f['label']:<8} {_pct(f['precision']):>9}  {_pct(f['recall']):>6}")
    lines.append("  confusion (rows: label, columns: routed tier)")
    lines.append("           " + "".join(f"{t.value:>14}" for t in TIERS))
    for label in LABELS:
        lines.append(f"  {label:<8} " + "".join(f"{m['confusion'][label][t.value]:>14}" for t in TIERS))
    lines.append(
        f"  high-risk miss rate (high → auto): {_pct(m['high_miss_rate'])} ({m['high_to_auto']} of {m['by_label']['high']})"
    )
    lines.append(f"  high-risk recall into blocking:    {_pct(m['high_recall_blocking'])}")
    lines.append(f"  automation rate (low → auto):      {_pct(m['automation_rate'])}")
    lines.append(f"  accuracy (tier = label's tier):    {_pct(m['accuracy'])}; under-tiered rows: {m['under_tiered']}")
    lines.append(f"  share of all actions blocking:     {_pct(m['blocking_share'])}")
    if "brier" in m:
        lines.append(
            f"  calibration: Brier {m['brier']:.4f} (0 best, 2 worst), ECE {m['ece']:.4f} (10 bins); "
            f"model argmax accuracy {_pct(m['model_accuracy'])}"
        )
    return lines


def format_report(evaluation: Evaluation, *, heading: str = "") -> str:
    lines = [heading] if heading else []
    lines += format_figures(
        f"Stratified {CV_FOLDS}-fold cross-validation, whole router (policy + model)", evaluation.cv
    )
    lines.append("")
    lines += format_figures("Leave-one-domain-out, pooled", evaluation.lodo)
    if evaluation.lodo_domains:
        lines.append("  per held-out domain:              n  high→auto  high→blocking  low→auto")
        for domain, m in evaluation.lodo_domains.items():
            lines.append(
                f"  {domain:<30} {m['n']:>4}  {m['high_to_auto']:>9}  {_pct(m['high_recall_blocking']):>13}  "
                f"{_pct(m['automation_rate']):>8}"
            )
    lines += evaluation.notes
    return "\n".join(lines)


def format_gate(failures: Sequence[str], *, baseline_version: str | None) -> str:
    rules = (
        f"Gate: high→auto must be 0, high recall into blocking ≥ {FLOORS['high_recall_blocking']}, "
        f"automation ≥ {FLOORS['automation_rate']}; regression tolerances vs "
        f"{baseline_version or 'no active model'}: "
        + ", ".join(f"{k} {'-' if b == 'higher' else '+'}{t}" for k, (b, t) in TOLERANCES.items())
    )
    if not failures:
        return rules + "\nGate: PASS"
    return rules + "\nGate: FAIL\n" + "\n".join(f"  - {f}" for f in failures)
