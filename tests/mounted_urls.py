"""A host URLconf that mounts the pane, the API and the Swagger page at other prefixes than the
demo's (tests/app/test_app_structure.py): nothing of the app may assume where it lives."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("people/login/", auth_views.LoginView.as_view(), name="login"),
    path("people/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin-area/settings/", include("keys.urls")),
    path("api/v2/chq/", include("keys.chqapi.urls")),
    path("docs/chq/", include("keys.chqapi.docs_urls")),
]
