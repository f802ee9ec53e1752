"""reviewqueue_submit also checks the agent's key, so that a submission needs
no query of its own for it (credentials: the process remembers keys).

When given a key hash and the agent row's xmin as the process read them, the
function raises SQLSTATE RQ401 unless that key is still live (not revoked,
not expired) and its agent active and unchanged since (any UPDATE of the row
changes xmin); the caller then reads the key again and starts over. NULLs
skip the check (a key read from the database by this request).

Frozen history: the SQL below is what this migration runs, written out in
full (0007's function with the key's parameters and its check put first;
backwards, 0007's function again). The function's current text is in
reviewqueue/sql/.
"""

from django.db import migrations

from ._postgresql import run_on_postgresql

FORWARD = """DROP FUNCTION reviewqueue_submit(jsonb, jsonb, jsonb, text);
CREATE FUNCTION reviewqueue_submit(action jsonb, idempotency_key jsonb, event jsonb, event_prefix text,
    key_hash_read text, agent_version_read text)
RETURNS TABLE (seq bigint, prev_hash varchar, hash varchar) LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    IF key_hash_read IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM reviewqueue_apikey k JOIN reviewqueue_agent a ON a.id = k.agent_id
        WHERE k.key_hash = key_hash_read AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
          AND a.is_active AND a.xmin::text = agent_version_read
    ) THEN
        RAISE EXCEPTION 'the key was revoked or its agent changed' USING ERRCODE = 'RQ401';
    END IF;
    PERFORM pg_advisory_xact_lock_shared(32212801982917740);  -- the kill switch's lock
    IF EXISTS (SELECT 1 FROM reviewqueue_killswitch k WHERE k.engaged) THEN
        RAISE EXCEPTION 'a kill switch is engaged' USING ERRCODE = 'RQ423';
    END IF;
    INSERT INTO reviewqueue_action SELECT * FROM jsonb_populate_record(NULL::reviewqueue_action, action);
    IF idempotency_key IS NOT NULL THEN
        INSERT INTO reviewqueue_idempotencykey (agent_id, key, request_sha256, action_id, created_at)
        SELECT r.agent_id, r.key, r.request_sha256, r.action_id, r.created_at
        FROM jsonb_populate_record(NULL::reviewqueue_idempotencykey, idempotency_key) r;
    END IF;
    RETURN QUERY SELECT * FROM reviewqueue_audit_append(event, event_prefix);
END;
$fn$;
"""

BACKWARD = """DROP FUNCTION reviewqueue_submit(jsonb, jsonb, jsonb, text, text, text);
CREATE FUNCTION reviewqueue_submit(action jsonb, idempotency_key jsonb, event jsonb, event_prefix text)
RETURNS TABLE (seq bigint, prev_hash varchar, hash varchar) LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(32212801982917740);  -- the kill switch's lock
    IF EXISTS (SELECT 1 FROM reviewqueue_killswitch k WHERE k.engaged) THEN
        RAISE EXCEPTION 'a kill switch is engaged' USING ERRCODE = 'RQ423';
    END IF;
    INSERT INTO reviewqueue_action SELECT * FROM jsonb_populate_record(NULL::reviewqueue_action, action);
    IF idempotency_key IS NOT NULL THEN
        INSERT INTO reviewqueue_idempotencykey (agent_id, key, request_sha256, action_id, created_at)
        SELECT r.agent_id, r.key, r.request_sha256, r.action_id, r.created_at
        FROM jsonb_populate_record(NULL::reviewqueue_idempotencykey, idempotency_key) r;
    END IF;
    RETURN QUERY SELECT * FROM reviewqueue_audit_append(event, event_prefix);
END;
$fn$;
"""


class Migration(migrations.Migration):
    dependencies = [("reviewqueue", "0007_submit_function")]

    operations = [run_on_postgresql(FORWARD, BACKWARD)]
