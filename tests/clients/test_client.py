"""The Python client against the real server (live_server): typed answers,
idempotent retries, waiting, typed errors, the payload check, @gate,
webhook verification and the fake."""

from __future__ import annotations

import time

import httpx
import pytest
from reviewqueue_client import Action as ClientAction
from reviewqueue_client import Client, errors, gate
from reviewqueue_client import models as client_models
from reviewqueue_client.client import _pause
from reviewqueue_client.testing import FakeClient, edit, reject
from reviewqueue_client.webhooks import InvalidSignature, verify

from reviewqueue.actions import lifecycle
from reviewqueue.actions.kill_switches import kill_switch_set
from reviewqueue.models import Action, OutboxMessage
from reviewqueue.notify import outbox
from tests.clients.support import run_async
from tests.conftest import make_agent

LOOKUP = {
    "action_type": "crm.contacts.lookup",
    "tool": "hubspot.contacts.search",
    "payload": {"query": "jane@acme.example", "limit": 5},
    "summary": "Look up the customer's contact record",
}
TRANSFER = {
    "action_type": "payments.transfer",
    "tool": "bank.transfers.create",
    "payload": {"to": "acct-991", "amount": 48000, "currency": "USD"},
    "summary": "Transfer $48,000 to supplier account acct-991",
}


# ------------------------------------------------------------------ models ---


def _resolve(schema: dict, spec: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _nullable(prop: dict) -> bool:
    return any(option.get("type") == "null" for option in prop.get("anyOf", []))


@pytest.mark.parametrize(
    ("schema", "model"),
    [
        ("ActionOut", client_models.Action),
        ("Risk", client_models.Risk),
        ("Decision", client_models.Decision),
        ("OutcomeOut", client_models.Outcome),
        ("AgentKillSwitchOut", client_models.KillSwitchStatus),
        ("SwitchOut", client_models.Switch),
        ("ScopeCheckOut", client_models.ScopeCheck),
    ],
)
def test_the_clients_models_match_the_servers_openapi_document(rq, schema, model):
    spec = httpx.get(f"{rq.url}/api/v1/openapi.json").json()
    properties = _resolve({"$ref": f"#/components/schemas/{schema}"}, spec)["properties"]
    fields = model.model_fields
    assert set(fields) == set(properties), f"{schema}: the client and the server disagree on the fields"
    for name, prop in properties.items():
        annotation = str(fields[name].annotation)
        assert _nullable(prop) == ("None" in annotation), f"{schema}.{name}: nullable on one side only"
        if "enum" in prop:
            assert all(repr(value) in annotation for value in prop["enum"]), f"{schema}.{name}: other values"


# ------------------------------------------------------------------ submit ---


def test_a_lookup_may_run_at_once_with_its_own_payload(rq):
    with rq.client() as client:
        action = client.submit(**LOOKUP)
    assert isinstance(action, ClientAction)
    assert action.may_execute and action.status == "approved" and action.is_final
    assert action.executable_payload() == LOOKUP["payload"]


def test_one_idempotency_key_is_one_action_however_often_it_is_sent(rq):
    with rq.client() as client:
        first = client.submit(**TRANSFER, idempotency_key="transfer:order-7")
        again = client.submit(**TRANSFER, idempotency_key="transfer:order-7")
    assert first.id == again.id
    assert Action.objects.filter(action_type="payments.transfer").count() == 1


class _LosesFirstAnswer(httpx.HTTPTransport):
    """A real request reaches the server, but its answer is lost on the way back (once)."""

    def __init__(self):
        super().__init__()
        self.keys: list[str] = []

    def handle_request(self, request):
        self.keys.append(request.headers.get("Idempotency-Key", ""))
        response = super().handle_request(request)
        if len(self.keys) == 1:
            response.read()
            raise httpx.ReadError("connection reset after the server answered")
        return response


def test_a_retry_after_a_lost_answer_reuses_the_key_and_makes_no_second_action(rq):
    transport = _LosesFirstAnswer()
    with Client(rq.url, rq.key, backoff=0.01, http=httpx.Client(transport=transport)) as client:
        action = client.submit(**TRANSFER)
    assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1] and transport.keys[0]
    assert Action.objects.filter(action_type="payments.transfer").count() == 1
    assert action.id == str(Action.objects.get(action_type="payments.transfer").pk)


