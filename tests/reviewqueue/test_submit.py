"""API.md, "Submit an action": tiers, the answer's shape, and what is stored."""

import hashlib
import json

import pytest
from django.core.management import call_command
from django.db import connection

from reviewqueue.actions.kill_switches import kill_switch_set
from reviewqueue.audit.trail import audit_verify
from reviewqueue.controls import killswitch
from reviewqueue.models import Action, AuditEvent
from tests.conftest import make_agent, submission

pytestmark = pytest.mark.django_db


def test_a_blocking_action_is_pending_and_may_not_execute(agent_client):
    response = agent_client.submit()

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending"
    assert body["may_execute"] is False
    assert body["tier"] == "blocking"
    assert body["review_state"] == "none"
    assert body["approved_payload"] is None
    assert body["risk"]["reasons"] and 0 <= body["risk"]["score"] <= 1
    assert body["risk"]["model_version"]
    assert body["sla_due_at"] > body["created_at"]
    assert body["escalation_level"] == 0
    assert body["decided_at"] is None and body["decision"] is None


def test_a_read_is_approved_at_once_with_its_payload_bound(agent_client):
    payload = {"query": "ünïcode", "limit": 10}
    body = agent_client.submit_familiar(
        action_type="crm.contacts.lookup", tool="hubspot.contacts.search", payload=payload
    ).json()

    assert body["tier"] == "auto"
    assert body["status"] == "approved" and body["may_execute"] is True
    assert body["approved_payload"] == payload
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert body["approved_payload_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert body["decided_at"] is not None


def test_an_unknown_write_is_approved_and_awaits_review(agent_client):
    body = agent_client.submit_familiar(action_type="DocsUpdateParagraph", tool="", payload={"doc": "d1"}).json()

    assert body["tier"] == "async_review"
    assert body["status"] == "approved" and body["may_execute"] is True
    assert body["review_state"] == "awaiting_review"


def test_a_first_sighting_goes_up_a_tier(agent_client):
    first = agent_client.submit(action_type="crm.contacts.lookup", tool="").json()
    second = agent_client.submit(action_type="crm.contacts.lookup", tool="").json()

    assert (first["tier"], second["tier"]) == ("async_review", "auto")
    assert "first action from this agent: one tier up" in first["risk"]["reasons"]


@pytest.mark.parametrize(
    "action_type",
    [
        "payments.transfer",
        "files.delete",
        "GmailSendEmail",
        "iam.grant_role",
        "run_shell_command",
        "send_slack_message",
    ],
)
def test_the_first_rule_policy_blocks_dangerous_types(agent_client, action_type):
    assert agent_client.submit(action_type=action_type).json()["tier"] == "blocking"


def test_the_action_and_its_audit_event_are_stored(agent_client):
    body = agent_client.submit().json()

    action = Action.objects.get(pk=body["id"])
    assert action.agent == agent_client.agent
    assert action.context == {"user_message": "I was charged twice"}
    assert action.cost == {"input_tokens": 1830, "output_tokens": 212, "usd": 0.0041}
    event = AuditEvent.objects.get(action=action)
    assert event.kind == "action.submitted"
    assert event.actor == "agent:billing-bot"


def test_only_the_required_fields_are_needed(agent_client):
    response = agent_client.submit({"action_type": "GmailSearchEmails", "payload": {}, "summary": "Find the invoice"})

    assert response.status_code == 201
    assert response.json()["status"] == "approved"


def test_an_action_type_outside_the_agents_scopes_is_refused_and_audited(db):
    client = make_agent("support-bot", scopes=["crm.*", "GmailSearch*"])

    response = client.submit(action_type="payments.refund")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "scope_denied"
    assert not Action.objects.exists()
    denied = AuditEvent.objects.get(kind="action.scope_denied")
    assert denied.data["action_type"] == "payments.refund"
    assert client.submit(action_type="crm.contacts.lookup", tool="").status_code == 201


def test_the_openapi_document_and_docs_are_served(client):
    document = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/actions" in document["paths"]
    assert "/api/v1/actions/{action_id}/wait" in document["paths"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200
    assert b"/static/ninja/swagger-ui-bundle.js" in docs.content  # served by us, not a CDN


def test_every_answer_matches_the_documented_action_schema(agent_client, reviewer):
    from reviewqueue.actions import lifecycle
    from reviewqueue.api.routes import ActionOut
    from reviewqueue.models import Action

    answers = [agent_client.submit(action_type=t, tool="").json() for t in ("crm.read", "docs.edit", "payments.refund")]
    pending = Action.objects.get(pk=answers[-1]["id"])
    lifecycle.action_decide(action=pending, user=reviewer, approve=True, edited_payload={"amount": 1})
    answers.append(agent_client.get(f"/actions/{pending.pk}").json())
    answers.append(agent_client.post(f"/actions/{pending.pk}/outcome", {"status": "succeeded"}).json())

    for answer in answers:
        assert ActionOut.model_validate(answer).model_dump(mode="json").keys() == answer.keys()
    assert answers[-1]["approved_payload"] == {"amount": 1} != answers[-1]["payload"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "body",
    [
        submission(),
        submission(
            action_type="GmailSendEmail",
            tool="",
            conversation_id="",
            callback_url="",
            context=None,
            cost=None,
            summary="Envoyer le devis à l'équipe — 見積書 🚀",
            payload={
                "to": ["a@acme.example"],
                "nested": {"deep": [1, 2.5, -0.0001, 10**18, 10**30, True, None, ""]},
                "unicode": "naïve ☃ \u2028",
                "empty": {},
            },
        ),
        {"action_type": "db.rows.delete", "payload": {"table": "backups", "where": "age > 30"}, "summary": "Prune"},
    ],
    ids=["full", "unicode-and-nulls", "required-only"],
)
def test_a_committed_submission_reads_back_exactly_as_it_was_answered(body):
    """On PostgreSQL the action is written from a JSON row by the submit
    function (reviewqueue/sql/reviewqueue_submit.sql): every field must come
    back as the agent was told, and the audit chain must verify."""
    client = make_agent("billing-bot")
    answered = client.submit(body)
    assert answered.status_code == 201, answered.content

    assert client.get(f"/actions/{answered.json()['id']}").json() == answered.json()
    stored = Action.objects.get(pk=answered.json()["id"])
    assert stored.payload == body["payload"]
    assert (stored.context, stored.cost) == (body.get("context"), body.get("cost"))
    assert audit_verify()[1] is None


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the submit function is PostgreSQL's; CI runs it")
def test_inside_a_transaction_a_submission_is_still_the_one_call_in_a_savepoint(agent_client):
    """As tests run: so they exercise the path production takes. A refusal
    inside the call rolls back its savepoint and nothing else."""
    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        assert agent_client.submit().status_code == 201
    call = next(n for n, sql in enumerate(statements) if "reviewqueue_submit(" in sql)
    assert statements[call - 1].startswith("SAVEPOINT") and statements[call + 1].startswith("RELEASE SAVEPOINT")
    assert not any(sql.startswith('INSERT INTO "reviewqueue_action"') for sql in statements)

    kill_switch_set(scope="global", engaged=True, reason="incident", actor="ops")
    statements.clear()
    with connection.execute_wrapper(record):
        refused = agent_client.submit(summary="while halted")
    assert refused.status_code == 423
    call = next(n for n, sql in enumerate(statements) if "reviewqueue_submit(" in sql)
    assert statements[call + 1].startswith("ROLLBACK TO SAVEPOINT")  # then the careful way: which switch
    kill_switch_set(scope="global", engaged=False, reason="over", actor="ops")

    assert agent_client.submit(summary="after").status_code == 201
    assert Action.objects.filter(agent=agent_client.agent).count() == 2
    assert audit_verify()[1] is None


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the submit function is PostgreSQL's; CI runs it")
def test_the_submit_function_checks_under_the_lock_that_engaging_the_kill_switch_takes():
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'reviewqueue_submit'")
        source = cursor.fetchone()[0]
    assert f"pg_advisory_xact_lock_shared({killswitch.LOCK})" in source


@pytest.mark.django_db(transaction=True)
def test_the_submit_function_migrations_reverse_and_reapply():
    call_command("migrate", "reviewqueue", "0006", verbosity=0)
    call_command("migrate", "reviewqueue", verbosity=0)

    assert make_agent("after-migrations").submit().status_code == 201
