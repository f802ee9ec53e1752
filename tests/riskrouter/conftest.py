"""Shared fixtures: the golden set read once and a model trained on it once per session."""

from __future__ import annotations

import pytest

from riskrouter import registry
from riskrouter.golden import GoldenRow, load_golden
from riskrouter.model import ModelConfig, RiskModel, train
from riskrouter.policy import DEFAULT_POLICY
from riskrouter.router import Router
from riskrouter.types import ActionInput


@pytest.fixture(scope="session")
def golden() -> list[GoldenRow]:
    return load_golden()


@pytest.fixture(scope="session")
def model(golden) -> RiskModel:
    return train([row.labeled() for row in golden], config=ModelConfig())


@pytest.fixture(scope="session")
def other_model(golden) -> RiskModel:
    """A second, different version: trained without the last few rows."""
    return train([row.labeled() for row in golden[:-5]], config=ModelConfig())


@pytest.fixture(scope="session")
def router(model) -> Router:
    return Router(policy=DEFAULT_POLICY, model=model)


@pytest.fixture
def fresh_registry():
    """Each DB test starts with no router cached in the process, and leaves none behind."""
    registry.reset()
    yield registry
    registry.reset()


def action(**overrides) -> ActionInput:
    values = {
        "action_type": "crm.contacts.lookup",
        "tool": "hubspot.contacts.search",
        "payload": {"query": "Renata"},
        "summary": "Look up a contact",
        "rationale": "",
        "agent": "support-bot",
    }
    values.update(overrides)
    return ActionInput(**values)