def test_an_unreachable_server_is_a_clear_error_after_a_few_tries():
    attempts = []

    class Counting(httpx.HTTPTransport):
        def handle_request(self, request):
            attempts.append(request.headers["Idempotency-Key"])
            return super().handle_request(request)

    client = Client("http://127.0.0.1:9", "rq_agent_key", backoff=0.01, http=httpx.Client(transport=Counting()))
    with pytest.raises(errors.ServiceUnavailable) as raised:
        client.submit(**TRANSFER)
    assert len(attempts) == 3 and len(set(attempts)) == 1  # one key, three tries, never eight
    assert "could not be reached" in str(raised.value) and "Nothing ran" in raised.value.next_step


def test_missing_configuration_names_the_variable(monkeypatch):
    monkeypatch.delenv("REVIEWQUEUE_URL", raising=False)
    monkeypatch.delenv("REVIEWQUEUE_API_KEY", raising=False)
    with pytest.raises(errors.ConfigurationError, match="REVIEWQUEUE_URL"):
        Client()
    with pytest.raises(errors.ConfigurationError, match="REVIEWQUEUE_API_KEY"):
        Client("http://127.0.0.1:8000")
    with pytest.raises(errors.ConfigurationError, match="max_retries"):
        Client("http://127.0.0.1:8000", "k", max_retries=8)


# ------------------------------------------------------------------- waits ---


def test_submit_and_wait_returns_the_reviewers_approval_with_the_edit_to_run(rq, desk):
    desk.approve_next(edited_payload={**TRANSFER["payload"], "amount": 4800})
    with rq.client() as client:
        action = client.submit_and_wait(**TRANSFER, wait_timeout=30)
    desk.join()
    assert action.status == "approved" and action.edited
    assert action.executable_payload() == {**TRANSFER["payload"], "amount": 4800}


def test_a_rejection_is_a_typed_error_with_the_reason_and_the_reviewer(rq, desk):
    desk.reject_next("Supplier bank details changed yesterday; call them first.")
    with rq.client() as client:
        action = client.submit_and_wait(**TRANSFER, wait_timeout=30)
    desk.join()
    with pytest.raises(errors.ActionRejected) as raised:
        action.executable_payload()
    assert raised.value.reason == "Supplier bank details changed yesterday; call them first."
    assert raised.value.reviewer == "rita"
    assert "call them first" in raised.value.message_for_model and "Do not retry" in raised.value.message_for_model


def test_waiting_past_the_deadline_says_still_pending(rq):
    with rq.client() as client:
        action = client.submit(**TRANSFER)
        started = time.monotonic()
        with pytest.raises(errors.StillPending) as raised:
            client.wait(action.id, timeout=1)
    assert 0.9 < time.monotonic() - started < 10
    assert raised.value.action.id == action.id and raised.value.action.status == "pending"


def test_cancel_withdraws_and_a_repeated_cancel_answers_the_same(rq):
    with rq.client() as client:
        action = client.submit(**TRANSFER)
        assert client.cancel(action.id).status == "cancelled"
        cancelled = client.cancel(action.id)
    assert cancelled.status == "cancelled"
    with pytest.raises(errors.ActionCancelled):
        cancelled.executable_payload()


# ------------------------------------------------------------------ errors ---


def test_an_engaged_kill_switch_is_a_typed_error_saying_not_to_retry(rq):
    kill_switch_set(scope="action_type:payments.*", engaged=True, reason="incident 42", actor="ops")
    with rq.client() as client, pytest.raises(errors.KillSwitchEngaged) as raised:
        client.submit(**TRANSFER)
    assert raised.value.status == 423 and "incident 42" in raised.value.message
    assert "Do not retry" in raised.value.next_step


