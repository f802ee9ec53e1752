"""Real money never goes through on the model alone."""

import pytest

import riskrouter


@pytest.mark.parametrize(
    "tool, amount, tier",
    [
        ("stripe.refunds.create", 75_000, "async_review"),  # Stripe counts cents: $750
        ("", 750, "async_review"),
        ("", 75_000, "blocking"),
        ("", 3, "auto"),  # small change on a known charge may still go through
    ],
)
def test_refund_amounts_set_a_floor_under_the_model(router, tool, amount, tier):
    action = riskrouter.ActionInput(
        action_type="payments.refund", tool=tool, summary="Refund the duplicate charge",
        payload={"charge": "ch_3PqX", "amount": amount, "currency": "USD"},
    )
    route = riskrouter.route(action, router=router)  # the trained golden-set model and the default policy
    assert route.tier == tier, route.reasons
