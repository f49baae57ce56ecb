# The admin's status filter's index (keys/models.py says why it is partial). On PostgreSQL it
# is built CONCURRENTLY: a plain CREATE INDEX on a table of millions of documents would stop
# every logged call for as long as the build takes.

from django.db import migrations, models

INDEX = models.Index(
    condition=models.Q(("status", 3), _negated=True), fields=["status", "-id"], name="keys_doc_unsucceeded_idx"
)


def create(apps, schema_editor):
    model = apps.get_model("keys", "ApiDocument")
    if schema_editor.connection.vendor == "postgresql":
        sql = str(INDEX.create_sql(model, schema_editor)).replace("CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1)
        schema_editor.execute(sql.replace(" IF NOT EXISTS", ""))
    else:
        schema_editor.add_index(model, INDEX)


def drop(apps, schema_editor):
    schema_editor.remove_index(apps.get_model("keys", "ApiDocument"), INDEX)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("keys", "0018_time_ordered_document_ids"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="apidocument", index=INDEX)],
            database_operations=[migrations.RunPython(create, drop)],
        ),
    ]
