"""The eval harness: held-out scoring only, and a gate that says no to a bad model."""

from __future__ import annotations

from riskrouter import evaluation
from riskrouter.evaluation import cross_validate, gate, summarize
from riskrouter.model import train
from riskrouter.policy import DEFAULT_POLICY, build_policy
from riskrouter.router import Router
from riskrouter.types import LabeledAction

FLIP = {"low": "high", "high": "low", "medium": "medium"}


def test_no_row_is_scored_by_a_model_that_trained_on_it(golden, monkeypatch):
    folds = []
    real_fit, real_route = evaluation._fit, evaluation.route_rows

    def spy_fit(train_rows, *args, **kwargs):
        folds.append({"trained": {r.id for r in train_rows}, "scored": set()})
        return real_fit(train_rows, *args, **kwargs)

    def spy_route(router, rows):
        folds[-1]["scored"] |= {r.id for r in rows}
        return real_route(router, rows)

    monkeypatch.setattr(evaluation, "_fit", spy_fit)
    monkeypatch.setattr(evaluation, "route_rows", spy_route)
    subset = golden[::3]

    predictions = cross_validate(subset, policy=DEFAULT_POLICY, folds=3)

    assert len(folds) == 3
    assert all(not (f["trained"] & f["scored"]) for f in folds)
    assert set().union(*(f["scored"] for f in folds)) == {r.id for r in subset}
    assert [p.id for p in predictions] == [r.id for r in subset]


def test_the_gate_fails_a_deliberately_bad_model(golden):
    upside_down = train([LabeledAction(r.action, FLIP[r.label], source="golden:" + r.id) for r in golden])
    no_rules = build_policy(defaults=())
    routed = evaluation.route_rows(Router(policy=no_rules, model=upside_down), golden)

    failures = gate({"cv": summarize(routed)})

    assert any("routed to auto" in f for f in failures)
    assert any("recall into blocking" in f for f in failures)


def test_the_gate_passes_good_figures_and_catches_a_regression():
    good = {
        "cv": {"high_to_auto": 0, "high_recall_blocking": 0.97, "automation_rate": 0.80, "brier": 0.30, "ece": 0.04}
    }
    worse = {"cv": {**good["cv"], "automation_rate": 0.74, "brier": 0.35}}

    assert gate(good, baseline=good) == []
    failures = gate(worse, baseline=good)
    assert any(f.startswith("cv.automation_rate regressed: 0.8 → 0.74") for f in failures)
    assert any(f.startswith("cv.brier regressed") for f in failures)
    assert len(failures) == 2


def test_the_report_prints_every_figure(golden):
    result = evaluation.evaluate(golden[::4], policy=DEFAULT_POLICY, folds=3, lodo=False)

    text = evaluation.format_report(result)

    for needle in ("precision", "recall", "confusion", "high-risk miss rate", "automation rate", "Brier", "ECE"):
        assert needle in text
