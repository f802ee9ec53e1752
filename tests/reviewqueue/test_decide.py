"""Reviewers' decisions in the lifecycle: the rules that hold whatever the browser does."""

import threading

import pytest
from django.db import connection

from reviewqueue.actions import lifecycle
from reviewqueue.core.canonical import sha256_hex
from reviewqueue.core.errors import Forbidden, InvalidInput
from reviewqueue.models import Action, AuditEvent, Decision, OutboxMessage
from tests import dashboard as d


def _fresh(action):
    return Action.objects.select_related("agent").get(pk=action.pk)


def test_it_approves_and_records_the_decision_and_its_audit_event(agent_client, reviewer):
    action = d.blocking(agent_client)
    decided = lifecycle.action_decide(action=action, user=reviewer, approve=True, note="looks right")
    assert decided.status == "approved" and decided.decided_by == reviewer
    assert decided.approved_payload == action.payload
    assert decided.approved_payload_sha256 == sha256_hex(action.payload)
    assert list(Decision.objects.filter(action=action).values_list("kind", "user__username")) == [("approve", "rita")]
    assert AuditEvent.objects.filter(action=action, kind="action.approved", actor="user:rita").exists()


def test_a_rejection_needs_a_reason(agent_client, reviewer):
    action = d.blocking(agent_client)
    with pytest.raises(InvalidInput, match="reason"):
        lifecycle.action_decide(action=action, user=reviewer, approve=False, note="   ")
    assert _fresh(action).status == "pending" and not Decision.objects.exists()


def test_edit_and_approve_makes_the_edit_the_approved_payload(agent_client, reviewer):
    action = d.blocking(agent_client)
    edited = {**action.payload, "amount": 400.0}
    decided = lifecycle.action_decide(action=action, user=reviewer, approve=True, edited_payload=edited)
    assert decided.approved_payload == edited and decided.payload == action.payload
    assert decided.approved_payload_sha256 == sha256_hex(edited)
    decision = Decision.objects.get(action=action)
    assert decision.kind == "edit_approve" and decision.edited_payload == edited
    assert agent_client.get(f"/actions/{action.pk}").json()["approved_payload"] == edited


def test_an_agents_owner_may_not_decide_its_actions(agent_client, reviewer, senior_reviewer):
    agent_client.agent.owners.add(reviewer)
    action = d.blocking(agent_client)
    for call in (
        lambda: lifecycle.action_decide(action=action, user=reviewer, approve=True),
        lambda: lifecycle.action_decide(action=action, user=reviewer, approve=False, note="no"),
        lambda: lifecycle.action_escalate(action=action, user=reviewer),
    ):
        with pytest.raises(Forbidden, match="separation of duties"):
            call()
    assert lifecycle.action_decide(action=action, user=senior_reviewer, approve=True).status == "approved"


def test_four_eyes_needs_two_distinct_approvers_and_the_first_leaves_it_pending(
    agent_client, reviewer, senior_reviewer
):
    action = d.four_eyes(agent_client)
    first = lifecycle.action_decide(action=action, user=reviewer, approve=True)
    assert first.status == "pending"
    assert agent_client.get(f"/actions/{action.pk}").json()["may_execute"] is False
    with pytest.raises(InvalidInput, match="second, different reviewer"):
        lifecycle.action_decide(action=action, user=reviewer, approve=True)
    assert _fresh(action).status == "pending"
    second = lifecycle.action_decide(action=_fresh(action), user=senior_reviewer, approve=True)
    assert second.status == "approved"
    assert list(Decision.objects.filter(action=action).values_list("user__username", flat=True)) == ["rita", "sam"]
    event = AuditEvent.objects.get(action=action, kind="action.approved")
    assert event.data["approvers"] == ["rita", "sam"]


def test_four_eyes_the_first_approvers_edit_is_what_the_second_approves(agent_client, reviewer, senior_reviewer):
    action = d.four_eyes(agent_client)
    edited = {**action.payload, "amount": 60000.0}
    lifecycle.action_decide(action=action, user=reviewer, approve=True, edited_payload=edited)
    decided = lifecycle.action_decide(action=_fresh(action), user=senior_reviewer, approve=True)
    assert decided.approved_payload == edited


def test_one_rejection_ends_a_four_eyes_action(agent_client, reviewer, senior_reviewer):
    action = d.four_eyes(agent_client)
    lifecycle.action_decide(action=action, user=reviewer, approve=True)
    assert (
        lifecycle.action_decide(action=_fresh(action), user=senior_reviewer, approve=False, note="no").status
        == "rejected"
    )


def test_the_loser_of_a_race_learns_who_decided_and_how(agent_client, reviewer, senior_reviewer):
    action = d.blocking(agent_client)
    stale = _fresh(action)
    lifecycle.action_decide(action=action, user=reviewer, approve=True)
    with pytest.raises(lifecycle.AlreadyDecided) as lost:
        lifecycle.action_decide(action=stale, user=senior_reviewer, approve=False, note="fraud")
    assert lost.value.message == "Already decided: approved by rita."
    assert Decision.objects.filter(action=action).count() == 1


