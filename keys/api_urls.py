from django.urls import path, re_path

from . import api_errors, api_views

# `<path:...>` because CHQ API ids may contain "/" (echo/EcommQty); the async
# route comes first so that ".../async" is not read as part of an id.
urlpatterns = [
    path("status", api_views.status_call, name="chqapi-status"),
    path("export/<path:api_id>/async", api_views.export_async_call, name="chqapi-export-async"),
    path("export/<path:api_id>", api_views.export_call, name="chqapi-export"),
    path("import/<path:api_id>", api_views.import_call, name="chqapi-import"),
    # Everything else under /chqapi/ answers 404 in the API's JSON shape, in DEBUG too.
    re_path(r"", api_errors.not_found),
]
