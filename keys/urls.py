from django.urls import path

from . import views

app_name = "keys"

urlpatterns = [
    path("", views.settings_index, name="settings"),
]
