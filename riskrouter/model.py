"""The learned part of the router: a calibrated linear model over `featurize`.

Training uses a plain scikit-learn pipeline (DictVectorizer → logistic
regression, calibrated by temperature scaling on out-of-fold scores). Routing
one action through `Pipeline.predict_proba` costs milliseconds of input
validation, so `RiskModel.predict_one` reads the same fitted weights directly:
a vocabulary lookup, a dot product and a softmax, checked against the pipeline
by the tests.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

import joblib
import numpy as np
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from .features import FEATURES_VERSION, analyze, featurize
from .types import ActionInput, LabeledAction, Tier

LABELS = ("low", "medium", "high")
LABEL_TIER = {"low": Tier.AUTO, "medium": Tier.ASYNC_REVIEW, "high": Tier.BLOCKING}


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Everything that decides what a training run produces (part of its hash)."""

    C: float = 3.0
    calibration_folds: int = 5
    seed: int = 0
    # Missing a high costs far more than reviewing a medium: the model blocks
    # well before "high" is its most likely label. Chosen by cross-validation
    # on the golden set (see evaluation.py) for zero high→auto with margin.
    block_at: float = 0.25  # p(high) at or above this → blocking
    review_at: float = 0.50  # p(medium) + p(high) at or above this → async_review
    uncertain_below: float = 0.45  # top probability below this → one tier up
    company_domains: tuple[str, ...] = ("acme.example",)


DEFAULT_CONFIG = ModelConfig()  # frozen: one shared default is safe


class Training(TypedDict, total=False):
    """What a model was trained on (`train` writes the first four; services adds the rest)."""

    rows: int
    data_sha256: str
    by_label: dict[str, int]
    sources: list[str]
    golden_rows: int
    feedback_rows: int
    golden_ids: list[str]
    config: dict[str, Any]
    policy_version: str


@dataclass(frozen=True, slots=True)
class ModelOpinion:
    tier: Tier
    probabilities: Mapping[str, float]
    reasons: tuple[str, ...]
    uncertain: bool
    risk: float  # expected risk: p(medium)/2 + p(high)


def features_for(action: ActionInput, *, company_domains: Sequence[str]) -> dict[str, float]:
    return featurize(
        analyze(action, company_domains=company_domains),
        agent_is_new=action.agent_is_new,
        action_type_is_new=action.action_type_is_new,
    )


def build_pipeline(config: ModelConfig) -> Pipeline:
    classifier = LogisticRegression(C=config.C, class_weight="balanced", max_iter=2000)
    return Pipeline(
        [
            ("vectorize", DictVectorizer(sort=True)),
            (
                "classify",
                CalibratedClassifierCV(
                    classifier,
                    method="temperature",
                    ensemble=False,
                    cv=StratifiedKFold(n_splits=config.calibration_folds, shuffle=True, random_state=config.seed),
                ),
            ),
        ]
    )


