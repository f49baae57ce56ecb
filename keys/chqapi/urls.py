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
