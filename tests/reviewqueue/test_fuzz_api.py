"""Schemathesis over our own OpenAPI document: no input yields a 500.

Positive and negative cases for every operation, all in one test, which
also checks that at least 500 cases actually ran (so it stands alone).
"""

import json

import pytest
import schemathesis
from django.core.serializers.json import DjangoJSONEncoder
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from reviewqueue.api.routes import api
from reviewqueue.credentials.keys import user_token_issue
from tests.conftest import _user, make_agent

# The very document /api/v1/openapi.json serves; requests go over real HTTP
# to the live server.
schema = schemathesis.openapi.from_dict(json.loads(json.dumps(api.get_openapi_schema(), cls=DjangoJSONEncoder)))


@pytest.fixture
def credentials(transactional_db):
    return _credentials()


def _credentials():
    agent = make_agent("fuzzer", rate_limit_per_minute=100_000, conversation_rate_limit_per_minute=100_000)
    ops = user_token_issue(user=_user("fuzz-ops", "ops"), actor="test")
    action_id = agent.submit().json()["id"]
    return {"agent": agent.key, "ops": ops, "action_id": action_id}


@pytest.mark.slow
def test_no_input_yields_a_server_error_and_at_least_500_cases_ran(credentials, live_server):
    ran = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            token = credentials["ops" if case.path.startswith("/api/v1/ops") else "agent"]
            if case.path_parameters and case.path_parameters.get("action_id") == "":
                case.path_parameters["action_id"] = credentials["action_id"]
            response = case.call(base_url=live_server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            ran[case.operation.label] = ran.get(case.operation.label, 0) + 1
            case.validate_response(response, checks=[not_a_server_error])
            content_type = {k.lower(): v for k, v in response.headers.items()}.get("content-type")
            assert "application/json" in str(content_type), (response.status_code, response.text[:200])

        check()
    assert sum(ran.values()) >= 500, ran
