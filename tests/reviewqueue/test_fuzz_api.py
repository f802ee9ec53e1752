"""Schemathesis over our own OpenAPI document: no input yields a 500.

Positive and negative cases for every operation; a final test checks that at
least 500 cases actually ran.
"""

import json

import pytest
import schemathesis
from django.core.serializers.json import DjangoJSONEncoder
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from reviewqueue.api.routes import api
from reviewqueue.credentials.keys import user_token_issue
from tests.conftest import _user, make_agent

# The very document /api/v1/openapi.json serves; requests go over real HTTP
# to the live server.
schema = schemathesis.openapi.from_dict(json.loads(json.dumps(api.get_openapi_schema(), cls=DjangoJSONEncoder)))
CASES = {"run": 0, "server_errors": 0}


@pytest.fixture
def credentials(transactional_db):
    return _credentials()


def _credentials():
    agent = make_agent("fuzzer", rate_limit_per_minute=100_000, conversation_rate_limit_per_minute=100_000)
    ops = user_token_issue(user=_user("fuzz-ops", "ops"), actor="test")
    action_id = agent.submit().json()["id"]
    return {"agent": agent.key, "ops": ops, "action_id": action_id}


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_yields_a_server_error(case, credentials, live_server):
    token = credentials["ops" if case.path.startswith("/api/v1/ops") else "agent"]
    if case.path_parameters and "action_id" in case.path_parameters and case.path_parameters["action_id"] == "":
        case.path_parameters["action_id"] = credentials["action_id"]
    response = case.call(base_url=live_server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    CASES["run"] += 1
    if response.status_code >= 500:
        CASES["server_errors"] += 1
    case.validate_response(response, checks=[not_a_server_error])
    content_type = {k.lower(): v for k, v in response.headers.items()}.get("content-type")
    assert "application/json" in str(content_type), (response.status_code, response.text[:200])


@pytest.mark.slow
def test_at_least_500_generated_cases_ran_without_a_server_error():
    assert CASES["run"] >= 500, CASES
    assert CASES["server_errors"] == 0
