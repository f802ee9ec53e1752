"""reviewqueue_submit detects an Idempotency-Key used before: it inserts the
key first (ON CONFLICT DO NOTHING) and raises SQLSTATE RQ409 when the agent
used it already, before anything is written; the caller then reads the
earlier answer. So a keyed submission needs no read of its own first, and
is one call like any other.

Frozen history: the SQL below is what this migration runs, written out in
full (backwards: 0010's function). The function's current text is in
reviewqueue/sql/reviewqueue_submit.sql.
"""

from django.db import migrations

from ._postgresql import run_on_postgresql

FORWARD = """CREATE OR REPLACE FUNCTION reviewqueue_submit(action jsonb, idempotency_key jsonb, event jsonb, event_prefix text,
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
    IF idempotency_key IS NOT NULL THEN
        INSERT INTO reviewqueue_idempotencykey (agent_id, key, request_sha256, action_id, created_at)
        SELECT r.agent_id, r.key, r.request_sha256, r.action_id, r.created_at
        FROM jsonb_populate_record(NULL::reviewqueue_idempotencykey, idempotency_key) r
        ON CONFLICT (agent_id, key) DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'the Idempotency-Key was used before' USING ERRCODE = 'RQ409';
        END IF;
    END IF;
    INSERT INTO reviewqueue_action SELECT * FROM jsonb_populate_record(NULL::reviewqueue_action, action);
    SELECT * INTO seq, prev_hash, hash FROM reviewqueue_audit_append(event, event_prefix);
    RETURN NEXT;
END;
$fn$;
"""

BACKWARD = """CREATE OR REPLACE FUNCTION reviewqueue_submit(action jsonb, idempotency_key jsonb, event jsonb, event_prefix text,
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
    SELECT * INTO seq, prev_hash, hash FROM reviewqueue_audit_append(event, event_prefix);
    RETURN NEXT;
END;
$fn$;
"""


class Migration(migrations.Migration):
    dependencies = [("reviewqueue", "0015_agent_webhook_secret_rotation")]

    operations = [run_on_postgresql(FORWARD, BACKWARD)]
