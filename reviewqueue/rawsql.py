"""Hand-written SQL for the submit path.

Compiling an ORM query costs about ten times the CPU of running it on this
kind of machine, and every agent request runs a handful of them; so the few
statements on that path are written once here and reuse Django's own field
adaptation, which keeps them correct on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from functools import cache

from django.db import connection
from django.db.models import Model


@cache
def _insert_sql(model: type[Model]) -> tuple[str, tuple]:
    quote = connection.ops.quote_name
    fields = tuple(model._meta.concrete_fields)
    columns = ", ".join(quote(field.column) for field in fields)
    marks = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({marks})", fields


def insert(obj: Model) -> Model:
    """INSERT one instance whose primary key is already set, like save(force_insert=True)
    but without compiling a query (no signals: nothing on these models listens)."""
    if obj.pk is None:
        raise ValueError(f"{type(obj).__name__} needs its primary key before a raw insert")
    sql, fields = _insert_sql(type(obj))
    params = [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    obj._state.adding, obj._state.db = False, connection.alias
    return obj


def prep(obj: Model, name: str):
    """One field of an instance as a query parameter, adapted like the ORM does."""
    field = obj._meta.get_field(name)
    return field.get_db_prep_save(getattr(obj, field.attname), connection)


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model: type[Model], name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def datetime_param(value):
    """A datetime as this backend stores it (SQLite keeps naive UTC text)."""
    return connection.ops.adapt_datetimefield_value(value)


def from_db(field, value):
    """A column value as the ORM would return it (JSON text decoded, etc.)."""
    if value is not None and hasattr(field, "from_db_value"):
        return field.from_db_value(value, None, connection)
    return value
