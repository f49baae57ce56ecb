"""The demo's settings without CHQ's API app: a host that guards only its own views."""

from chq.settings import *  # noqa: F403

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "keys.chqapi"]  # noqa: F405
MIDDLEWARE = [m for m in MIDDLEWARE if m != "keys.chqapi.middleware.ApiMiddleware"]  # noqa: F405
# The demo's log filter (keys/chqapi/log_filters.py) knows the API's paths; a host without the API has none.
LOGGING = {"version": 1, "disable_existing_loggers": False}
