"""An agent must not get around review (issue 11, "Hardening"): each test is
one of the attacker's tries, made with real requests against a real server."""

import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import time_machine

from reviewqueue.actions import kill_switches, wakeups
from reviewqueue.credentials import keys as credentials
from reviewqueue.models import Action, AuditEvent, Status
from tests.conftest import make_agent, submission

pytestmark = pytest.mark.django_db(transaction=True)

WIRE = {
    "action_type": "payments.transfer",
    "tool": "bank.transfers.create",
    "summary": "Wire $48,000 to ACME Ltd",
    "payload": {"amount": 48000, "currency": "USD", "iban": "DE89370400440532013000"},
}


def _http(live_server, client, headers=None) -> httpx.Client:
    return httpx.Client(
        base_url=live_server.url, timeout=30, headers={"Authorization": f"Bearer {client.key}", **(headers or {})}
    )


def _submit(http, **overrides):
    return http.post("/api/v1/actions", json=submission(**overrides))


def _engage(scope: str) -> None:
    kill_switches.kill_switch_set(scope=scope, engaged=True, reason="incident 42", actor="user:olga")


# ------------------------------------------------- scopes cover the tool ---


def test_an_agent_scoped_to_crm_read_cannot_run_a_stripe_transfer_through_the_tool(live_server):
    client = make_agent("crm-reader", scopes=["crm.read"])
    with _http(live_server, client) as http:
        refused = _submit(http, action_type="crm.read", tool="stripe.transfers.create")
        allowed = _submit(
            http, action_type="crm.read", tool="crm_read", payload={"contact": "c_1"}, summary="Look up contact c_1"
        )

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "scope_denied"
    assert refused.json()["error"]["details"]["tool"] == "stripe.transfers.create"
    assert allowed.status_code == 201
    assert list(Action.objects.values_list("tool", flat=True)) == ["crm_read"]


@pytest.mark.parametrize("tool", ["payments.refunds.create", "Payments:Refund", "PaymentsRefund", "payments"])
def test_a_kill_switch_on_a_pattern_covers_the_tool_an_action_runs(live_server, tool):
    client = make_agent("crm-bot")
    _engage("action_type:payments.*")
    with _http(live_server, client) as http:
        response = _submit(http, action_type="crm.note", tool=tool, summary="Add a note")

    assert response.status_code == 423
    assert response.json()["error"]["details"]["scope"] == "action_type:payments.*"
    assert not Action.objects.exists()


def test_engaging_a_switch_halts_pending_actions_whose_tool_it_covers(live_server):
    client = make_agent("crm-bot")
    with _http(live_server, client) as http:
        pending = _submit(http, **{**WIRE, "action_type": "crm.note", "tool": "Stripe_Transfers_Create"}).json()
    assert pending["status"] == "pending"

    _engage("action_type:stripe.*")

    assert Action.objects.get(pk=pending["id"]).status == Status.HALTED


# ------------------------------------------- matching ignores spelling ---


@pytest.mark.parametrize(
    "action_type",
    [
        "Payments.Refund",
        "payments:refund",
        "payments_refund",
        "PaymentsRefund",
        "PAYMENTS-REFUND",
        "paymentsRefund",
        "payments",
        "PAYMENTS",
    ],
)
def test_a_switch_on_payments_covers_every_spelling_of_payments(live_server, action_type):
    client = make_agent("billing-bot")
    _engage("action_type:payments.*")
    with _http(live_server, client) as http:
        response = _submit(http, action_type=action_type, tool="")

    assert response.status_code == 423
    assert not Action.objects.exists()


def test_a_switch_on_payments_leaves_other_names_alone(live_server):
    client = make_agent("billing-bot")
    _engage("action_type:payments.*")
    with _http(live_server, client) as http:
        statuses = [
            _submit(http, action_type=name, tool="", payload={"q": "x"}, summary="Look it up").status_code
            for name in ("payroll.run", "paymentsx.lookup", "crm.payments_note")
        ]

    assert statuses == [201, 201, 201]


@pytest.mark.parametrize(
    ("action_type", "tool"),
    [
        ("Payments:Refund", "STRIPE_REFUNDS_CREATE"),
        ("payments_refund", "stripe/refunds/create"),
        ("PaymentsRefund", "StripeRefundsCreate"),
        ("payments", "stripe"),
    ],
)
def test_scopes_admit_every_spelling_of_what_they_name(live_server, action_type, tool):
    client = make_agent("billing-bot", scopes=["payments.*", "stripe.*"])
    with _http(live_server, client) as http:
        response = _submit(http, action_type=action_type, tool=tool)

    assert response.status_code == 201


def test_a_tool_spelled_with_look_alike_letters_is_refused_as_bad_input(live_server):
    client = make_agent("billing-bot", scopes=["crm.*"])
    with _http(live_server, client) as http:
        response = _submit(http, action_type="crm.note", tool="\u0455tripe.transfers.create")  # Cyrillic "s"

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["location"] == "body.tool"
    assert not Action.objects.exists()


# ------------------------------------------------ refusals are not free ---


