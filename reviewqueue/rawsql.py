"""Hand-written SQL for the submit path.

Compiling an ORM query costs about ten times the CPU of running it on this
kind of machine, and every agent request runs a handful of them; so the few
statements on that path are written once here and reuse Django's own field
adaptation, which keeps them correct on PostgreSQL and SQLite alike.

On PostgreSQL, `cursor()` binds parameters on the server, so psycopg
prepares each of these statements once per connection and PostgreSQL stops
planning them on every request (DATABASE_PREPARED_STATEMENTS=false turns
that off, e.g. behind PgBouncer in transaction mode). Django's ORM keeps its
default client-side binding, which never prepares and which lets a
statement that must follow a lock go in the same message (see killswitch).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, time
from decimal import Decimal
from functools import cache
from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import JSONField, Model
from psycopg.types.json import Jsonb

from .jsonbody import json_bytes


def db():
    """The default connection itself: every attribute read through the
    `django.db.connection` proxy is a thread-local lookup, and the field
    adaptation below reads it dozens of times per statement."""
    return connections[DEFAULT_DB_ALIAS]


@contextmanager
def cursor() -> Iterator:
    """Django's cursor, with server-side binding on PostgreSQL."""
    conn = db()
    if conn.vendor != "postgresql":
        with conn.cursor() as plain:
            yield plain
        return
    from django.db.backends.postgresql.base import ServerBindingCursor

    conn.ensure_connection()
    conn.validate_thread_sharing()
    with conn.wrap_database_errors:
        raw = ServerBindingCursor(conn.connection)
    wrapped = conn.make_debug_cursor(raw) if conn.queries_logged else conn.make_cursor(raw)
    with wrapped:
        yield wrapped


@cache
def _insert_sql(model: type[Model], with_pk: bool) -> tuple[str, tuple]:
    quote = db().ops.quote_name
    fields = tuple(f for f in model._meta.concrete_fields if with_pk or not f.primary_key)
    columns = ", ".join(quote(field.column) for field in fields)
    marks = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({marks})", fields


def insert(obj: Model) -> Model:
    """INSERT one instance, like save(force_insert=True) but without compiling
    a query (no signals: nothing on these models listens). An auto-increment
    key left unset stays unset (nothing here reads it back)."""
    sql, fields = _insert_sql(type(obj), obj.pk is not None)
    conn = db()
    params = [field.get_db_prep_save(field.pre_save(obj, True), conn) for field in fields]
    with cursor() as insert_cursor:
        insert_cursor.execute(sql, params)
    inserted([obj])
    return obj


def row_json(obj: Model) -> Jsonb:
    """The instance as one JSON object of column → value, for PostgreSQL's
    jsonb_populate_record (see migration 0007): JSON fields as they are,
    dates and times in ISO 8601 to the microsecond, UUIDs and decimals as text."""
    row = {}
    values = obj.__dict__
    for column, attname, is_json in _row_fields(type(obj)):
        value = values[attname]
        if value is not None and not is_json:
            if isinstance(value, date | time):
                value = value.isoformat()
            elif isinstance(value, UUID | Decimal):
                value = str(value)
        row[column] = value
    return Jsonb(row, dumps=json_bytes)


@cache
def _row_fields(model: type[Model]) -> tuple[tuple[str, str, bool], ...]:
    return tuple((f.column, f.attname, isinstance(f, JSONField)) for f in model._meta.concrete_fields)


def inserted(objs: list[Model]) -> None:
    alias = db().alias
    for obj in objs:
        obj._state.adding, obj._state.db = False, alias


def table(model: type[Model]) -> str:
    return db().ops.quote_name(model._meta.db_table)


def column(model: type[Model], name: str) -> str:
    return db().ops.quote_name(model._meta.get_field(name).column)


def datetime_param(value):
    """A datetime as this backend stores it (SQLite keeps naive UTC text)."""
    return db().ops.adapt_datetimefield_value(value)


def from_db(field, value):
    """A column value as the ORM would return it (JSON text decoded, etc.)."""
    if value is not None and hasattr(field, "from_db_value"):
        return field.from_db_value(value, None, db())
    return value


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE under a database error Django wrapped (our functions
    raise their own, e.g. RQ423), or None."""
    return getattr(error.__cause__, "sqlstate", None)
