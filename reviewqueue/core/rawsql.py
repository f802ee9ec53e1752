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

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, time
from decimal import Decimal
from functools import cache
from typing import Any
from uuid import UUID

import orjson
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model
from django.db.models.base import ModelState
from psycopg.types.json import Jsonb

from reviewqueue.core.jsonbody import json_bytes


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


def unsaved(model: type[Model], **values) -> Model:
    """A new instance, built as unpickling builds one (no Model.__init__):
    each concrete field from `values` (by name; a foreign key by object or
    by its attname) or at its default. A tenth of __init__'s CPU on Action's
    43 fields; no pre_init or post_init signals (nothing on these models
    listens)."""
    obj = model.__new__(model)
    obj._state = ModelState()
    attrs = obj.__dict__
    for name, attname, field, is_relation, factory, default in _fields(model):
        if name in values:
            value = values.pop(name)
            if is_relation:
                attrs[attname] = None if value is None else value.pk
                field.set_cached_value(obj, value)
            else:
                attrs[attname] = value
        elif attname in values:
            attrs[attname] = values.pop(attname)
        else:
            attrs[attname] = factory() if factory else default
    if values:
        raise TypeError(f"{model.__name__} has no fields {sorted(values)}")
    return obj


@cache
def _fields(model: type[Model]) -> tuple[tuple[str, str, Field, bool, Callable | None, Any], ...]:
    """Each field with its default: a callable's to call per instance (Django
    requires one for a mutable default), or a value worked out once."""
    return tuple(
        (f.name, f.attname, f, f.is_relation, f.default, None) if f.has_default() and callable(f.default)
        else (f.name, f.attname, f, f.is_relation, None, f.get_default())
        for f in model._meta.concrete_fields
    )


def row_json(obj: Model) -> Jsonb:
    """The instance as one JSON object of column → value, for PostgreSQL's
    jsonb_populate_record (see migration 0007): JSON fields as they are,
    dates and times in ISO 8601 to the microsecond, UUIDs and decimals as text."""
    values = obj.__dict__
    return Jsonb({column: values[attname] for column, attname in _row_fields(type(obj))}, dumps=_row_bytes)


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


@cache
def _row_fields(model: type[Model]) -> tuple[tuple[str, str], ...]:
    return tuple((f.column, f.attname) for f in model._meta.concrete_fields)


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
