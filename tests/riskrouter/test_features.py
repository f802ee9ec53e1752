"""What the policy and the model read off an action."""

from __future__ import annotations

from riskrouter.features import analyze, featurize
from tests.riskrouter.conftest import action


def test_names_are_split_in_both_naming_styles():
    features = featurize(analyze(action(action_type="GmailSendEmail", tool="slack_api.chat.postMessage")))

    assert {"t=gmail", "t=send", "t=email", "t=slack", "t=post", "t=message"} <= set(features)


def test_a_stripe_amount_is_read_in_minor_units():
    found = analyze(
        action(
            action_type="payments.refund",
            tool="stripe.refunds.create",
            payload={"charge": "ch_1", "amount": 300},
            summary="Refund the duplicate $3 shipping fee",
        )
    )

    assert found.max_amount.value == 3.0 and found.max_amount.minor_units


def test_an_amount_in_major_units_stays_as_written():
    found = analyze(
        action(
            action_type="payments.transfer",
            tool="bank_api.transfers.create",
            payload={"amount": 48000, "currency": "EUR"},
            summary="Pay supplier invoice",
        )
    )

    assert found.max_amount.value == 48000 and not found.max_amount.minor_units


def test_nested_amounts_and_counts_are_found():
    found = analyze(
        action(
            action_type="payouts.bulk_create",
            tool="",
            payload={
                "amount": {"value": "40.00", "currency": "USD"},
                "items_count": 1312,
                "line_items": [{"id": 88120, "row_count": 5}],
            },
        )
    )

    assert found.max_amount.value == 40.0
    assert found.recipient_count == 1312
    assert found.row_count == 5  # an id is never a count


def test_amount_features_are_bucketed():
    features = featurize(analyze(action(action_type="payments.transfer", payload={"amount": 25.0})))

    assert features["amount<100"] == 1.0
    assert 0 < features["amount:log"] < 1


def test_first_sightings_are_features():
    features = featurize(analyze(action()), agent_is_new=True, action_type_is_new=True)

    assert features["new_agent"] == features["new_action_type"] == 1.0


def test_a_hostile_payload_is_bounded():
    payload = {f"k{i}": {"nested": ["x" * 100] * 50} for i in range(100)}
    found = analyze(action(payload=payload))

    assert len(found.leaves) <= 400
