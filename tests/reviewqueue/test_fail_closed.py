"""If the service can't read its state, nothing is approved: 503, JSON."""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_missing_kill_switch_table_fails_closed_with_503(agent_client):
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE reviewqueue_killswitch RENAME TO reviewqueue_killswitch_away")
    try:
        response = agent_client.submit(action_type="crm.lookup", tool="")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE reviewqueue_killswitch_away RENAME TO reviewqueue_killswitch")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    from reviewqueue.models import Action

    assert not Action.objects.exists()
