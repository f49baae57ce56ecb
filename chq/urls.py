from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from keys.chqapi.urls import missed
from keys.health import healthz


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    # Resolved per request: the hashed name exists only after collectstatic.
    return HttpResponsePermanentRedirect(static("keys/favicon.svg"))


urlpatterns = [
    path("", RedirectView.as_view(pattern_name="keys:settings", permanent=False)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("settings/", include("keys.urls")),
    path("chqapi/", include("keys.chqapi.urls")),
    *missed,
    # CHQ's Swagger page and OpenAPI document, at CHQ's own paths (/integration/api/index).
    path("integration/api/", include("keys.chqapi.docs_urls")),
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon),
]

# /chqapi/ answers failures in JSON (keys/chqapi/errors.py); other pages keep Django's.
handler500 = "keys.chqapi.errors.server_error"
