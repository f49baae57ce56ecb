"""A host project's own view guarded by the same ApiKey check (used by tests)."""

from django.http import JsonResponse
from django.urls import include, path

from keys.guard import api_key_required


@api_key_required("export", "inventory")
def host_inventory(request):
    return JsonResponse({"Items": [], "Key": request.api_call.decision.key_id})


urlpatterns = [
    path("host/inventory", host_inventory),
    path("chqapi/", include("keys.chqapi.urls")),
]
