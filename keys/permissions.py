"""The two CHQ rights, checked on the server for every view.

Anonymous users are sent to the login page; signed-in users without the
right get a 403 whose page names the right they lack.
"""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.views.decorators.cache import never_cache

ACCESS = "keys.access_integration_settings"
CHANGE = "keys.change_integration_settings"
NAMES = {ACCESS: "Access Integration Settings CHQ", CHANGE: "Add/Edit Integration Settings CHQ"}


def missing_rights(user, perms: tuple[str, ...]) -> list[str]:
    return [NAMES[p] for p in perms if not user.has_perm(p)]


def rights_required(*perms: str) -> Callable:
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if missing := missing_rights(request.user, perms):
                raise PermissionDenied(f"This needs the right {' and '.join(missing)}.")
            return view(request, *args, **kwargs)

        # Every page under settings › integrations shows key values: no browser or proxy may keep a copy.
        return never_cache(login_required(wrapped))

    return decorator


# Viewing anything under settings › integrations.
integration_access_required = rights_required(ACCESS)
# Creating, editing or removing keys needs both rights.
integration_change_required = rights_required(ACCESS, CHANGE)


def can_change(user) -> bool:
    return not missing_rights(user, (ACCESS, CHANGE))
