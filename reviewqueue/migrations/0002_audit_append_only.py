"""On PostgreSQL, refuse UPDATE, DELETE and TRUNCATE of the audit trail.

TRUNCATE is allowed only in a session that sets reviewqueue.audit_maintenance
to 'on' (the test runner's flush between transactional tests); anyone who can
set it could drop the trigger anyway.
"""

from django.db import migrations

from ._postgresql import run_on_postgresql

FORWARD = """
CREATE FUNCTION reviewqueue_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('reviewqueue.audit_maintenance', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the audit trail is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER reviewqueue_audit_no_change BEFORE UPDATE OR DELETE ON reviewqueue_auditevent
    FOR EACH ROW EXECUTE FUNCTION reviewqueue_audit_append_only();
CREATE TRIGGER reviewqueue_audit_no_truncate BEFORE TRUNCATE ON reviewqueue_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION reviewqueue_audit_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS reviewqueue_audit_no_truncate ON reviewqueue_auditevent;
DROP TRIGGER IF EXISTS reviewqueue_audit_no_change ON reviewqueue_auditevent;
DROP FUNCTION IF EXISTS reviewqueue_audit_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("reviewqueue", "0001_initial")]

    operations = [run_on_postgresql(FORWARD, BACKWARD)]
