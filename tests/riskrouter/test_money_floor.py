"""Real money never goes through on the model alone."""

import copy
from dataclasses import replace

import pytest

import riskrouter
from riskrouter import money
from riskrouter.features import analyze
from riskrouter.policy import DEFAULT_POLICY, DEFAULT_RULES, build_policy, evaluate
from riskrouter.router import Router
from riskrouter.types import Tier


def _duplicate_charge_refund(tool, amount):
    return riskrouter.ActionInput(
        action_type="payments.refund",
        tool=tool,
        summary="Refund the duplicate charge",
        payload={"charge": "ch_3PqX", "amount": amount, "currency": "USD"},
    )


MOVES = "moves money"


def _says_it_moves_money(reasons):
    """The `money-moves` rule's reason ("moves money: refund, …"), not the unread rule's."""
    return any(r == MOVES or r.startswith(MOVES + ":") for r in reasons)


def _without(*names):
    """The default policy with these rules switched off, as ops would in the admin."""
    return build_policy(overrides=[replace(r, enabled=False) for r in DEFAULT_RULES if r.name in names])


def _model_saying(model, probabilities):
    """The same model, answering `probabilities` for every action."""
    stub = copy.copy(model)
    stub.predict_one = lambda features: dict(probabilities)
    return stub


@pytest.mark.parametrize(
    "tool, amount, floor, threshold",
    [
        # Stripe counts cents: $750
        ("stripe.refunds.create", 75_000, "async_review", "amount 750 (75,000 in minor units) ≥ 100"),
        ("", 750, "async_review", "amount 750 ≥ 100"),
        ("", 75_000, "blocking", "amount 75,000 ≥ 50,000"),
    ],
)
def test_refund_amounts_set_a_floor_under_the_model(router, tool, amount, floor, threshold):
    action = _duplicate_charge_refund(tool, amount)
    decision = evaluate(DEFAULT_POLICY, action=action, analysis=analyze(action))
    # With `money-moves` switched off, the amount thresholds still stand under the model.
    relaxed = evaluate(_without("money-moves"), action=action, analysis=analyze(action))
    route = riskrouter.route(action, router=Router(policy=_without("money-moves"), model=router.model))

    assert decision.tier == "blocking", decision.reasons  # the policy alone, whatever the model says
    assert _says_it_moves_money(decision.reasons) and any(r.startswith(threshold) for r in decision.reasons)
    assert relaxed.tier == floor, relaxed.reasons
    # The model may only add to it (an unsure one goes a tier up), never take away.
    assert route.tier.rank >= Tier(floor).rank, route.reasons


def test_small_change_on_a_known_charge_waits_for_a_person(router):
    route = riskrouter.route(_duplicate_charge_refund("", 3), router=router)

    assert route.tier == "blocking", route.reasons
    assert _says_it_moves_money(route.reasons), route.reasons
    assert not any(r.startswith(UNREAD) for r in route.reasons)  # the amount was read: $3


@pytest.mark.parametrize("model_says", [{"low": 0.99, "medium": 0.005, "high": 0.005}, None])
def test_a_three_dollar_refund_blocks_whatever_the_model_says(router, model_says):
    """A model sure it is harmless (or no model at all) can't take a $3 refund out of blocking."""
    model = _model_saying(router.model, model_says) if model_says else None
    action = _duplicate_charge_refund("stripe.refunds.create", 300)  # Stripe's cents: $3
    decision = evaluate(DEFAULT_POLICY, action=action, analysis=analyze(action))
    route = riskrouter.route(action, router=Router(policy=DEFAULT_POLICY, model=model))

    assert decision.tier == "blocking" and "money-moves" in decision.fired
    assert decision.fired == ("money-moves",)  # no threshold or unread amount: the money rule alone
    assert route.tier == "blocking", route.reasons
    assert _says_it_moves_money(route.reasons), route.reasons


def test_switching_the_money_rule_off_lets_small_change_through_again(router):
    action = _duplicate_charge_refund("", 3)
    relaxed = _without("money-moves")
    decision = evaluate(relaxed, action=action, analysis=analyze(action))
    route = riskrouter.route(
        action,
        router=Router(
            policy=relaxed,
            model=_model_saying(router.model, {"low": 0.98, "medium": 0.01, "high": 0.01}),
        ),
    )

    assert decision.tier == "auto" and not decision.fired
    assert route.tier == "auto", route.reasons
    assert relaxed.version != DEFAULT_POLICY.version


# Money never moves unread (issue 11): the thresholds above only see amounts
# they can read, so money moved with the amount out of sight waits for a person.

UNREAD = "moves money; amount not readable"


def _refund(payload, *, action_type="payments.refund", tool="", summary="Refund the customer"):
    return riskrouter.ActionInput(action_type=action_type, tool=tool, summary=summary, payload=payload)


