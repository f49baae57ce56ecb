"""WSGI entry point: two Django handlers behind one application.

/chqapi/ calls (and /chqapi, //chqapi/...: keys/chqapi/paths.py) go to the API's
own handler (keys/chqapi/wsgi.py): the Host check, security headers and JSON
errors around the view, and nothing else an API answer does
not need. Every other path gets the site's full MIDDLEWARE. Same settings and
database.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chq.settings")
site = get_wsgi_application()  # also sets Django up

from keys.chqapi.paths import is_api_path  # noqa: E402
from keys.chqapi.wsgi import ApiHandler  # noqa: E402  (needs Django set up)

api = ApiHandler()


def application(environ, start_response):
    handler = api if is_api_path(environ.get("PATH_INFO", "")) else site
    return handler(environ, start_response)
