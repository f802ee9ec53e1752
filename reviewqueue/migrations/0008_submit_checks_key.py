"""reviewqueue_submit also checks the agent's key, so that a submission needs
no query of its own for it (credentials: the process remembers keys).

When given a key hash and the agent row's xmin as the process read them, the
function raises SQLSTATE RQ401 unless that key is still live (not revoked,
not expired) and its agent active and unchanged since (any UPDATE of the row
changes xmin); the caller then reads the key again and starts over. NULLs
skip the check (a key read from the database by this request).
"""

import importlib

from django.db import migrations

from ._postgresql import run_on_postgresql

# 0007's function, with the key's parameters and its check put first.
_SUBMIT_0007 = importlib.import_module("reviewqueue.migrations.0007_submit_function").FORWARD
_SUBMIT_0007 = _SUBMIT_0007[_SUBMIT_0007.index("CREATE FUNCTION reviewqueue_submit("):]
_SIGNATURE = "(action jsonb, idempotency_key jsonb, event jsonb, event_prefix text)"
KEY_CHECK = """
    IF key_hash_read IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM reviewqueue_apikey k JOIN reviewqueue_agent a ON a.id = k.agent_id
        WHERE k.key_hash = key_hash_read AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
          AND a.is_active AND a.xmin::text = agent_version_read
    ) THEN
        RAISE EXCEPTION 'the key was revoked or its agent changed' USING ERRCODE = 'RQ401';
    END IF;"""
assert _SIGNATURE in _SUBMIT_0007 and "$fn$\nBEGIN\n" in _SUBMIT_0007
_SUBMIT_0008 = _SUBMIT_0007.replace(
    _SIGNATURE, _SIGNATURE[:-1] + ",\n    key_hash_read text, agent_version_read text)"
).replace("$fn$\nBEGIN\n", "$fn$\nBEGIN" + KEY_CHECK + "\n", 1)

FORWARD = "DROP FUNCTION reviewqueue_submit(jsonb, jsonb, jsonb, text);\n" + _SUBMIT_0008
BACKWARD = "DROP FUNCTION reviewqueue_submit(jsonb, jsonb, jsonb, text, text, text);\n" + _SUBMIT_0007


class Migration(migrations.Migration):
    dependencies = [("reviewqueue", "0007_submit_function")]

    operations = [run_on_postgresql(FORWARD, BACKWARD)]
