"""Training, evaluating and promoting models: what the management commands call.

Django glue over the pure modules: reads the golden set, the feedback source
and the active version, and writes candidates and promotions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from . import registry
from .evaluation import (
    CV_FOLDS,
    Evaluation,
    evaluate,
    format_gate,
    format_report,
    gate,
    route_rows,
    summarize,
)
from .feedback import load_feedback
from .golden import GoldenRow, load_golden
from .model import ModelConfig, RiskModel, train
from .router import Router
from .types import LabeledAction


@dataclass
class TrainOutcome:
    model: RiskModel | None
    evaluation: Evaluation | None
    failures: list[str] = field(default_factory=list)
    promoted: bool = False
    skipped: str = ""  # why nothing was trained
    baseline_version: str | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.model is not None and not self.failures

    def trained(self) -> tuple[RiskModel, Evaluation]:
        """The model and its evaluation; only a skipped run has none."""
        if self.model is None or self.evaluation is None:
            raise ValueError(f"nothing was trained: {self.skipped or 'no reason given'}")
        return self.model, self.evaluation


def _training_set(rows: Sequence[GoldenRow], extra: Sequence[LabeledAction]) -> list[LabeledAction]:
    return [r.labeled() for r in rows] + list(extra)


def risk_model_train(
    *,
    promote: bool = True,
    if_missing: bool = False,
    config: ModelConfig | None = None,
    rows: Sequence[GoldenRow] | None = None,
    extra: Sequence[LabeledAction] | None = None,
    lodo: bool = True,
    folds: int = CV_FOLDS,
) -> TrainOutcome:
    """Evaluate the recipe by cross-validation, train on everything, register, promote if the gate passes.

    The figures that gate a candidate are measured on folds it did not train
    on; the registered model is then fitted on all rows with the same recipe.
    """
    active = registry.active_version()
    if if_missing and active is not None:
        return TrainOutcome(model=None, evaluation=None, skipped=f"{active.version} is already active")
    rows = load_golden() if rows is None else list(rows)
    extra = load_feedback() if extra is None else list(extra)
    config = config or registry.model_config()
    policy = registry.current_policy()
    evaluation = evaluate(rows, policy=policy, config=config, extra=extra, lodo=lodo, folds=folds)
    examples = _training_set(rows, extra)
    model = train(examples, config=config)
    model.training = {
        **model.training,
        "golden_rows": len(rows),
        "feedback_rows": len(extra),
        "golden_ids": [r.id for r in rows],
        "config": asdict(config),
        "policy_version": policy.version,
    }
    baseline = active.metrics if active is not None and active.version != model.version else None
    failures = gate(evaluation.metrics(), baseline=baseline)
    outcome = TrainOutcome(
        model=model,
        evaluation=evaluation,
        failures=failures,
        baseline_version=active.version if active is not None else None,
    )
    registry.register_candidate(model=model, metrics=evaluation.metrics(), gate_failures=failures)
    outcome.messages.append(
        f"Trained {model.version} on {len(rows)} golden rows and {len(extra)} feedback labels "
        f"({', '.join(f'{k} {v}' for k, v in model.training['by_label'].items())})."
    )
    if active is not None and active.version == model.version:
        outcome.messages.append(f"{model.version} is already the active model: same data, same recipe.")
        outcome.promoted = False
    elif failures:
        outcome.messages.append(f"Not promoted: {model.version} stays a candidate because the gate failed.")
    elif not promote:
        outcome.messages.append(
            f"Gate passed; not promoted (--no-promote). Promote with: "
            f"python manage.py promote_risk_model {model.version}"
        )
    else:
        registry.promote(version=model.version)
        outcome.promoted = True
        previous = f", retiring {active.version}" if active is not None else ""
        outcome.messages.append(f"Promoted {model.version} to active{previous}.")
    return outcome


def risk_model_evaluate(
    *,
    rows: Sequence[GoldenRow] | None = None,
    extra: Sequence[LabeledAction] | None = None,
    lodo: bool = True,
) -> tuple[Evaluation, list[str], str, list[str]]:
    """The active model's recipe, cross-validated on today's golden set; trains one first if none.

    Returns the evaluation, the gate's failures (against the active model's
    stored figures), the version evaluated, and notes for the reader.
    """
    notes: list[str] = []
    active = registry.active_version()
    rows = load_golden() if rows is None else list(rows)
    extra = load_feedback() if extra is None else list(extra)
    if active is None:
        notes.append("No active model: training one first.")
        outcome = risk_model_train(rows=rows, extra=extra, lodo=lodo)
        notes.extend(outcome.messages)
        trained, evaluated = outcome.trained()  # no if_missing: it never skips
        # The training run already evaluated this recipe on these rows.
        return evaluated, outcome.failures, trained.version, notes
    model = registry.load_model(active.version)
    evaluation = evaluate(rows, policy=registry.current_policy(), config=model.config, extra=extra, lodo=lodo)
    trained_ids = set(model.training.get("golden_ids", ()))
    unseen = [r for r in rows if r.id not in trained_ids]
    if trained_ids and unseen:
        # The active model itself can be scored on rows added since it was trained.
        fresh = summarize(route_rows(Router(policy=registry.current_policy(), model=model), unseen))
        notes.append(
            f"Active model {active.version} on the {len(unseen)} golden rows added since it was trained: "
            f"high→auto {fresh['high_to_auto']}, high recall into blocking {fresh['high_recall_blocking']}, "
            f"automation {fresh['automation_rate']}."
        )
    elif trained_ids:
        notes.append(
            f"Active model {active.version} was trained on every current golden row; figures are cross-validated."
        )
    failures = gate(evaluation.metrics(), baseline=active.metrics)
    return evaluation, failures, active.version, notes


def report(
    evaluation: Evaluation,
    failures: Sequence[str],
    *,
    version: str,
    baseline_version: str | None,
    notes: Sequence[str] = (),
) -> str:
    heading = f"Risk router evaluation — model recipe of {version}"
    body = format_report(evaluation, heading=heading)
    tail = "\n".join(notes)
    return "\n".join(
        part for part in (body, "", tail, format_gate(failures, baseline_version=baseline_version)) if part is not None
    )


def ensure_active_model() -> TrainOutcome:
    """For the run script: train and promote a model only when none is active."""
    return risk_model_train(if_missing=True)
