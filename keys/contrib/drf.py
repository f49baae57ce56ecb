"""The ApiKey guard for Django REST framework views: the same decision, throttle,
refusal answers, usage and call documents as `@api_key_required`.

    class WidgetExport(ApiKeyGuardedView):      # or ApiKeyViewMixin first among an APIView's bases
        api_direction, api_id = "export", "widgets"

        def post(self, request):
            request.auth.decision               # the guard's context (keys.guard.context.Call)
            return Response({"Items": []})

- `ApiKeyAuthentication` decides the call for the view's `api_direction`/`api_id` (the
  `api_id` URL argument when the view has none; an active key is enough when the view
  names no direction); `request.auth` is the call's context, `request.user` AnonymousUser.
  Without an ApiKey header it steps aside, so other authentication classes can try.
- `HasApiKey` refuses a request no ApiKey decision accepted, as the guard refuses a
  missing key (401, counted and throttled).
- `ApiKeyViewMixin` answers refusals exactly as the guard does (status, `{"Message": ...}`,
  WWW-Authenticate, Retry-After, a limited key's RateLimit fields) and records the call
  after its response is rendered, so a logged call's document holds the answer that was sent.
"""

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import SimpleTemplateResponse
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.views import APIView

from ..guard.answers import CHALLENGE, HEADER, HEADER_META, message_of
from ..guard.context import Call, call_of
from ..guard.flow import admit, answered, authenticated, failure


class Refused(exceptions.APIException):
    """The guard refused the call; `response` is its answer. A view without ApiKeyViewMixin
    answers it in DRF's shape (`{"detail": message}`, same status)."""

    def __init__(self, response: HttpResponse):
        self.response = response
        self.status_code = response.status_code
        super().__init__(detail=message_of(response))


def _decide(request, view) -> Call:
    """The guard's checks for this DRF request and view: its context, or Refused."""
    raw: HttpRequest = request._request
    direction = getattr(view, "api_direction", None)
    if direction is None:
        admitted = authenticated(raw)
    else:
        api_id = getattr(view, "api_id", None)
        if api_id is None:
            api_id = view.kwargs["api_id"]
        admitted = admit(raw, direction, api_id)
    if not isinstance(admitted, Call):
        raise Refused(admitted)
    return admitted


class ApiKeyAuthentication(BaseAuthentication):
    """The `ApiKey` header, decided by the guard for the view's API type."""

    def authenticate(self, request):
        if HEADER_META not in request._request.META:
            return None
        return AnonymousUser(), _decide(request, request.parser_context["view"])

    def authenticate_header(self, request) -> str:
        return CHALLENGE


class HasApiKey(BasePermission):
    """Only calls the ApiKey guard accepted; anything else is refused as the guard refuses
    a call without a key."""

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, Call):
            return True
        _decide(request, view)  # refuses: no ApiKey header reached ApiKeyAuthentication
        return False


class ApiKeyViewMixin:
    """First among an APIView's bases: the guard's answers and records for a DRF view."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasApiKey]
    api_direction: str | None = None
    api_id: str | None = None

    def handle_exception(self, exc):
        if isinstance(exc, Refused):
            return exc.response
        call = call_of(self.request._request) if getattr(self, "request", None) is not None else None
        if call is None or isinstance(exc, exceptions.APIException | Http404 | PermissionDenied):
            return super().handle_exception(exc)  # DRF's own answers for its own exceptions
        return failure(self.request._request, call, exc)  # ApiError, InvalidRequest, outages, failures

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        raw = request._request if hasattr(request, "_request") else request
        call = call_of(raw)
        if call is None:
            return response
        if isinstance(response, SimpleTemplateResponse) and not response.is_rendered:
            # DRF's Response renders after the view returns: the document must hold what was sent.
            response.add_post_render_callback(lambda rendered: answered(raw, call, rendered))
            return response
        return answered(raw, call, response)


class ApiKeyGuardedView(ApiKeyViewMixin, APIView):
    """An APIView behind the ApiKey guard; set `api_direction` and `api_id`."""


try:
    from drf_spectacular.extensions import OpenApiAuthenticationExtension
except ImportError:  # drf-spectacular is optional too
    pass
else:

    class ApiKeyScheme(OpenApiAuthenticationExtension):
        """drf-spectacular documents ApiKeyAuthentication as the `ApiKey` header scheme."""

        target_class = ApiKeyAuthentication
        name = "ApiKey"

        def get_security_definition(self, auto_schema):
            return {"type": "apiKey", "in": "header", "name": HEADER}
