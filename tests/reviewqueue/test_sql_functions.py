"""PostgreSQL's functions: each one's current text is one file in
reviewqueue/sql/, the migrated database holds exactly that text, the
migration that set it carries it as its own literal, and the audit chain's
hash computed in SQL is the one Python computes."""

import hashlib
import importlib
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader

import reviewqueue
from reviewqueue.audit.trail import GENESIS_HASH, audit_append, audit_verify, chain_hash, event_body
from reviewqueue.models import AuditEvent

pytestmark = pytest.mark.django_db

SQL_DIR = Path(reviewqueue.__file__).parent / "sql"
FILES = sorted(SQL_DIR.glob("*.sql"))
postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PL/pgSQL is PostgreSQL's; CI runs it")


def _statement(path: Path) -> str:
    """The file's CREATE statement (after its header of comments)."""
    text = path.read_text()
    return text[text.index("CREATE ") :]


def _same_statement(sql: str) -> str:
    """CREATE FUNCTION and CREATE OR REPLACE FUNCTION define the same text."""
    return sql.replace("CREATE FUNCTION ", "CREATE OR REPLACE FUNCTION ")


def _migrations() -> list[str]:
    """reviewqueue's migrations, in the order they apply."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    plan = loader.graph.forwards_plan(loader.graph.leaf_nodes("reviewqueue")[0])
    return [name for app, name in plan if app == "reviewqueue"]


def _forward_sql(name: str) -> str:
    return getattr(importlib.import_module(f"reviewqueue.migrations.{name}"), "FORWARD", "")


def test_there_is_a_file_for_each_function():
    assert [path.stem for path in FILES] == [
        "reviewqueue_audit_append",
        "reviewqueue_audit_append_only",
        "reviewqueue_submit",
    ]
    for path in FILES:
        assert re.match(rf"CREATE OR REPLACE FUNCTION {path.stem}\(", _statement(path)), path.name


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.stem)
def test_the_newest_migration_that_defines_a_function_carries_its_file_as_a_literal(path):
    """So the file is the current text, and changing it means a new migration."""
    named = re.search(r"as migration[\s-]+(\d{4}_\w+)[\s-]+set it", path.read_text())[1]
    defining = [name for name in _migrations() if re.search(rf"FUNCTION {path.stem}\(", _forward_sql(name))]
    assert defining[-1] == named, f"{path.name} names {named}; the newest migration defining it is {defining[-1]}"
    assert _same_statement(_statement(path)).strip() in _same_statement(_forward_sql(named))


def test_no_migration_imports_another_or_patches_its_sql():
    for path in (SQL_DIR.parent / "migrations").glob("0*.py"):
        source = path.read_text()
        assert "import_module" not in source and ".migrations.0" not in source, path.name
        assert not re.search(r"^from \.0\d{3}", source, re.M), path.name


def _function_definition(cursor, name: str, schema: str) -> str:
    cursor.execute(
        "SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE p.proname = %s AND n.nspname = %s",
        [name, schema],
    )
    definitions = [row[0] for row in cursor.fetchall()]
    assert len(definitions) == 1, f"{schema}.{name}: {len(definitions)} definitions"
    return definitions[0].replace(f"FUNCTION {schema}.{name}(", f"FUNCTION {name}(", 1)


@pytest.mark.postgres
@postgresql_only
@pytest.mark.parametrize("path", FILES, ids=lambda path: path.stem)
def test_the_migrated_database_holds_exactly_the_files_text(path):
    """PostgreSQL prints both definitions the same way: the one migrations
    left, and the file's, created in a scratch schema (rolled back)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = cursor.fetchone()[0]
        migrated = _function_definition(cursor, path.stem, schema)
        with transaction.atomic():
            cursor.execute("CREATE SCHEMA rq_sql_file")
            cursor.execute("SET LOCAL search_path = rq_sql_file")
            cursor.execute(path.read_text())
            from_file = _function_definition(cursor, path.stem, "rq_sql_file")
            transaction.set_rollback(True)
    assert migrated == from_file


@pytest.mark.postgres
@postgresql_only
def test_every_function_in_the_database_has_its_file():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = current_schema() AND p.proname LIKE 'reviewqueue%%' ORDER BY 1"
        )
        assert [row[0] for row in cursor.fetchall()] == [path.stem for path in FILES]


# The chain hash: PostgreSQL's reviewqueue_audit_append and Python's chain_hash.

AT = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)
TRICKY = {
    "empty": {},
    "text": {"note": 'naïve ☃ \u2028 "quoted" \\ back/slash 見積書 🚀', "": "empty key", "\u00e9": "é composed"},
    "numbers": {"ints": [0, -1, 2**53 + 1, 10**18, 10**30], "floats": [2.5, 0.1, 1e-07, 1e-05, 123456.789, 0.9999]},
    "nested": {"b": [1, {"a": None, "z": False}], "a": True, "list": [[], {}, [[]]]},
}


def test_the_first_events_hash_is_pinned():
    """The hash of a given event at the chain's start, whoever computes it."""
    body = event_body(
        seq=1,
        created_at=AT,
        kind="test.pinned",
        actor="test",
        action_id=None,
        agent_id=None,
        data={"b": [1, 2.5], "a": "ü"},
    )
    canonical = (
        '{"action_id":null,"actor":"test","agent_id":null,"created_at":"2026-11-29T12:00:00.123456+00:00",'
        '"data":{"a":"ü","b":[1,2.5]},"kind":"test.pinned","seq":1}'
    )
    expected = hashlib.sha256((GENESIS_HASH + canonical).encode()).hexdigest()
    assert chain_hash(GENESIS_HASH, body) == expected
    assert not AuditEvent.objects.exists()  # so the append below is the chain's first event
    with transaction.atomic():
        event = audit_append(kind="test.pinned", actor="test", at=AT, data={"b": [1, 2.5], "a": "ü"})
    assert (event.seq, event.prev_hash, event.hash) == (1, GENESIS_HASH, expected)


@pytest.mark.parametrize("data", TRICKY.values(), ids=TRICKY.keys())
def test_postgresql_and_python_chain_the_same_hash(data):
    """The hash the append computed (in SQL on PostgreSQL) is chain_hash of
    the event as it was sent and as it reads back, so verifying finds it."""
    with transaction.atomic():
        audit_append(kind="test.first", actor="test", at=AT)
        event = audit_append(kind="test.hash", actor="agent:x", at=AT, data=data)
    sent = event_body(
        seq=event.seq, created_at=AT, kind="test.hash", actor="agent:x", action_id=None, agent_id=None, data=data
    )
    assert event.hash == chain_hash(event.prev_hash, sent)
    stored = AuditEvent.objects.get(seq=event.seq)
    assert stored.data == data and stored.prev_hash == AuditEvent.objects.get(seq=event.seq - 1).hash
    read_back = event_body(
        seq=stored.seq,
        created_at=stored.created_at,
        kind=stored.kind,
        actor=stored.actor,
        action_id=stored.action_id,
        agent_id=stored.agent_id,
        data=stored.data,
    )
    assert stored.hash == chain_hash(stored.prev_hash, read_back) == event.hash
    assert audit_verify()[1] is None
