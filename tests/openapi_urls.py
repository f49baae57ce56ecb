"""A host's URLconf for the OpenAPI tests: the API mounted at a prefix of the host's choosing,
its document beside it, and the host's own views, guarded (a function view, one described
with a path parameter inside a namespaced include, a class-based view) and not."""

from django.http import JsonResponse
from django.urls import include, path, re_path
from django.utils.decorators import method_decorator
from django.views import View

from keys.chqapi import openapi, swagger
from keys.guard import api_key_required

ITEM = {
    "title": "HostItem",
    "type": "object",
    "properties": {"Number": {"type": "integer"}, "Changed": {"type": "string", "format": "date-time"}},
    "required": ["Number"],
}


@api_key_required("export", "inventory")
def inventory(request):
    return JsonResponse({"Items": []})


@openapi.describe(methods=["GET"], response_schema=ITEM, summary="One of the host's items", tag="Host")
@api_key_required("export", "item")
def item(request, number):
    return JsonResponse({"Number": int(number)})


@method_decorator(api_key_required("import", "customer"), name="dispatch")
class Customers(View):
    def post(self, request):
        return JsonResponse({"Accepted": True})


def unguarded(request):
    return JsonResponse({})


host = [
    path("inventory", inventory),
    re_path(r"^items/(?P<number>[0-9]+)$", item),
    path("customers", Customers.as_view()),
    path("open", unguarded),
]

urlpatterns = [
    path("api/v2/chq/", include("keys.chqapi.urls")),
    path("host/", include((host, "host"))),
    path("docs/openapi.json", swagger.openapi_document),
]
