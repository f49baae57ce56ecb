"""The /chqapi/ routes: every call passes the ApiKey guard, then goes to the
handler registered for its API type, or answers 501 when none is."""

import uuid

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase

from . import handlers
from .errors import post_only
from .guard import ApiCall, ApiError, api_key_authenticated, api_key_required, error_response, handler_for, parse_body


def _dispatch(request: HttpRequest, direction: str, api_id: str, *, is_async: bool = False) -> HttpResponse:
    handler = handler_for(direction, api_id)
    if handler is None:
        # The key checks passed: say so, so integrators can tell a bad key from a missing handler.
        name = request.api_decision.api_type_name or f"{direction}/{api_id}"
        return error_response(501, f"Your API key may call {name}, but this installation does not serve that API type.")
    call = ApiCall(request, direction, api_id, parse_body(request), request.api_decision, is_async)
    result = handler(call)
    if isinstance(result, HttpResponseBase):  # streaming answers too
        return result
    if is_async:
        # CHQ's async exports answer with the id to poll /chqapi/status with; here the work is already done.
        document_id = request.api_document_id or uuid.uuid4()
        result = {"ApiDocumentId": str(document_id), "Status": "Successful", "Data": result}
    return JsonResponse(result)


@post_only
@api_key_required("import")
def import_call(request: HttpRequest, api_id: str) -> HttpResponse:
    return _dispatch(request, "import", api_id)


@post_only
@api_key_required("export")
def export_call(request: HttpRequest, api_id: str) -> HttpResponse:
    return _dispatch(request, "export", api_id)


@post_only
@api_key_required("export")
def export_async_call(request: HttpRequest, api_id: str) -> HttpResponse:
    return _dispatch(request, "export", api_id, is_async=True)


@post_only
@api_key_authenticated
def status_call(request: HttpRequest) -> HttpResponse:
    call = ApiCall(request, "", "status", parse_body(request), request.api_decision)
    try:
        return JsonResponse(handlers.status(call))
    except ApiError as exc:
        return error_response(exc.status, exc.message)
