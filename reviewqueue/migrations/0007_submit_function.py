"""On PostgreSQL, appending to the audit chain and a submission's whole write
are functions.

reviewqueue_audit_append(event, prefix) takes the chain lock (held until the
caller's COMMIT: the one serial step of the service), reads the tail, and
inserts the event with its hash, which PostgreSQL computes as audit.chain_hash
does from the tail's hash and the canonical body, of which "seq" is the last
key (so the caller sends the prefix before it). Each statement of a VOLATILE
function takes a new snapshot, so the tail is read after the lock is held.

reviewqueue_submit(action, key, event, prefix) is called as one prepared
statement in autocommit, so it is its own transaction: one round trip, no
BEGIN or COMMIT. It checks the kill switches under the shared lock that
engaging takes exclusively (reviewqueue.controls.killswitch.LOCK; a test checks they
match) and raises SQLSTATE RQ423 if any is engaged; the caller then writes the
submission the careful way, reading which switch covers it. Rows arrive as
JSON objects of column → value (jsonb_populate_record), so a new column needs
no change here.
"""

from django.db import migrations

from ._postgresql import run_on_postgresql

FORWARD = """
CREATE FUNCTION reviewqueue_audit_append(event jsonb, event_prefix text)
RETURNS TABLE (seq bigint, prev_hash varchar, hash varchar) LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(8246477264878070132);  -- the chain lock, held until COMMIT
    RETURN QUERY
    INSERT INTO reviewqueue_auditevent AS a (seq, created_at, kind, actor, action_id, agent_id, data, prev_hash, hash)
    SELECT tail.seq + 1, e.created_at, e.kind, e.actor, e.action_id, e.agent_id, e.data, tail.hash,
           encode(sha256(convert_to(tail.hash || event_prefix || (tail.seq + 1)::text || '}', 'UTF8')), 'hex')
    FROM jsonb_populate_record(NULL::reviewqueue_auditevent, event) e,
         (SELECT COALESCE((SELECT x.seq FROM reviewqueue_auditevent x ORDER BY x.seq DESC LIMIT 1), 0) AS seq,
                 COALESCE((SELECT x.hash FROM reviewqueue_auditevent x ORDER BY x.seq DESC LIMIT 1),
                          repeat('0', 64)) AS hash) tail
    RETURNING a.seq, a.prev_hash, a.hash;
END;
$fn$;

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

BACKWARD = """
DROP FUNCTION IF EXISTS reviewqueue_submit(jsonb, jsonb, jsonb, text);
DROP FUNCTION IF EXISTS reviewqueue_audit_append(jsonb, text);
"""


class Migration(migrations.Migration):
    dependencies = [("reviewqueue", "0006_dashboard_open_review")]

    operations = [run_on_postgresql(FORWARD, BACKWARD)]
