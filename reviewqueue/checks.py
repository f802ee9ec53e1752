"""Deployment checks (`manage.py check --deploy`) for what the code can't enforce itself."""

from django.core import checks
from django.db import DatabaseError, connections

from reviewqueue.models import AuditEvent

_ROLE_SQL = """
SELECT current_user, r.rolsuper, pg_has_role(current_user, c.relowner, 'MEMBER'), pg_get_userbyid(c.relowner)
FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = to_regclass(%s)
"""


@checks.register(checks.Tags.security, deploy=True)
def database_role_check(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """The service must not run as a PostgreSQL superuser or as the owner of its
    tables: either could switch off, empty or drop the audit trail."""
    found: list[checks.CheckMessage] = []
    for alias in databases or ["default"]:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        try:
            with connection.cursor() as cursor:
                cursor.execute(_ROLE_SQL, [AuditEvent._meta.db_table])
                row = cursor.fetchone()
        except DatabaseError as exc:
            found.append(
                checks.Warning(f"could not check the database role of {alias!r}: {exc}", id="reviewqueue.W102")
            )
            continue
        if row is None:
            continue  # not migrated yet
        role, superuser, owns, owner = row
        hint = (
            "Run the service as a role that neither owns the tables nor is a superuser, and migrate as the "
            'owner: README.md, "The database role".'
        )
        if superuser:
            found.append(
                checks.Warning(
                    f"The service connects to PostgreSQL ({alias!r}) as {role}, a superuser: it can switch off the "
                    "audit trail's trigger and rewrite the trail.",
                    hint=hint,
                    id="reviewqueue.W100",
                )
            )
        elif owns:
            found.append(
                checks.Warning(
                    f"The service connects to PostgreSQL ({alias!r}) as {role}, which owns its tables (as {owner}): it "
                    "can empty, drop or unguard the audit trail.",
                    hint=hint,
                    id="reviewqueue.W101",
                )
            )
    return found