@dataclass
class RiskModel:
    """A fitted pipeline plus what it takes to use it in one row, in microseconds."""

    pipeline: Pipeline
    config: ModelConfig
    version: str = ""
    features_version: str = FEATURES_VERSION
    sklearn_version: str = sklearn.__version__
    training: Training = field(default_factory=Training)
    # Derived from the pipeline on load; not pickled.
    _vocabulary: dict[str, int] = field(default_factory=dict, repr=False)
    _weights: np.ndarray | None = field(default=None, repr=False)
    _intercept: np.ndarray | None = field(default=None, repr=False)
    _beta: float = 1.0
    _classes: tuple[str, ...] = ()
    _table: dict[str, tuple[float, ...]] = field(default_factory=dict, repr=False)
    _intercept_row: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        self._wire()

    def _wire(self) -> None:
        vectorizer: DictVectorizer = self.pipeline.named_steps["vectorize"]
        calibrated: CalibratedClassifierCV = self.pipeline.named_steps["classify"]
        (pair,) = calibrated.calibrated_classifiers_  # ensemble=False: one estimator, one calibrator
        estimator: LogisticRegression = pair.estimator
        self._vocabulary = dict(vectorizer.vocabulary_)
        self._weights = np.ascontiguousarray(estimator.coef_.T)  # (n_features, n_classes)
        self._intercept = estimator.intercept_.copy()
        self._beta = float(np.asarray(pair.calibrators[0].beta_).reshape(()))
        self._classes = tuple(str(c) for c in calibrated.classes_)
        if len(self._classes) != 3:
            raise ValueError(f"expected three classes, got {self._classes}")
        names = list(self._vocabulary)
        rows = self._weights[[self._vocabulary[n] for n in names]].tolist()
        self._table = dict(zip(names, map(tuple, rows), strict=True))
        self._intercept_row = tuple(float(b) for b in self._intercept)

    def __getstate__(self) -> dict:
        return {
            k: getattr(self, k)
            for k in ("pipeline", "config", "version", "features_version", "sklearn_version", "training")
        }

    def __setstate__(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)
        self._wire()

    # -- predicting -------------------------------------------------------
    def features(self, action: ActionInput) -> dict[str, float]:
        return features_for(action, company_domains=self.config.company_domains)

    def predict_one(self, features: Mapping[str, float]) -> dict[str, float]:
        """Calibrated probabilities for one feature dict, without the pipeline's overhead.

        Plain Python over a dict of weight rows: for ~100 active features this
        beats numpy, whose per-call overhead dominates at this size.
        """
        table = self._table
        s0, s1, s2 = self._intercept_row
        for name, value in features.items():
            row = table.get(name)
            if row is not None:
                s0 += value * row[0]
                s1 += value * row[1]
                s2 += value * row[2]
        beta = self._beta
        top = max(s0, s1, s2)
        e0, e1, e2 = math.exp(beta * (s0 - top)), math.exp(beta * (s1 - top)), math.exp(beta * (s2 - top))
        total = e0 + e1 + e2
        c0, c1, c2 = self._classes
        return {c0: e0 / total, c1: e1 / total, c2: e2 / total}

    def predict_many(self, rows: Sequence[Mapping[str, float]]) -> list[dict[str, float]]:
        """The sklearn path, for batches (evaluation, replays)."""
        proba = self.pipeline.predict_proba(list(rows))
        return [{label: float(p) for label, p in zip(self._classes, row, strict=True)} for row in proba]

    def opinion(self, probabilities: Mapping[str, float]) -> ModelOpinion:
        """The model's tier: by thresholds tilted towards caution, then up when unsure."""
        c = self.config
        p_high = probabilities.get("high", 0.0)
        p_medium = probabilities.get("medium", 0.0)
        top_label = max(LABELS, key=lambda label: probabilities.get(label, 0.0))
        top = probabilities.get(top_label, 0.0)
        if p_high >= c.block_at:
            tier = Tier.BLOCKING
            shown = ("high", p_high)
        elif p_high + p_medium >= c.review_at:
            tier = Tier.ASYNC_REVIEW
            shown = (top_label, top) if top_label != "low" else ("medium", p_medium)
        else:
            tier = Tier.AUTO
            shown = ("low", probabilities.get("low", 0.0))
        reasons = [f"model: {shown[0]} {shown[1]:.2f}"]
        uncertain = top < c.uncertain_below
        if uncertain and tier != Tier.BLOCKING:
            reasons.append(f"model unsure (top label {top_label} {top:.2f} < {c.uncertain_below:.2f}): one tier up")
            tier = tier.up()
        return ModelOpinion(
            tier=tier,
            probabilities=dict(probabilities),
            reasons=tuple(reasons),
            uncertain=uncertain,
            risk=min(1.0, p_high + p_medium / 2),
        )

    # -- identity ---------------------------------------------------------
    def content_hash(self) -> str:
        """A hash of what the model computes, not of how pickle laid it out.

        Rounded so that the last bits of a float sum (which BLAS may order
        differently) don't make two equal models look different.
        """
        weights, intercept = self._weights, self._intercept
        if weights is None or intercept is None:  # __post_init__ and __setstate__ always wire them
            raise RuntimeError("RiskModel used before its pipeline was wired")
        h = hashlib.sha256()
        h.update(
            json.dumps(
                {"config": asdict(self.config), "features": self.features_version, "classes": list(self._classes)},
                sort_keys=True,
            ).encode()
        )
        for name in sorted(self._vocabulary):
            h.update(name.encode())
            h.update(b"\0")
            h.update(np.round(weights[self._vocabulary[name]], 8).tobytes())
        h.update(np.round(intercept, 8).tobytes())
        h.update(repr(round(self._beta, 8)).encode())
        return h.hexdigest()

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        joblib.dump(self, buffer, compress=3)
        return buffer.getvalue()

    @staticmethod
    def from_bytes(data: bytes | memoryview) -> RiskModel:
        # Artifacts come from our own database, written by train_risk_model.
        model = joblib.load(io.BytesIO(bytes(data)))
        if not isinstance(model, RiskModel):
            raise TypeError(f"not a RiskModel artifact: {type(model).__name__}")
        return model


