"""API.md, "Errors": bad input gets a JSON error with the right status and writes nothing."""

import json

import pytest

from reviewqueue.models import Action, AuditEvent, IdempotencyKey
from tests.conftest import submission

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
