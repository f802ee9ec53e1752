"""API.md, "Errors": bad input gets a JSON error with the right status and writes nothing."""

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from django.contrib.auth.models import Group, User

from reviewqueue.models import Action, Agent, AuditEvent, IdempotencyKey
from tests.conftest import make_agent, submission

pytestmark = pytest.mark.django_db


def _nested(depth):
    value = {}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def _raw(agent_client, data, **headers):
    return agent_client.http.post("/api/v1/actions", data, content_type="application/json", headers=headers)


def _assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert not Action.objects.exists()
    assert not AuditEvent.objects.filter(kind__startswith="action.").exists()
    return error


@pytest.mark.parametrize(
    "raw",
    ['{"action_type": "x",', "not json", '{"a": NaN}', '{"a": Infinity}', "\xff\xfe", '{"a": 1e999}', "1" * 5000],
)
def test_malformed_json_is_400(agent_client, raw):
    _assert_error(_raw(agent_client, raw.encode("latin-1") if raw == "\xff\xfe" else raw), 400, "invalid_json")


def test_a_body_over_64_kib_is_413(agent_client):
    body = submission(payload={"blob": "x" * (64 * 1024)})
    error = _assert_error(_raw(agent_client, json.dumps(body)), 413, "payload_too_large")
    assert error["details"]["limit_bytes"] == 65536


def test_a_body_just_under_64_kib_is_accepted(agent_client):
    body = submission(payload={"blob": ""})
    room = 64 * 1024 - len(json.dumps(body))
    body["payload"]["blob"] = "x" * room
    assert len(json.dumps(body)) == 64 * 1024
    assert _raw(agent_client, json.dumps(body)).status_code == 201


def test_a_summary_over_2000_characters_is_422(agent_client):
    error = _assert_error(agent_client.submit(summary="é" * 2001), 422, "validation_error")
    assert "2,000" in error["message"]
    assert agent_client.submit(summary="é" * 2000).status_code == 201


def test_nesting_deeper_than_32_levels_is_422(agent_client):
    error = _assert_error(agent_client.submit(payload=_nested(32)), 422, "validation_error")
    assert "32" in error["message"]
    assert agent_client.submit(payload=_nested(31)).status_code == 201


def test_pathological_nesting_is_422_not_a_crash(agent_client):
    _assert_error(_raw(agent_client, "[" * 30_000 + "]" * 30_000), 422, "validation_error")


@pytest.mark.parametrize(
    "overrides, location",
    [
        ({"bogus": 1}, "body.bogus"),
        ({"summary": 123}, "body.summary"),
        ({"payload": [1, 2]}, "body.payload"),
        ({"payload": "x"}, "body.payload"),
        ({"action_type": "9lives"}, "body.action_type"),
        ({"action_type": "a" * 129}, "body.action_type"),
        ({"summary": "   "}, "body.summary"),
        ({"cost": {"usd": -1}}, "body.cost.usd"),
        ({"cost": {"input_tokens": "12"}}, "body.cost.input_tokens"),
        ({"cost": {"gpu_hours": 1}}, "body.cost.gpu_hours"),
        ({"callback_url": "ftp://agent.example/x"}, "body.callback_url"),
        ({"context": "hello"}, "body.context"),
    ],
)
def test_wrong_types_and_unknown_fields_are_422_naming_the_field(agent_client, overrides, location):
    error = _assert_error(agent_client.submit(**overrides), 422, "validation_error")
    assert location in [d["location"] for d in error["details"]]


@pytest.mark.parametrize("missing", ["action_type", "payload", "summary"])
def test_missing_required_fields_are_422(agent_client, missing):
    body = submission()
    del body[missing]
    _assert_error(agent_client.submit(body), 422, "validation_error")


@pytest.mark.parametrize("body", [[], "a string", 42, None])
def test_a_body_that_is_not_an_object_is_422(agent_client, body):
    _assert_error(_raw(agent_client, json.dumps(body)), 422, "validation_error")


@pytest.mark.parametrize("text", ["nul\u0000byte", "\ud800lonely"])
def test_text_the_database_cannot_store_is_422(agent_client, text):
    _assert_error(agent_client.submit(payload={"note": text}), 422, "validation_error")
    _assert_error(agent_client.submit(payload={text: 1}), 422, "validation_error")
    _assert_error(agent_client.submit(summary=text), 422, "validation_error")


def test_a_lone_surrogate_sent_as_raw_bytes_is_422(agent_client):
    # Not escaped: the UTF-8 bytes of U+D800, which the JSON parser lets through.
    raw = json.dumps(submission(payload={"note": "LONE"})).encode().replace(b"LONE", b"\xed\xa0\x80")
    _assert_error(_raw(agent_client, raw), 422, "validation_error")


def test_a_utf16_body_gets_the_same_checks(agent_client):
    body = json.dumps(submission(payload={"note": "nul\u0000byte"}), ensure_ascii=False)
    _assert_error(_raw(agent_client, body.encode("utf-16")), 422, "validation_error")
    body = json.dumps(submission(payload=_nested(32)))
    _assert_error(_raw(agent_client, body.encode("utf-16")), 422, "validation_error")


def test_an_unusable_idempotency_key_is_422(agent_client):
    _assert_error(agent_client.submit(idempotency_key="x" * 256), 422, "validation_error")
    assert not IdempotencyKey.objects.exists()


def test_an_empty_body_is_422(agent_client):
    _assert_error(_raw(agent_client, ""), 422, "validation_error")


# ------------------------------------------------- over HTTP, a real server ---
# What an attacker found with a running server: each gave a 500 (issue 11).

