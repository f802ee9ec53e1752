"""The submit path's one hand-written statement, and the only module that
writes SQL around Django (elsewhere: the ORM, or a plain cursor).

On PostgreSQL a submission's whole write is one call of the function
reviewqueue_submit (reviewqueue/sql/reviewqueue_submit.sql): the remembered
key's check, the kill-switch check, the Idempotency-Key, the action and its
audit event. It is a prepared statement (bound on the server, so PostgreSQL
plans it once per connection) and its own transaction: one round trip with
no BEGIN or COMMIT, since a thread waits for the GIL after every round trip
and under load those waits were a large part of a submission's time. Rows
go to it as JSON objects of column → value (jsonb_populate_record), so a
new column needs no change to the function.

Inside a transaction (a caller's, or a test's) the call runs in a savepoint,
so every path through it is the same one production takes.

The figure, from bench/submit_cpu_bench.py (which would show this seam's
removal): building the rows and the one call took 0.43 ms of CPU in its last
run, where reading the switches and appending the audit event in a
transaction of their own, without the INSERTs, took 1.5 ms. The rows are
built with Model.__init__ (0.10 ms for the action and its event with their
SLA; bypassing __init__ as unpickling does would save about 0.07 ms of a
submission's 3.7 ms, not worth reaching into Django's internals).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from datetime import date, time
from decimal import Decimal
from functools import cache
from uuid import UUID

import orjson
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.models import Model
from psycopg.types.json import Jsonb

from reviewqueue.audit.trail import appended, chain_prefix, event_row
from reviewqueue.core.jsonbody import json_bytes
from reviewqueue.credentials.keys import CredentialsChanged, Principal
from reviewqueue.models import Action, AuditEvent, IdempotencyKey

_SUBMIT = "SELECT seq, prev_hash, hash FROM reviewqueue_submit(%s, %s, %s, %s, %s, %s)"

# What reviewqueue_submit raises instead of writing.
KEY_CHANGED_SQLSTATE = "RQ401"  # the remembered key was revoked or expired, or its agent changed
KEY_TAKEN_SQLSTATE = "RQ409"  # the Idempotency-Key was used before (migration 0016)
ENGAGED_SQLSTATE = "RQ423"  # a kill switch is engaged


class Outcome(enum.Enum):
    WRITTEN = "written"
    KEY_TAKEN = "key_taken"  # nothing written: the caller reads the earlier answer to the key
    ENGAGED = "engaged"  # nothing written: the caller reads which switch is engaged and whether it covers this


def available() -> bool:
    """Whether the database has the submit function (PostgreSQL; SQLite has no PL/pgSQL)."""
    return connections[DEFAULT_DB_ALIAS].vendor == "postgresql"


def submission_write(
    *,
    action: Action,
    key: IdempotencyKey | None,
    event: AuditEvent,
    unconfirmed: Principal | None,
) -> Outcome:
    """Write the action, its Idempotency-Key (if any) and its audit event in
    one call, unless a kill switch is engaged or the key was used before.

    With `unconfirmed` (a key this process remembered), the function first
    checks that the key is still live and its agent row unchanged, and raises
    CredentialsChanged if not; any other outcome means the key held.
    """
    conn = connections[DEFAULT_DB_ALIAS]
    params = [
        _row(action),
        _row(key) if key else None,
        Jsonb(event_row(event), dumps=_row_bytes),
        chain_prefix(event),
        unconfirmed.key_hash if unconfirmed else None,
        unconfirmed.agent_version if unconfirmed else None,
    ]
    # A savepoint only inside a transaction: alone, the statement is its own transaction.
    nested = transaction.atomic() if conn.in_atomic_block else contextlib.nullcontext()
    try:
        with nested, _server_bound_cursor(conn) as cursor:
            cursor.execute(_SUBMIT, params)
            row = cursor.fetchone()
    except DatabaseError as error:
        state = getattr(error.__cause__, "sqlstate", None)
        if state == KEY_CHANGED_SQLSTATE:
            raise CredentialsChanged from error
        if state == KEY_TAKEN_SQLSTATE:
            return Outcome.KEY_TAKEN
        if state == ENGAGED_SQLSTATE:
            return Outcome.ENGAGED
        raise
    appended(event, row)
    for saved in (action, key) if key else (action,):
        saved._state.adding, saved._state.db = False, conn.alias
    return Outcome.WRITTEN


@contextlib.contextmanager
def _server_bound_cursor(conn) -> Iterator:
    """Django's cursor, binding parameters on the server, so that psycopg
    prepares the statement once per connection (DATABASE_PREPARED_STATEMENTS
    =false turns that off, e.g. behind PgBouncer in transaction mode). The
    ORM keeps its client-side binding, which never prepares."""
    from django.db.backends.postgresql.base import ServerBindingCursor

    conn.ensure_connection()
    conn.validate_thread_sharing()
    with conn.wrap_database_errors:
        raw = ServerBindingCursor(conn.connection)  # type: ignore[call-arg]
    wrapped = conn.make_debug_cursor(raw) if conn.queries_logged else conn.make_cursor(raw)
    with wrapped:
        yield wrapped


def _row(obj: Model) -> Jsonb:
    """The instance as one JSON object of column → value: JSON fields as they
    are, dates and times in ISO 8601 to the microsecond, UUIDs and decimals as text."""
    values = obj.__dict__
    return Jsonb({column: values[attname] for column, attname in _columns(type(obj))}, dumps=_row_bytes)


@cache
def _columns(model: type[Model]) -> tuple[tuple[str | None, str], ...]:
    return tuple((f.column, f.attname) for f in model._meta.concrete_fields)


def _row_bytes(row: dict) -> bytes:
    try:  # orjson writes datetimes, dates, times and UUIDs as isoformat() and str() do
        return orjson.dumps(row, default=_decimal_text)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits in a JSON field
        return json_bytes({column: _text(value) for column, value in row.items()})


def _decimal_text(value):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _text(value):
    """A column's value as the stdlib can write it (a JSON field's value is
    already JSON: a dict, list, string, number or None)."""
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    return value