@pytest.mark.parametrize(
    "action_type, tool, payload",
    [
        ("payments.refund", "stripe.refunds.create", {"charge": "ch_3PqX"}),  # a full refund
        ("payments.refund", "", {"charge": "ch_3PqX", "amount": None}),
        ("payments.refund", "", {"charge": "ch_3PqX", "amount": "ALL"}),
        ("payments.refund", "", {"charge": "ch_3PqX", "amount": "as much as they paid"}),
        ("issue_refund", "square.refunds.refund_payment", {"payment_id": "Kx9v", "full_refund": True}),
        ("payments.refund", "", {"charge": "ch_3PqX", "refund": {"details": {"x": 5000}}}),
        ("payments.refund", "", {"charge": "ch_3PqX", "amount": 3, "refund": {"amount": "a lot"}}),
        ("payments.refund", "", {"charge": "ch_3PqX", "metadata": {"amount": 1}}),  # a decoy in the metadata
        ("crm.note", "stripe.refunds.create", {"charge": "ch_3PqX", "note": "refunded"}),  # the tool moves money
        ("bank.wire.create", "", {"beneficiary": {"iban": "NO9386011117947"}, "instructions": "wire 75,000 USD"}),
        ("expenses.reimburse", "expensify_reimburse_report", {"report_id": "R00QX7ZL1MNB"}),
        ("PayPalSendMoney", "PayPalSendMoney", {"recipient_email": "a@acme.example", "note": "thanks"}),
        ("treasury.transfer", "", {"to_account": "acct_2", "amt": "everything"}),
    ],
)
def test_money_moved_with_an_amount_the_router_cannot_read_blocks(router, action_type, tool, payload):
    route = riskrouter.route(_refund(payload, action_type=action_type, tool=tool), router=router)

    assert route.tier == "blocking"
    assert any(r.startswith(UNREAD) for r in route.reasons), route.reasons


@pytest.mark.parametrize(
    "payload, amount, tier",
    [
        ({"charge": "ch_1", "amount": "420 USD"}, "420", "async_review"),
        ({"charge": "ch_1", "amount": "USD 420"}, "420", "async_review"),
        ({"charge": "ch_1", "amount": "$1,200.50"}, "1,200.50", "blocking"),
        ({"charge": "ch_1", "amount": "EUR 5.000,00"}, "5,000", "blocking"),
        ({"charge": "ch_1", "amount": "5.000,00 €"}, "5,000", "blocking"),
        ({"charge": "ch_1", "amount": "five hundred dollars"}, "500", "async_review"),
        ({"charge": "ch_1", "amount": "12k"}, "12,000", "blocking"),
        ({"charge": "ch_1", "amt": 5000}, "5,000", "blocking"),
        ({"charge": "ch_1", "value": "5000"}, "5,000", "blocking"),
        ({"charge": "ch_1", "sum": 5000}, "5,000", "blocking"),
        ({"charge": "ch_1", "refund_cents": 500_000}, "5,000", "blocking"),
        ({"charge": "ch_1", "refund": {"money": {"units": "2400", "currency_code": "USD"}}}, "2,400", "blocking"),
        ({"charge": "ch_1", "amount": -5000}, "5,000", "blocking"),  # read by its magnitude
        ({"charge": "ch_1", "amount": "-$5,000"}, "5,000", "blocking"),
    ],
)
def test_amounts_written_as_text_under_odd_keys_or_negative_meet_the_thresholds(router, payload, amount, tier):
    route = riskrouter.route(_refund(payload), router=router)

    assert riskrouter.Tier(route.tier).rank >= riskrouter.Tier(tier).rank, route.reasons
    assert any(r.startswith(f"amount {amount} ") for r in route.reasons), route.reasons
    assert not any(r.startswith(UNREAD) for r in route.reasons)


@pytest.mark.parametrize(
    "action_type, tool, payload, summary",
    [
        ("payments.refund.status", "stripe.refunds.retrieve", {"refund": "re_3PU5"}, "Has the refund gone through?"),
        ("payments.payouts.list", "stripe.payouts.list", {"limit": 25}, "Which payouts landed last week?"),
        (
            "GmailCreateDraft",
            "GmailCreateDraft",
            {"to": ["ana@acme.example"], "body": "Your refund of $1,250.00 is on its way."},
            "Draft a refund reply",
        ),
        ("crm.orders.lookup", "", {"order_id": "o_1", "amount": "420 USD"}, "Look up the order"),
        ("invoices.search", "xero.invoices.list", {"amount_due": "1,250.00 USD"}, "Find the open invoice"),
        ("shopify.refunds.calculate", "", {"order_id": 5623, "shipping": {"full_refund": True}}, "Preview a refund"),
        ("expenses.reimbursements.list", "", {"employee": "dmitri"}, "Which reports were paid?"),
    ],
)
def test_benign_look_alikes_are_not_blocked_by_the_money_rule(router, action_type, tool, payload, summary):
    """They read, preview or mention money; none moves it, so neither money rule fires."""
    action = riskrouter.ActionInput(action_type=action_type, tool=tool, summary=summary, payload=payload)
    route = riskrouter.route(action, router=router)

    assert not analyze(action).moves_money
    assert not any(r.startswith(MOVES) for r in route.reasons), route.reasons  # neither money rule's reason
    assert route.tier != "blocking", route.reasons


