"""CHQ's Swagger page, at the path CHQ uses (/integration/api/index), over the
OpenAPI document of keys/chqapi/openapi.py.

Both are public, as the reference pages that describe the API are: they show
what the API is, not anyone's data, and every call made from the page needs an
API key, which the guard checks like any other call. Swagger UI's files come
from the drf-spectacular-sidecar package and are served from this site, so the
page keeps the site's strict Content-Security-Policy (no CDN, no inline script).
"""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from . import openapi


@require_GET
def swagger_page(request: HttpRequest) -> HttpResponse:
    return render(request, "chqapi/swagger.html")


@require_GET
def openapi_document(request: HttpRequest) -> JsonResponse:
    # The paths are reversed in the URLconf this request was resolved in (a middleware may set its own).
    return JsonResponse(openapi.for_installation(urlconf=getattr(request, "urlconf", None)))