def test_an_action_outside_the_agents_scopes_is_out_of_scope(live_server, transactional_db):
    agent = make_agent("crm-only", scopes=("crm.*",))
    with Client(live_server.url, agent.key) as client, pytest.raises(errors.OutOfScope) as raised:
        client.submit(**TRANSFER)
    assert raised.value.status == 403 and raised.value.code == "scope_denied"


def test_a_rate_limit_is_a_typed_error_with_retry_after(live_server, transactional_db):
    agent = make_agent("slow-bot", rate_limit_per_minute=2)
    with Client(live_server.url, agent.key, max_retries=0) as client:
        client.submit(**LOOKUP)
        client.submit(**LOOKUP)
        with pytest.raises(errors.RateLimited) as raised:
            client.submit(**LOOKUP)
    assert raised.value.status == 429 and raised.value.retry_after and raised.value.retry_after > 0
    assert f"wait {raised.value.retry_after:g} s" in raised.value.next_step


@pytest.mark.parametrize(
    ("status", "retry_after", "pause"),
    [(429, "2", 2.0), (503, "1", 1.0), (429, "120", None), (422, None, None), (409, None, None)],
)
def test_retries_honour_retry_after_up_to_a_limit_and_never_retry_a_refusal(status, retry_after, pause):
    headers = {"Retry-After": retry_after} if retry_after else {}
    assert _pause(2, 0, httpx.Response(status, headers=headers), 0.25) == pause
    assert _pause(2, 2, httpx.Response(status, headers=headers), 0.25) is None  # the budget is spent


def test_a_bad_key_is_unauthenticated(rq):
    with Client(rq.url, "rq_wrong", max_retries=0) as client, pytest.raises(errors.Unauthenticated):
        client.submit(**LOOKUP)


def test_bad_input_is_invalid_request_with_details(rq):
    with rq.client() as client, pytest.raises(errors.InvalidRequest) as raised:
        client.submit(action_type="not a name", payload={}, summary="x")
    assert raised.value.status == 422 and raised.value.details


def test_a_payload_that_does_not_match_its_hash_is_refused(rq):
    with rq.client() as client:
        action = client.submit(**LOOKUP)
    tampered = action.model_copy(update={"approved_payload": {**LOOKUP["payload"], "limit": 5000}})
    with pytest.raises(errors.PayloadMismatch):
        tampered.executable_payload()


# -------------------------------------------------------------------- gate ---


def test_a_gated_tool_runs_the_approved_arguments_and_reports_its_outcome(rq, desk):
    ran = []
    client = rq.client()

    @gate("payments.transfer", client=client, summary=lambda **kw: f"Transfer ${kw['amount']:,} to {kw['to']}")
    def transfer(to: str, amount: int, currency: str = "USD") -> str:
        ran.append({"to": to, "amount": amount, "currency": currency})
        return "sent"

    desk.approve_next(edited_payload={"to": "acct-991", "amount": 4800, "currency": "USD"})
    assert transfer("acct-991", 48000) == "sent"
    desk.join()
    assert ran == [{"to": "acct-991", "amount": 4800, "currency": "USD"}]
    action = Action.objects.get(action_type="payments.transfer")
    assert action.summary == "Transfer $48,000 to acct-991"
    assert action.outcome == "succeeded" and action.outcome_duration_ms is not None and action.outcome_attempt == 1


def test_a_gated_tool_that_fails_reports_the_error_and_raises_it(rq):
    @gate("crm.contacts.lookup", client=rq.client())
    def lookup(query: str) -> str:
        raise TimeoutError("CRM did not answer in 5 s")

    with pytest.raises(TimeoutError):
        lookup(query="jane@acme.example")
    action = Action.objects.get(action_type="crm.contacts.lookup")
    assert action.outcome == "failed" and action.outcome_error_kind == "timeout_error"
    assert "CRM did not answer" in action.outcome_detail


