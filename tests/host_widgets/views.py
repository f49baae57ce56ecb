"""One guarded view of each kind: a plain function, an `async def` function, a Django REST
framework view and a django-ninja endpoint, all for the API type Widgets Export."""

from django.http import JsonResponse
from ninja import Schema
from rest_framework.response import Response

from keys.contrib.drf import ApiKeyGuardedView
from keys.contrib.ninja import ApiKey, GuardedNinjaAPI
from keys.guard import api_key_required


@api_key_required("export", "widgets")
def plain(request):
    return JsonResponse({"Kind": "plain", "Key": request.api_call.decision.key_id})


@api_key_required("export", "widgets")
async def asynchronous(request):
    return JsonResponse({"Kind": "async", "Key": request.api_call.decision.key_id})


class Drf(ApiKeyGuardedView):
    api_direction, api_id = "export", "widgets"

    def post(self, request):
        return Response({"Kind": "drf", "Key": request.auth.decision.key_id})


api = GuardedNinjaAPI(urls_namespace="widgets-ninja")


class Answer(Schema):
    Kind: str
    Key: int


@api.post("/widgets", auth=ApiKey("export", "widgets"), response=Answer)
def ninja(request):
    return {"Kind": "ninja", "Key": request.auth.decision.key_id}  # a dict, as ninja likes it