@pytest.mark.parametrize(
    "action_type, tool, payload",
    [
        ("payments.refund", "stripe.refunds.create", {"charge": "ch_1", "amount": "$3.00"}),
        ("payments.refund", "", {"charge": "ch_1", "amount": 3}),
        (
            "shopify.refund.create",
            "shopify.orders.refunds.create",
            {"order_id": 5623, "transactions": [{"amount": "3.00"}]},
        ),
        ("invoices.retry_payment", "stripe.invoices.pay", {"invoice": "in_1", "amount_due": 8900}),  # money coming in
        ("payouts.create", "", {"amount": 5, "currency": "USD"}),
        ("expenses.reimburse", "expensify_reimburse_report", {"report_id": "R1", "total": 12}),
    ],
)
def test_every_money_moving_action_waits_for_a_person(action_type, tool, payload):
    action = _refund(payload, action_type=action_type, tool=tool)
    decision = evaluate(DEFAULT_POLICY, action=action, analysis=analyze(action))

    assert decision.tier == "blocking", decision.reasons
    assert "money-moves" in decision.fired and _says_it_moves_money(decision.reasons), decision.reasons


def test_the_money_rule_is_the_policy_s_whatever_the_model_says():
    """The policy alone blocks a bare full refund: no model can lower it (the router takes the higher tier)."""
    action = _refund({"charge": "ch_3PqX"}, tool="stripe.refunds.create")
    decision = evaluate(DEFAULT_POLICY, action=action, analysis=analyze(action))

    assert decision.tier == "blocking"
    assert "money-amount-unread" in decision.fired
    assert f"{UNREAD}: no amount in the payload" in decision.reasons


@pytest.mark.parametrize(
    "action_type, tool",
    [("drive.transfer_ownership", "google.drive.permissions.create"), ("tesla.set_charge_limit", "")],
)
def test_a_transfer_or_charge_of_something_else_is_not_money(action_type, tool):
    action = riskrouter.ActionInput(action_type=action_type, tool=tool, summary="Hand it over", payload={"id": "1aB3"})

    assert not analyze(action).moves_money


def test_an_admin_can_see_and_switch_off_the_money_rule_by_name(router):
    policy = build_policy(
        overrides=[replace(next(r for r in DEFAULT_RULES if r.name == "money-amount-unread"), enabled=False)]
    )
    route = riskrouter.route(_refund({"charge": "ch_3PqX"}), router=Router(policy=policy, model=router.model))

    assert not any(r.startswith(UNREAD) for r in route.reasons)
    assert route.tier == "blocking" and _says_it_moves_money(route.reasons)  # money-moves still holds it


def test_a_disabled_money_moves_row_in_the_admin_switches_the_rule_off(db):
    from riskrouter import registry
    from riskrouter.models import PolicyRule

    action = _duplicate_charge_refund("", 3)
    before = evaluate(registry.current_policy(), action=action, analysis=analyze(action))
    PolicyRule.objects.create(name="money-moves", kind="indicator", match="moves_money", enabled=False)
    after = evaluate(registry.current_policy(), action=action, analysis=analyze(action))

    assert before.tier == "blocking" and "money-moves" in before.fired
    assert after.tier == "auto" and "money-moves" not in after.fired


@pytest.mark.parametrize(
    "text, value",
    [
        ("420 USD", 420),
        ("$1,200.50", 1200.5),
        ("EUR 5.000,00", 5000),
        ("5.000,00 €", 5000),
        ("1'200.50", 1200.5),
        ("1 200", 1200),
        ("US$ 420", 420),
        ("(420.00)", 420),
        ("-€3", 3),
        ("45,00", 45),
        ("0.500", 0.5),
        ("1.2k", 1200),
        ("USD 1.2 million", 1_200_000),
        ("five hundred dollars", 500),
        ("two thousand five hundred", 2500),
        ("twenty-five euros", 25),
        ("a million", 1_000_000),
        ("1,00,000", 100_000),
    ],
)
def test_text_amounts_are_read(text, value):
    assert money.parse_money_text(text)[0] == value


@pytest.mark.parametrize("text", ["ALL", "full", "420.", "5 apples", "1/2", "12:30", "1,2,3", "", "2024-06-01", "v2"])
def test_what_is_not_an_amount_is_not_guessed(text):
    assert money.parse_money_text(text) is None


def test_an_integer_past_a_double_is_an_unread_amount_not_a_crash(router):
    huge = 10**400  # the API refuses these (422); a replay or an import may still bring one
    refund = riskrouter.route(_refund({"charge": "ch_1", "amount": huge}), router=router)
    lookup = riskrouter.route(
        riskrouter.ActionInput(
            action_type="crm.contacts.update",
            summary="Update the contact",
            payload={"id": "c_1", "score": huge},
        ),
        router=router,
    )

    assert refund.tier == "blocking"
    assert f"{UNREAD}: 'amount' is not a number" in refund.reasons
    assert lookup.tier in set(riskrouter.Tier)
