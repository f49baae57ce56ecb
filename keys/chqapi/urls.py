from django.urls import path, re_path

from . import errors, views

# `<path:...>` because CHQ API ids may contain "/" (echo/EcommQty); the async
# route comes first so that ".../async" is not read as part of an id.
urlpatterns = [
    path("status", views.status_call, name="chqapi-status"),
    path("getdata", views.getdata_call, name="chqapi-getdata"),
    path("export/<path:api_id>/async", views.export_async_call, name="chqapi-export-async"),
    path("export/<path:api_id>", views.export_call, name="chqapi-export"),
    path("import/<path:api_id>", views.import_call, name="chqapi-import"),
    # Everything else under /chqapi/ answers 404 in the API's JSON shape, in DEBUG too.
    re_path(r"", errors.not_found),
]

# For the project's URLconfs, after include("keys.chqapi.urls"): `/chqapi` (no slash, which
# CommonMiddleware would otherwise redirect with an HTML 301) and `//chqapi/...` are API
# paths too (paths.is_api_path) that no route serves. ("(?:/*)", not "/*": urls.W002 flags a leading slash.)
missed = [re_path(r"^(?:/*)chqapi(?:/|\Z)", errors.not_found)]
