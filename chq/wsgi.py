"""WSGI entry point: two Django handlers behind one application.

/chqapi/ calls go to the API's own handler (keys/chqapi/wsgi.py): security
headers and JSON errors around the view, and nothing else an API answer does
not need. Every other path gets the site's full MIDDLEWARE. Same settings and
database.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chq.settings")
site = get_wsgi_application()  # also sets Django up

from keys.chqapi.wsgi import ApiHandler  # noqa: E402  (needs Django set up)

api = ApiHandler()
API_PREFIX = "/chqapi/"


def application(environ, start_response):
    handler = api if environ.get("PATH_INFO", "").startswith(API_PREFIX) else site
    return handler(environ, start_response)
