"""The audit trail: append-only, hash-chained, verifiable and exportable."""

import json
import threading
from datetime import timedelta

import httpx
import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from reviewqueue.actions import lifecycle
from reviewqueue.audit.trail import GENESIS_HASH, audit_verify
from reviewqueue.models import Action, AuditEvent
from tests.conftest import make_agent, submission

pytestmark = pytest.mark.django_db


def _tamper(sql, params):
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A superuser can switch triggers off; the chain still catches it.
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)


def test_every_transition_writes_a_chained_event(agent_client, reviewer):
    action_id = agent_client.submit().json()["id"]
    lifecycle.action_decide(action=Action.objects.get(pk=action_id), user=reviewer, approve=False, note="no")

    events = list(AuditEvent.objects.filter(action_id=action_id))
    assert [e.kind for e in events] == ["action.submitted", "action.rejected"]
    assert events[1].prev_hash == events[0].hash
    assert events[1].actor == "user:rita" and events[1].data["note"] == "no"
    first = AuditEvent.objects.order_by("seq").first()
    assert first.seq == 1 and first.prev_hash == GENESIS_HASH


def test_a_failed_transition_leaves_no_event_and_no_change(agent_client, reviewer):
    action_id = agent_client.submit().json()["id"]
    before = AuditEvent.objects.count()
    with pytest.raises(Exception):
        lifecycle.action_decide(action=Action.objects.get(pk=action_id), user=reviewer, approve=False, note=" ")
    assert AuditEvent.objects.count() == before
    assert Action.objects.get(pk=action_id).status == "pending"


def test_verify_audit_passes_on_an_intact_chain(agent_client, capsys):
    for _ in range(3):
        agent_client.submit()
    call_command("verify_audit")
    assert "intact: 5 events verified" in capsys.readouterr().out  # agent created, its key, 3 submissions


@pytest.mark.parametrize(
    "sql, problem",
    [
        ("UPDATE reviewqueue_auditevent SET data = %s WHERE seq = 3", "contents do not match"),
        ("DELETE FROM reviewqueue_auditevent WHERE seq = 3", "event #3 is missing"),
    ],
)
def test_verify_audit_exits_1_naming_the_first_broken_event(agent_client, sql, problem):
    for _ in range(2):
        agent_client.submit()
    _tamper(sql, ['{"forged": true}'] if "UPDATE" in sql else [])

    with pytest.raises(CommandError) as failure:
        call_command("verify_audit")
    assert "event #3" in str(failure.value) and problem in str(failure.value)
    assert audit_verify()[1].seq == 3


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's; CI runs it there")
@pytest.mark.parametrize("sql", ["UPDATE reviewqueue_auditevent SET kind = 'x'", "DELETE FROM reviewqueue_auditevent"])
def test_postgresql_refuses_to_change_the_trail(agent_client, sql):
    """Even for the tables' owner (TRUNCATE and other roles: test_database_role.py)."""
    agent_client.submit()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred FK checks pending
        cursor.execute(sql)
    assert AuditEvent.objects.count() == 3


def test_export_audit_writes_json_lines_since_a_time(agent_client, tmp_path):
    now = timezone.now()
    with time_machine.travel(now - timedelta(days=10)):
        agent_client.submit(summary="old")
    agent_client.submit(summary="new")
    out = tmp_path / "audit.jsonl"

    call_command("export_audit", "--since", "7d", "--output", str(out))

    lines = [json.loads(line) for line in out.read_text().splitlines()]
    submitted = [line for line in lines if line["kind"] == "action.submitted"]
    assert len(submitted) == 1 and submitted[0]["action_id"] == Action.objects.get(summary="new").pk.__str__()
    assert len(lines) == AuditEvent.objects.filter(created_at__gte=now - timedelta(days=7)).count()
    assert set(lines[0]) >= {"seq", "created_at", "kind", "actor", "action_id", "data", "prev_hash", "hash"}


def test_export_audit_refuses_a_bad_since(db):
    with pytest.raises(CommandError, match="--since"):
        call_command("export_audit", "--since", "last tuesday")


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_keep_one_unbroken_chain(live_server):
    """Every submission appends under the chain lock: 12 agents at once over
    real HTTP leave one gapless chain that verifies, one event per action."""
    clients = [make_agent(f"racer-{n}", rate_limit_per_minute=1000) for n in range(12)]
    before = AuditEvent.objects.count()
    barrier = threading.Barrier(len(clients))
    statuses = []

    def submit(client):
        with httpx.Client(base_url=live_server.url, timeout=30) as http:
            barrier.wait()
            for n in range(5):
                statuses.append(
                    http.post(
                        "/api/v1/actions",
                        json=submission(summary=f"race {n}"),
                        headers={"Authorization": f"Bearer {client.key}"},
                    ).status_code
                )

    threads = [threading.Thread(target=submit, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [201] * 60
    submitted = AuditEvent.objects.filter(kind="action.submitted")
    assert submitted.count() == 60 == Action.objects.count()
    assert AuditEvent.objects.count() == before + 60
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert audit_verify() == (len(seqs), None)
