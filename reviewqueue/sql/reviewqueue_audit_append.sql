-- reviewqueue_audit_append: appends one event to the audit chain.
--
-- Takes the chain lock (held until the caller's COMMIT: the one serial step
-- of the service), reads the tail, and inserts the event with its hash, which
-- it computes as reviewqueue.audit.trail.chain_hash does: SHA-256 of the
-- tail's hash and the event's canonical JSON, of which "seq" is the last key,
-- so the caller sends the JSON before it (event_prefix) and the function adds
-- the seq and "}". Each statement of a VOLATILE function takes a new snapshot,
-- so the tail is read after the lock is held.
--
-- Current text, as migration 0010_leaner_audit_append set it; a change is a
-- new migration carrying the new text as its literal
-- (tests/reviewqueue/test_sql_functions.py).

CREATE OR REPLACE FUNCTION reviewqueue_audit_append(event jsonb, event_prefix text,
    OUT seq bigint, OUT prev_hash varchar, OUT hash varchar) LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    tail_seq bigint;
    tail_hash varchar;
BEGIN
    PERFORM pg_advisory_xact_lock(8246477264878070132);  -- the chain lock, held until COMMIT
    SELECT x.seq, x.hash INTO tail_seq, tail_hash FROM reviewqueue_auditevent x ORDER BY x.seq DESC LIMIT 1;
    seq := COALESCE(tail_seq, 0) + 1;
    prev_hash := COALESCE(tail_hash, repeat('0', 64));
    hash := encode(sha256(convert_to(prev_hash || event_prefix || seq::text || '}', 'UTF8')), 'hex');
    INSERT INTO reviewqueue_auditevent (seq, created_at, kind, actor, action_id, agent_id, data, prev_hash, hash)
    SELECT reviewqueue_audit_append.seq, e.created_at, e.kind, e.actor, e.action_id, e.agent_id, e.data,
           reviewqueue_audit_append.prev_hash, reviewqueue_audit_append.hash
    FROM jsonb_populate_record(NULL::reviewqueue_auditevent, event) e;
END;
$fn$;
