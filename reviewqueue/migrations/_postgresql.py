"""For migrations: SQL that runs only on PostgreSQL. SQLite has no PL/pgSQL;
there the code does in Python what these triggers and functions do.

Frozen with the migrations that use it: it holds no SQL of its own (each
migration carries its whole SQL as a literal), and a change here would
change what every one of them runs."""

from django.db import migrations


def run_on_postgresql(forward: str, backward: str) -> migrations.RunPython:
    def run(sql: str):
        def apply(apps, schema_editor):
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.execute(sql, params=None)

        return apply

    return migrations.RunPython(run(forward), run(backward))
