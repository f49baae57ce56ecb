"""Load the declared API-type catalog (KEYS_CATALOGS and keys.catalog.api_type
registrations, keys/catalog/__init__.py) and create the two integration-settings
groups, so both are there after `migrate` on any database."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def load_catalog(apps, schema_editor):
    from keys.catalog import declared
    from keys.services import catalog_sync

    catalog_sync(
        declared(),
        api_type_model=apps.get_model("keys", "ApiType"),
        grant_model=apps.get_model("keys", "ApiKeyGrant"),
    )


def create_groups(apps, schema_editor):
    # Permissions are normally made after all migrations ran; the groups need
    # them now, so make this app's permissions first.
    app_config = apps.get_app_config("keys")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None

    from keys.services import integration_groups_ensure

    integration_groups_ensure(
        group_model=apps.get_model("auth", "Group"), permission_model=apps.get_model("auth", "Permission")
    )


def remove_groups(apps, schema_editor):
    from keys.services import INTEGRATION_GROUPS

    apps.get_model("auth", "Group").objects.filter(name__in=INTEGRATION_GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("keys", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(load_catalog, migrations.RunPython.noop),
        migrations.RunPython(create_groups, remove_groups),
    ]
