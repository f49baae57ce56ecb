"""Every change to a key, a grant or an API type makes cached decisions stale.

The bump runs after the commit: bumping before it would let another process
cache the old rows again under the new version.
"""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .access import bump_cache_version
from .models import ApiKey, ApiKeyGrant, ApiType


def decisions_changed() -> None:
    transaction.on_commit(bump_cache_version)


@receiver([post_save, post_delete], sender=ApiKey)
@receiver([post_save, post_delete], sender=ApiKeyGrant)
@receiver([post_save, post_delete], sender=ApiType)
def on_change(sender, **kwargs) -> None:
    decisions_changed()
