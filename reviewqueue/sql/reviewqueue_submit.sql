-- reviewqueue_submit: a submission's whole write, as one statement that is
-- its own transaction (reviewqueue/actions/fastpath.py calls it).
--
-- 1. With a key hash and the agent row's xmin as the process remembered them,
--    RQ401 unless the key is still live and its agent active and unchanged.
-- 2. Under the shared lock that engaging a kill switch takes exclusively,
--    RQ423 if any switch is engaged (the caller reads which, the careful way).
-- 3. The Idempotency-Key, if any: RQ409 if the agent used it before (the
--    caller reads the earlier answer). It goes in before the action it names:
--    the foreign key is checked at COMMIT, and a retry stops here.
-- 4. The action, and its audit event through reviewqueue_audit_append.
--
-- Rows arrive as JSON objects of column -> value (jsonb_populate_record), so a
-- new column needs no change here. Current text, as migration
-- 0016_submit_detects_used_keys set it; a change is a new migration carrying
-- the new text as its literal (tests/reviewqueue/test_sql_functions.py).

CREATE OR REPLACE FUNCTION reviewqueue_submit(action jsonb, idempotency_key jsonb, event jsonb, event_prefix text,
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
