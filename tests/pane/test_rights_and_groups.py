import pytest
from django.contrib.auth.models import Group, Permission

pytestmark = pytest.mark.django_db


def test_permission_names_are_chqs():
    names = dict(Permission.objects.filter(content_type__app_label="keys").values_list("codename", "name"))
    assert names["access_integration_settings"] == "Access Integration Settings CHQ"
    assert names["change_integration_settings"] == "Add/Edit Integration Settings CHQ"


@pytest.mark.parametrize(
    ("group", "codenames"),
    [
        ("Integration viewers", {"access_integration_settings"}),
        ("Integration administrators", {"access_integration_settings", "change_integration_settings"}),
    ],
)
def test_groups_made_by_migration(group, codenames):
    assert set(Group.objects.get(name=group).permissions.values_list("codename", flat=True)) == codenames


def test_user_rights_through_groups(viewer, administrator, nobody):
    assert viewer.has_perm("keys.access_integration_settings")
    assert not viewer.has_perm("keys.change_integration_settings")
    assert administrator.has_perms(["keys.access_integration_settings", "keys.change_integration_settings"])
    assert not nobody.has_perm("keys.access_integration_settings")
