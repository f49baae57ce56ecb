"""On PostgreSQL, the documents table partitioned by day of created_at (keys/partitions.py): the
documents already there stay in place as one partition, daily ones follow, made ahead. Chunks
lose their database reference to the documents (whose primary key becomes (id, created_at)),
and callers' own document ids are claimed in a table of their own. SQLite keeps one table.

On PostgreSQL the documents take no writes while this runs: attaching the existing table as a
partition builds its (id, created_at) and (document_id, created_at) indexes and checks its rows
against the partition's bound (about 10 s a million documents here)."""

from django.db import migrations, models


def partition(apps, schema_editor):
    from keys import partitions

    partitions.partition_table(schema_editor)


def unpartition(apps, schema_editor):
    from keys import partitions

    partitions.unpartition_table(schema_editor, apps.get_model("keys", "ApiDocument"))


class Migration(migrations.Migration):
    dependencies = [
        ("keys", "0020_document_counts"),
    ]

    operations = [
        migrations.AlterField(
            model_name="apidocumentchunk",
            name="document",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=models.deletion.CASCADE,
                related_name="chunks",
                to="keys.apidocument",
            ),
        ),
        migrations.CreateModel(
            name="DocumentIdClaim",
            fields=[
                ("document_id", models.UUIDField(primary_key=True, serialize=False)),
                ("created_at", models.DateTimeField(db_index=True)),
            ],
            options={
                "verbose_name": "API document id claim",
            },
        ),
        migrations.RunPython(partition, unpartition),
    ]
