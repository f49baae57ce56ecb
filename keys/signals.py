"""Every change to a key, a grant or an API type makes cached decisions stale.

The marker advances at once and again after the commit (keys/freshness.py
says why both). Saves and deletes send signals; queryset updates, bulk writes
and deletes say so through DecisionQuerySet (keys/models.py), so a change
typed in `manage.py shell` is seen as well.
"""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from . import freshness
from .models import ApiKey, ApiKeyGrant, ApiType


def decisions_changed() -> None:
    freshness.advance()
    transaction.on_commit(freshness.advance)


@receiver([post_save, post_delete], sender=ApiKey)
@receiver([post_save, post_delete], sender=ApiKeyGrant)
@receiver([post_save, post_delete], sender=ApiType)
def on_change(sender, **kwargs) -> None:
    decisions_changed()
