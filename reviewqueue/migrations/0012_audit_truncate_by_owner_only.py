"""The audit trigger no longer trusts a session variable: only the table's
owner (or a member of its role, or a superuser) may TRUNCATE the trail, since
the owner could drop the table anyway. UPDATE and DELETE stay refused for all.

The service is meant to run as a role that does not own the tables (see the
README's "Security" section); the test runner's flush runs as the owner.
search_path is pinned so a caller cannot shadow pg_has_role or the operators.
"""

from django.db import migrations

from ._postgresql import run_on_postgresql

FORWARD = """
CREATE OR REPLACE FUNCTION reviewqueue_audit_append_only() RETURNS trigger LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND pg_catalog.pg_has_role(
        current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'MEMBER'
    ) THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""

BACKWARD = """
CREATE OR REPLACE FUNCTION reviewqueue_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('reviewqueue.audit_maintenance', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
ALTER FUNCTION reviewqueue_audit_append_only() RESET search_path;
"""


class Migration(migrations.Migration):
    dependencies = [("reviewqueue", "0011_sparse_people_indexes")]

    operations = [run_on_postgresql(FORWARD, BACKWARD)]
