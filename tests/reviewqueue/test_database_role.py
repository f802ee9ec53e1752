"""Who may touch the audit trail on PostgreSQL: no session setting opens it,
only the tables' owner may empty it, the service runs as the README's
least-privilege role, and `check --deploy` warns when it doesn't."""

import os
import re
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from reviewqueue.models import AuditEvent
from tests.conftest import make_agent, submission
from tests.processes import ROOT, Gunicorn

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="roles and triggers are PostgreSQL's; CI runs it"),
    pytest.mark.django_db(transaction=True),
]


@contextmanager
def pg_role(*statements: str, create: bool = True):
    """A throwaway login role, `{role}` in the statements (roles are
    cluster-wide: a unique name, and dropped after)."""
    name = f"rq_test_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        if create:
            cursor.execute(f'CREATE ROLE "{name}" LOGIN')
        for statement in statements:
            cursor.execute(statement.replace("{role}", f'"{name}"'))
    try:
        yield name
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'REASSIGN OWNED BY "{name}" TO CURRENT_USER')
            cursor.execute(f'DROP OWNED BY "{name}"')
            cursor.execute(f'DROP ROLE "{name}"')


def _connect(role: str) -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, dbname=db["NAME"], user=role, autocommit=True
    )


def _url(role: str) -> str:
    db = connection.settings_dict
    return f"postgresql://{role}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _submit(url: str, agent, count: int) -> list[httpx.Response]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {agent.key}"}, timeout=30) as http:
        return [http.post("/api/v1/actions", json=submission(summary=f"Refund ${n}00")) for n in range(1, count + 1)]


@pytest.mark.parametrize(
    "attack",
    [
        "TRUNCATE reviewqueue_auditevent CASCADE",
        "DELETE FROM reviewqueue_auditevent",
        "UPDATE reviewqueue_auditevent SET data = '{\"forged\": true}'",
    ],
)
def test_a_role_that_may_truncate_but_does_not_own_the_trail_cannot_wipe_or_change_it(live_server, capsys, attack):
    agent = make_agent()
    assert [answer.status_code for answer in _submit(live_server.url, agent, 3)] == [201] * 3
    events = AuditEvent.objects.count()

    with (
        pg_role("GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO {role}") as role,
        _connect(role) as attacker,
    ):
        attacker.execute("SET reviewqueue.audit_maintenance = 'on'")  # the escape hatch that was
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            attacker.execute(attack)

    assert AuditEvent.objects.count() == events
    call_command("verify_audit")
    assert f"intact: {events} events verified" in capsys.readouterr().out


def _readme_role_sql() -> str:
    """The SQL the README's "Security" section gives for the service's role."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### The audit trail and the database role") :]
    return re.search(r"```sql\n(.*?)```", section, re.S)[1]


def _check_deploy(database_url: str, tmp_path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": os.environ["PATH"],
            "DATABASE_URL": database_url,
            "REVIEWQUEUE_VAR_DIR": str(tmp_path),
            "REVIEWQUEUE_ENV": "test",
        },
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_the_service_runs_as_the_readme_role_which_cannot_touch_the_trail_and_check_deploy_is_quiet(tmp_path):
    agent = make_agent(rate_limit_per_minute=1000)
    sql = [
        line
        for line in _readme_role_sql().replace("reviewqueue_app", "{role}").splitlines()
        if line.strip() and not line.startswith("--")
    ]
    with pg_role(*sql, create=False) as role:
        server = Gunicorn(
            {
                "PATH": "/usr/bin:/bin",
                "DATABASE_URL": _url(role),
                "REVIEWQUEUE_VAR_DIR": str(tmp_path),
                "REVIEWQUEUE_ENV": "test",
            }
        )
        try:
            submitted = _submit(server.url, agent, 3)
            assert [answer.status_code for answer in submitted] == [201] * 3
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {agent.key}"}) as http:
                action = submitted[0].json()["id"]
                assert http.get(f"/api/v1/actions/{action}").status_code == 200
                assert http.post(f"/api/v1/actions/{action}/cancel", json={}).json()["status"] == "cancelled"
        finally:
            server.stop()
        with _connect(role) as service:
            for attack in ("TRUNCATE reviewqueue_auditevent", "DELETE FROM reviewqueue_auditevent"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    service.execute(attack)
        output = _check_deploy(_url(role), tmp_path)

    assert AuditEvent.objects.filter(kind="action.submitted").count() == 3
    assert AuditEvent.objects.filter(kind="action.cancelled").count() == 1
    assert "reviewqueue.W100" not in output and "reviewqueue.W101" not in output


def test_check_deploy_warns_when_the_service_runs_as_a_superuser_or_the_tables_owner(tmp_path):
    as_superuser = _check_deploy(_url(connection.settings_dict["USER"] or "postgres"), tmp_path)
    assert "reviewqueue.W100" in as_superuser and "superuser" in as_superuser

    with pg_role("ALTER TABLE reviewqueue_auditevent OWNER TO {role}") as owner:
        as_owner = _check_deploy(_url(owner), tmp_path)
    assert "reviewqueue.W101" in as_owner and f"as {owner}, which owns its tables" in as_owner
    assert "reviewqueue.W100" not in as_owner
