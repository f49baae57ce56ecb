"""The routes /chqapi/ calls resolve against (chq/wsgi.py): only the API's,
so a call does not walk the admin's and the pane's patterns first."""

from django.urls import include, path

from keys.chqapi.urls import missed

urlpatterns = [path("chqapi/", include("keys.chqapi.urls")), *missed]
