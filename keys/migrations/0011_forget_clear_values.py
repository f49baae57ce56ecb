"""Rewrite the key table's storage so the clear values removed by 0010 are not left behind.

SQLite keeps a dropped column's bytes in free pages of the file, and PostgreSQL keeps old
row versions on disk until they are vacuumed: either would leave the values readable in
the raw database file. VACUUM cannot run inside a transaction, hence atomic = False.
"""

from django.db import migrations


def vacuum(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("VACUUM")
        elif connection.vendor == "postgresql":
            cursor.execute(f"VACUUM FULL {apps.get_model('keys', 'ApiKey')._meta.db_table}")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("keys", "0010_sealed_key_values")]

    operations = [migrations.RunPython(vacuum, migrations.RunPython.noop, atomic=False)]