def _data_hash(examples: Sequence[LabeledAction]) -> str:
    h = hashlib.sha256()
    for ex in examples:
        a = ex.action
        h.update(
            json.dumps(
                [
                    a.action_type,
                    a.tool,
                    a.summary,
                    a.rationale,
                    a.agent,
                    a.payload,
                    a.context,
                    a.agent_is_new,
                    a.action_type_is_new,
                    ex.label,
                    ex.weight,
                ],
                sort_keys=True,
                default=str,
            ).encode()
        )
    return h.hexdigest()


def train(
    examples: Sequence[LabeledAction],
    *,
    config: ModelConfig = DEFAULT_CONFIG,
    features: Sequence[Mapping[str, float]] | None = None,
) -> RiskModel:
    """Fit a model on labelled actions; deterministic for the same examples and config.

    `features` may pass precomputed feature dicts (evaluation reuses them
    across folds); they must be `features_for` of the same examples.
    """
    labels = [ex.label for ex in examples]
    unknown = set(labels) - set(LABELS)
    if unknown:
        raise ValueError(f"unknown labels {sorted(unknown)}: use {', '.join(LABELS)}")
    if len(set(labels)) < len(LABELS):
        raise ValueError("training needs examples of every label (low, medium, high)")
    rows = (
        list(features)
        if features is not None
        else [features_for(ex.action, company_domains=config.company_domains) for ex in examples]
    )
    weights = np.array([ex.weight for ex in examples], dtype=float)
    pipeline = build_pipeline(config)
    # One BLAS thread: on two cores a threaded BLAS fights the web workers and
    # made these small fits 3-4 times slower, not faster.
    with threadpool_limits(limits=1):
        pipeline.fit(rows, labels, classify__sample_weight=weights)
    model = RiskModel(
        pipeline=pipeline,
        config=config,
        training={
            "rows": len(examples),
            "data_sha256": _data_hash(examples),
            "by_label": {label: labels.count(label) for label in LABELS},
            "sources": sorted({ex.source.split(":", 1)[0] for ex in examples if ex.source}),
        },
    )
    model.version = "rm-" + model.content_hash()[:12]
    return model


def expected_calibration_error(probabilities: np.ndarray, truth: np.ndarray, *, bins: int = 10) -> float:
    """Top-label ECE: |accuracy - confidence| per confidence bin, weighted by bin size."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        mask = (confidence > lo) & (confidence <= hi) if lo > 0 else (confidence >= lo) & (confidence <= hi)
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def brier_score(probabilities: np.ndarray, truth: np.ndarray) -> float:
    """Multi-class Brier: mean over rows of Σ_k (p_k - y_k)², from 0 (perfect) to 2."""
    onehot = np.zeros_like(probabilities)
    onehot[np.arange(len(truth)), truth] = 1.0
    return float(((probabilities - onehot) ** 2).sum(axis=1).mean())


__all__ = [
    "DEFAULT_CONFIG",
    "LABELS",
    "LABEL_TIER",
    "ModelConfig",
    "ModelOpinion",
    "RiskModel",
    "brier_score",
    "build_pipeline",
    "expected_calibration_error",
    "features_for",
    "train",
]
