"""Model versions in the database, the process's router, and the commands around them."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

import riskrouter
from riskrouter import registry, services
from riskrouter.models import PolicyRule, RiskModelVersion
from riskrouter.router import NO_MODEL
from riskrouter.types import LabeledAction, Tier
from tests.riskrouter.conftest import action

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_registry")]


def activate(model):
    registry.register_candidate(model=model, metrics={"cv": {}}, gate_failures=[])
    return registry.promote(version=model.version)


def test_with_no_model_route_falls_back_to_the_policy_and_says_so():
    decided = riskrouter.route(action())

    assert decided.model_version == NO_MODEL
    assert "no trained risk model yet: policy and action-type words only" in decided.reasons


def test_a_promoted_model_routes_at_once_in_this_process(model, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        activate(model)

    decided = riskrouter.route(action())

    assert decided.model_version == model.version
    assert RiskModelVersion.objects.get(version=model.version).state == "active"


def test_other_processes_swap_models_after_the_refresh_interval(model, other_model, settings):
    settings.RISKROUTER_REFRESH_SECONDS = 3600
    activate(model)
    registry.reset()
    assert riskrouter.route(action()).model_version == model.version
    newer = other_model
    registry.register_candidate(model=newer, metrics={}, gate_failures=[])
    # As another process would: straight in the database, no invalidate() here.
    RiskModelVersion.objects.filter(version=model.version).update(state="retired")
    RiskModelVersion.objects.filter(version=newer.version).update(state="active")

    assert riskrouter.route(action()).model_version == model.version  # cached for the interval
    settings.RISKROUTER_REFRESH_SECONDS = 0
    assert riskrouter.route(action()).model_version == newer.version


def test_promotion_retires_the_previous_model(model, other_model):
    activate(model)
    newer = other_model
    registry.register_candidate(model=newer, metrics={}, gate_failures=[])

    registry.promote(version=newer.version)

    states = dict(RiskModelVersion.objects.values_list("version", "state"))
    assert states == {model.version: "retired", newer.version: "active"}


def test_a_model_that_failed_the_gate_is_promoted_only_by_force(model):
    registry.register_candidate(model=model, metrics={}, gate_failures=["2 high-risk action(s) routed to auto"])

    with pytest.raises(ValueError, match="did not pass the gate"):
        registry.promote(version=model.version)
    assert registry.promote(version=model.version, force=True).state == "active"


def test_an_admin_rule_changes_routing_and_the_policy_version(settings):
    settings.RISKROUTER_REFRESH_SECONDS = 0
    transfer = action(action_type="payments.transfer", tool="", payload={"amount": 5000})
    before = riskrouter.route(transfer)
    PolicyRule.objects.create(name="amount-blocks", kind="threshold", match="amount", value=10_000)

    after = riskrouter.route(transfer)

    assert "amount 5,000 ≥ 1,000" in before.reasons
    assert "amount 5,000 ≥ 1,000" not in after.reasons
    assert after.policy_version != before.policy_version


def test_company_domains_come_from_settings(settings):
    settings.RISKROUTER_REFRESH_SECONDS = 0
    settings.RISKROUTER_COMPANY_DOMAINS = ["kestrel.example"]
    send = action(action_type="GmailSendEmail", tool="", payload={"to": "ap@acme.example"})

    assert any("outside the company's domains" in r for r in riskrouter.route(send).reasons)


def test_route_accepts_an_explicit_model_and_policy_for_replays(model):
    live = riskrouter.route(action())
    what_if = riskrouter.route(action(), model=model)

    assert live.model_version == NO_MODEL
    assert what_if.model_version == model.version


def test_a_broken_artifact_does_not_stop_routing(model, settings):
    settings.RISKROUTER_REFRESH_SECONDS = 0
    RiskModelVersion.objects.create(version="rm-broken", state="active", artifact=b"not a pickle", gate_passed=True)

    decided = riskrouter.route(action())

    assert decided.tier in set(Tier)
    assert decided.model_version == NO_MODEL


def feedback_source():
    return [
        LabeledAction(
            action(action_type="crm.contacts.export", summary="Export every contact"), "high", 1.0, "review:1"
        ),
        LabeledAction(action(summary="Look up Renata"), "low", 0.5, "review:2"),
    ]


def test_training_takes_feedback_labels_from_the_configured_source(golden, settings):
    settings.RISKROUTER_FEEDBACK_SOURCE = "tests.riskrouter.test_registry.feedback_source"

    outcome = services.risk_model_train(rows=golden[::3], lodo=False, promote=False, folds=3)

    assert outcome.model.training["feedback_rows"] == 2
    assert outcome.model.training["sources"] == ["golden", "review"]
    stored = RiskModelVersion.objects.get(version=outcome.model.version)
    assert stored.state == "candidate"
    assert stored.metrics["cv"]["n"] == len(golden[::3])  # feedback trains, never scores


def test_training_promotes_only_through_the_gate(golden):
    outcome = services.risk_model_train(rows=golden[::2], lodo=False, folds=3)

    stored = RiskModelVersion.objects.get(version=outcome.model.version)
    assert stored.gate_passed == (not outcome.failures)
    assert outcome.promoted == stored.gate_passed
    assert (stored.state == "active") == outcome.promoted


def test_train_if_missing_does_nothing_when_a_model_is_active(model):
    activate(model)
    out = StringIO()

    call_command("train_risk_model", "--if-missing", stdout=out)

    assert f"{model.version} is already active" in out.getvalue()
    assert RiskModelVersion.objects.count() == 1


def test_the_policy_command_lists_the_effective_rules():
    out = StringIO()

    call_command("risk_policy", stdout=out)

    assert "amount-blocks" in out.getvalue() and "policy-" in out.getvalue()


def test_an_invalid_rule_row_is_skipped_not_fatal(settings):
    settings.RISKROUTER_REFRESH_SECONDS = 0
    PolicyRule.objects.create(name="typo", kind="indicator", match="prompt_injektion", tier="blocking")

    decided = riskrouter.route(action())

    assert decided.tier == Tier.AUTO


def test_the_admin_form_refuses_an_unknown_indicator():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="unknown indicator"):
        PolicyRule(name="typo", kind="indicator", match="prompt_injektion").full_clean()
