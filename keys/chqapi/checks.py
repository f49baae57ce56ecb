"""System checks of the CHQ API's request path (`manage.py check`)."""

from django.conf import settings
from django.core.checks import Error, Warning, register

API_MIDDLEWARE = "keys.chqapi.middleware.ApiMiddleware"


@register()
def check_api_middleware(app_configs, **kwargs) -> list[Warning]:
    """The API's calls take their one request path only through ApiMiddleware first in MIDDLEWARE:
    missing, they go through the site's whole chain without the API's JSON errors; later in the
    chain, the middleware before it run on every API call too."""
    found = []
    middleware = list(settings.MIDDLEWARE)
    if API_MIDDLEWARE not in middleware:
        found.append(
            Warning(
                f"{API_MIDDLEWARE} is not in MIDDLEWARE: API calls go through the site's whole chain, "
                "and a failing call answers the site's error page instead of the API's JSON.",
                hint=f'Put "{API_MIDDLEWARE}" first in MIDDLEWARE.',
                id="keys.W020",
            )
        )
    elif middleware[0] != API_MIDDLEWARE:
        found.append(
            Warning(
                f"{API_MIDDLEWARE} is not first in MIDDLEWARE: {middleware[0]} and the others before it "
                "run on every API call too.",
                hint="Move it first; name the middleware API calls need in KEYS_API_MIDDLEWARE.",
                id="keys.W021",
            )
        )
    chain = settings.KEYS_API_MIDDLEWARE
    if isinstance(chain, str) or not all(isinstance(path, str) for path in chain):
        found.append(
            Error(
                f"KEYS_API_MIDDLEWARE must be a list of dotted paths, not {chain!r}.",
                hint='For example ["keys.chqapi.errors.AllowedHostMiddleware", '
                '"keys.chqapi.headers.SecurityMiddleware"] (the default).',
                id="keys.E022",
            )
        )
    return found
