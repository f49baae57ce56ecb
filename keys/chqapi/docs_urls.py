"""CHQ's Swagger page and the OpenAPI document it shows, for a host to mount where it wants:
`path("integration/api/", include("keys.chqapi.docs_urls"))` gives CHQ's own addresses
(/integration/api/index). The page finds the document by its name, wherever it is mounted."""

from django.urls import path

from . import swagger

urlpatterns = [
    path("index", swagger.swagger_page, name="swagger"),
    path("openapi.json", swagger.openapi_document, name="openapi-document"),
]
