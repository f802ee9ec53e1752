"""Training: deterministic, versioned by content, stored and loaded intact."""

from __future__ import annotations

import numpy as np
import pytest

from riskrouter.model import RiskModel, brier_score, expected_calibration_error, train
from riskrouter.types import LabeledAction
from tests.riskrouter.conftest import action


def test_training_twice_gives_the_same_content_hash(golden, model):
    again = train([row.labeled() for row in golden])

    assert again.version == model.version
    assert again.version.startswith("rm-")


def test_different_data_gives_a_different_version(model, other_model):
    assert other_model.version != model.version


def test_a_model_survives_the_round_trip_through_bytes(model):
    loaded = RiskModel.from_bytes(model.to_bytes())
    features = model.features(action())

    assert loaded.version == model.version
    assert loaded.content_hash() == model.content_hash()
    assert loaded.predict_one(features) == model.predict_one(features)


def test_probabilities_sum_to_one(model):
    probabilities = model.predict_one(model.features(action()))

    assert sum(probabilities.values()) == pytest.approx(1.0)


def test_training_refuses_unknown_labels():
    examples = [LabeledAction(action(), label) for label in ("low", "medium", "high", "critical")]

    with pytest.raises(ValueError, match="critical"):
        train(examples)


def test_training_records_what_it_learned_from(golden, model):
    assert model.training["rows"] == len(golden)
    assert sum(model.training["by_label"].values()) == len(golden)
    assert model.training["sources"] == ["golden"]


def test_brier_and_ece_of_a_perfect_and_a_shrugging_forecaster():
    truth = np.array([0, 1, 2, 0])
    perfect = np.eye(3)[truth]
    shrug = np.full((4, 3), 1 / 3)

    assert brier_score(perfect, truth) == 0.0
    assert expected_calibration_error(perfect, truth) == 0.0
    assert brier_score(shrug, truth) == pytest.approx(2 / 3)
    assert expected_calibration_error(shrug, truth) == pytest.approx(abs(0.5 - 1 / 3))
