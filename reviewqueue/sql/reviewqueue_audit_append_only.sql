-- reviewqueue_audit_append_only: the trigger function that refuses UPDATE and
-- DELETE of the audit trail to every role, and TRUNCATE to all but the
-- table's owner (or a member of its role, or a superuser), who could drop
-- the table anyway. search_path is pinned so a caller cannot shadow
-- pg_has_role or the operators.
--
-- Current text, as migration 0012_audit_truncate_by_owner_only set it; a
-- change is a new migration carrying the new text as its literal
-- (tests/reviewqueue/test_sql_functions.py).

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
