"""Idempotency-Key, like the best payment APIs."""

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import httpx
import psycopg
import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from reviewqueue.actions import lifecycle
from reviewqueue.actions.submit import request_fingerprint
from reviewqueue.api.routes import SubmitIn
from reviewqueue.audit.trail import audit_verify
from reviewqueue.controls.housekeeping import purge_expired
from reviewqueue.core.canonical import sha256_hex
from reviewqueue.models import Action, AuditEvent, IdempotencyKey
from tests.conftest import make_agent, submission

pytestmark = pytest.mark.django_db


def test_the_same_key_and_body_return_the_original_action_with_200(agent_client):
    first = agent_client.submit(idempotency_key="refund-8812")
    second = agent_client.submit(idempotency_key="refund-8812")

    assert first.status_code == 201 and second.status_code == 200
    assert second.json() == first.json()
    assert Action.objects.count() == 1


def test_the_same_key_with_a_different_body_is_409(agent_client):
    first = agent_client.submit(idempotency_key="refund-8812").json()
    response = agent_client.submit(idempotency_key="refund-8812", summary="Refund $4,200 instead")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert response.json()["error"]["details"]["action_id"] == first["id"]
    assert Action.objects.count() == 1


def test_the_replay_shows_the_action_as_it_stands_now(agent_client):
    first = agent_client.submit(idempotency_key="k1").json()
    agent_client.post(f"/actions/{first['id']}/cancel")
    assert agent_client.submit(idempotency_key="k1").json()["status"] == "cancelled"


def test_the_fingerprint_is_of_the_body_as_the_agent_sent_it(agent_client):
    body = {
        "action_type": "crm.contacts.lookup",
        "payload": {"q": "jane", "n": [1, 2.5]},
        "summary": "Find Jane",
        "cost": {"usd": 0.01},
    }
    assert agent_client.submit(body, idempotency_key="as-sent").status_code == 201

    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    stored = IdempotencyKey.objects.get(key="as-sent").request_sha256
    assert stored == hashlib.sha256(canonical.encode()).hexdigest() == request_fingerprint(body)


def test_a_retry_still_replays_after_the_submission_gains_an_optional_field(agent_client, monkeypatch):
    """The service's own reading of a request may grow; a retry sent before
    that (or by a client that doesn't know the field) is the same request."""
    first = agent_client.submit(idempotency_key="deploy-1")
    assert first.status_code == 201

    @dataclass(frozen=True)
    class WiderSubmission(lifecycle.Submission):
        priority: str = "normal"

    monkeypatch.setattr(lifecycle, "Submission", WiderSubmission)
    retry = agent_client.submit(idempotency_key="deploy-1")
    assert retry.status_code == 200 and retry.json()["id"] == first.json()["id"]
    assert agent_client.submit(idempotency_key="deploy-1", summary="another").status_code == 409


def test_a_key_stored_with_the_earlier_fingerprint_still_replays(agent_client):
    """Keys stored before fingerprints were of the body as sent (they hashed
    the submission's fields) keep replaying until they expire."""
    first = agent_client.submit(idempotency_key="before-0016").json()
    read = SubmitIn.model_validate(submission()).model_dump()  # every field, defaults filled in
    earlier = sha256_hex(
        {
            name: read[name]
            for name in (
                "action_type",
                "payload",
                "summary",
                "tool",
                "rationale",
                "conversation_id",
                "context",
                "cost",
                "callback_url",
            )
        }
    )
    IdempotencyKey.objects.filter(key="before-0016").update(request_sha256=earlier)

    retry = agent_client.submit(idempotency_key="before-0016")
    assert retry.status_code == 200 and retry.json()["id"] == first["id"]
    assert agent_client.submit(idempotency_key="before-0016", summary="another").status_code == 409


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the submit function is PostgreSQL's; CI runs it")
def test_a_keyed_submission_is_one_call_and_only_a_retry_reads_the_earlier_answer(agent_client):
    assert agent_client.submit().status_code == 201  # the key is remembered from here on
    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        first = agent_client.submit(idempotency_key="one-call")
    assert first.status_code == 201
    assert not any("reviewqueue_idempotencykey" in sql or "reviewqueue_apikey" in sql for sql in statements)
    assert [sql for sql in statements if "reviewqueue_submit(" in sql] == [
        "SELECT seq, prev_hash, hash FROM reviewqueue_submit(%s, %s, %s, %s, %s, %s)"
    ]

    statements.clear()
    with connection.execute_wrapper(record):
        retry = agent_client.submit(idempotency_key="one-call")
    assert retry.status_code == 200 and retry.json()["id"] == first.json()["id"]
    call = next(n for n, sql in enumerate(statements) if "reviewqueue_submit(" in sql)  # refused in SQL (RQ409)
    assert not any("reviewqueue_idempotencykey" in sql for sql in statements[:call])
    assert any("reviewqueue_idempotencykey" in sql for sql in statements[call:])  # then the earlier answer
    assert Action.objects.filter(agent=agent_client.agent).count() == 2


