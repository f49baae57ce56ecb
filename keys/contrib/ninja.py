"""The ApiKey guard for django-ninja endpoints: the same decision, throttle, refusal
answers, usage and call documents as `@api_key_required`.

    api = GuardedNinjaAPI()

    @api.post("/widgets", auth=ApiKey("export", "widgets"))
    def widgets(request):
        request.auth.decision       # the guard's context (keys.guard.context.Call)
        return {"Items": []}        # ninja renders it; the guard records what was sent

    urlpatterns = [path("api/", api.urls)]

`ApiKey` is ninja's APIKeyHeader for the `ApiKey` header (ninja's OpenAPI shows that
scheme), deciding with the guard for its API type. `GuardedNinjaAPI` answers refusals
exactly as the guard does and records each accepted call once ninja has made its
response: ninja renders inside its own view, so the record is taken around the views
its `urls` mount (sync and async alike).
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver
from ninja import NinjaAPI
from ninja.errors import HttpError
from ninja.security import APIKeyHeader

from ..guard.answers import HEADER, ApiError, message_of
from ..guard.context import Call, call_of
from ..guard.flow import admit, answered, authenticated, failure
from ..guard.parsing import InvalidRequest


class Refused(HttpError):
    """The guard refused the call; `response` is its answer. A plain NinjaAPI (not
    GuardedNinjaAPI) answers it as ninja answers an HttpError: `{"detail": message}`,
    same status (and records no call)."""

    def __init__(self, response: HttpResponse):
        super().__init__(response.status_code, message_of(response))
        self.response = response


class ApiKey(APIKeyHeader):
    """Auth for an endpoint of API type `direction`/`api_id`; `ApiKey()` without a type:
    an active key is enough (calls about the key itself)."""

    param_name = HEADER

    def __init__(self, direction: str | None = None, api_id: str | None = None):
        if (direction is None) != (api_id is None):
            raise ValueError("ApiKey takes a direction and an api_id, or neither.")
        self.direction, self.api_id = direction, api_id
        super().__init__()

    def authenticate(self, request: HttpRequest, key: str | None) -> Call:
        # The guard reads the header itself (and refuses a missing one as it always does).
        admitted = authenticated(request) if self.direction is None else admit(request, self.direction, self.api_id)
        if not isinstance(admitted, Call):
            raise Refused(admitted)
        return admitted


def _refused(request: HttpRequest, exc: Refused) -> HttpResponse:
    return exc.response


def _failed(request: HttpRequest, exc: Exception) -> HttpResponse:
    call = call_of(request)
    if call is None:
        raise exc
    return failure(request, call, exc)


def _recording(view: Callable) -> Callable:
    """Record the call once ninja's view has made its response (refusals are not recorded)."""
    if iscoroutinefunction(view):

        @wraps(view)
        async def recorded_async(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            response = await view(request, *args, **kwargs)
            call = call_of(request)
            return response if call is None else await sync_to_async(answered)(request, call, response)

        return recorded_async

    @wraps(view)
    def recorded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        call = call_of(request)
        return response if call is None else answered(request, call, response)

    return recorded


class GuardedNinjaAPI(NinjaAPI):
    """A NinjaAPI whose ApiKey endpoints answer and record as the guard does."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.add_exception_handler(Refused, _refused)
        # What a guarded view raises is answered as @api_key_required answers it.
        self.add_exception_handler(ApiError, _failed)
        self.add_exception_handler(InvalidRequest, _failed)

    def _get_urls(self) -> list[URLResolver | URLPattern]:
        urls = super()._get_urls()
        for pattern in urls:
            if isinstance(pattern, URLPattern):
                pattern.callback = _recording(pattern.callback)
        return urls
