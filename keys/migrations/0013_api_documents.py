"""Logged calls become CHQ's API documents: the same rows, with a document status,
the "<api-id>-<direction>" request type, sync or async, times, record counts,
an error message, lines, and whether the content is kept after delivery."""

import django.utils.timezone
from django.db import migrations, models


def describe_existing(apps, schema_editor):
    ApiDocument = apps.get_model("keys", "ApiDocument")
    for document in ApiDocument.objects.select_related("api_type").iterator(chunk_size=2000):
        if document.api_type is not None:
            request_type = f"{document.api_type.api_id}-{document.api_type.direction}"
        else:  # /chqapi/<direction>/<api-id>[/async], or a host's own guarded path
            parts = document.path.strip("/").split("/")
            request_type = f"{'/'.join(parts[2:])}-{parts[1]}" if len(parts) > 2 and parts[0] == "chqapi" else ""
        ApiDocument.objects.filter(pk=document.pk).update(
            request_type=request_type[:160],
            status=3 if 200 <= document.status_code < 300 else 4,
            modified_at=document.created_at,
            started_at=document.created_at,
            ended_at=document.created_at,
        )


class Migration(migrations.Migration):
    dependencies = [("keys", "0012_key_usage")]

    operations = [
        migrations.RenameModel("ApiCallLog", "ApiDocument"),
        migrations.AlterModelOptions(name="apidocument", options={"ordering": ["-id"], "verbose_name": "API document"}),
        migrations.AlterField(
            model_name="apidocument",
            name="created_at",
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name="apidocument", name="modified_at", field=models.DateTimeField(default=django.utils.timezone.now)
        ),
        migrations.AddField(
            model_name="apidocument",
            name="request_type",
            field=models.CharField(blank=True, db_index=True, max_length=160, verbose_name="API request type"),
        ),
        migrations.AddField(
            model_name="apidocument",
            name="is_async",
            field=models.BooleanField(default=False, verbose_name="asynchronous"),
        ),
        migrations.AddField(
            model_name="apidocument",
            name="status",
            field=models.PositiveSmallIntegerField(
                choices=[(0, "InQueue"), (1, "Validation"), (2, "InProcess"), (3, "Successful"), (4, "Error")],
                default=3,
            ),
        ),
        migrations.AddField(model_name="apidocument", name="started_at", field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name="apidocument", name="ended_at", field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name="apidocument", name="total_records", field=models.IntegerField(blank=True, null=True)),
        migrations.AddField(model_name="apidocument", name="records_count", field=models.IntegerField(blank=True, null=True)),
        migrations.AddField(
            model_name="apidocument", name="accepted_records", field=models.IntegerField(blank=True, null=True)
        ),
        migrations.AddField(model_name="apidocument", name="error_records", field=models.IntegerField(blank=True, null=True)),
        migrations.AddField(model_name="apidocument", name="progress", field=models.FloatField(blank=True, null=True)),
        migrations.AddField(model_name="apidocument", name="error_message", field=models.TextField(blank=True)),
        migrations.AddField(
            model_name="apidocument",
            name="lines",
            field=models.JSONField(blank=True, default=list, verbose_name="document lines"),
        ),
        migrations.AddField(model_name="apidocument", name="keep_content", field=models.BooleanField(default=True)),
        migrations.AddIndex(
            model_name="apidocument",
            index=models.Index(fields=["status", "started_at"], name="keys_doc_status_started_idx"),
        ),
        migrations.RunPython(describe_existing, migrations.RunPython.noop, elidable=True),
    ]