def test_a_rejected_gated_tool_never_runs_and_raises_or_tells_the_model(rq, desk):
    ran = []

    def transfer(to: str, amount: int) -> str:
        ran.append(amount)
        return "sent"

    raising = gate("payments.transfer", client=rq.client())(transfer)
    telling = gate("payments.transfer", client=rq.client(), on_reject="message")(transfer)
    desk.reject_next("Not this month.")
    with pytest.raises(errors.ActionRejected):
        raising(to="acct-991", amount=48000)
    desk.reject_next("Not this month.")
    told = telling(to="acct-991", amount=48000)
    desk.join()
    assert ran == [] and "Not this month." in told


def test_a_gated_async_tool_runs_through_the_async_client(rq):
    ran = []

    @gate("crm.contacts.lookup", client=rq.async_client(), idempotency_key=lambda **kw: f"lookup:{kw['query']}")
    async def lookup(query: str) -> str:
        ran.append(query)
        return "found"

    async def twice():
        return [await lookup(query="jane@acme.example"), await lookup(query="jane@acme.example")]

    assert run_async(twice()) == ["found", "found"]
    assert Action.objects.filter(action_type="crm.contacts.lookup").count() == 1  # the natural key: one action


def test_a_gate_refuses_a_client_of_the_wrong_kind(rq):
    with pytest.raises(errors.ConfigurationError, match="AsyncClient"):

        @gate("crm.contacts.lookup", client=rq.client())
        async def lookup(query: str) -> str:
            return query


def test_an_async_client_submits_and_waits(rq, desk):
    async def flow():
        async with rq.async_client() as client:
            return await client.submit_and_wait(**TRANSFER, wait_timeout=30)

    desk.approve_next()
    action = run_async(flow())
    desk.join()
    assert action.status == "approved" and action.executable_payload() == TRANSFER["payload"]


# ---------------------------------------------------------------- webhooks ---


def test_a_real_webhook_verifies_and_a_tampered_one_does_not(rq, reviewer, hook_server, settings):
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"]}
    with rq.client() as client:
        action = client.submit(**TRANSFER, callback_url=f"{hook_server.url}/hooks")
    lifecycle.action_decide(action=Action.objects.get(pk=action.id), user=reviewer, approve=True)
    for pk in OutboxMessage.objects.filter(status="pending").values_list("pk", flat=True):
        outbox.deliver(pk)
    [hook] = hook_server.received
    secret = rq.agent.webhook_secret

    delivered = verify(hook["body"], hook["headers"], secret)
    assert delivered.id == action.id and delivered.status == "approved" and delivered.may_execute
    with pytest.raises(InvalidSignature):
        verify(hook["body"].replace(b"approved", b"rejected", 1), hook["headers"], secret)
    with pytest.raises(InvalidSignature):
        verify(hook["body"], hook["headers"], "another-secret")


# -------------------------------------------------------------------- fake ---


def test_the_fake_decides_by_rule_for_users_own_tests():
    fake = FakeClient(lambda s: reject("too large") if s["payload"]["amount"] > 1000 else edit({"amount": 1}))
    ran = []

    @gate("payments.transfer", client=fake, on_reject="message")
    def transfer(amount: int) -> str:
        ran.append(amount)
        return "sent"

    told = transfer(amount=5000)
    assert "too large" in told and "Do not retry" in told
    assert transfer(amount=10) == "sent"
    assert ran == [1] and [s["payload"]["amount"] for s in fake.submissions] == [5000, 10]
    assert [o["status"] for o in fake.outcomes] == ["succeeded"]


def test_an_agent_learns_which_actions_its_scopes_allow_without_submitting(live_server, transactional_db):
    agent = make_agent("crm-reader", scopes=("crm.*", "hubspot.*"))
    with Client(live_server.url, agent.key) as client:
        check = client.allowed([("crm.contacts.lookup", "hubspot.contacts.search"), ("payments.transfer", "")])
    assert check.agent == "crm-reader" and check.scopes == ["crm.*", "hubspot.*"]
    assert check.allowed == [True, False]
    assert not Action.objects.exists()
