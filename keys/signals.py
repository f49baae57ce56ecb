"""The one way a cached decision goes stale: a Django signal about a key, a
grant or an API type reaches `on_change`, and only `on_change` advances the
change marker (keys/freshness.py), at once and again after the commit (that
module says why both).

Why signals, and not save()/delete() overrides or calls in the services: every
ORM door already sends them, whoever wrote the code behind it (the pane, the
admin, a command, a host's own code, `manage.py shell`):
- `save()` sends post_save, and `delete()` post_delete, of a model instance
  and of every row a queryset delete or a cascade removes (while a receiver
  listens, Django's collector sends one per row instead of a fast delete);
- `key.api_types.add()/remove()/set()/clear()` write ApiKeyGrant, the
  through model, so they arrive as its rows' signals;
- QuerySet.update(), bulk_create() and bulk_update() are the ORM writes Django
  sends nothing for. DecisionQuerySet (keys/models.py) sends `rows_changed`
  for them, received here like the others.
An override of save() misses queryset writes and cascades; a call in a service
misses every write that is not a service's. One receiver is also one place to
watch: tests/keys/test_staleness.py replaces its marker with a counter and shows
that each kind of change moves the counter and nothing else moves the marker.

Not seen: raw SQL, and a data migration's historical models (they have no
receivers). The workers that served before a migration are restarted with the
new code, which empties their caches; otherwise the decision cache's age bound
(KEYS_DECISION_CACHE_SECONDS) covers both.
"""

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal

from . import freshness
from .models import ApiKey, ApiKeyGrant, ApiType

# Sent by DecisionQuerySet after a write Django sends no signal for. `sender` is the
# model; `fields` the field names written (None: whole rows, as bulk_create writes).
rows_changed = Signal()

# What a key decision reads (keys/access.py): the key, its grants, the API types.
WATCHED = (ApiKey, ApiKeyGrant, ApiType)

# Written by the guard's bookkeeping once a minute (keys/usage.py); no decision reads them.
BOOKKEEPING = frozenset({"last_used_at"})


def on_change(sender, *, update_fields=None, fields=None, **kwargs) -> None:
    written = update_fields if update_fields is not None else fields
    if written is not None and set(written) <= BOOKKEEPING:
        return
    freshness.advance()
    transaction.on_commit(freshness.advance)


for _model in WATCHED:
    for _signal in (post_save, post_delete, rows_changed):
        _signal.connect(on_change, sender=_model, dispatch_uid=f"keys.freshness.{_model.__name__}")