def test_escalation_hands_the_item_to_senior_reviewers_and_keeps_it_pending(agent_client, reviewer, senior_reviewer):
    action = d.blocking(agent_client)
    escalated = lifecycle.action_escalate(action=action, user=reviewer, note="large and unusual")
    assert escalated.status == "pending" and escalated.escalated_to == "senior_reviewer"
    assert escalated.escalation_level == action.escalation_level  # the SLA chain keeps its place
    assert Decision.objects.get(action=action).kind == "escalate"
    assert AuditEvent.objects.filter(action=action, kind="action.escalated", actor="user:rita").exists()
    with pytest.raises(Forbidden, match="escalated to senior reviewer"):
        lifecycle.action_decide(action=_fresh(action), user=reviewer, approve=True)
    with pytest.raises(Forbidden, match="one of the senior reviewers yourself"):
        lifecycle.action_escalate(action=_fresh(action), user=senior_reviewer)
    assert lifecycle.action_decide(action=_fresh(action), user=senior_reviewer, approve=True).status == "approved"


def test_async_review_confirms_or_flags_with_a_reason_and_a_flag_notifies_the_agent(
    agent_client, reviewer, senior_reviewer
):
    confirmed = lifecycle.action_review(action=d.async_review(agent_client), user=reviewer, flag=False)
    assert confirmed.review_state == "confirmed" and confirmed.reviewed_by == reviewer
    action = d.async_review(agent_client, callback_url="https://agent.example/hooks/rq")
    with pytest.raises(InvalidInput, match="reason"):
        lifecycle.action_review(action=action, user=reviewer, flag=True, note="")
    flagged = lifecycle.action_review(action=action, user=reviewer, flag=True, note="Wrong customer")
    assert flagged.review_state == "flagged" and flagged.review_note == "Wrong customer"
    assert flagged.status == "approved"  # already executed; the flag is the alarm
    assert OutboxMessage.objects.filter(action=action, event="action.flagged", kind="agent_webhook").exists()
    assert AuditEvent.objects.filter(action=action, kind="action.flagged").exists()
    with pytest.raises(lifecycle.AlreadyDecided, match="flagged by rita"):
        lifecycle.action_review(action=action, user=senior_reviewer, flag=False)


def test_a_claim_is_a_lease_others_see_and_only_its_holder_releases(agent_client, reviewer, senior_reviewer):
    action = d.blocking(agent_client)
    held, action = lifecycle.action_claim(action=action, user=reviewer)
    assert held and action.claimed_by == reviewer and action.claim_expires_at
    held, seen = lifecycle.action_claim(action=action, user=senior_reviewer)
    assert not held and seen.claimed_by == reviewer
    assert lifecycle.action_release(action=action, user=senior_reviewer).claimed_by == reviewer
    assert lifecycle.action_release(action=action, user=reviewer).claimed_by is None
    held, action = lifecycle.action_claim(action=action, user=senior_reviewer)
    assert held and action.claimed_by == senior_reviewer
    held, action = lifecycle.action_claim(action=action, user=reviewer, take_over=True)
    assert held and action.claimed_by == reviewer
    assert AuditEvent.objects.filter(action=action, kind="action.claimed").count() == 3


def test_an_expired_claim_can_be_taken(agent_client, reviewer, senior_reviewer, settings):
    from datetime import timedelta

    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "CLAIM_LEASE": timedelta(seconds=-1)}
    action = d.blocking(agent_client)
    lifecycle.action_claim(action=action, user=reviewer)
    held, action = lifecycle.action_claim(action=action, user=senior_reviewer)
    assert held and action.claimed_by == senior_reviewer