def test_a_flood_of_refusals_is_rate_limited_and_audited_in_aggregate(live_server):
    from reviewqueue.controls.refusals import refusals_fold

    client = make_agent("prober", scopes=["crm.*"], rate_limit_per_minute=5)
    window_start = datetime(2026, 11, 29, 12, 0, 1, tzinfo=UTC)  # early in a 5-minute audit window
    with time_machine.travel(window_start, tick=True), _http(live_server, client) as http:
        statuses = [_submit(http, action_type="payments.refund").status_code for _ in range(300)]

        assert statuses.count(403) == 5 and statuses.count(429) == 295
        assert AuditEvent.objects.filter(kind="action.scope_denied").count() == 1
        assert refusals_fold() == 0  # the window is still open

    with time_machine.travel(window_start + timedelta(minutes=5)):
        assert refusals_fold() == 1
        assert refusals_fold() == 0  # folded once
    summary = AuditEvent.objects.get(kind="agent.refusals")
    assert summary.data["refusal"] == "action.scope_denied" and summary.data["more"] == 4
    assert summary.data["latest"]["action_type"] == "payments.refund"
    assert AuditEvent.objects.count() <= 4  # agent.created, key issued, one refusal, one summary


def test_bad_input_counts_against_the_rate_limit(live_server):
    client = make_agent("sloppy", rate_limit_per_minute=3)
    with _http(live_server, client) as http:
        answers = [http.post("/api/v1/actions", json={"action_type": 5}) for _ in range(4)]
        answers.append(http.post("/api/v1/actions", content=b"{not json", headers={"Content-Type": "application/json"}))
        answers.append(_submit(http))

    assert [a.status_code for a in answers] == [422, 422, 422, 429, 429, 429]
    assert answers[3].json()["error"]["code"] == "rate_limited" and answers[3].headers["Retry-After"]
    assert not Action.objects.exists()


# ----------------------------------------------------- waiting is bounded ---


def test_an_agent_gets_a_bounded_number_of_concurrent_waits(live_server, settings):
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "WAIT_MAX_PER_AGENT": 3}
    greedy, other = make_agent("greedy"), make_agent("other")
    with _http(live_server, greedy) as http:
        ids = [_submit(http, **WIRE, conversation_id=f"c{i}").json()["id"] for i in range(5)]
    with _http(live_server, other) as http:
        other_id = _submit(http, **WIRE).json()["id"]

    answers: dict[str, int] = {}

    def wait(action_id, agent_client=greedy):
        with _http(live_server, agent_client) as http:
            answers[action_id] = http.get(f"/api/v1/actions/{action_id}/wait", params={"timeout": 3}).status_code

    parked = [threading.Thread(target=wait, args=(pk,)) for pk in ids[:3]]
    for thread in parked:
        thread.start()
    deadline = time.monotonic() + 10
    while len(wakeups._waiters) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    with _http(live_server, greedy) as http:
        over = http.get(f"/api/v1/actions/{ids[3]}/wait", params={"timeout": 3})
        assert http.get(f"/api/v1/actions/{ids[3]}").status_code == 200  # a plain read still works
    started = time.monotonic()
    wait(other_id, other)  # another agent still waits its full timeout
    assert answers[other_id] == 200 and time.monotonic() - started >= 2.5
    for thread in parked:
        thread.join()
    wait(ids[4])  # the slots came back

    assert over.status_code == 429
    assert over.json()["error"]["code"] == "too_many_waits" and over.headers["Retry-After"] == "1"
    assert over.json()["error"]["details"]["limit"] == 3
    assert [answers[pk] for pk in ids[:3]] == [200, 200, 200] and answers[ids[4]] == 200


# ------------------------------- replays and revoked keys under a switch ---


def test_a_replayed_key_answers_423_while_a_kill_switch_covers_the_action(live_server):
    client = make_agent("billing-bot")
    lookup = {
        "action_type": "crm.lookup",
        "tool": "crm.search",
        "payload": {"q": "acme"},
        "summary": "Look up ACME's account",
        "callback_url": "",
    }
    with _http(live_server, client, headers={"Idempotency-Key": "lookup-1"}) as http:
        first = http.post("/api/v1/actions", json=submission(**lookup))
        _engage("agent:billing-bot")
        replay = http.post("/api/v1/actions", json=submission(**lookup))
        kill_switches.kill_switch_set(scope="agent:billing-bot", engaged=False, reason="resolved", actor="user:olga")
        after = http.post("/api/v1/actions", json=submission(**lookup))

    assert first.status_code == 201 and first.json()["may_execute"] is True
    assert replay.status_code == 423
    assert replay.json()["error"]["code"] == "kill_switch_engaged"
    assert replay.json()["error"]["details"]["action_id"] == first.json()["id"]
    assert "may_execute" not in replay.text
    assert after.status_code == 200 and after.json()["id"] == first.json()["id"]


def test_a_long_poll_ends_with_401_when_its_key_is_revoked(live_server):
    client = make_agent("billing-bot")
    with _http(live_server, client) as http:
        action_id = _submit(http, **WIRE).json()["id"]
    answer = {}

    def wait():
        with _http(live_server, client) as http:
            started = time.monotonic()
            response = http.get(f"/api/v1/actions/{action_id}/wait", params={"timeout": 30})
            answer.update(status=response.status_code, body=response.json(), seconds=time.monotonic() - started)

    thread = threading.Thread(target=wait)
    thread.start()
    deadline = time.monotonic() + 10
    while not wakeups._waiters:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    credentials.agent_keys_revoke(agent=client.agent, actor="user:olga")
    thread.join(timeout=15)

    assert answer["status"] == 401 and answer["body"]["error"]["code"] == "unauthorized"
    assert answer["seconds"] < 5
    assert Action.objects.get(pk=action_id).status == Status.PENDING
