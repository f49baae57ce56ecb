from django.urls import path

from . import views

app_name = "keys"

urlpatterns = [
    path("", views.settings_index, name="settings"),
    path("integrations/keys/", views.keys_pane, name="pane"),
    path("integrations/keys/new/", views.key_new, name="new"),
    path("integrations/keys/<int:pk>/", views.key_details, name="details"),
    path("integrations/keys/<int:pk>/edit/", views.key_edit, name="edit"),
    path("integrations/keys/<int:pk>/remove/", views.key_remove, name="remove"),
]