def test_deciding_releases_the_claim(agent_client, reviewer):
    _, action = lifecycle.action_claim(action=d.blocking(agent_client), user=reviewer)
    decided = lifecycle.action_decide(action=action, user=reviewer, approve=True)
    assert decided.claimed_by is None


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="real concurrent writers need PostgreSQL; CI runs it")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("four_eyes", [False, True], ids=["single", "four-eyes"])
def test_racing_reviewers_on_real_threads_produce_exactly_one_decision(agent_client, four_eyes):
    """Eight reviewers decide at once on PostgreSQL: one decision (or one pair) counts."""
    from tests.conftest import _user

    users = [_user(f"racer{i}", "reviewer") for i in range(8)]
    action = d.four_eyes(agent_client) if four_eyes else d.blocking(agent_client)
    barrier = threading.Barrier(len(users))
    outcomes = []

    def decide(user, approve):
        try:
            barrier.wait()
            got = lifecycle.action_decide(action=_fresh(action), user=user, approve=approve, note="race")
            outcomes.append(("won", got.status))
        except lifecycle.AlreadyDecided as exc:
            outcomes.append(("lost", exc.message))
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(u, four_eyes or i % 2 == 0)) for i, u in enumerate(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    action.refresh_from_db()
    assert action.status in ("approved", "rejected")
    finals = Decision.objects.filter(action=action)
    if four_eyes:
        assert action.status == "approved"
        assert finals.count() == 2 and len(set(finals.values_list("user", flat=True))) == 2
        assert sorted(o[0] for o in outcomes) == ["lost"] * 6 + ["won"] * 2
    else:
        assert finals.count() == 1
        assert sorted(o[0] for o in outcomes) == ["lost"] * 7 + ["won"]
        who = finals.get().user.username
        assert all(message.endswith(f"by {who}.") for kind, message in outcomes if kind == "lost")
    assert AuditEvent.objects.filter(action=action, kind__in=["action.approved", "action.rejected"]).count() == 1


# ------------------------------------------- four eyes counts one payload ---
# Over HTTP, with the attacks of issue 11: test_four_eyes_http.py.


def test_an_edit_that_lowers_the_amount_keeps_four_eyes(agent_client, reviewer, senior_reviewer):
    action = d.four_eyes(agent_client)
    lowered = {**action.payload, "amount": 100.0}
    pending = lifecycle.action_decide(action=action, user=reviewer, approve=True, edited_payload=lowered)
    assert pending.status == "pending" and _fresh(action).four_eyes  # never fewer eyes
    decided = lifecycle.action_decide(action=_fresh(action), user=senior_reviewer, approve=True)
    assert decided.status == "approved" and decided.approved_payload == lowered


def test_an_edit_that_matches_the_proposed_edit_is_a_plain_approval_of_it(agent_client, reviewer, senior_reviewer):
    action = d.four_eyes(agent_client)
    edited = {**action.payload, "amount": 60000.0}
    lifecycle.action_decide(action=action, user=reviewer, approve=True, edited_payload=edited)
    decided = lifecycle.action_decide(
        action=_fresh(action), user=senior_reviewer, approve=True, edited_payload=dict(edited)
    )
    assert decided.status == "approved" and decided.approved_payload == edited
    assert list(Decision.objects.filter(action=action).values_list("kind", flat=True)) == ["edit_approve", "approve"]


def test_an_edit_back_to_a_payload_someone_approved_counts_that_approval(agent_client, reviewer, senior_reviewer):
    """Approvals are counted per payload: two people approved the agent's own."""
    from tests.conftest import _user

    vera = _user("vera", "reviewer")
    action = d.four_eyes(agent_client)
    lifecycle.action_decide(action=action, user=reviewer, approve=True)
    lifecycle.action_decide(
        action=_fresh(action), user=senior_reviewer, approve=True, edited_payload={**action.payload, "amount": 99000.0}
    )
    decided = lifecycle.action_decide(action=_fresh(action), user=vera, approve=True, edited_payload=action.payload)
    assert decided.status == "approved" and decided.approved_payload == action.payload
    assert AuditEvent.objects.get(action=action, kind="action.approved").data["approvers"] == ["rita", "vera"]


def test_approvals_recorded_before_hashes_count_for_what_was_proposed_then(agent_client, reviewer, senior_reviewer):
    """Rows from before migration 0013 have no hash: an edit approved its edit,
    a plain approval what was proposed when it was made."""
    from tests.conftest import _user

    action = d.four_eyes(agent_client)
    edited = {**action.payload, "amount": 61000.0}
    lifecycle.action_decide(action=action, user=reviewer, approve=True, edited_payload=edited)
    Decision.objects.filter(action=action).update(payload_sha256="")
    with pytest.raises(InvalidInput, match="already approved this payload"):
        lifecycle.action_decide(action=_fresh(action), user=reviewer, approve=True)
    assert lifecycle.action_decide(action=_fresh(action), user=senior_reviewer, approve=True).approved_payload == edited

    other = d.four_eyes(agent_client, summary="another one")
    lifecycle.action_decide(action=other, user=reviewer, approve=True)
    Decision.objects.filter(action=other).update(payload_sha256="")
    decided = lifecycle.action_decide(action=_fresh(other), user=_user("vera", "reviewer"), approve=True)
    assert decided.status == "approved" and decided.approved_payload == other.payload


def test_an_edit_is_routed_with_the_action_and_its_new_reasons_are_kept(agent_client, reviewer):
    action = d.blocking(agent_client, tool="", payload={"charge": "ch_77", "amount": 5000.0, "currency": "USD"})
    before = list(action.risk_reasons)
    raised = {**action.payload, "amount": 750000.0}
    pending = lifecycle.action_decide(action=action, user=reviewer, approve=True, edited_payload=raised)
    stored = _fresh(action)
    assert pending.status == "pending" and stored.four_eyes
    assert stored.risk_reasons[: len(before)] == before
    added = stored.risk_reasons[len(before) :]
    assert added and all(r.startswith("after an edit by rita: ") for r in added)
    assert stored.risk_score >= action.risk_score
    again = lifecycle.action_decide(
        action=_fresh(action), user=reviewer, approve=True, edited_payload={**raised, "amount": 750001.0}
    )
    assert again.status == "pending"
    reasons = _fresh(again).risk_reasons
    assert reasons[: len(stored.risk_reasons)] == stored.risk_reasons  # each edit's reasons stay, in order
    assert any("750,001" in r for r in reasons[len(stored.risk_reasons) :])
    assert not any("moves money" in r for r in reasons[len(before) :])  # what the action had already isn't repeated