def test_keys_are_per_agent(agent_client, other_agent_client):
    mine = agent_client.submit(idempotency_key="shared").json()
    theirs = other_agent_client.submit(idempotency_key="shared")

    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine["id"]


def test_keys_are_kept_for_24_hours_then_purged(agent_client):
    agent_client.submit(idempotency_key="day-old")

    with time_machine.travel(timezone.now() + timedelta(hours=23, minutes=59)):
        purge_expired()
        assert agent_client.submit(idempotency_key="day-old").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(hours=24, minutes=1)):
        purge_expired()
        assert not IdempotencyKey.objects.exists()
        assert agent_client.submit(idempotency_key="day-old").status_code == 201


def test_a_replay_counts_against_the_rate_limit_like_any_answer(db):
    client = make_agent("tight", rate_limit_per_minute=3)
    assert client.submit(idempotency_key="a").status_code == 201
    assert client.submit(idempotency_key="a").status_code == 200
    assert client.submit(idempotency_key="a").status_code == 200
    over = client.submit(idempotency_key="a")
    assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limited"
    assert client.submit(idempotency_key="b").status_code == 429


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_create_exactly_one_action(live_server):
    client = make_agent("racer", rate_limit_per_minute=1000)
    barrier = threading.Barrier(8)
    responses = []

    def submit():
        with httpx.Client(base_url=live_server.url, timeout=30) as http:
            barrier.wait()
            responses.append(
                http.post(
                    "/api/v1/actions",
                    json=submission(),
                    headers={"Authorization": f"Bearer {client.key}", "Idempotency-Key": "one-and-only"},
                )
            )

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 7 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert Action.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="holds a row lock from a second session; CI runs it")
@pytest.mark.django_db(transaction=True)
def test_a_request_that_loses_the_key_race_in_its_insert_answers_as_the_replay_and_leaves_nothing(live_server):
    """The winner's key row is not yet committed when the loser's write
    reaches it, so the loser's INSERT waits on it, then finds the key taken;
    its whole statement must roll back and its answer be the winner's action."""
    client = make_agent("racer", rate_limit_per_minute=1000)
    winner = client.submit(idempotency_key="first").json()["id"]
    body = submission()
    fingerprint = request_fingerprint(body)
    events_before = AuditEvent.objects.count()
    result = {}

    def submit():
        with httpx.Client(base_url=live_server.url, timeout=30) as http:
            result["response"] = http.post(
                "/api/v1/actions",
                json=body,
                headers={
                    "Authorization": f"Bearer {client.key}",
                    "Idempotency-Key": "contested",
                },
            )

    with psycopg.connect(_dsn()) as other:  # the winner, mid-commit
        other.execute(
            "INSERT INTO reviewqueue_idempotencykey (agent_id, key, request_sha256, action_id, created_at)"
            " VALUES (%s, 'contested', %s, %s, now())",
            [client.agent.pk, fingerprint, winner],
        )
        loser = threading.Thread(target=submit)
        loser.start()
        _until_a_session_waits_on_a_lock()
        other.commit()
    loser.join()

    response = result["response"]
    assert response.status_code == 200 and response.json()["id"] == winner
    assert Action.objects.count() == 1
    assert AuditEvent.objects.count() == events_before  # the loser's event rolled back with it
    assert audit_verify() == (events_before, None)


def _dsn() -> str:
    settings = connection.settings_dict
    return f"host={settings['HOST']} port={settings['PORT'] or 5432} user={settings['USER']} dbname={settings['NAME']}"


def _until_a_session_waits_on_a_lock(seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            assert time.monotonic() < deadline, "the racing request never reached the key's INSERT"
            time.sleep(0.02)
