"""Load the API-type catalog and create the two integration-settings groups,
so both are there after `migrate` on any database."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUPS = {
    "Integration viewers": ["access_integration_settings"],
    "Integration administrators": ["access_integration_settings", "change_integration_settings"],
}


def load_catalog(apps, schema_editor):
    from keys.services import catalog_entries, catalog_sync

    catalog_sync(
        catalog_entries(),
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

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*Permission.objects.filter(content_type__app_label="keys", codename__in=codenames))


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


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
