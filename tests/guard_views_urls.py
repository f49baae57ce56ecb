"""A host project's own views, one of each kind, each behind the ApiKey guard for
export/inventory (tests/api/test_guard_views.py calls them)."""

import asyncio

from django.http import JsonResponse, StreamingHttpResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.views import View
from ninja import NinjaAPI
from rest_framework.response import Response
from rest_framework.views import APIView

from keys.contrib.drf import ApiKeyAuthentication, ApiKeyGuardedView, HasApiKey
from keys.contrib.ninja import ApiKey, GuardedNinjaAPI
from keys.guard import ApiError, ApiKeyRequiredMixin, api_key_authenticated, api_key_required


def answer(request) -> dict:
    return {"Items": [], "Key": request.api_call.decision.key_id}


@api_key_required("export", "inventory")
def plain(request):
    return JsonResponse(answer(request))


@api_key_required("export", "inventory")
async def asynchronous(request):
    await asyncio.sleep(0)  # a real await: the view runs in the event loop
    return JsonResponse(answer(request))


@api_key_required("export", "inventory")
async def asynchronous_teapot(request):
    raise ApiError(418, "short and stout")


@api_key_required("export", "inventory")
async def asynchronous_stream(request):
    async def chunks():
        for n in range(3):
            await asyncio.sleep(0)
            yield f'{{"Chunk": {n}}}\n'.encode()

    return StreamingHttpResponse(chunks(), content_type="application/x-ndjson")


@api_key_required("export", "inventory")
async def asynchronous_slow_stream(request):
    """A chunk a second: a server that buffers the answer sends none before the last is made."""

    async def chunks():
        for n in range(3):
            if n:
                await asyncio.sleep(1.0)
            yield f'{{"Chunk": {n}}}\n'.encode()

    return StreamingHttpResponse(chunks(), content_type="application/x-ndjson")


@api_key_required("export", "inventory")
def sync_stream(request):
    chunks = (f'{{"Chunk": {n}}}\n'.encode() for n in range(3))
    return StreamingHttpResponse(chunks, content_type="application/x-ndjson")


@api_key_authenticated
async def about_the_key(request):
    """A call about the key itself: any active key, no API type."""
    await asyncio.sleep(0)
    return JsonResponse({"Key": request.api_call.decision.key_id})


class ClassBased(ApiKeyRequiredMixin, View):
    api_direction, api_id = "export", "inventory"

    def post(self, request):
        return JsonResponse(answer(request))


class AsyncClassBased(ApiKeyRequiredMixin, View):
    api_direction, api_id = "export", "inventory"

    async def post(self, request):
        await asyncio.sleep(0)
        return JsonResponse(answer(request))


@method_decorator(api_key_required("export", "inventory"), name="dispatch")
class Decorated(View):
    def post(self, request):
        return JsonResponse(answer(request))


class Drf(ApiKeyGuardedView):
    api_direction, api_id = "export", "inventory"

    def post(self, request):
        return Response({"Items": [], "Key": request.auth.decision.key_id})


class DrfWithoutMixin(APIView):
    """Only the authentication and permission classes: the decision, in DRF's answers."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasApiKey]
    api_direction, api_id = "export", "inventory"

    def post(self, request):
        return Response({"Items": [], "Key": request.auth.decision.key_id})


class DrfTeapot(ApiKeyGuardedView):
    api_direction, api_id = "export", "inventory"

    def post(self, request):
        raise ApiError(418, "short and stout")


ninja_api = GuardedNinjaAPI(urls_namespace="guarded-ninja")


@ninja_api.post("/inventory", auth=ApiKey("export", "inventory"))
def ninja_inventory(request):
    return {"Items": [], "Key": request.auth.decision.key_id}


@ninja_api.post("/inventory-async", auth=ApiKey("export", "inventory"))
async def ninja_inventory_async(request):
    await asyncio.sleep(0)
    return {"Items": [], "Key": request.auth.decision.key_id}


@ninja_api.post("/teapot", auth=ApiKey("export", "inventory"))
def ninja_teapot(request):
    raise ApiError(418, "short and stout")


# Without GuardedNinjaAPI: the decision still holds, refusals come in ninja's own shape.
plain_ninja_api = NinjaAPI(urls_namespace="plain-ninja")


@plain_ninja_api.post("/inventory", auth=ApiKey("export", "inventory"))
def plain_ninja_inventory(request):
    return {"Items": [], "Key": request.auth.decision.key_id}


urlpatterns = [
    path("plain", plain),
    path("async", asynchronous),
    path("async-teapot", asynchronous_teapot),
    path("async-stream", asynchronous_stream),
    path("async-slow-stream", asynchronous_slow_stream),
    path("sync-stream", sync_stream),
    path("about-the-key", about_the_key),
    path("cbv", ClassBased.as_view()),
    path("cbv-async", AsyncClassBased.as_view()),
    path("cbv-decorated", Decorated.as_view()),
    path("drf", Drf.as_view()),
    path("drf-teapot", DrfTeapot.as_view()),
    path("drf-without-mixin", DrfWithoutMixin.as_view()),
    path("ninja/", ninja_api.urls),
    path("plain-ninja/", plain_ninja_api.urls),
]