live = pytest.mark.django_db(transaction=True)


@contextmanager
def _signed_in(live_server, user) -> Iterator[httpx.Client]:
    """A browser's session: signed in through the login form, with its CSRF cookie."""
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        page = http.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        answer = http.post(
            "/accounts/login/",
            data={
                "username": user.get_username(),
                "password": user.test_password,
                "csrfmiddlewaretoken": token,
                "next": "/",
            },
        )
        assert answer.status_code == 302, answer.text[:300]
        yield http


@pytest.fixture
def reviewer_with_password(db):
    user = User.objects.create_user("rosa", password="pw-rosa-1")
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    user.test_password = "pw-rosa-1"
    return user


@pytest.fixture
def admin_with_password(db):
    user = User.objects.create_superuser("ada", password="pw-ada-1")
    user.test_password = "pw-ada-1"
    return user


@live
@pytest.mark.parametrize("query", ["q=%00", "agent=%00", "action_type=x%00y", "risk_min=%00", "q=a%00b&agent=bot"])
def test_a_nul_byte_in_a_queue_filter_is_a_400_page_not_a_500(live_server, reviewer_with_password, query):
    make_agent().submit()
    with _signed_in(live_server, reviewer_with_password) as http:
        for tab in ("blocking", "decided"):
            response = http.get(f"/queue/{tab}/?{query}")
            assert response.status_code == 400, response.text[:300]
            assert "NUL" in response.text
        assert http.get("/queue/blocking/?q=duplicate").status_code == 200  # the same session still works


@live
def test_a_nul_byte_in_the_admins_search_or_a_form_field_is_a_400(live_server, admin_with_password):
    with _signed_in(live_server, admin_with_password) as http:
        assert http.get("/admin/reviewqueue/action/?q=%00").status_code == 400
        assert http.get("/admin/reviewqueue/agent/?q=a%00").status_code == 400
        response = http.post(
            "/admin/reviewqueue/agent/add/",
            data={"name": "nul\x00bot", "csrfmiddlewaretoken": http.cookies["csrftoken"]},
        )
        assert response.status_code == 400
    assert not Agent.objects.filter(name__startswith="nul").exists()


@live
def test_a_nul_byte_in_an_api_query_is_a_400_json_error(live_server):
    client = make_agent()
    action_id = client.submit().json()["id"]
    with httpx.Client(base_url=live_server.url, timeout=30, headers={"Authorization": f"Bearer {client.key}"}) as http:
        response = http.get(f"/api/v1/actions/{action_id}/wait?timeout=%00")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert "NUL" in response.json()["error"]["message"]


def _post_raw(live_server, key: str, body: bytes) -> httpx.Response:
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        return http.post(
            "/api/v1/actions",
            content=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )


def _nothing_written():
    assert not Action.objects.exists()
    assert not AuditEvent.objects.filter(kind__startswith="action.").exists()


@live
@pytest.mark.parametrize("size", [int(2.5 * 1024 * 1024) + 1, 8 * 1024 * 1024])
def test_a_body_over_django_s_2_5_mib_cap_is_a_413_json_error(live_server, size):
    client = make_agent()
    body = json.dumps(submission(payload={"blob": "x" * size})).encode()

    response = _post_raw(live_server, client.key, body)

    assert response.status_code == 413, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert error["details"]["limit_bytes"] == 65536
    _nothing_written()


@live
@pytest.mark.parametrize("where", ["amount", "id"])
def test_an_integer_of_400_digits_is_a_422_naming_where_it_is(live_server, where):
    client = make_agent()
    payload = {"charge": "ch_1", "amount": 5, "currency": "USD", where: 10**399}

    response = _post_raw(live_server, client.key, json.dumps(submission(payload=payload)).encode())

    assert response.status_code == 422, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["path"] == f"$.payload.{where}"
    assert "400 digits" in error["message"] and "send it as a string" in error["message"]
    _nothing_written()


@live
def test_large_integers_a_json_number_can_hold_are_accepted_and_echoed_exactly(live_server):
    client = make_agent()
    largest = 10**308  # a double holds it (approximately): the router can compare it
    payload = {
        "charge": "ch_1",
        "amount": 5,
        "currency": "USD",
        "big": 2**64,
        "small": -(2**63) - 1,
        "huge": largest,
        "negative": -largest,
    }

    response = _post_raw(live_server, client.key, json.dumps(submission(payload=payload)).encode())

    assert response.status_code == 201, response.text[:300]
    assert json.loads(response.content)["payload"] == payload
    assert client.get(f"/actions/{response.json()['id']}").json()["payload"] == payload
    for too_far in (2 * largest, -2 * largest):
        payload["huge"] = too_far
        assert _post_raw(live_server, client.key, json.dumps(submission(payload=payload)).encode()).status_code == 422


@live
@pytest.mark.parametrize(
    "body, key",
    [
        (
            b'{"action_type": "crm.read", "action_type": "payments.refund", "payload": {}, "summary": "s"}',
            "action_type",
        ),
        (b'{"action_type": "payments.refund", "payload": {"amount": 5, "amount": 500000}, "summary": "s"}', "amount"),
        (b'{"action_type": "a.b", "payload": {"x": [{"k": 1, "k": 2}]}, "summary": "s"}', "k"),
    ],
)
def test_a_key_named_twice_is_a_400_duplicate_key_naming_it(live_server, body, key):
    client = make_agent()

    response = _post_raw(live_server, client.key, body)

    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "duplicate_key"
    assert error["details"]["key"] == key and key in error["message"]
    _nothing_written()
