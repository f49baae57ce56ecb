from django.urls import path

from . import views

app_name = "keys"

urlpatterns = [
    path("", views.settings_index, name="settings"),
    path("integrations/keys/", views.keys_pane, name="pane"),
    path("integrations/keys/due/", views.keys_due, name="due"),
    path("integrations/keys/new/", views.key_new, name="new"),
    path("integrations/keys/<int:pk>/", views.key_details, name="details"),
    path("integrations/keys/<int:pk>/edit/", views.key_edit, name="edit"),
    path("integrations/keys/<int:pk>/remove/", views.key_remove, name="remove"),
    path("integrations/keys/<int:pk>/history/", views.key_history, name="history"),
    path("integrations/keys/<int:pk>/roll/", views.key_roll, name="roll"),
    path("integrations/keys/<int:pk>/end-grace/", views.key_end_grace, name="end-grace"),
    path("integrations/keys/<int:pk>/usage/", views.key_usage, name="usage"),
    path("integrations/keys/<int:pk>/logs/", views.key_logs, name="logs"),
    path("integrations/keys/<int:pk>/logs.csv", views.key_logs_csv, name="logs-csv"),
    path("integrations/keys/<int:pk>/logs/<int:log_pk>/", views.log_entry, name="log-entry"),
]
