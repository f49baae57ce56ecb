"""Key values leave the clear: an HMAC digest to find them by, the value only encrypted.

Reads the secrets from settings (KEYS_LOOKUP_SECRET, KEYS_ENCRYPTION_KEYS), so set
them before migrating; the migration reverses (decrypting) with the same secrets.
"""


from django.db import migrations, models

from keys import sealing


def seal_values(apps, schema_editor):
    ApiKey = apps.get_model("keys", "ApiKey")
    for key in ApiKey.objects.only("pk", "value", "previous_value").iterator():
        key.value_digest, key.value_sealed = sealing.digest(key.value), sealing.seal(key.value)
        if key.previous_value is not None:
            old = key.previous_value
            key.previous_digest, key.previous_sealed = sealing.digest(old), sealing.seal(old)
        key.save(update_fields=["value_digest", "value_sealed", "previous_digest", "previous_sealed"])


def open_values(apps, schema_editor):
    ApiKey = apps.get_model("keys", "ApiKey")
    for key in ApiKey.objects.only("pk", "value_sealed", "previous_sealed").iterator():
        key.value = sealing.unseal(key.value_sealed)
        key.previous_value = sealing.unseal(key.previous_sealed) if key.previous_sealed else None
        key.save(update_fields=["value", "previous_value"])


class Migration(migrations.Migration):
    dependencies = [("keys", "0009_key_roll")]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="value_digest",
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="apikey", name="value_sealed", field=models.TextField(default="", editable=False)
        ),
        migrations.AddField(
            model_name="apikey",
            name="previous_digest",
            field=models.CharField(blank=True, editable=False, max_length=64, null=True, unique=True),
        ),
        migrations.AddField(
            model_name="apikey",
            name="previous_sealed",
            field=models.TextField(blank=True, default="", editable=False),
        ),
        # Reversing needs the clear column back empty (nullable, no default that every row would
        # share) before the values are opened into it.
        migrations.AlterField(
            model_name="apikey",
            name="value",
            field=models.UUIDField(editable=False, null=True, unique=True),
        ),
        migrations.RunPython(seal_values, open_values),
        migrations.RemoveField(model_name="apikey", name="value"),
        migrations.RemoveField(model_name="apikey", name="previous_value"),
        migrations.AlterField(
            model_name="apikey",
            name="value_digest",
            field=models.CharField(editable=False, max_length=64, unique=True),
        ),
        migrations.AlterField(model_name="apikey", name="value_sealed", field=models.TextField(editable=False)),
    ]
